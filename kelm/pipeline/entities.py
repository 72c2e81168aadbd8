"""Entities of statements: the question and the choice text linked to graph nodes, and the
mentions aligned to wordpieces (ERNIE-style families)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kelm.errors import KelmError
from kelm.linking.align import char_spans_to_tokens

if TYPE_CHECKING:
    from spacy.language import Language

    from kelm.data.qa import QAItem
    from kelm.graph.index import GraphIndex

log = logging.getLogger(__name__)

MENTIONS_KIND = "kelm-mentions"
MENTIONS_FORMAT_VERSION = 1


EntityMention = tuple[int, int, int]
"""A linked mention: ``(start_char, end_char, node_id)`` in its text."""
StatementMentions = tuple[list[EntityMention], list[EntityMention]]
"""The mentions of one statement's question and of its choice."""


def link_entities(
    items: Sequence[QAItem],
    graph: GraphIndex,
    *,
    pipeline: str | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 2000,
    progress: bool = False,
) -> list[StatementMentions]:
    """Link the question and the choice text of every statement to graph nodes.

    The concept linker (the grounding's lemma n-gram index, :mod:`kelm.linking.linker`)
    finds every match in a text; overlapping matches are resolved longest first (then
    leftmost), and each kept mention takes the first of its nodes. Each distinct text is
    linked once.

    Args:
        items: the questions.
        graph: the graph index.
        pipeline: installed spaCy pipeline (default: blank English, lookup lemmas).
        cache_dir: linker index cache.
        batch_size: texts per linker batch.
        progress: a progress bar.

    Returns:
        Per statement (question-major, choices in file order): ``(question mentions,
        choice mentions)``, each sorted by position.
    """
    from kelm.linking.ground import make_nlp

    texts = _texts(items)
    if not texts:
        return []
    nlp = make_nlp(pipeline)
    found = _link_texts(list(texts), graph, nlp, pipeline, cache_dir, batch_size, progress)
    return _per_statement(items, texts, found)


def _texts(items: Sequence[QAItem]) -> dict[str, int]:
    """Each distinct question and choice text and its position, in first-seen order."""
    texts: dict[str, int] = {}
    for item in items:
        texts.setdefault(item.question, len(texts))
        for choice in item.choices:
            texts.setdefault(choice.text, len(texts))
    return texts


def _per_statement(
    items: Sequence[QAItem], texts: dict[str, int], found: list[list[EntityMention]]
) -> list[StatementMentions]:
    return [
        (found[texts[item.question]], found[texts[choice.text]])
        for item in items
        for choice in item.choices
    ]


def _link_texts(
    ordered: list[str],
    graph: GraphIndex,
    nlp: Language,
    pipeline: str | None,
    cache_dir: str | Path | None,
    batch_size: int,
    progress: bool,
) -> list[list[EntityMention]]:
    """The kept mentions of each text (see :func:`link_entities`)."""
    from tqdm.auto import tqdm

    from kelm.linking import Linker, LinkerOptions

    options = LinkerOptions(lemmas="pipeline" if pipeline else "lookup")
    linker = Linker(graph, nlp, options, cache_dir=cache_dir)
    found: list[list[EntityMention]] = []
    with tqdm(
        total=len(ordered), desc="linking entities", unit="text", disable=not progress
    ) as bar:
        for start in range(0, len(ordered), batch_size):
            docs = list(nlp.pipe(ordered[start : start + batch_size]))
            for doc, mentions in zip(docs, linker.mentions(docs), strict=True):
                taken: set[int] = set()
                kept: list[EntityMention] = []
                for m in sorted(mentions, key=lambda m: (m.start - m.end, m.start)):
                    if m.node_ids and taken.isdisjoint(range(m.start, m.end)):
                        taken.update(range(m.start, m.end))
                        span = doc[m.start : m.end]
                        kept.append((span.start_char, span.end_char, int(m.node_ids[0])))
                found.append(sorted(kept))
            bar.update(len(docs))
    return found


