"""Graph knowledge for causal-LM prompts: ``kelm evaluate --zero-shot --knowledge GRAPH_DIR``.

For each question:

1. **Grounding** - every (question, choice) statement is grounded in the graph by kelm's
   statement grounding (:func:`kelm.linking.ground.ground_file`, the rules of ``kelm ground``;
   COPA grounds the premise); the grounded file is cached under ``$KELM_CACHE/zeroshot`` by
   the graph's checksum, the questions and the linker settings.
2. **Paths** - for each choice, every simple path of 1 to ``hops`` hops between its question
   concepts and its answer concepts (:func:`kelm.retrieval.paths.find_paths`, the KagNet
   definition, at most :data:`PATHS_PER_PAIR` per concept pair).
3. **Ranking** - the paths of *all* choices are pooled and ranked by a documented, simple key
   (:func:`rank_key`): fewer hops first; then the sum of ``log(1 + degree)`` over the path's
   inner nodes (a path through a specific concept beats one through a hub such as "person");
   then the same sum over its two ends; then choice order and the canonical path order. The
   first :data:`CANDIDATES` are cached per question (``facts-<key>.json``, keyed on the
   grounded file, the graph and every option above).
4. **Facts** - the first ``facts`` items of the ranking become sentences
   (:mod:`kelm.evaluation.templates`): with ``form="triples"`` each distinct edge of the ranked
   paths is one fact (in rank order, an edge met again later is skipped); with ``"paths"`` each
   distinct path is one fact, its hops' sentences joined. A hop between two concepts that the
   graph links by several relations is stated once, by the first of: a forward relation (the
   edge as stored) other than ``RelatedTo``, any forward relation, an inverse one.

The knowledge of a question is thus the union of what links it to each of its choices, ranked,
and shared by all choices: it goes into the one prompt of the question (before the question or
between the question and the answer cue, :mod:`kelm.evaluation.prompts`), so every choice is
still scored on the same prefix - the key/value cache of the prompt is computed once - and the
choices are compared on the same evidence. Facts tailored to each choice would give each choice
its own prompt (no shared prefix, and a comparison of log-likelihoods under different
conditions); kelm does not do that.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kelm._io import write_json
from kelm.errors import KelmError
from kelm.evaluation.prompts import KNOWLEDGE_POSITIONS
from kelm.evaluation.templates import TEMPLATES_VERSION, verbalize

if TYPE_CHECKING:
    from kelm.data.qa import QAItem
    from kelm.graph.index import GraphIndex

log = logging.getLogger(__name__)

FORMS: tuple[str, ...] = ("triples", "paths")
POSITIONS: tuple[str, ...] = KNOWLEDGE_POSITIONS
"""Where the facts go in the prompt: those :func:`kelm.evaluation.prompts.format_item` takes."""
MAX_HOPS = 3
PATHS_PER_PAIR = 100
"""Paths found per (question concept, answer concept) pair before ranking."""
CANDIDATES = 64
"""Ranked paths kept (and cached) per question; ``--facts`` takes the first ones."""
RANKING_VERSION = 1
"""Part of the facts cache key: bump it when :func:`rank_key` or the path search changes."""


@dataclass(frozen=True)
class KnowledgeOptions:
    """How facts are chosen and placed (see the module docstring).

    Attributes:
        facts: facts per question (0: prompts as without knowledge).
        form: ``triples`` (one edge per fact) or ``paths`` (one path per fact).
        position: ``before`` the question or ``after`` it (before the answer cue).
        hops: the longest path, in hops (1 to :data:`MAX_HOPS`).
    """

    facts: int = 3
    form: str = "triples"
    position: str = "before"
    hops: int = 2

    def validate(self) -> None:
        if self.facts < 0:
            raise KelmError(f"--facts must be at least 0, not {self.facts}")
        if self.form not in FORMS:
            raise KelmError(
                f"unknown --knowledge-form {self.form!r}; choose one of {', '.join(FORMS)}"
            )
        if self.position not in POSITIONS:
            raise KelmError(
                f"unknown --facts-position {self.position!r}; choose one of {', '.join(POSITIONS)}"
            )
        if not 1 <= self.hops <= MAX_HOPS:
            raise KelmError(f"--fact-hops must be between 1 and {MAX_HOPS}, not {self.hops}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Fact:
    """One ranked path of a question: from a question concept to a choice's concept.

    Attributes:
        choice: the label of the choice whose answer concept the path ends at.
        nodes: node names along the path.
        relations: one relation name per hop, read from the earlier node (``~name``: the
            edge runs the other way).
    """

    choice: str
    nodes: list[str]
    relations: list[str]
    key: list[float] = field(default_factory=list)

    def triples(self) -> list[tuple[str, str, str]]:
        """The path's hops as ``(head, relation, tail)`` in reading order."""
        return [
            (self.nodes[i], self.relations[i], self.nodes[i + 1])
            for i in range(len(self.relations))
        ]

    def sentence(self) -> str:
        """The whole path: its hops' sentences joined by spaces."""
        return " ".join(verbalize(*t) for t in self.triples())


