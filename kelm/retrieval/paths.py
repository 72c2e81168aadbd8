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

from kelm.retrieval.subgraph import Adjacency, join, normalize_concepts

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
            out.append((row[: n + 1], [rels[ptr[h]:ptr[h + 1]] for h in range(hop, hop + n)]))
            hop += n
        return out


def find_paths(adj: Adjacency, question: Any, answer: Any, *, hops: int = 3,
               max_paths: int = 100, q_frontier: np.ndarray | None = None,
               a_frontier: np.ndarray | None = None) -> PathSet:
    """Every simple path of at most ``hops`` hops between each question and each answer
    concept, at most ``max_paths`` per pair, in canonical order (see the module docstring).

    ``q_frontier``/``a_frontier`` are ``adj.extend(Q[:, None])`` / ``adj.extend(A[:, None])``
    when already computed.
    """
    q, a = normalize_concepts(question, answer)
    k = int(hops)
    if k < 1 or max_paths <= 0 or q.shape[0] == 0 or a.shape[0] == 0:
        return PathSet.empty(max(k, 0))
    left = [q[:, None]]
    right = [a[:, None]]
    for depth in range(1, k // 2 + 1):
        left.append(q_frontier if depth == 1 and q_frontier is not None
                    else adj.extend(left[-1]))
    for depth in range(1, (k - 1) // 2 + 1):
        right.append(a_frontier if depth == 1 and a_frontier is not None
                     else adj.extend(right[-1]))

    found, lengths = [], []
    for length in range(1, k + 1):
        lp, rp = left[length // 2], right[(length - 1) // 2]
        if lp.shape[0] == 0 or rp.shape[0] == 0:
            continue
        l_end, r_end = lp[:, -1], rp[:, -1]
        xs, ys = adj.edges_between(np.unique(l_end), np.unique(r_end))
        if xs.shape[0] == 0:
            continue
        li, e = join(l_end, xs)  # left rows ending at the edge's x
        ri, j = join(r_end, ys[e])  # right rows ending at its y
        rows = np.concatenate([lp[li[j]], rp[ri][:, ::-1]], axis=1)
        ok = np.ones(rows.shape[0], dtype=bool)
        for lc in range(lp.shape[1]):
            for rc in range(lp.shape[1], length + 1):
                ok &= rows[:, lc] != rows[:, rc]
        rows = rows[ok]
        if rows.shape[0]:
            pad = np.full((rows.shape[0], k + 1 - rows.shape[1]), -1, dtype=np.int64)
            found.append(np.concatenate([rows, pad], axis=1))
            lengths.append(np.full(rows.shape[0], length, dtype=np.int64))
    if not found:
        return PathSet.empty(k)
    nodes = np.concatenate(found)
    length = np.concatenate(lengths)
    first = nodes[:, 0]
    last = nodes[np.arange(nodes.shape[0]), length]
    keys = [nodes[:, c] for c in range(k - 1, 0, -1)] + [length, last, first]
    order = np.lexsort(keys)
    nodes, length, first, last = nodes[order], length[order], first[order], last[order]
    # keep the first max_paths of each (q, a) pair
    n = nodes.shape[0]
    new_pair = np.ones(n, dtype=bool)
    new_pair[1:] = (first[1:] != first[:-1]) | (last[1:] != last[:-1])
    start = np.maximum.accumulate(np.where(new_pair, np.arange(n), 0))
    keep = np.arange(n) - start < max_paths
    if not keep.all():
        nodes, length = nodes[keep], length[keep]
    out = PathSet(nodes, length, np.zeros(1, np.int64), np.zeros(0, np.int64))
    us, vs = out.hop_pairs()
    out.hop_ptr, out.rels = adj.relations_between(us, vs)
    return out


def kagnet_scores(paths: PathSet, entity_emb: np.ndarray, relation_emb: np.ndarray,
                  num_relations: int) -> np.ndarray:
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
    diff = np.asarray(entity_emb[tails], dtype=np.float32) - np.asarray(entity_emb[heads],
                                                                         dtype=np.float32)
    norm = np.linalg.norm(rvec, axis=1) * np.linalg.norm(diff, axis=1)
    dot = np.einsum("ij,ij->i", rvec, diff)
    cos = np.divide(dot, norm, out=np.zeros_like(dot), where=norm > 0)
    triple = (1.0 + cos) / 2.0
    hop_score = np.maximum.reduceat(triple, paths.hop_ptr[:-1])
    path_start = np.zeros(len(paths), dtype=np.int64)
    np.cumsum(paths.length[:-1], out=path_start[1:])
    return np.multiply.reduceat(hop_score, path_start).astype(np.float32)


# ---------------------------------------------------------------------- networkx reference
def reference_paths(graph: nx.Graph, question, answer, hops: int = 3, max_paths: int = 100,
                    num_relations: int = 0) -> list[tuple[list[int], list[list[int]]]]:
    """The path definition written with ``networkx.all_simple_paths`` on the graph of
    :func:`kelm.retrieval.subgraph.networkx_graph`: every path of every pair, sorted
    canonically, the first ``max_paths`` of each pair kept."""
    import networkx as nx

    a_set = {int(x) for x in answer}
    q_list = sorted({int(x) for x in question} - a_set)
    out = []
    for q in q_list:
        for a in sorted(a_set):
            found = sorted(nx.all_simple_paths(graph, q, a, cutoff=hops),
                           key=lambda p: (len(p), p))
            for p in found[:max_paths]:
                rels = [sorted(r if h == u else r + num_relations
                               for h, r in graph[u][v]["rels"]) for u, v in zip(p, p[1:])]
                out.append((list(p), rels))
    return out