def cached_link_entities(
    items: Sequence[QAItem],
    graph: GraphIndex,
    cache: str | Path,
    *,
    pipeline: str | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    nlp: Language | None = None,
) -> list[StatementMentions]:
    """:func:`link_entities`, its result cached in the folder ``cache`` (one JSON file, keyed on
    the graph checksum, the texts, the pipeline name and the linker version; the file records
    the lemma source, which must match where spaCy is). A sidecar ``.sha256`` file, written
    after it, records the JSON file's sha256: a cached result that is not what was written
    (or has no sidecar) is linked again, with a warning.

    Without spaCy nothing can be linked and the lemma source cannot be identified: a cached
    result of the same key is reused as it is (linked where spaCy is and carried to a machine
    without it).

    ``nlp`` is the pipeline ``pipeline`` names, already loaded (else it is loaded here).

    Raises:
        KelmError: no spaCy and no cached result.
    """
    from kelm.linking import LinkerOptions
    from kelm.linking.concept_index import INDEX_VERSION
    from kelm.linking.lemmas import lemma_source_identity, spacy_available

    texts = _texts(items)
    if not texts:
        return []
    ordered = list(texts)
    options = LinkerOptions(lemmas="pipeline" if pipeline else "lookup")
    key = {
        "kind": MENTIONS_KIND,
        "format_version": MENTIONS_FORMAT_VERSION,
        "graph_checksum": graph.checksum,
        "texts_sha256": hashlib.sha256(json.dumps(ordered).encode("utf-8")).hexdigest(),
        "pipeline": pipeline,
        "linker": json.loads(json.dumps(options.to_dict())),
        "index_version": INDEX_VERSION,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    path = Path(cache) / f"{digest[:24]}.json"
    saved = _read_mentions(path, key, len(ordered))
    if not spacy_available():
        if saved is None:
            raise KelmError(
                f"linking the entities of {len(items)} questions needs spaCy, which is not "
                f"installed, and no linked result of them is cached ({path}): install spaCy, "
                "or link where it is and carry the cache"
            )
        log.info("spaCy is not installed: reusing %s without checking its lemma source", path)
        return _per_statement(items, texts, saved[1])
    from kelm.linking.ground import make_nlp

    if nlp is None:
        nlp = make_nlp(pipeline)
    source = lemma_source_identity(nlp, options.lemmas, nlp.pipe_names)
    if saved is not None and saved[0] == json.loads(json.dumps(source)):
        return _per_statement(items, texts, saved[1])
    found = _link_texts(ordered, graph, nlp, pipeline, cache_dir, 2000, progress)
    from kelm._io import atomic_file, sha256_file

    flat = [[x for mention in mentions for x in mention] for mentions in found]
    with atomic_file(path, "w") as fh:  # compact: one list of numbers per text
        json.dump({**key, "lemma_source": source, "texts": len(ordered), "mentions": flat}, fh)
    with atomic_file(_sidecar(path), "w") as fh:
        fh.write(sha256_file(path) + "\n")
    return _per_statement(items, texts, found)


def _sidecar(path: Path) -> Path:
    """The file that records the sha256 of the cached result ``path``."""
    return path.with_name(path.name + ".sha256")


def _read_mentions(
    path: Path, key: dict[str, Any], n: int
) -> tuple[dict[str, Any], list[list[EntityMention]]] | None:
    """A cached result of ``key`` (its lemma source and mentions), or ``None``: none, or one
    that is not what was written (warned about)."""
    from kelm._io import verify_file

    if not path.is_file():
        return None
    try:
        expected = _sidecar(path).read_text(encoding="ascii").strip()
        verify_file(path, expected, what="linked-entity cache", error=ValueError)
        obj = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(obj, dict) or any(obj.get(k) != v for k, v in key.items()):
            return None
        flat = obj.get("mentions")
        if obj.get("texts") != n or not isinstance(flat, list) or len(flat) != n:
            raise ValueError(f"{path}: not {n} lists of mentions")
        found = [
            [(int(m[i]), int(m[i + 1]), int(m[i + 2])) for i in range(0, len(m), 3)] for m in flat
        ]
    except (OSError, ValueError, TypeError, IndexError) as exc:
        log.warning("linked-entity cache %s is not usable (%s); linking again", path, exc)
        return None
    return obj.get("lemma_source") or {}, found


def align_entities(
    offsets: Sequence[Sequence[int]],
    sequence_ids: Sequence[int | None],
    mentions: StatementMentions,
) -> list[int]:
    """Entity ids of one tokenised statement: each mention's node on the first wordpiece it
    covers, ``-1`` elsewhere; mentions cut off by truncation are dropped.

    Args:
        offsets: the statement's ``offset_mapping`` (per token).
        sequence_ids: which text each token comes from (0: question, 1: choice, None).
        mentions: the question's and the choice's mentions.
    """
    out = [-1] * len(offsets)
    for sequence, side in enumerate(mentions):
        if not side:
            continue
        spans = [(start, end) for start, end, _ in side]
        covered = char_spans_to_tokens(offsets, spans, sequence_ids, sequence)
        for (_, _, node), tokens in zip(side, covered, strict=True):
            if tokens:
                out[tokens[0]] = node
    return out


__all__ = [
    "EntityMention",
    "StatementMentions",
    "align_entities",
    "cached_link_entities",
    "link_entities",
]
