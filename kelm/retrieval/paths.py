"""Paths between question and answer concepts, as KagNet finds and scores them.

Definition: for every pair ``(q, a)`` of a question concept and an answer concept (``Q`` and
``A`` as in :mod:`kelm.retrieval.subgraph`: ``Q`` excludes answer concepts), every *simple*
path (no repeated node) of 1 to ``K`` hops between ``q`` and ``a`` in the simple undirected
graph of the index (self-loops ignored; several edges between two nodes are one hop).

Canonical order: by ``q``, then ``a``, then hop count, then the node id sequence
lexicographically. At most ``P`` paths are kept per pair: the first ``P`` in that order.

Each hop ``(u, v)`` carries every relation between its nodes read from ``u``: forward ids
``r`` of index edges ``u -r-> v`` and inverse ids ``r + R`` of edges ``v -r-> u``, sorted.

Enumeration is meet-in-the-middle, vectorised over all pairs of a statement at once: a path of
``L`` hops is a left part of ``L // 2`` hops from ``q``, one middle edge, and a right part of
``(L - 1) // 2`` hops from ``a`` (for ``K = 3``: one-hop frontiers of ``Q`` and ``A`` joined
by the edges between them, found with :meth:`Adjacency.edges_between`); the parts are joined
on their end nodes and the joined rows that repeat a node are dropped.

KagNet scoring, when entity and relation embeddings are given: a hop scores the best, over its
relations, of ``(1 + cos(r, t - h)) / 2``, and a path the **product** of its hop scores (as
KagNet's ``score_triples``). For an inverse relation id ``r + R`` the forward embedding is used
with head and tail swapped, unless the relation array has ``2R`` rows.

:func:`reference_paths` is the definition written with ``networkx.all_simple_paths``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from kelm.retrieval.subgraph import Adjacency, join, join_sorted, normalize_concepts

if TYPE_CHECKING:
    import networkx as nx


@dataclass
class PathSet:
    """The paths of one statement in canonical order (numpy arrays)."""

    nodes: np.ndarray  # int64 [n, K + 1], padded with -1 after the last node
    length: np.ndarray  # int64 [n], hops
    hop_ptr: np.ndarray  # int64 [H + 1]: relations of hop h are rels[hop_ptr[h]:hop_ptr[h+1]]
    rels: np.ndarray  # int64; hops are numbered path by path
    score: np.ndarray | None = None  # float32 [n] KagNet scores, or None

    @classmethod
    def empty(cls, hops: int = 0) -> PathSet:
        z = np.zeros(0, dtype=np.int64)
        return cls(np.zeros((0, hops + 1), np.int64), z, np.zeros(1, np.int64), z)

    def __len__(self) -> int:
        return int(self.length.shape[0])

    def flat_nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(node_ptr, nodes)``: path ``i`` is ``nodes[node_ptr[i]:node_ptr[i+1]]``."""
        width = self.nodes.shape[1]
        valid = np.arange(width)[None, :] <= self.length[:, None]
        ptr = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(self.length + 1, out=ptr[1:])
        return ptr, self.nodes[valid]

    def hop_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(u, v)`` of every hop, path by path."""
        if self.nodes.shape[1] < 2:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        valid = np.arange(self.nodes.shape[1] - 1)[None, :] < self.length[:, None]
        return self.nodes[:, :-1][valid], self.nodes[:, 1:][valid]

    def to_list(self) -> list[tuple[list[int], list[list[int]]]]:
        """``[(node ids, [relation ids of each hop]), ...]`` in canonical order."""
        out = []
        hop = 0
        rels = self.rels.tolist()
        ptr = self.hop_ptr.tolist()
        for row, n in zip(self.nodes.tolist(), self.length.tolist(), strict=True):
            out.append((row[: n + 1], [rels[ptr[h] : ptr[h + 1]] for h in range(hop, hop + n)]))
            hop += n
        return out


#: Left parts are joined in rounds, by rank within their question concept: the first
#: ``FIRST_CHUNK`` of each concept, then ``CHUNK_GROWTH`` times more per round, until every
#: pair of the concept has its quota of paths. Later left parts only give paths that come later
#: in canonical order, so stopping early changes nothing but the time taken.
FIRST_CHUNK = 64
CHUNK_GROWTH = 4


def find_paths(
    adj: Adjacency,
    question: Any,
    answer: Any,
    *,
    hops: int = 3,
    max_paths: int = 100,
    q_frontier: tuple[np.ndarray, np.ndarray] | None = None,
    a_frontier: tuple[np.ndarray, np.ndarray] | None = None,
) -> PathSet:
    """Every simple path of at most ``hops`` hops between each question and each answer
    concept, at most ``max_paths`` per pair, in canonical order (see the module docstring).

    ``q_frontier``/``a_frontier`` are ``adj.extend(Q[:, None])`` / ``adj.extend(A[:, None])``
    when already computed.
    """
    q, a = normalize_concepts(question, answer)
    k = int(hops)
    if k < 1 or max_paths <= 0 or q.shape[0] == 0 or a.shape[0] == 0:
        return PathSet.empty(max(k, 0))
    # Partial paths from each side: rows of node ids and the simple-graph entry of each hop.
    # Extension keeps rows in lexicographic order (parents in order, neighbours sorted), which
    # the rounds of _paths_of_length rely on.
    none = np.zeros((0,), dtype=np.int64)
    left = [(q[:, None], none.reshape(q.shape[0], 0))]
    right = [(a[:, None], none.reshape(a.shape[0], 0))]
    for depth in range(1, k // 2 + 1):
        given = q_frontier if depth == 1 else None
        left.append(given if given is not None else adj.extend(*left[-1]))
    for depth in range(1, (k - 1) // 2 + 1):
        given = a_frontier if depth == 1 else None
        right.append(given if given is not None else adj.extend(*right[-1]))

    quota = np.full(q.shape[0] * a.shape[0], int(max_paths), dtype=np.int64)
    blocks = []
    for length in range(1, k + 1):
        lp, rp = left[length // 2], right[(length - 1) // 2]
        if lp[0].shape[0] == 0 or rp[0].shape[0] == 0 or not (quota > 0).any():
            continue
        rows, entry, flip, pair = _paths_of_length(adj, lp, rp, length, q, a, quota)
        if rows.shape[0] == 0:
            continue
        order = np.lexsort([rows[:, c] for c in range(length - 1, 0, -1)] + [pair])
        keep = order[_rank_in_groups(pair[order]) < quota[pair[order]]]
        pair = pair[keep]
        quota -= np.bincount(pair, minlength=quota.shape[0])
        blocks.append((rows[keep], entry[keep], flip[keep], pair, length))
    if not blocks:
        return PathSet.empty(k)
    n = sum(b[0].shape[0] for b in blocks)
    nodes = np.full((n, k + 1), -1, dtype=np.int64)
    entries = np.zeros((n, k), dtype=np.int64)
    flips = np.zeros((n, k), dtype=bool)
    at = 0
    for rows, entry, flip, _, length in blocks:
        end = at + rows.shape[0]
        nodes[at:end, : length + 1] = rows
        entries[at:end, :length] = entry
        flips[at:end, :length] = flip
        at = end
    pair = np.concatenate([b[3] for b in blocks])
    length = np.concatenate([np.full(b[0].shape[0], b[4], dtype=np.int64) for b in blocks])
    order = np.argsort(pair, kind="stable")  # blocks are by length, each sorted within pairs
    nodes, length, entries, flips = nodes[order], length[order], entries[order], flips[order]
    valid = np.arange(k)[None, :] < length[:, None]
    hop_ptr, rels = _hop_relations(adj, entries[valid], flips[valid])
    return PathSet(nodes, length, hop_ptr, rels)


def _hop_relations(
    adj: Adjacency, entry: np.ndarray, flip: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Relations of each hop from its entry; a hop read against its entry's direction
    (``flip``) swaps forward and inverse ids, and is sorted again."""
    ptr, rels = adj.entry_relations(entry)
    r = adj.num_relations
    if flip.any():
        hop = np.repeat(np.arange(entry.shape[0], dtype=np.int64), np.diff(ptr))
        rels = np.where(flip[hop], np.where(rels < r, rels + r, rels - r), rels)
        span = 2 * max(r, 1)
        rels = np.sort(hop * span + rels) - hop * span
    return ptr, rels


