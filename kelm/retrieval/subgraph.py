"""Per-statement subgraphs, as QA-GNN / MHGRN build them, on an undirected view of the index.

The graph is traversed as undirected: an edge ``h -r-> t`` of the index makes ``t`` a
neighbour of ``h`` (read with relation ``r``) and ``h`` a neighbour of ``t`` (read with the
inverse relation ``r + R``, ``R`` = :attr:`GraphIndex.num_relations`). Self-loops are ignored.

Subgraph of a statement with question concepts ``Q`` and answer concepts ``A``:

* concepts: ``A`` = the answer concepts; ``Q`` = the question concepts minus ``A`` (as the
  QA-GNN grounding does), each sorted by id and deduplicated;
* intermediate nodes: the nodes on 2-hop paths between a question and an answer concept,
  ``(N(Q) ∩ N(A)) - (Q ∪ A)`` where ``N(X)`` is the union of the neighbours of ``X``, ordered
  by relevance score (descending), then degree (``GraphIndex.degree()``, descending), then id
  (without a scorer, or with ``none``, every score is 0);
* node order ``[context], Q, A, intermediates``, cut to ``max_nodes`` (the context node counts):
  question and answer concepts come first and are only cut when they alone exceed the cap;
* edges: every edge of the index between two kept nodes, **forward only**: ``h -> t`` with the
  forward relation id ``r`` (``0 <= r < R``). :func:`Subgraph.to_data` can add the reversed
  edges with the inverse ids ``r + R``. With the context node (local index 0, node id ``-1``),
  the edges ``context -> q`` have type ``2R`` and ``context -> a`` type ``2R + 1``;
* node types: 0 question, 1 answer, 2 intermediate, 3 context (QA-GNN's convention).

Everything runs on numpy arrays over a precomputed undirected adjacency (:class:`Adjacency`):
no per-node Python loops. :func:`reference_subgraph` is the same definition written with
networkx (``neighbors`` and ``has_edge`` for every node pair), for tests and benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import networkx as nx
    from torch_geometric.data import Data

    from kelm.graph.index import GraphIndex
    from kelm.retrieval.scoring import RelevanceScorer

QUESTION, ANSWER, INTERMEDIATE, CONTEXT = 0, 1, 2, 3
NODE_TYPES = {
    QUESTION: "question",
    ANSWER: "answer",
    INTERMEDIATE: "intermediate",
    CONTEXT: "context",
}
CONTEXT_NODE = -1
"""The node id of the context node in :attr:`Subgraph.node_ids`."""

_EMPTY = np.zeros(0, dtype=np.int64)


def row_positions(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of all entries of the CSR rows ``rows``: ``(owner, position)`` where
    ``owner[i]`` is the index in ``rows`` of the row holding ``position[i]``."""
    starts = indptr[rows]
    counts = indptr[rows + 1] - starts
    total = int(counts.sum())
    if total == 0:
        return _EMPTY, _EMPTY
    ends = np.cumsum(counts)
    pos = np.arange(total, dtype=np.int64) + np.repeat(starts - (ends - counts), counts)
    return np.repeat(np.arange(rows.shape[0], dtype=np.int64), counts), pos


