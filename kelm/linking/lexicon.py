"""What a graph contributes to a linker index: its names and aliases as (text, node) entries,
the pruning of names that are no useful concepts, and the ranking of the nodes of one key.

Two kinds of entries:

* ``concept`` mode (ConceptNet / CN-100K grounding): one entry per node name (``_`` read as a
  space), pruned the way the commonsense-QA grounding literature (KagNet, MHGRN, QA-GNN)
  prunes: names longer than ``max_ngram`` tokens, names made only of stopwords or blacklisted
  words, and names starting or ending with a pronoun are left out.
* ``entity`` mode (RDF / WordNet): an alias table. Every node name, label and alias is an
  entry; each (alias, node) pair carries a prior: the alias frequency from a ``priors`` file
  when one is given, else the node degree.

Changing these rules changes what a cached index holds: bump
:data:`kelm.linking.concept_index.INDEX_VERSION` with them.
"""

from __future__ import annotations

import csv
import math
from typing import TYPE_CHECKING

import numpy as np

from kelm.errors import KelmError
from kelm.graph.strings import StringColumn
from kelm.linking.options import LinkerOptions

if TYPE_CHECKING:
    from spacy.language import Language

    from kelm.graph.index import GraphIndex

#: NLTK's English stopword list (179 words), which the grounding literature prunes with.
#: Written out here so that kelm does not depend on nltk and its data download.
_STOPWORD_TEXT = """
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself
yourselves he him his himself she she's her hers herself it it's its itself they them their
theirs themselves what which who whom this that that'll these those am is are was were be been
being have has had having do does did doing a an the and but if or because as until while of at
by for with about against between into through during before after above below to from up down
in out on off over under again further then once here there when where why how all any both
each few more most other some such no nor not only own same so than too very s t can will just
don don't should should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't
doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't
needn needn't shan shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

#: A concept that starts or ends with one of these is a fragment ("his uniform", "feed it").
_PRONOUN_TEXT = "my you it its your i he she his her they them their our we"
PRONOUNS = frozenset(_PRONOUN_TEXT.split())


def concept_entries(graph: GraphIndex) -> list[tuple[str, int]]:
    """(text, node) per node name; ConceptNet writes multi-word names with ``_``."""
    return [(name.replace("_", " ").strip(), i) for i, name in enumerate(graph.names.to_list())]


def alias_entries(graph: GraphIndex, options: LinkerOptions) -> list[tuple[str, int]]:
    """(text, node) for every node name, label and alias (from the documented index files)."""
    path = graph.path
    entries: dict[tuple[str, int], None] = {}

    def column(name: str) -> list[str]:
        return StringColumn(
            np.load(path / f"{name}.data.npy", mmap_mode="r"),
            np.load(path / f"{name}.offsets.npy", mmap_mode="r"),
        ).to_list()

    for i, name in enumerate(graph.names.to_list()):
        if "://" not in name:  # URIs are identifiers, not mentions; their labels are aliases
            entries[(name.replace("_", " ").strip(), i)] = None
    for i, label in enumerate(column("nodes.label")):
        if label:
            entries[(label.replace("_", " ").strip(), i)] = None
    alias_nodes = np.load(path / "aliases.node.npy", mmap_mode="r").tolist()
    for alias, node in zip(column("aliases.alias"), alias_nodes, strict=True):
        entries[(alias.replace("_", " ").strip(), int(node))] = None
    return [e for e in entries if e[0]]


def keep_name(lowers: list[str], lemma_keys: list[str], options: LinkerOptions) -> bool:
    """The literature's pruning: length, names made only of stopwords, blacklisted words and
    punctuation, names with a pronoun at either end (concept mode)."""
    n = len(lowers)
    if n == 0 or n > options.max_ngram or any(not s.strip() for s in lowers):
        return False
    blacklist = set(options.blacklist)
    if " ".join(lowers) in blacklist or " ".join(lemma_keys) in blacklist:
        return False
    if options.prune_stopwords and all(
        low in STOPWORDS or lem in STOPWORDS or lem in blacklist or not _has_word(low)
        for low, lem in zip(lowers, lemma_keys, strict=True)
    ):
        return False
    return not (
        options.mode == "concept"
        and options.prune_pronouns
        and (lowers[0] in PRONOUNS or lowers[-1] in PRONOUNS)
    )


def _has_word(token: str) -> bool:
    """Whether a token has a letter or digit (``-``, ``?`` and ``...`` are never concepts)."""
    return any(c.isalnum() for c in token)


def rank_nodes(
    graph: GraphIndex, aliases_of: dict[int, set[str]], priors: dict[tuple[str, int], float] | None
) -> list[tuple[int, float]]:
    """The nodes of one key, best first, with their scores.

    Concept mode (``priors is None`` and no degree wanted) ranks nothing: every node scores
    1.0. Entity mode scores P(node | alias): the alias frequencies of the priors file when it
    has any for these aliases, else node degree + 1, normalised over the candidates.
    """
    nodes = sorted(aliases_of)
    if priors is None:
        return [(n, 1.0) for n in nodes]
    freq = [max((priors.get((a, n), 0.0) for a in aliases_of[n]), default=0.0) for n in nodes]
    if not any(freq):
        degree = _degrees(graph)
        freq = [float(degree[n]) + 1.0 for n in nodes]
    total = sum(freq) or 1.0
    ranked = sorted(zip(nodes, (f / total for f in freq), strict=True), key=lambda p: -p[1])
    return [(n, float(s)) for n, s in ranked]


def _degrees(graph: GraphIndex) -> np.ndarray:
    cached = getattr(graph, "_kelm_linker_degree", None)
    if cached is None:
        cached = np.asarray(graph.degree(), dtype=np.int64)
        graph._kelm_linker_degree = cached  # type: ignore[attr-defined]
    return cached


def read_priors(
    options: LinkerOptions, graph: GraphIndex, nlp: Language
) -> dict[tuple[str, int], float] | None:
    """Entity mode: ``{(lower-cased alias, node): count}`` from the priors file (empty without
    one, so that degree decides). Concept mode: ``None`` (no ranking)."""
    if options.mode == "concept":
        return None
    counts: dict[tuple[str, int], float] = {}
    if not options.priors:
        return counts
    path = options.priors
    with open(path, encoding="utf-8", newline="") as fh:
        for line_no, row in enumerate(csv.reader(fh, delimiter="\t"), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 3:
                raise KelmError(f"{path}:{line_no}: expected alias, node name, count")
            try:
                count = float(row[2])
            except ValueError:
                raise KelmError(f"{path}:{line_no}: count {row[2]!r} is not a number") from None
            if not math.isfinite(count) or count < 0:
                raise KelmError(f"{path}:{line_no}: count must be a non-negative number")
            if row[1] in graph:
                alias = " ".join(t.lower_ for t in nlp.tokenizer(row[0].strip()))
                counts[(alias, graph.node_id(row[1]))] = count
    return counts
