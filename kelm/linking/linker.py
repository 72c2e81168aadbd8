"""The linker at run time: spaCy docs in, :class:`Mention` lists out, through a
:class:`~kelm.linking.concept_index.ConceptIndex` loaded from (or built into) the cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kelm.linking.concept_index import ConceptIndex
from kelm.linking.disambiguation import Disambiguator
from kelm.linking.lemmas import KeyEncoder
from kelm.linking.options import LinkerOptions

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

    from kelm.graph.index import GraphIndex
    from kelm.linking.sentence_encoder import SentenceEncoder


@dataclass
class Mention:
    """A matched token span ``[start, end)`` and its nodes, best first, with scores.

    Entity mode also keeps, per candidate, the prior (renormalised over the candidates) and,
    when the context is scored, the cosine of the context with the candidate's text; ``scores``
    are then the combined scores (:mod:`kelm.linking.disambiguation`).
    """

    start: int
    end: int
    node_ids: list[int]
    scores: list[float]
    priors: list[float] | None = None
    context: list[float] | None = None


class Linker:
    """A concept/entity index bound to a spaCy pipeline: docs in, mentions out.

    Args:
        graph: the graph index.
        nlp: the pipeline that produces the docs (its tokenizer, and for ``pipeline`` lemmas
            the components ``pipes``, must be the ones the docs went through).
        options: index options.
        pipes: the components that run before the linker (default: all of ``nlp``).
        cache_dir: where the index (and, entity mode, the candidate embeddings) are cached
            (default ``$KELM_CACHE/linker``).
        encoder: entity mode: a sentence encoder to use instead of loading
            ``options.encoder`` (tests, or one shared between linkers).
    """

    def __init__(
        self,
        graph: GraphIndex,
        nlp: Language,
        options: LinkerOptions | None = None,
        *,
        pipes: Sequence[str] | None = None,
        cache_dir: str | Path | None = None,
        encoder: SentenceEncoder | None = None,
    ) -> None:
        self.graph = graph
        self.options = options or LinkerOptions()
        self.pipes = list(nlp.pipe_names if pipes is None else pipes)
        self.index = ConceptIndex.load_or_build(graph, nlp, self.options, self.pipes, cache_dir)
        self.table = self.index.table
        self.encoder = KeyEncoder(self.index.vocab_ids, self.options.lemmas)
        # Keys that several nodes share; concept mode resolves them by the matched text.
        self.shared = np.diff(self.table.indptr) > 1
        self._names: list[str] | None = None
        self._cache_dir = cache_dir
        self._encoder = encoder
        self._disambiguator: Disambiguator | None = None

    @property
    def disambiguator(self) -> Disambiguator:
        """Entity mode's POS filter and context scoring (built on first use)."""
        if self._disambiguator is None:
            self._disambiguator = Disambiguator(
                self.graph, self.options, self.names, self._cache_dir, encoder=self._encoder
            )
        return self._disambiguator

    @property
    def names(self) -> list[str]:
        """All node names by id (read once)."""
        if self._names is None:
            self._names = self.graph.names.to_list()
        return self._names

    def key_string(self, key: int) -> str:
        """The lemma sequence of a key, space-separated."""
        length = int(self.table.lengths[key])
        return " ".join(self.index.vocab[t] for t in self.table.tokens[key, :length])

    def resolve(self, key: int, surface: str) -> tuple[list[int], list[float]]:
        """The nodes of a concept-mode match of ``key`` whose lower-cased, space-joined
        tokens are ``surface``: of the nodes sharing the key, those named ``surface``, else
        the one named like the key, else all of them."""
        nodes, scores = self.table.candidates(key)
        node_list, score_list = nodes.tolist(), scores.tolist()
        if len(node_list) < 2:
            return node_list, score_list
        for wanted in (surface, self.key_string(key)):
            keep = [i for i, n in enumerate(node_list) if self.names[n].replace("_", " ") == wanted]
            if keep:
                return [node_list[i] for i in keep], [score_list[i] for i in keep]
        return node_list, score_list

    def encode(self, docs: Sequence[Doc], surface: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Concatenated key ids of ``docs`` and the document number of each token."""
        parts = [self.encoder.encode(doc, surface) for doc in docs]
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        lengths = [p.shape[0] for p in parts]
        return np.concatenate(parts), np.repeat(np.arange(len(parts)), lengths)

    def find(
        self, docs: Sequence[Doc], surface: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """All key matches in ``docs``: ``(doc, start, end, key)`` arrays, token offsets
        relative to their doc, in document order."""
        ids, segment = self.encode(docs, surface)
        starts, lengths, keys = self.table.find(ids, segment)
        if starts.size == 0:
            return starts, starts, starts, starts
        doc_of = segment[starts]
        first = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum(np.bincount(segment, minlength=len(docs)), out=first[1:])
        local = starts - first[doc_of]
        return doc_of, local, local + lengths, keys

    def mentions(self, docs: Sequence[Doc]) -> list[list[Mention]]:
        """Concept mode: every match (overlaps kept). Entity mode: the longest non-overlapping
        matches whose candidates survive the POS filter, leftmost first, each with its
        candidates ranked by prior and context (:mod:`kelm.linking.disambiguation`)."""
        docs = list(docs)
        out: list[list[Mention]] = [[] for _ in docs]
        if self.options.mode == "concept":
            for d, s, e, k in zip(*(a.tolist() for a in self.find(docs)), strict=True):
                surface = " ".join(t.lower_ for t in docs[d][s:e]) if self.shared[k] else ""
                out[d].append(Mention(s, e, *self.resolve(k, surface)))
            return out
        spans: list[dict[tuple[int, int], dict[int, float]]] = [{} for _ in docs]
        for surface in (False, True):
            for d, s, e, k in zip(*(a.tolist() for a in self.find(docs, surface)), strict=True):
                cands = spans[d].setdefault((s, e), {})
                for n, sc in zip(*self.table.candidates(k), strict=True):
                    cands[int(n)] = max(cands.get(int(n), 0.0), float(sc))
        disambiguator = self.disambiguator
        chosen: list[list[tuple[int, int, dict[int, float]]]] = []
        for d, found in enumerate(spans):
            taken: set[int] = set()
            kept = []
            for (s, e), cands in sorted(
                found.items(), key=lambda kv: (kv[0][0] - kv[0][1], kv[0][0])
            ):
                if not taken.isdisjoint(range(s, e)):
                    continue
                # Before the longest spans are chosen: a span none of whose candidates has the
                # mention's part of speech leaves its tokens to the spans inside it.
                cands = disambiguator.filter_pos(docs[d], s, e, cands)
                if cands:
                    taken.update(range(s, e))
                    kept.append((s, e, cands))
            chosen.append(sorted(kept, key=lambda m: m[0]))
        for d, ranked in enumerate(disambiguator.rank(docs, chosen)):
            for (s, e, _), r in zip(chosen[d], ranked, strict=True):
                out[d].append(Mention(s, e, r.node_ids, r.scores, r.priors, r.context))
        return out
