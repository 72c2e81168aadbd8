"""The vectorised n-gram lookup behind the linker: keys (lemma id sequences) sorted by hash.

Text is matched by hashing every lemma n-gram of a whole batch of documents at once (numpy,
one pass per n-gram length) and looking the hashes up in the sorted hash array of the keys,
then verifying the candidate windows token by token, so a hash collision can never produce a
wrong match. No spaCy ``Matcher`` is involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kelm.errors import KelmError

# 64-bit FNV-1a style mixing of lemma ids into one n-gram hash (uint64 arithmetic wraps).
_PRIME = np.uint64(0x100000001B3)
_SEEDS = (0xCBF29CE484222325, 0x9E3779B97F4A7C15, 0xD6E8FEB86659FD93, 0x2545F4914F6CDD1D)


def _hash_rows(tokens: np.ndarray, lengths: np.ndarray, seed: int) -> np.ndarray:
    """The n-gram hash of each padded key row (same recurrence as :meth:`NgramTable.find`)."""
    h = np.full(tokens.shape[0], seed, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for col in range(tokens.shape[1]):
            live = lengths > col
            step = (h ^ (tokens[:, col].astype(np.uint64) + np.uint64(1))) * _PRIME
            h = np.where(live, step, h)
    return h


@dataclass
class NgramTable:
    """Keys (lemma id sequences) with their nodes and scores, sorted by n-gram hash.

    ``nodes[indptr[k]:indptr[k+1]]`` are the nodes of key ``k``, best first, with ``scores``.
    """

    hashes: np.ndarray  # uint64 [K], sorted, unique
    lengths: np.ndarray  # int16 [K]
    tokens: np.ndarray  # int32 [K, max_len], -1 padded
    indptr: np.ndarray  # int64 [K + 1]
    nodes: np.ndarray  # int32 [M]
    scores: np.ndarray  # float32 [M]
    seed: int = _SEEDS[0]

    ARRAYS = ("hashes", "lengths", "tokens", "indptr", "nodes", "scores")

    @property
    def max_len(self) -> int:
        return int(self.tokens.shape[1])

    def __len__(self) -> int:
        return int(self.hashes.shape[0])

    @classmethod
    def build(
        cls,
        keys: Sequence[tuple[int, ...]],
        nodes: Sequence[Sequence[int]],
        scores: Sequence[Sequence[float]],
        max_len: int,
    ) -> NgramTable:
        """Build from parallel lists: ``keys[k]`` maps to ``nodes[k]`` with ``scores[k]``."""
        n = len(keys)
        tokens = np.full((n, max_len), -1, dtype=np.int32)
        lengths = np.zeros(n, dtype=np.int16)
        for k, key in enumerate(keys):
            tokens[k, : len(key)] = key
            lengths[k] = len(key)
        for seed in _SEEDS:  # a 64-bit collision between two keys is unlikely; reseed if so
            hashes = _hash_rows(tokens, lengths, seed)
            if np.unique(hashes).shape[0] == n:
                break
        else:
            raise KelmError("n-gram index: could not find a collision-free hash seed")
        order = np.argsort(hashes, kind="stable")
        counts = np.array([len(nodes[k]) for k in order], dtype=np.int64)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        flat_nodes = np.fromiter((v for k in order for v in nodes[k]), np.int32, int(indptr[-1]))
        flat_scores = np.fromiter(
            (s for k in order for s in scores[k]), np.float32, int(indptr[-1])
        )
        return cls(
            hashes[order], lengths[order], tokens[order], indptr, flat_nodes, flat_scores, seed
        )

    def find(
        self, ids: np.ndarray, segment: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every window of ``ids`` that equals a key and lies inside one segment (document).

        Args:
            ids: key ids of the tokens of many documents, concatenated (``-1``: no key).
            segment: the document number of each token (non-decreasing).

        Returns:
            ``(starts, lengths, keys)`` sorted by start, then length.
        """
        total = ids.shape[0]
        found: list[tuple[np.ndarray, int, np.ndarray]] = []
        if total == 0 or len(self) == 0:
            return _empty_matches()
        h = np.full(total, self.seed, dtype=np.uint64)
        ok = ids >= 0
        ids_u = ids.astype(np.uint64) + np.uint64(1)
        with np.errstate(over="ignore"):
            for n in range(1, self.max_len + 1):
                m = total - n + 1
                if m <= 0:
                    break
                if n > 1:  # window [i, i+n) extends [i, i+n-1) by token i+n-1
                    ok = ok[:m] & (ids[n - 1 :] >= 0) & (segment[n - 1 :] == segment[:m])
                h = (h[:m] ^ ids_u[n - 1 :]) * _PRIME
                cand = np.flatnonzero(ok)
                if cand.size == 0:
                    break
                found_n = self._lookup(ids, h[cand], cand, n)
                if found_n is not None:
                    found.append(found_n)
        if not found:
            return _empty_matches()
        starts = np.concatenate([s for s, _, _ in found])
        lengths = np.concatenate([np.full(s.shape[0], n, np.int64) for s, n, _ in found])
        keys = np.concatenate([k for _, _, k in found])
        order = np.lexsort((lengths, starts))
        return starts[order], lengths[order], keys[order]

    def _lookup(
        self, ids: np.ndarray, hashes: np.ndarray, cand: np.ndarray, n: int
    ) -> tuple[np.ndarray, int, np.ndarray] | None:
        pos = np.minimum(np.searchsorted(self.hashes, hashes), len(self) - 1)
        hit = (self.hashes[pos] == hashes) & (self.lengths[pos] == n)
        if not hit.any():
            return None
        cand, pos = cand[hit], pos[hit]
        # Verify token by token: the hash only proposes, the ids decide.
        windows = np.lib.stride_tricks.sliding_window_view(ids, n)[cand]
        same = (self.tokens[pos, :n] == windows).all(axis=1)
        if not same.any():
            return None
        return cand[same], n, pos[same]

    def candidates(self, key: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.indptr[key], self.indptr[key + 1]
        return self.nodes[lo:hi], self.scores[lo:hi]

    def key_nodes(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flatten the nodes of many keys: ``(owner, node)`` where ``owner`` indexes ``keys``."""
        lo, hi = self.indptr[keys], self.indptr[keys + 1]
        counts = hi - lo
        owner = np.repeat(np.arange(keys.shape[0]), counts)
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        return owner, self.nodes[np.repeat(lo, counts) + offsets].astype(np.int64)


def _empty_matches() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    empty = np.zeros(0, dtype=np.int64)
    return empty, empty, empty
