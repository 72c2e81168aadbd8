"""Entity mode's ranking of a mention's candidates: a part-of-speech filter, a context score, and
the rule that combines the context with the prior.

**Part of speech** (``pos_filter``): when the docs carry coarse POS tags (a pipeline with a
tagger, such as ``en_core_web_sm``; ``spacy.blank`` has none, and then nothing is filtered), a
candidate is kept only if its part of speech agrees with the mention's: spaCy's ``NOUN`` and
``PROPN`` are WordNet's ``n``, ``VERB`` and ``AUX`` ``v``, ``ADJ`` ``a``/``s``, ``ADV`` ``r``.
A node's part of speech is read from a WordNet-style name, ``<lemma>.<pos>.<NN>``; nodes without
one (RDF, ConceptNet, anything else) are never filtered out, nor are the candidates of a
mention whose tag has no WordNet counterpart (``NUM``, ``X``, ...). The tag of a mention of
several tokens is its root's when the doc is parsed, else its first token's when that is a verb
(phrasal verbs), else its last token's (noun compounds). A span none of whose candidates agree
is no mention: "sat" tagged ``VERB`` no longer links to Saturday. The filter runs before the
longest non-overlapping spans are chosen. With fine-grained tags, a span of several tokens that
ends in a preposition (Penn tag ``IN``) followed by more of the sentence is no mention either:
that preposition opens a phrase of its own ("sank | in the storm" is not *sink in*), while a
verb particle (``RP``: "gave up") stays part of its phrasal verb.

**Context** (``context_weight > 0``): the mention's context is the text of up to
``context_window`` tokens on each side of it, within its sentence (the doc's sentences when the
pipeline sets them, else up to the nearest ``.``, ``!`` or ``?`` token), so a sentence is one
context, embedded once for all its mentions. The context score of a candidate is the cosine
between the sentence embeddings (mean-pooled MiniLM,
:class:`~kelm.linking.sentence_encoder.SentenceEncoder`) of the context and of the candidate's
text (:mod:`kelm.linking.candidate_embeddings`: names and WordNet gloss with examples, RDF
comment, or neighbour names).

**Combination** (:func:`combine`): with the prior ``p`` renormalised over the mention's
remaining candidates and smoothed towards uniform, ``p' = (p + b/n) / (1 + b)`` (``b`` =
:data:`PRIOR_SMOOTHING`, ``n`` candidates: a zero count never rules a candidate out), and the
cosine ``c``, each candidate scores ::

    score = softmax over the candidates of  (1 - w) * log p'  +  w * c / T

``w`` is ``context_weight``, ``T`` = :data:`TEMPERATURE` = 0.05 (all-MiniLM-L6-v2 was trained
with cosine x 20 as its logits, so ``exp(c / T)`` is the encoder's own likelihood scale). The
scores sum to 1 over a mention's candidates. ``w = 0`` gives the (renormalised, unsmoothed)
prior itself, as the linker ranked before the context score existed; ``w = 1`` ranks by the
context alone; between them it is a weighted product of the two distributions. Candidates are
ranked by score, ties by prior, then node id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kelm.linking.options import LinkerOptions

if TYPE_CHECKING:
    from spacy.tokens import Doc

    from kelm.graph.index import GraphIndex
    from kelm.linking.candidate_embeddings import CandidateEmbeddings
    from kelm.linking.sentence_encoder import SentenceEncoder

#: spaCy's coarse tags -> the WordNet synset types they agree with.
SPACY_TO_WORDNET = {
    "NOUN": "n",
    "PROPN": "n",
    "VERB": "v",
    "AUX": "v",
    "ADJ": "as",
    "ADV": "r",
}
TEMPERATURE = 0.05
PRIOR_SMOOTHING = 0.1
#: Token limit of the encoder for contexts and candidate texts (a gloss with its examples).
ENCODER_MAX_LENGTH = 128

#: Tokens that end a sentence, for docs without sentence boundaries (a tagger alone sets none).
SENTENCE_ENDS = frozenset({".", "!", "?", "...", "…", "。"})

_SYNSET_NAME = re.compile(r"\.([nvasr])\.\d+$")
_POS_CODES = {"n": 1, "v": 2, "a": 3, "s": 4, "r": 5}


@dataclass
class Ranked:
    """A mention's candidates, best first: combined scores, priors and (with context) the
    cosines."""

    node_ids: list[int]
    scores: list[float]
    priors: list[float]
    context: list[float] | None


def node_pos_codes(names: Sequence[str]) -> np.ndarray:
    """``uint8 [num_nodes]``: the synset type of each WordNet-style name (``n`` 1, ``v`` 2, ``a``
    3, ``s`` 4, ``r`` 5), 0 where the name has none."""
    codes = np.zeros(len(names), dtype=np.uint8)
    for i, name in enumerate(names):
        if "." in name:
            found = _SYNSET_NAME.search(name)
            if found:
                codes[i] = _POS_CODES[found.group(1)]
    return codes


def mention_pos(doc: Doc, start: int, end: int) -> str | None:
    """The WordNet synset types a mention's tag agrees with (``"n"``, ``"v"``, ``"as"``,
    ``"r"``), or ``None`` (no tag, or one without a WordNet counterpart)."""
    span = doc[start:end]
    if len(span) == 1:
        token = span[0]
    elif doc.has_annotation("DEP"):
        token = span.root
    elif span[0].pos_ in ("VERB", "AUX"):
        token = span[0]
    else:
        token = span[-1]
    return SPACY_TO_WORDNET.get(token.pos_)


def crosses_preposition(doc: Doc, start: int, end: int) -> bool:
    """Whether the span ``[start, end)`` of several tokens ends in a preposition (``IN``) that
    opens a phrase going on after the span: the span takes a word of another phrase."""
    if end - start < 2 or end >= len(doc) or not doc.has_annotation("TAG"):
        return False
    return doc[end - 1].tag_ == "IN" and not doc[end].is_punct


def context_bounds(doc: Doc, start: int, end: int, window: int) -> tuple[int, int]:
    """Token range of a mention's context: ``window`` tokens each side, within its sentence:
    the doc's sentence when it has boundaries, else up to the nearest sentence-final
    punctuation token on each side (what spaCy's rule-based sentencizer would split on)."""
    lo, hi = max(0, start - window), min(len(doc), end + window)
    if doc.has_annotation("SENT_START"):
        sent = doc[start].sent
        return max(lo, sent.start), min(hi, sent.end)
    first = start
    while first > lo and doc[first - 1].text not in SENTENCE_ENDS:
        first -= 1
    last = end
    while last < hi and doc[last - 1].text not in SENTENCE_ENDS:
        last += 1
    return first, last


def combine(priors: np.ndarray, cosines: np.ndarray | None, weight: float) -> np.ndarray:
    """The combined scores of one mention's candidates (see the module docstring): a
    distribution over them."""
    p = np.asarray(priors, dtype=np.float64)
    n = p.shape[0]
    total = p.sum()
    p = p / total if total > 0 else np.full(n, 1.0 / n)
    if cosines is None or weight <= 0:
        return p  # the prior itself, as the linker ranked before the context score existed
    p = (p + PRIOR_SMOOTHING / n) / (1.0 + PRIOR_SMOOTHING)
    logits = (1.0 - weight) * np.log(p)
    logits = logits + weight * np.asarray(cosines, dtype=np.float64) / TEMPERATURE
    logits -= logits.max()
    e = np.exp(logits)
    return e / e.sum()


class Disambiguator:
    """POS filter and context scoring for one linker (see the module docstring).

    Args:
        graph: the graph whose nodes are the candidates.
        options: the linker options (``pos_filter``, ``context_weight``, ``context_window``,
            ``encoder``).
        names: the node names by id.
        cache_dir: the linker cache root (candidate embeddings go below it).
        encoder: a sentence encoder to use instead of loading ``options.encoder`` (tests).
    """

    def __init__(
        self,
        graph: GraphIndex,
        options: LinkerOptions,
        names: Sequence[str],
        cache_dir: str | Path | None = None,
        *,
        encoder: SentenceEncoder | None = None,
    ) -> None:
        self.graph = graph
        self.options = options
        self.weight = float(options.context_weight or 0.0)
        self._names = names
        self._pos: np.ndarray | None = None
        self._cache_dir = cache_dir
        self._encoder = encoder
        self._candidates: CandidateEmbeddings | None = None

    # ------------------------------------------------------------------ part of speech
    @property
    def pos_codes(self) -> np.ndarray:
        if self._pos is None:
            self._pos = node_pos_codes(self._names)
        return self._pos

    def filter_pos(
        self, doc: Doc, start: int, end: int, cands: dict[int, float]
    ) -> dict[int, float]:
        """The candidates whose part of speech agrees with the mention's (all of them when the
        filter is off, the doc is untagged, or the tag has no WordNet counterpart)."""
        if not self.options.pos_filter or not doc.has_annotation("POS"):
            return cands
        if crosses_preposition(doc, start, end):
            return {}
        wanted = mention_pos(doc, start, end)
        if wanted is None:
            return cands
        allowed = {0} | {_POS_CODES[c] for c in wanted}
        codes = self.pos_codes
        return {n: p for n, p in cands.items() if int(codes[n]) in allowed}

    # ------------------------------------------------------------------ context
    @property
    def encoder(self) -> SentenceEncoder:
        if self._encoder is None:
            from kelm.linking.sentence_encoder import SentenceEncoder

            self._encoder = SentenceEncoder(
                self.options.encoder, max_length=ENCODER_MAX_LENGTH, device="auto"
            )
        return self._encoder

    @property
    def candidates(self) -> CandidateEmbeddings:
        if self._candidates is None:
            from kelm.linking.candidate_embeddings import CandidateEmbeddings

            self._candidates = CandidateEmbeddings(self.graph, self.encoder, self._cache_dir)
        return self._candidates

    def rank(
        self, docs: Sequence[Doc], found: Sequence[Sequence[tuple[int, int, dict[int, float]]]]
    ) -> list[list[Ranked]]:
        """Rank the candidates of every mention: ``found[d]`` holds ``(start, end, {node:
        prior})`` of doc ``d``; the result is parallel to it."""
        context_of: dict[str, int] = {}
        rows: list[list[int]] = []
        # Nothing to choose between anywhere in the batch: no encoder run (nor load).
        if self.weight > 0 and any(len(c) > 1 for ms in found for _, _, c in ms):
            window = int(self.options.context_window)
            for doc, mentions in zip(docs, found, strict=True):
                doc_rows = []
                for start, end, _ in mentions:
                    lo, hi = context_bounds(doc, start, end, window)
                    doc_rows.append(context_of.setdefault(doc[lo:hi].text, len(context_of)))
                rows.append(doc_rows)
        cosines: list[list[np.ndarray | None]] = [[None] * len(m) for m in found]
        if context_of:
            contexts = self.encoder.encode(list(context_of), batch_size=64)
            nodes = np.unique(
                np.fromiter((n for ms in found for _, _, c in ms for n in c), dtype=np.int64)
            )
            vectors = self.candidates.vectors(nodes)
            for d, mentions in enumerate(found):
                for i, (_, _, cands) in enumerate(mentions):
                    ids = np.fromiter(cands, dtype=np.int64, count=len(cands))
                    at = np.searchsorted(nodes, ids)
                    cosines[d][i] = vectors[at] @ contexts[rows[d][i]]
        out: list[list[Ranked]] = []
        for d, mentions in enumerate(found):
            ranked = []
            for i, (_, _, cands) in enumerate(mentions):
                ids = list(cands)
                priors = np.fromiter(cands.values(), dtype=np.float64, count=len(ids))
                priors = priors / priors.sum() if priors.sum() > 0 else priors
                cos = cosines[d][i]
                scores = combine(priors, cos, self.weight)
                order = sorted(range(len(ids)), key=lambda j: (-scores[j], -priors[j], ids[j]))
                ranked.append(
                    Ranked(
                        [ids[j] for j in order],
                        [float(scores[j]) for j in order],
                        [float(priors[j]) for j in order],
                        None if cos is None else [float(cos[j]) for j in order],
                    )
                )
            out.append(ranked)
        return out
