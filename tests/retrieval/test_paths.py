"""Paths: a hand-checked graph, ``nx.all_simple_paths`` on random graphs (same node and
relation sequences in the same canonical order, same per-pair cut), and KagNet scores."""

from __future__ import annotations

import numpy as np
import pytest
from retrieval_fixtures import build_graph, random_graph

from kelm.retrieval import paths as paths_module
from kelm.retrieval.paths import PathSet, find_paths, kagnet_scores, reference_paths
from kelm.retrieval.retrieve import Retriever
from kelm.retrieval.subgraph import Adjacency, networkx_graph, reference_subgraph


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    return build_graph(tmp_path_factory.mktemp("hand"))


def named(graph, paths: PathSet):
    rel = graph.relations
    return [
        ([graph.node_name(n) for n in nodes], [[rel[r] for r in hop] for hop in hops])
        for nodes, hops in paths.to_list()
    ]


def test_hand_graph_paths(hand) -> None:
    n = hand.node_id
    adj = Adjacency.from_index(hand)
    got = named(hand, find_paths(adj, [n("dog")], [n("cat")], hops=3, max_paths=100))
    assert got == [
        (["dog", "animal", "cat"], [["isa"], ["~isa"]]),
        (["dog", "bark", "cat"], [["capableof"], ["relatedto"]]),
        (["dog", "house", "cat"], [["atlocation"], ["~atlocation", "~hasa"]]),
        (["dog", "person", "cat"], [["~desires"], ["desires"]]),
        (["dog", "animal", "house", "cat"], [["isa"], ["atlocation"], ["~atlocation", "~hasa"]]),
        (["dog", "house", "animal", "cat"], [["atlocation"], ["~atlocation"], ["~isa"]]),
    ]
    # the cut keeps the first P in canonical order
    cut = named(hand, find_paths(adj, [n("dog")], [n("cat")], hops=3, max_paths=3))
    assert cut == got[:3]
    # hops=1: only direct edges; house -> street is one
    assert named(hand, find_paths(adj, [n("house")], [n("street"), n("dog")], hops=1)) == [
        (["house", "dog"], [["~atlocation"]]),
        (["house", "street"], [["partof"]]),
    ]


def test_empty_and_degenerate(hand) -> None:
    adj = Adjacency.from_index(hand)
    n = hand.node_id
    for q, a, k, p in (
        ([], [n("cat")], 3, 100),
        ([n("dog")], [], 3, 100),
        ([n("dog")], [n("cat")], 0, 100),
        ([n("dog")], [n("cat")], 3, 0),
        ([n("cat")], [n("cat")], 3, 100),
    ):
        got = find_paths(adj, q, a, hops=k, max_paths=p)
        assert len(got) == 0 and got.to_list() == []
        assert got.hop_ptr.tolist() == [0]


@pytest.mark.parametrize("seed", range(5))
def test_matches_networkx_on_random_graphs(seed: int, monkeypatch) -> None:
    if seed % 2:  # many small rounds: exercises the early stop
        monkeypatch.setattr(paths_module, "FIRST_CHUNK", 1)
        monkeypatch.setattr(paths_module, "CHUNK_GROWTH", 2)
    rng = np.random.default_rng(100 + seed)
    for _ in range(30):
        graph = random_graph(rng, dense=seed >= 3)
        adj = Adjacency.from_index(graph)
        nxg = networkx_graph(graph)
        q = rng.integers(0, graph.num_nodes, rng.integers(1, 5))
        a = rng.integers(0, graph.num_nodes, rng.integers(1, 4))
        hops = int(rng.integers(1, 5))
        cap = int(rng.choice([1, 3, 10, 1000]))
        got = find_paths(adj, q, a, hops=hops, max_paths=cap).to_list()
        assert got == reference_paths(nxg, q, a, hops, cap, graph.num_relations)


def test_retriever_shares_frontiers(hand) -> None:
    n = hand.node_id
    retriever = Retriever(hand, max_paths=2)
    sub, paths = retriever([n("dog"), n("person")], [n("cat")])
    alone = find_paths(Adjacency.from_index(hand), [n("dog"), n("person")], [n("cat")], max_paths=2)
    assert paths.to_list() == alone.to_list() and sub.num_nodes > 0
    assert paths.score is None


def kagnet_reference(graph, nodes, hops, ent, rel):
    """KagNet's score_triples: product over hops of the max over the hop's relations of
    (1 + cos(r, t - h)) / 2, an inverse relation reversing h and t."""
    r_count = graph.num_relations
    score = 1.0
    for (u, v), rels in zip(zip(nodes[:-1], nodes[1:], strict=True), hops, strict=True):
        best = -10.0
        for r in rels:
            h, t = (v, u) if r >= r_count else (u, v)
            vec, diff = rel[r % r_count], ent[t] - ent[h]
            cos = float(vec @ diff / (np.linalg.norm(vec) * np.linalg.norm(diff)))
            best = max(best, (1 + cos) / 2)
        score *= best
    return score


def test_kagnet_scores(hand) -> None:
    n = hand.node_id
    rng = np.random.default_rng(0)
    ent = rng.normal(size=(hand.num_nodes, 8)).astype(np.float32)
    rel = rng.normal(size=(hand.num_relations, 8)).astype(np.float32)
    paths = find_paths(Adjacency.from_index(hand), [n("dog"), n("person")], [n("cat")])
    scores = kagnet_scores(paths, ent, rel, hand.num_relations)
    expected = [kagnet_reference(hand, nodes, hops, ent, rel) for nodes, hops in paths.to_list()]
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert ((scores >= 0) & (scores <= 1)).all()
    # a [2R, d] relation array is used as given (inverse rows included)
    both = np.concatenate([rel, -rel])
    scores2 = kagnet_scores(paths, ent, both, hand.num_relations)
    np.testing.assert_allclose(scores2, scores, rtol=1e-5)
    retriever = Retriever(hand, entity_emb=ent, relation_emb=rel)
    _, scored = retriever([n("dog"), n("person")], [n("cat")])
    np.testing.assert_allclose(scored.score, scores[: len(scored)], rtol=1e-5)


@pytest.mark.shared
def test_cn100k_sample_matches_networkx(cn100k_index) -> None:
    """Real graph, real hubs: grounded-like statements from CN-100K node names."""
    graph = cn100k_index
    adj = Adjacency.from_index(graph)
    nxg = networkx_graph(graph)
    n = graph.node_id
    q, a = [n("music"), 7], [n("cat"), 33]  # mid-degree concepts (hubs make nx take seconds)
    got = find_paths(adj, q, a, hops=3, max_paths=100).to_list()
    assert len(got) >= 100
    assert got == reference_paths(nxg, q, a, 3, 100, graph.num_relations)
    sub = Retriever(adj)(q, a)[0]
    nodes, _, _ = reference_subgraph(nxg, q, a, adj.degree, 200)
    assert sub.node_ids.tolist() == nodes
