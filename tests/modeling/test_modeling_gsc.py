"""The graph soft counter: counting against a naive reference, a new model that equals its text
head, a task only typed edges solve, saving and loading."""

from __future__ import annotations

from pathlib import Path

import torch
from modeling_fixtures import NUM_RELATIONS, B, C, graph, tiny_bert, toy_batch
from torch_geometric.data import Batch
from transformers import AutoModelForMultipleChoice

import kelm.modeling as km


def make_gsc(**overrides: object) -> km.GSCForMultipleChoice:
    torch.manual_seed(0)
    kwargs = {"num_relations": NUM_RELATIONS, "classifier_dropout": 0.0, "fc_dim": 16}
    return km.GSCForMultipleChoice(km.GSCConfig(encoder_config=tiny_bert(), **kwargs, **overrides))


def naive_count(num_nodes: int, edges: list[tuple[int, int, float]], layers: int) -> list[float]:
    """``x_i = sum over edges j -> i of (x_j + e_ji)``, ``layers`` times, in plain Python."""
    x = [0.0] * num_nodes
    for _ in range(layers):
        new = [0.0] * num_nodes
        for j, i, e in edges:
            new[i] += x[j] + e
        x = new
    return x


def test_count_matches_the_naive_reference() -> None:
    edges = [(0, 1, 0.5), (1, 2, -1.0), (2, 0, 2.0), (0, 2, 0.25), (3, 1, 1.5), (1, 1, 0.1)]
    edge_index = torch.tensor([[j for j, _, _ in edges], [i for _, i, _ in edges]])
    values = torch.tensor([e for _, _, e in edges], dtype=torch.float64)
    for layers in (1, 2, 3):
        model = make_gsc(gsc_layers=layers)
        got = model.count(5, edge_index, values).tolist()
        assert got == naive_count(5, edges, layers)  # exact: the same sums in float64


def test_a_new_gsc_scores_as_its_text_head() -> None:
    model = make_gsc().eval()
    batch = toy_batch()
    text = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        with_graphs = model(**text, graphs=batch["graphs"]).logits
        without = model(**text, graphs=None).logits
        statements, _ = model.encode_statements(**text)
        head = model.text_head(statements).view(B, C)
    assert torch.equal(with_graphs, without) and torch.equal(with_graphs, head)
    params = sum(p.numel() for n, p in model.named_parameters() if n.startswith("edge_encoder"))
    assert params == (2 * NUM_RELATIONS + 4 + 2 * 4) * 32 + 32 + 32 + 1


def test_typed_edges_alone_solve_a_task_text_cannot() -> None:
    """Every statement has the same text; the right choice's answer node hangs off the question
    node by relation 1, the others by relation 2 (and decoys of relation 1 elsewhere)."""

    def statement(right: bool) -> object:
        rel = 1 if right else 2
        # question 0, answer 1, intermediate 2; relation-1 decoy between intermediates
        return graph([1, 2, 3, 4], [0, 1, 2, 2], [(0, 1, rel), (1, 0, rel + 3), (2, 3, 1)])

    def batch(rows: int) -> tuple[Batch, torch.Tensor]:
        labels = torch.arange(rows) % C
        graphs = [statement(j == int(labels[i])) for i in range(rows) for j in range(C)]
        return Batch.from_data_list(graphs), labels

    model = make_gsc().train()
    ids = torch.full((8, C, 5), 7)
    mask = torch.ones_like(ids)
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    graphs, labels = batch(8)
    for _ in range(60):
        optim.zero_grad()
        model(input_ids=ids, attention_mask=mask, graphs=graphs, labels=labels).loss.backward()
        optim.step()
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, graphs=graphs).logits
    assert torch.equal(logits.argmax(-1), labels)


def test_save_and_load(tmp_path: Path) -> None:
    model = make_gsc(graph_checksum="abc").eval()
    with torch.no_grad():
        model.graph_scale[-1].weight.fill_(0.3)  # a trained graph part
    batch = toy_batch()
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "graphs")}
    model.save_pretrained(tmp_path)
    loaded = AutoModelForMultipleChoice.from_pretrained(tmp_path).eval()
    assert type(loaded) is km.GSCForMultipleChoice and loaded.config.graph_checksum == "abc"
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, model(**inputs).logits)
        text = {k: v for k, v in inputs.items() if k != "graphs"}
        assert not torch.equal(model(**inputs).logits, model(**text, graphs=None).logits)