def select_facts(candidates: Sequence[Fact], n: int, form: str) -> list[str]:
    """The first ``n`` distinct facts of a ranked candidate list, as sentences.

    ``triples``: each hop of each path in rank order, an edge stated before (either reading
    direction) skipped. ``paths``: each path's sentence, a repeated sentence skipped.
    """
    out: list[str] = []
    seen: set[Any] = set()
    for fact in candidates:
        if len(out) >= n:
            break
        if form == "paths":
            text = fact.sentence()
            if text not in seen:
                seen.add(text)
                out.append(text)
            continue
        for head, rel, tail in fact.triples():
            text = verbalize(head, rel, tail)  # a reversed reading gives the same sentence
            if text in seen:
                continue
            seen.add(text)
            out.append(text)
            if len(out) >= n:
                break
    return out


# ---------------------------------------------------------------------------------- ranking
def hop_relation(rel_ids: Sequence[int], relations: Sequence[str], num_relations: int) -> str:
    """The relation a hop is stated by (module docstring, step 4)."""
    forward = [r for r in rel_ids if r < num_relations]
    specific = [r for r in forward if relations[r].lower() != "relatedto"]
    chosen = (specific or forward or list(rel_ids))[0]
    return relations[chosen]


def rank_key(nodes: Sequence[int], degree: np.ndarray) -> tuple[float, float, float]:
    """``(hops, sum of log(1 + degree) over inner nodes, the same over the two ends)``."""
    logs = [math.log1p(float(degree[n])) for n in nodes]
    return float(len(nodes) - 1), float(sum(logs[1:-1])), float(logs[0] + logs[-1])


def rank_question(
    per_choice: Sequence[tuple[str, Any, Any]],
    adjacency: Any,
    names: Sequence[str],
    relations: Sequence[str],
    hops: int,
    limit: int = CANDIDATES,
) -> list[Fact]:
    """The ranked candidate paths of one question.

    Args:
        per_choice: ``(choice label, question concepts, answer concepts)`` per choice, in
            choice order (node ids).
        adjacency: the graph's :class:`~kelm.retrieval.subgraph.Adjacency`.
        names: node names by id.
        relations: relation names by id (forward, then ``~`` inverses).
        hops: the longest path.
        limit: candidates kept.
    """
    from kelm.retrieval.paths import find_paths

    scored = []
    for order, (label, question, answer) in enumerate(per_choice):
        paths = find_paths(adjacency, question, answer, hops=hops, max_paths=PATHS_PER_PAIR)
        for k, (nodes, rels) in enumerate(paths.to_list()):
            key = rank_key(nodes, adjacency.degree)
            scored.append((key, order, k, label, nodes, rels))
    scored.sort(key=lambda row: row[:3])
    out, seen = [], set()
    r = adjacency.num_relations
    for key, _, _, label, nodes, rels in scored:
        if tuple(nodes) in seen:  # the same path reaches two choices sharing a concept
            continue
        seen.add(tuple(nodes))
        out.append(
            Fact(
                label,
                [names[n] for n in nodes],
                [hop_relation(ids, relations, r) for ids in rels],
                list(key),
            )
        )
        if len(out) >= limit:
            break
    return out


