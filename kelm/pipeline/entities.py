"""Entities of statements: the question and the choice text linked to graph nodes, and the
mentions aligned to wordpieces (ERNIE-style families)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kelm.linking.align import char_spans_to_tokens

if TYPE_CHECKING:
    from kelm.data.qa import QAItem
    from kelm.graph.index import GraphIndex


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
    from tqdm.auto import tqdm

    from kelm.linking import Linker, LinkerOptions
    from kelm.linking.ground import make_nlp

    texts: dict[str, int] = {}
    for item in items:
        texts.setdefault(item.question, len(texts))
        for choice in item.choices:
            texts.setdefault(choice.text, len(texts))
    if not texts:
        return []
    nlp = make_nlp(pipeline)
    options = LinkerOptions(lemmas="pipeline" if pipeline else "lookup")
    linker = Linker(graph, nlp, options, cache_dir=cache_dir)
    ordered = list(texts)
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
    return [
        (found[texts[item.question]], found[texts[choice.text]])
        for item in items
        for choice in item.choices
    ]


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


__all__ = ["EntityMention", "StatementMentions", "align_entities", "link_entities"]
