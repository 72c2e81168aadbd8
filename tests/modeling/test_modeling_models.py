"""The three multiple-choice models on tiny random configs: shapes, training signal, save/load
round trip, Auto classes, empty graphs and missing paths, gradients into the GNN, QA-GNN
gradients bitwise reproducible with two threads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from modeling_fixtures import (
    NUM_NODES,
    NUM_RELATIONS,
    B,
    C,
    graph,
    inputs_for,
    make_model,
    toy_batch,
    toy_paths,
)
from torch_geometric.data import Batch
from transformers import AutoConfig, AutoModel, AutoModelForMultipleChoice
from transformers.modeling_outputs import MultipleChoiceModelOutput

import kelm.modeling as km
from kelm.errors import KelmError

FAMILIES = ["lm", "kagnet", "qagnn"]


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_shapes_and_tuple_output(family: str) -> None:
    model = make_model(family).eval()
    inputs = inputs_for(family, toy_batch())
    out = model(**inputs)
    assert isinstance(out, MultipleChoiceModelOutput)
    assert out.logits.shape == (B, C)
    assert out.loss is not None and out.loss.dim() == 0 and torch.isfinite(out.loss)
    loss, logits = model(**inputs, return_dict=False)
    assert torch.equal(logits, out.logits) and torch.equal(loss, out.loss)
    inputs.pop("labels")
    assert model(**inputs).loss is None


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_decreases_on_a_toy_batch(family: str) -> None:
    model = make_model(family).train()
    inputs = inputs_for(family, toy_batch())
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        optim.zero_grad()
        loss = model(**inputs).loss
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.parametrize("family", FAMILIES)
def test_save_pretrained_round_trip_and_auto_classes(family: str, tmp_path: Path) -> None:
    model = make_model(family, graph_checksum="abc123") if family != "lm" else make_model(family)
    if family != "lm":
        model.init_node_embeddings(torch.randn(NUM_NODES, 16), freeze=True)
    model.eval()
    inputs = inputs_for(family, toy_batch())
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == model.config.model_type
    assert saved["encoder_config"]["hidden_size"] == 32

    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config) is type(model.config)
    assert config.encoder_config.num_hidden_layers == 2
    loaded = AutoModelForMultipleChoice.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    assert type(AutoModel.from_pretrained(tmp_path)) is type(model)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, model(**inputs).logits)
    if family != "lm":
        assert loaded.config.graph_checksum == "abc123"
        assert not loaded.node_embedding.weight.requires_grad  # the freeze survives loading
        assert loaded.text_encoder.embeddings.word_embeddings.weight.requires_grad
    assert type(AutoModelForMultipleChoice.from_config(config)) is type(model)


def test_qagnn_scores_empty_graphs_and_no_graphs() -> None:
    model = make_model("qagnn").eval()
    batch = toy_batch()
    text = {k: batch[k] for k in ("input_ids", "attention_mask")}
    empty = Batch.from_data_list([graph([], [], []) for _ in range(B * C)])
    only_context = Batch.from_data_list([graph([-1], [3], []) for _ in range(B * C)])
    with torch.no_grad():
        logits = [model(**text, graphs=g).logits for g in (None, empty, only_context)]
    for out in logits:
        assert out.shape == (B, C) and torch.isfinite(out).all()
    # No graph, an empty graph and a graph of just the context node are the same thing.
    torch.testing.assert_close(logits[0], logits[1])
    torch.testing.assert_close(logits[0], logits[2])


def test_qagnn_adds_one_context_node_per_graph() -> None:
    model = make_model("qagnn")
    graphs = toy_batch()["graphs"]
    node_ids, node_type, _, batch, edge_index, edge_type, ctx = model._with_context_nodes(
        graphs, B * C, torch.device("cpu")
    )
    assert int((node_type == 3).sum()) == B * C
    assert torch.equal(batch[ctx], torch.arange(B * C))
    assert torch.equal(node_ids[ctx], torch.full((B * C,), -1))
    r2 = 2 * NUM_RELATIONS
    # Graph 0 had no context node: it gets ctx->q (2R), ctx->a (2R+1) and the reverses.
    added = edge_type[graphs.num_edges :]
    src, dst = edge_index[:, graphs.num_edges :]
    g0 = batch[dst] == 0
    assert sorted(added[g0].tolist()) == [r2, r2 + 1, r2 + 2, r2 + 3]
    assert set(src[g0 & (added < r2 + 2)].tolist()) == {int(ctx[0])}
    # Graph 2 came with its context node (local position 0): nothing added for it.
    assert int(ctx[2]) == int(graphs.ptr[2])
    assert not (batch[src] == 2).any()


def test_kagnet_without_paths_uses_the_no_path_vector() -> None:
    model = make_model("kagnet")
    batch = toy_batch()
    text = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    no_paths = km.pad_paths([[] for _ in range(B * C)])
    for inputs in ({}, no_paths, {"graphs": batch["graphs"], **no_paths}):
        model.zero_grad()
        out = model(**text, **inputs)
        assert out.logits.shape == (B, C) and torch.isfinite(out.logits).all()
        out.loss.backward()
        assert model.no_path.grad is not None and model.no_path.grad.abs().sum() > 0
    # A statement with paths does not use the "no path" vector.
    model.zero_grad()
    one = km.pad_paths([[([1, 2], [0])]] + [[] for _ in range(B * C - 1)])
    with torch.no_grad():
        with_path = model(**text, **one).logits
        without = model(**text).logits
    # The path moves the logit by ~5e-5 (float64 agrees); rounding alone moves it by ~1e-10.
    assert abs(float(with_path[0, 0] - without[0, 0])) > 1e-6
    torch.testing.assert_close(with_path[0, 1:], without[0, 1:])
    torch.testing.assert_close(with_path[1], without[1])


def test_kagnet_without_the_schema_gcn_reads_no_graph() -> None:
    model = make_model("kagnet", schema_gcn=False).eval()
    assert model.gcn is None and not any(n.startswith("gcn.") for n, _ in model.named_parameters())
    batch = toy_batch()
    text = {k: batch[k] for k in ("input_ids", "attention_mask")}
    paths = toy_paths()
    with torch.no_grad():
        with_graphs = model(**text, graphs=batch["graphs"], **paths).logits
        without = model(**text, **paths).logits
    torch.testing.assert_close(with_graphs, without, rtol=0, atol=0)
    # with the GCN the same graphs do move the scores (else the test above proves nothing)
    gcn = make_model("kagnet").eval()
    with torch.no_grad():
        torch.nn.init.normal_(gcn.classifier[-1].weight)  # the graph part starts at zero
        moved = gcn(**text, graphs=batch["graphs"], **paths).logits
        kept = gcn(**text, **paths).logits
    assert not torch.allclose(moved, kept)


@pytest.mark.parametrize("family", ["kagnet", "qagnn"])
def test_gradient_flows_to_the_gnn_and_node_table(family: str) -> None:
    model = make_model(family).train()
    model(**inputs_for(family, toy_batch())).loss.backward()
    gnn = model.gcn if family == "kagnet" else model.gnn_layers
    grads = [p.grad for p in gnn.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    table = model.node_embedding.weight.grad
    assert table[1].abs().sum() > 0  # a node of the graphs and paths
    assert table[NUM_NODES - 1].abs().sum() == 0  # a node used nowhere
    assert model.text_encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_kagnet_paths_read_gcn_states_of_graph_nodes() -> None:
    model = make_model("kagnet").eval()
    batch = toy_batch()
    inputs = inputs_for("kagnet", batch)
    with torch.no_grad():
        with_graph = model(**inputs).logits
        inputs.pop("graphs")
        without_graph = model(**inputs).logits
    # Statements with paths change when the GCN contextualises their concepts.
    assert not torch.allclose(with_graph[0, 0], without_graph[0, 0])


def test_node_and_relation_embedding_initialisation() -> None:
    model = make_model("kagnet")
    vectors = torch.randn(NUM_NODES, 16)
    model.init_node_embeddings(vectors, freeze=True)
    assert torch.equal(model.node_embedding.weight, vectors)
    assert not model.node_embedding.weight.requires_grad and model.config.freeze_node_embeddings
    model.init_node_embeddings(vectors.numpy(), freeze=False)
    assert model.node_embedding.weight.requires_grad
    with pytest.raises(KelmError, match="node_dim=8"):
        model.init_node_embeddings(torch.randn(NUM_NODES, 8))
    rel = torch.randn(NUM_RELATIONS, 8)
    model.init_relation_embeddings(rel, freeze=True)
    assert torch.equal(model.relation_embedding.weight, torch.cat([rel, -rel]))
    assert not model.relation_embedding.weight.requires_grad
    with pytest.raises(KelmError):
        model.init_relation_embeddings(torch.randn(5, 8))
    with pytest.raises(KelmError, match="no node embedding"):
        make_model("lm").init_node_embeddings(vectors)


def test_graph_checksum_and_id_ranges_are_checked() -> None:
    model = make_model("qagnn", graph_checksum="abc")
    model.check_graph("abc")
    with pytest.raises(KelmError, match="graph index mismatch"):
        model.check_graph("def")
    make_model("qagnn").check_graph("anything")  # no recorded checksum: accepts any graph
    batch = toy_batch()
    text = {k: batch[k] for k in ("input_ids", "attention_mask")}
    too_big = Batch.from_data_list([graph([NUM_NODES], [0], [])] * (B * C))
    with pytest.raises(KelmError, match="out of range"):
        model(**text, graphs=too_big)
    bad_edge = Batch.from_data_list([graph([1, 2], [0, 1], [(0, 1, 99)])] * (B * C))
    with pytest.raises(KelmError, match="edge type 99"):
        model(**text, graphs=bad_edge)
    with pytest.raises(ValueError, match="graphs for"):
        model(**text, graphs=Batch.from_data_list([graph([1], [0], [])]))


def test_pad_paths() -> None:
    class FakePathSet:  # the to_list() shape of kelm.retrieval.paths.PathSet
        def to_list(self) -> list:
            return [([4, 5, 6], [[2, 7], [1]])]

    out = km.pad_paths([[([1, 2], [0]), ([1, 3, 2], [1, 2])], [], FakePathSet()], max_hops=3)
    assert out["path_nodes"].shape == (3, 2, 4) and out["path_rels"].shape == (3, 2, 3)
    assert out["path_mask"].tolist() == [[True, True], [False, False], [True, False]]
    assert out["path_nodes"][0, 1].tolist() == [1, 3, 2, -1]
    assert out["path_rels"][2, 0].tolist() == [2, 1, -1]  # first relation of each hop
    assert km.pad_paths([[], []])["path_mask"].shape == (2, 1)
    first = km.pad_paths([[([1, 2], [0]), ([1, 3, 2], [1, 2])]], max_paths=1)
    assert first["path_mask"].tolist() == [[True]] and first["path_nodes"][0, 0, :2].tolist() == [
        1,
        2,
    ]
    none = km.pad_paths([[([1, 2], [0])], FakePathSet()], max_paths=0)  # the path ablation
    assert not none["path_mask"].any() and none["path_mask"].shape == (2, 1)
    with pytest.raises(ValueError, match="max_hops"):
        km.pad_paths([[([1, 2, 3, 4, 5], [0, 0, 0, 0])]], max_hops=3)


def test_configs_validate_their_fields() -> None:
    with pytest.raises(Exception, match="pooling"):
        km.KelmLMConfig(pooling="max")
    with pytest.raises(Exception, match="multiple of gnn_heads"):
        km.QAGNNConfig(gnn_dim=30, gnn_heads=4)
    with pytest.raises(Exception, match="num_nodes"):
        km.KagnetConfig(num_nodes=0)
    default = km.KelmLMConfig()  # the MiniLM-L6-H384 architecture
    encoder = default.encoder_config
    assert (encoder.hidden_size, encoder.num_hidden_layers) == (384, 6)
    assert km.QAGNNConfig(num_relations=17).num_edge_types == 38


def test_qagnn_gradients_are_bitwise_reproducible_with_two_threads() -> None:
    # Graphs big enough (about 1500 edges of a few types, 64 channels) for PyTorch's parallel
    # CPU kernels: row gathers back-propagated with atomic adds made every pass differ in the
    # last bits, which AdamW turned into run-to-run differences of trained QA-GNN models.
    gen = torch.Generator().manual_seed(0)
    graphs = []
    for _ in range(B * C):
        node_type = torch.randint(0, 3, (40,), generator=gen)
        node_type[0] = 0  # a question node for the context node to link to
        edges = torch.randint(0, 40, (200, 2), generator=gen)
        types = torch.randint(0, 2 * NUM_RELATIONS, (200,), generator=gen)
        graphs.append(
            graph(
                torch.randint(0, NUM_NODES, (40,), generator=gen).tolist(),
                node_type.tolist(),
                [(s, t, r) for (s, t), r in zip(edges.tolist(), types.tolist(), strict=True)],
            )
        )
    inputs = {**inputs_for("qagnn", toy_batch()), "graphs": Batch.from_data_list(graphs)}
    model = make_model("qagnn", gnn_dim=64).train()
    torch.set_num_threads(2)  # the conftest fixture restores the thread count

    def gradients() -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        model(**inputs).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    first = gradients()
    assert any(n.startswith("gnn_layers.0.edge_type_embedding") for n in first)
    for _ in range(2):
        again = gradients()
        assert [n for n in first if not torch.equal(first[n], again[n])] == []