def _rank_in_groups(sorted_ids: np.ndarray) -> np.ndarray:
    """Position of each element within its run of equal values."""
    n = sorted_ids.shape[0]
    first = np.ones(n, dtype=bool)
    first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    return np.arange(n) - np.maximum.accumulate(np.where(first, np.arange(n), 0))


def _paths_of_length(
    adj: Adjacency,
    left: tuple[np.ndarray, np.ndarray],
    right: tuple[np.ndarray, np.ndarray],
    length: int,
    q: np.ndarray,
    a: np.ndarray,
    quota: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Simple paths ``left part + middle edge + reversed right part`` of ``length`` hops, for
    the pairs with quota left. Returns ``(rows, entries, flips, pair)``: node rows, the entry
    of each hop and whether the hop runs against it, and ``pair = qi * len(a) + ai``."""
    lp, lpe = left
    rp, rpe = right
    nq, na = q.shape[0], a.shape[0]
    r_end = rp[:, -1]
    r_order = np.argsort(r_end, kind="stable")
    r_sorted = r_end[r_order]
    distinct = np.ones(r_sorted.shape[0], dtype=bool)
    distinct[1:] = r_sorted[1:] != r_sorted[:-1]
    ys = r_sorted[distinct]
    rpe = rpe[:, ::-1]  # right parts run backwards in the path: every hop flipped
    l_hops = lp.shape[1] - 1
    flip_row = np.zeros(length, dtype=bool)
    flip_row[l_hops + 1 :] = True
    qi = np.searchsorted(q, lp[:, 0])  # lp is sorted by its first column
    rank = np.arange(lp.shape[0]) - np.searchsorted(qi, qi, "left")
    group_size = np.bincount(qi, minlength=nq)
    got = np.zeros_like(quota)
    found = []
    lo, size = 0, FIRST_CHUNK
    while True:
        active = ((quota - got).reshape(nq, na) > 0).any(axis=1) & (group_size > lo)
        if not active.any():
            break
        if lo == 0 and size >= lp.shape[0]:
            chunk, chunk_e = lp, lpe  # everything in one round
        else:
            sel = active[qi] & (rank >= lo) & (rank < lo + size)
            chunk, chunk_e = lp[sel], lpe[sel]
        lo, size = lo + size, size * CHUNK_GROWTH
        l_end = chunk[:, -1]
        xs, ys_hit, mid = adj.edges_between(np.unique(l_end), ys)
        if xs.shape[0] == 0:
            continue
        li, e = join(l_end, xs)  # left rows ending at the edge's x
        ri, j = join_sorted(r_order, r_sorted, ys_hit[e])  # right rows ending at its y
        li, e = li[j], e[j]
        rows = np.concatenate([chunk[li], rp[ri][:, ::-1]], axis=1)
        ok = np.ones(rows.shape[0], dtype=bool)
        for lc in range(l_hops + 1):
            for rc in range(l_hops + 1, length + 1):
                ok &= rows[:, lc] != rows[:, rc]
        if not ok.any():
            continue
        rows, li, e, ri = rows[ok], li[ok], e[ok], ri[ok]
        entry = np.concatenate([chunk_e[li], mid[e, None], rpe[ri]], axis=1)
        flip = np.broadcast_to(flip_row, entry.shape).copy()
        flip[:, l_hops] = adj.nbr[mid[e]] != ys_hit[e]  # found in y's row: runs y -> x
        pair = np.searchsorted(q, rows[:, 0]) * na + np.searchsorted(a, rows[:, -1])
        got += np.bincount(pair, minlength=got.shape[0])
        found.append((rows, entry, flip, pair))
    if not found:
        z = np.zeros(0, np.int64)
        return z.reshape(0, length + 1), z.reshape(0, length), z.reshape(0, length) > 0, z
    if len(found) == 1:
        return found[0]
    return tuple(np.concatenate(parts) for parts in zip(*found, strict=True))


def kagnet_scores(
    paths: PathSet, entity_emb: np.ndarray, relation_emb: np.ndarray, num_relations: int
) -> np.ndarray:
    """KagNet path scores: product over hops of the best ``(1 + cos(r, t - h)) / 2`` over the
    hop's relations (inverse ids: forward embedding with ``h``/``t`` swapped, unless
    ``relation_emb`` has ``2 * num_relations`` rows). A zero vector gives cosine 0."""
    if len(paths) == 0:
        return np.zeros(0, dtype=np.float32)
    us, vs = paths.hop_pairs()
    counts = np.diff(paths.hop_ptr)
    hop = np.repeat(np.arange(us.shape[0]), counts)
    rels = paths.rels
    r = int(num_relations)
    if relation_emb.shape[0] >= 2 * r:
        heads, tails, rvec = us[hop], vs[hop], relation_emb[rels]
    else:
        inverse = rels >= r
        heads = np.where(inverse, vs[hop], us[hop])
        tails = np.where(inverse, us[hop], vs[hop])
        rvec = relation_emb[np.where(inverse, rels - r, rels)]
    rvec = np.asarray(rvec, dtype=np.float32)
    diff = np.asarray(entity_emb[tails], dtype=np.float32) - np.asarray(
        entity_emb[heads], dtype=np.float32
    )
    norm = np.linalg.norm(rvec, axis=1) * np.linalg.norm(diff, axis=1)
    dot = np.einsum("ij,ij->i", rvec, diff)
    cos = np.divide(dot, norm, out=np.zeros_like(dot), where=norm > 0)
    triple = (1.0 + cos) / 2.0
    hop_score = np.maximum.reduceat(triple, paths.hop_ptr[:-1])
    path_start = np.zeros(len(paths), dtype=np.int64)
    np.cumsum(paths.length[:-1], out=path_start[1:])
    return np.multiply.reduceat(hop_score, path_start).astype(np.float32)


# ---------------------------------------------------------------------- networkx reference
def reference_paths(
    graph: nx.Graph, question, answer, hops: int = 3, max_paths: int = 100, num_relations: int = 0
) -> list[tuple[list[int], list[list[int]]]]:
    """The path definition written with ``networkx.all_simple_paths`` on the graph of
    :func:`kelm.retrieval.subgraph.networkx_graph`: every path of every pair, sorted
    canonically, the first ``max_paths`` of each pair kept."""
    import networkx as nx

    a_set = {int(x) for x in answer}
    q_list = sorted({int(x) for x in question} - a_set)
    out = []
    for q in q_list:
        for a in sorted(a_set):
            found = sorted(nx.all_simple_paths(graph, q, a, cutoff=hops), key=lambda p: (len(p), p))
            for p in found[:max_paths]:
                steps = zip(p[:-1], p[1:], strict=True)
                rels = [
                    sorted(r if h == u else r + num_relations for h, r in graph[u][v]["rels"])
                    for u, v in steps
                ]
                out.append((list(p), rels))
    return out