# ---------------------------------------------------------------------------------- retrieval
def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def load_knowledge_graph(graph: str | Path) -> GraphIndex:
    """The graph index of ``--knowledge``, or a one-line :class:`KelmError` naming it."""
    from kelm.graph.index import GraphIndex

    path = Path(graph)
    if not path.exists():
        raise KelmError(f"--knowledge {path}: no such graph index directory")
    if not path.is_dir():
        raise KelmError(
            f"--knowledge {path}: not a directory (expected a `kelm graph build` index)"
        )
    return GraphIndex.load(path)


def retrieve_facts(
    graph: str | Path | GraphIndex,
    items: Sequence[QAItem],
    hops: int = 2,
    *,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, list[Fact]]:
    """Ranked candidate facts (at most :data:`CANDIDATES`) for every item, by item id.

    Grounding and the ranked paths are cached (see the module docstring); the cached facts are
    reused when the graph, the questions, the linker settings and ``hops`` are the same.

    Raises:
        KelmError: unusable graph, grounding without spaCy and no cached grounding.
    """
    from kelm.graph.index import GraphIndex
    from kelm.linking.ground import ground_file, items_sha256
    from kelm.paths import cache_dir as default_cache
    from kelm.retrieval.retrieve import read_grounded
    from kelm.retrieval.subgraph import Adjacency

    index = graph if isinstance(graph, GraphIndex) else load_knowledge_graph(graph)
    root = Path(cache_dir) if cache_dir is not None else default_cache() / "zeroshot"
    root.mkdir(parents=True, exist_ok=True)
    questions = items_sha256(items)
    grounded = root / f"grounded-{_digest([index.checksum, questions])}.jsonl"
    ground_file(index, items, grounded, progress=progress)
    meta = json.loads(Path(f"{grounded}.manifest.json").read_text(encoding="utf-8"))
    parts = {
        "graph": index.checksum,
        "grounded": meta.get("sha256"),
        "linker": meta.get("linker"),
        "hops": hops,
        "paths_per_pair": PATHS_PER_PAIR,
        "candidates": CANDIDATES,
        "ranking_version": RANKING_VERSION,
    }
    key = _digest(parts)
    cached = root / f"facts-{key}.json"
    found = _read_cached(cached, key)
    if found is not None:
        return found
    log.info("ranking facts for %d questions", len(items))
    by_item: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
    for s in read_grounded(grounded, index.num_nodes):
        by_item.setdefault(str(s.id), []).append((str(s.choice), s.question, s.answer))
    adjacency = Adjacency.from_index(index)
    names = index.names.to_list()
    relations = index.relations
    facts = {
        item.id: rank_question(by_item.get(item.id, []), adjacency, names, relations, hops)
        for item in items
    }
    write_json(
        cached,
        {
            "kind": "kelm-zeroshot-facts",
            "key": key,
            "parts": parts,
            "templates_version": TEMPLATES_VERSION,
            "items": {i: [asdict(f) for f in fs] for i, fs in facts.items()},
        },
    )
    return facts


def _read_cached(path: Path, key: str) -> dict[str, list[Fact]] | None:
    """The cached facts when ``path`` holds them under ``key``; ``None`` otherwise (a damaged
    cache file is recomputed and replaced)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != key:
            return None
        return {str(i): [Fact(**f) for f in fs] for i, fs in data["items"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        log.warning("%s: unreadable facts cache, computing it again", path)
        return None


def question_facts(
    candidates: Mapping[str, Sequence[Fact]], options: KnowledgeOptions
) -> dict[str, list[str]]:
    """The sentences that go into each question's prompt."""
    return {i: select_facts(c, options.facts, options.form) for i, c in candidates.items()}


__all__ = [
    "CANDIDATES",
    "FORMS",
    "POSITIONS",
    "Fact",
    "KnowledgeOptions",
    "hop_relation",
    "load_knowledge_graph",
    "question_facts",
    "rank_key",
    "rank_question",
    "retrieve_facts",
    "select_facts",
]