def gather_rows(
    indptr: np.ndarray, data: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """All entries of the CSR rows ``rows``: ``(owner, values)`` (see :func:`row_positions`)."""
    owner, pos = row_positions(indptr, rows)
    return owner, data[pos]


def join(keys: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equi-join: every ``(i, j)`` with ``keys[i] == queries[j]``, grouped by ``j``."""
    order = np.argsort(keys, kind="stable")
    return join_sorted(order, keys[order], queries)


def join_sorted(
    order: np.ndarray, sorted_keys: np.ndarray, queries: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`join` with the keys' stable sort order and sorted keys given."""
    lo = np.searchsorted(sorted_keys, queries, "left")
    counts = np.searchsorted(sorted_keys, queries, "right") - lo
    total = int(counts.sum())
    if total == 0:
        return _EMPTY, _EMPTY
    ends = np.cumsum(counts)
    pos = np.arange(total, dtype=np.int64) + np.repeat(lo - (ends - counts), counts)
    return order[pos], np.repeat(np.arange(queries.shape[0], dtype=np.int64), counts)


class Adjacency:
    """An undirected, relation-labelled view of a graph index, built once for traversal.

    Attributes:
        indptr, nbr: the simple undirected graph (distinct neighbours, no self-loops) as CSR,
            neighbours sorted by id; entry ``e`` is the pair ``(u, nbr[e])``;
        pair_rel: every reading of every edge, both ways, sorted by ``(u, v, relation)``:
            forward ``r`` for ``u -r-> v``, inverse ``r + R`` for ``v -r-> u``;
        entry_start, entry_count: where entry ``e``'s relations lie in ``pair_rel``;
        degree: edges at each node in the index, both directions (``GraphIndex.degree()``).

    Not thread-safe: it keeps scratch arrays for set membership tests.
    """

    #: a node's row is expanded when its degree is at most this many times the size of the
    #: set it is tested against; otherwise its pairs are looked up by binary search.
    EXPAND_FACTOR = 16

    def __init__(
        self,
        heads: np.ndarray,
        rels: np.ndarray,
        tails: np.ndarray,
        num_nodes: int,
        num_relations: int,
    ) -> None:
        n = int(num_nodes)
        r_count = int(num_relations)
        heads = np.asarray(heads, dtype=np.int64)
        tails = np.asarray(tails, dtype=np.int64)
        rels = np.asarray(rels, dtype=np.int64)
        self.num_nodes = n
        self.num_relations = r_count
        u = np.concatenate([heads, tails])
        v = np.concatenate([tails, heads])
        r = np.concatenate([rels, rels + r_count])
        key = u * n + v
        del u, v
        span = 2 * max(r_count, 1)
        # one int64 sort key when it fits (graphs below ~10^8 nodes), else a two-key sort
        order = np.argsort(key * span + r) if n * n * span < 2**62 else np.lexsort((r, key))
        key = key[order]
        self.pair_rel = r[order].astype(np.int32)
        del r, order
        first = np.ones(key.shape[0], dtype=bool)
        first[1:] = key[1:] != key[:-1]
        starts = np.flatnonzero(first)
        counts = np.diff(np.append(starts, key.shape[0]))
        su, sv = np.divmod(key[starts], n) if n else (starts, starts)
        del key, first
        keep = su != sv
        self.entry_start = starts[keep]
        self.entry_count = counts[keep]
        su, self.nbr = su[keep], sv[keep]
        self.indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(su, minlength=n), out=self.indptr[1:])
        self.simple_degree = np.diff(self.indptr)
        self.degree = np.bincount(np.concatenate([heads, tails]), minlength=n).astype(np.int64)
        self._mark = np.zeros(n, dtype=bool)

    @classmethod
    def from_index(cls, index: GraphIndex) -> Adjacency:
        heads, rels, tails, _ = index.edges()
        return cls(heads, rels, tails, index.num_nodes, index.num_relations)

    # ------------------------------------------------------------------ primitives
    def neighbors_of(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(owner, neighbour)`` for every simple neighbour of every node in ``nodes``."""
        return gather_rows(self.indptr, self.nbr, nodes)

    def member(self, values: np.ndarray, of: np.ndarray) -> np.ndarray:
        """Boolean mask: which ``values`` are in the node set ``of``."""
        mark = self._mark
        mark[of] = True
        try:
            return mark[values]
        finally:
            mark[of] = False

    def extend(
        self, paths: np.ndarray, entries: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every one-hop extension of the simple paths (rows of ``paths``) that stays simple.

        ``entries`` holds the simple-graph entry of each hop of ``paths`` (``[n, hops]``);
        returns the extended ``(paths, entries)``, rows in the order of their parents, new
        nodes ascending (so lexicographically sorted input stays sorted)."""
        if entries is None:
            entries = np.zeros((paths.shape[0], paths.shape[1] - 1), dtype=np.int64)
        owner, pos = row_positions(self.indptr, paths[:, -1])
        nxt = self.nbr[pos]
        base = paths[owner]
        ok = np.ones(nxt.shape[0], dtype=bool)
        for col in range(paths.shape[1] - 1):  # the last column is the neighbour's own row
            ok &= base[:, col] != nxt
        return (
            np.concatenate([base[ok], nxt[ok, None]], axis=1),
            np.concatenate([entries[owner[ok]], pos[ok, None]], axis=1),
        )

    def edges_between(
        self, xs: np.ndarray, ys: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every ordered ``(x, y)`` with ``x`` in ``xs``, ``y`` in ``ys`` (sorted, distinct node
        ids) adjacent in the simple undirected graph, with an entry index of the pair (of
        ``(x, y)`` or of ``(y, x)``: whichever row it was found in).

        Each edge is found from its cheaper side: the side with the smaller degree sum leads;
        a node's row is scanned when its degree is small next to the other set, and pairs of
        two high-degree nodes are looked up by binary search (:meth:`find`).
        """
        if xs.shape[0] == 0 or ys.shape[0] == 0:
            return _EMPTY, _EMPTY, _EMPTY
        deg = self.simple_degree
        if deg[xs].sum() > deg[ys].sum():
            found_y, found_x, entry = self._edges_from(ys, xs)
            return found_x, found_y, entry
        return self._edges_from(xs, ys)

    def _edges_from(
        self, xs: np.ndarray, ys: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        deg = self.simple_degree
        x_scan = deg[xs] <= self.EXPAND_FACTOR * ys.shape[0]
        y_scan = deg[ys] <= self.EXPAND_FACTOR * xs.shape[0]
        out_x, out_y, out_e = [], [], []
        scan = xs[x_scan]
        if scan.shape[0]:  # x scanned: all its edges into ys
            owner, pos = row_positions(self.indptr, scan)
            nb = self.nbr[pos]
            hit = self.member(nb, ys)
            out_x.append(scan[owner[hit]])
            out_y.append(nb[hit])
            out_e.append(pos[hit])
        x_big = xs[~x_scan]
        if x_big.shape[0]:
            scan = ys[y_scan]
            if scan.shape[0]:  # x not scanned, y scanned
                owner, pos = row_positions(self.indptr, scan)
                nb = self.nbr[pos]
                hit = self.member(nb, x_big)
                out_x.append(nb[hit])
                out_y.append(scan[owner[hit]])
                out_e.append(pos[hit])
            y_big = ys[~y_scan]
            if y_big.shape[0]:  # neither scanned: binary search of the pairs
                us = np.repeat(x_big, y_big.shape[0])
                vs = np.tile(y_big, x_big.shape[0])
                entry = self.find(us, vs)
                hit = entry >= 0
                out_x.append(us[hit])
                out_y.append(vs[hit])
                out_e.append(entry[hit])
        if not out_x:
            return _EMPTY, _EMPTY, _EMPTY
        if len(out_x) == 1:
            return out_x[0], out_y[0], out_e[0]
        return np.concatenate(out_x), np.concatenate(out_y), np.concatenate(out_e)

    def find(self, us: np.ndarray, vs: np.ndarray) -> np.ndarray:
        """Entry index of each pair ``(us[i], vs[i])`` in the simple graph, ``-1`` where the
        nodes are not adjacent: a binary search in each ``u``'s row, all pairs in lockstep
        (independent loads, so the memory latency overlaps)."""
        lo = self.indptr[us]
        end = self.indptr[us + 1]
        hi = end.copy()
        nbr = self.nbr
        active = np.flatnonzero(lo < hi)
        while active.shape[0]:
            a_lo, a_hi = lo[active], hi[active]
            mid = (a_lo + a_hi) >> 1
            right = nbr[mid] < vs[active]
            a_lo = np.where(right, mid + 1, a_lo)
            a_hi = np.where(right, a_hi, mid)
            lo[active], hi[active] = a_lo, a_hi
            active = active[a_lo < a_hi]
        if nbr.shape[0] == 0:
            return np.full(us.shape[0], -1, dtype=np.int64)
        found = (lo < end) & (nbr[np.minimum(lo, nbr.shape[0] - 1)] == vs)
        return np.where(found, lo, -1)

    def relations_between(self, us: np.ndarray, vs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each pair ``(us[i], vs[i])`` of adjacent nodes: every relation id connecting them
        read from ``us[i]`` (forward ids for ``u -> v`` edges, inverse ids for ``v -> u``
        edges), sorted.

        Returns ``(ptr, rels)``: pair ``i`` has ``rels[ptr[i]:ptr[i+1]]``."""
        entry = self.find(us, vs)
        if (entry < 0).any():
            raise ValueError("relations_between: some pairs are not adjacent")
        return self.entry_relations(entry)

    def entry_relations(self, entry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(ptr, rels)``: the relations of each simple entry, read from its row's node."""
        counts = self.entry_count[entry]
        ptr = np.zeros(entry.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        total = int(ptr[-1])
        pos = np.arange(total, dtype=np.int64) + np.repeat(
            self.entry_start[entry] - ptr[:-1], counts
        )
        return ptr, self.pair_rel[pos].astype(np.int64)


# ---------------------------------------------------------------------- the subgraph
@dataclass
class Subgraph:
    """One statement's subgraph (numpy arrays; :meth:`to_data` makes the PyG object)."""

    node_ids: np.ndarray  # int64 [n]; -1 for the context node
    node_type: np.ndarray  # int8 [n]
    node_score: np.ndarray  # float32 [n]
    edge_index: np.ndarray  # int64 [2, e], local node positions
    edge_type: np.ndarray  # int64 [e]
    num_candidates: int = 0  # concepts + intermediates before the max_nodes cut

    @property
    def num_nodes(self) -> int:
        return int(self.node_ids.shape[0])

    def to_data(self, num_relations: int | None = None, with_inverse: bool = False) -> Data:
        """A ``torch_geometric.data.Data`` with ``node_ids``, ``edge_index``, ``edge_type``,
        ``node_type``, ``node_score`` and ``num_nodes``.

        ``with_inverse`` (needs ``num_relations``) appends every edge reversed, typed ``r + R``
        for index relations and ``t + 2`` for the two context types (``2R + 2``, ``2R + 3``).
        """
        return to_data(
            self.node_ids,
            self.node_type,
            self.node_score,
            self.edge_index,
            self.edge_type,
            num_relations,
            with_inverse,
        )


def to_data(
    node_ids,
    node_type,
    node_score,
    edge_index,
    edge_type,
    num_relations: int | None = None,
    with_inverse: bool = False,
) -> Data:
    import torch
    from torch_geometric.data import Data

    edge_index = np.asarray(edge_index, dtype=np.int64).reshape(2, -1)
    edge_type = np.asarray(edge_type, dtype=np.int64)
    if with_inverse:
        if num_relations is None:
            raise ValueError("with_inverse needs num_relations")
        r = int(num_relations)
        inverse = np.where(edge_type < r, edge_type + r, edge_type + 2)
        edge_index = np.concatenate([edge_index, edge_index[::-1]], axis=1)
        edge_type = np.concatenate([edge_type, inverse])
    return Data(
        node_ids=torch.from_numpy(np.array(node_ids, dtype=np.int64)),
        node_type=torch.from_numpy(np.array(node_type, dtype=np.int64)),
        node_score=torch.from_numpy(np.array(node_score, dtype=np.float32)),
        edge_index=torch.from_numpy(np.ascontiguousarray(edge_index)),
        edge_type=torch.from_numpy(np.ascontiguousarray(edge_type)),
        num_nodes=int(len(node_ids)),
    )


def normalize_concepts(question: Any, answer: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(Q, A)``: sorted distinct answer concepts, and question concepts minus those."""
    a = set(np.asarray(answer, dtype=np.int64).reshape(-1).tolist())
    q = set(np.asarray(question, dtype=np.int64).reshape(-1).tolist()) - a
    return np.array(sorted(q), dtype=np.int64), np.array(sorted(a), dtype=np.int64)


def intermediate_nodes(
    adj: Adjacency,
    q: np.ndarray,
    a: np.ndarray,
    q_nbrs: np.ndarray | None = None,
    a_nbrs: np.ndarray | None = None,
) -> np.ndarray:
    """``(N(Q) ∩ N(A)) - (Q ∪ A)``, sorted (``q``/``a`` disjoint, sorted, distinct)."""
    if q.shape[0] == 0 or a.shape[0] == 0:
        return _EMPTY
    if q_nbrs is None:
        q_nbrs = adj.neighbors_of(q)[1]
    if a_nbrs is None:
        a_nbrs = adj.neighbors_of(a)[1]
    both = q_nbrs[adj.member(q_nbrs, a_nbrs)]
    if both.shape[0] == 0:
        return _EMPTY
    both = np.unique(both)
    return both[~adj.member(both, np.concatenate([q, a]))]


def extract_subgraph(
    adj: Adjacency,
    question: Any,
    answer: Any,
    *,
    max_nodes: int = 200,
    scorer: RelevanceScorer | None = None,
    statement: str = "",
    context: bool = False,
    q_nbrs: np.ndarray | None = None,
    a_nbrs: np.ndarray | None = None,
) -> Subgraph:
    """The subgraph of one statement (see the module docstring for the definition).

    Args:
        adj: the graph's :class:`Adjacency`.
        question, answer: concept node ids (any order, duplicates allowed).
        max_nodes: cap on the number of nodes, context node included.
        scorer: relevance scorer ranking the intermediate nodes; ``None`` scores 0 (order by
            degree, then id).
        statement: the text the scorer compares node names with.
        context: add the context node.
        q_nbrs, a_nbrs: the neighbours of ``Q`` and ``A`` when already gathered.
    """
    q, a = normalize_concepts(question, answer)
    inter = intermediate_nodes(adj, q, a, q_nbrs, a_nbrs)
    cand = np.concatenate([q, a, inter])
    n_qa = q.shape[0] + a.shape[0]
    if scorer is not None and cand.shape[0]:
        scores = np.asarray(scorer.score(statement, cand), dtype=np.float32).reshape(-1)
        if scores.shape[0] != cand.shape[0]:
            raise ValueError(f"scorer returned {scores.shape[0]} scores for {cand.shape[0]} nodes")
    else:
        scores = np.zeros(cand.shape[0], dtype=np.float32)
    if inter.shape[0]:
        s = scores[n_qa:]
        order = np.lexsort((inter, -adj.degree[inter], -s))
        cand[n_qa:] = inter[order]
        scores[n_qa:] = s[order]
    types = np.concatenate(
        [
            np.full(q.shape[0], QUESTION, np.int8),
            np.full(a.shape[0], ANSWER, np.int8),
            np.full(inter.shape[0], INTERMEDIATE, np.int8),
        ]
    )
    budget = max(int(max_nodes) - (1 if context else 0), 0)
    nodes, types, scores = cand[:budget], types[:budget], scores[:budget]

    src, dst, rel = _edges_among(adj, nodes)
    r2 = 2 * adj.num_relations
    if context:
        nodes = np.concatenate([[CONTEXT_NODE], nodes])
        types = np.concatenate([[CONTEXT], types]).astype(np.int8)
        scores = np.concatenate([[0.0], scores]).astype(np.float32)
        src, dst = src + 1, dst + 1
        concept = np.flatnonzero((types == QUESTION) | (types == ANSWER))
        src = np.concatenate([np.zeros(concept.shape[0], np.int64), src])
        dst = np.concatenate([concept, dst])
        rel = np.concatenate([np.where(types[concept] == QUESTION, r2, r2 + 1), rel])
    order = np.lexsort((rel, dst, src))
    return Subgraph(
        nodes.astype(np.int64),
        types.astype(np.int8),
        scores.astype(np.float32),
        np.stack([src[order], dst[order]]).astype(np.int64),
        rel[order].astype(np.int64),
        int(cand.shape[0]),
    )


def _edges_among(adj: Adjacency, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward edges of the index among ``nodes``: (local head, local tail, relation)."""
    if nodes.shape[0] < 2:
        return _EMPTY, _EMPTY, _EMPTY
    ordered = np.sort(nodes)
    xs, ys, entry = adj.edges_between(ordered, ordered)
    once = xs < ys
    xs, ys, entry = xs[once], ys[once], entry[once]
    ptr, rels = adj.entry_relations(entry)
    # relations are read from the node whose row holds the entry
    other = adj.nbr[entry]
    counts = np.diff(ptr)
    u = np.repeat(np.where(other == ys, xs, ys), counts)
    v = np.repeat(other, counts)
    r = adj.num_relations
    forward = rels < r
    heads = np.where(forward, u, v)
    tails = np.where(forward, v, u)
    rels = np.where(forward, rels, rels - r)
    local = np.searchsorted(ordered, np.stack([heads, tails]))
    position = np.argsort(nodes, kind="stable")  # ordered[i] == nodes[position[i]]
    return position[local[0]], position[local[1]], rels


# ---------------------------------------------------------------------- networkx reference
def networkx_graph(index: GraphIndex) -> nx.Graph:
    """The index as an undirected simple ``networkx.Graph``; each edge carries ``rels``, the
    list of ``(head, forward relation id)`` of the index edges between its two nodes."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(range(index.num_nodes))
    heads, rels, tails, _ = index.edges()
    for h, r, t in zip(heads.tolist(), rels.tolist(), tails.tolist(), strict=True):
        if h == t:
            continue
        if graph.has_edge(h, t):
            graph[h][t]["rels"].append((h, r))
        else:
            graph.add_edge(h, t, rels=[(h, r)])
    return graph


def reference_subgraph(
    graph: nx.Graph,
    question,
    answer,
    degree: np.ndarray,
    max_nodes: int = 200,
    context: bool = False,
) -> tuple[list[int], set[tuple[int, int, int]], int]:
    """The subgraph definition written plainly with networkx (unscored: intermediates by
    degree, then id). Returns ``(node ids in order, {(head id, tail id, relation)}, number of
    candidates)`` without the context node."""
    a_set = {int(x) for x in answer}
    q_list = sorted({int(x) for x in question} - a_set)
    a_list = sorted(a_set)
    extra: set[int] = set()
    for q in q_list:
        for a in a_list:
            if q != a:
                extra |= set(graph.neighbors(q)) & set(graph.neighbors(a))
    extra -= set(q_list) | a_set
    inter = sorted(extra, key=lambda n: (-int(degree[n]), n))
    cand = q_list + a_list + inter
    nodes = cand[: max(max_nodes - (1 if context else 0), 0)]
    edges = set()
    for u in nodes:
        for v in nodes:
            if u != v and graph.has_edge(u, v):
                edges.update((u, v, r) for h, r in graph[u][v]["rels"] if h == u)
    return nodes, edges, len(cand)
