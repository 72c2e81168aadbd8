"""``output_attentions=True``: QA-GNN's node pooling attention and KagNet's path attention,
beside unchanged logits; the default output stays a plain ``MultipleChoiceModelOutput``."""

from __future__ import annotations

import pytest
import torch
from modeling_fixtures import B, C, inputs_for, make_model, toy_batch
from transformers.modeling_outputs import MultipleChoiceModelOutput

from kelm.modeling.outputs import KelmMultipleChoiceOutput


@pytest.mark.parametrize("family", ["qagnn", "kagnet"])
def test_default_output_is_unchanged(family: str) -> None:
    model = make_model(family).eval()
    inputs = inputs_for(family, toy_batch())
    plain = model(**inputs)
    assert type(plain) is MultipleChoiceModelOutput
    explained = model(**inputs, output_attentions=True)
    assert isinstance(explained, KelmMultipleChoiceOutput)
    assert torch.equal(plain.logits, explained.logits)


def test_qagnn_node_attention_sums_to_one_per_graph_with_nodes() -> None:
    model = make_model("qagnn").eval()
    inputs = inputs_for("qagnn", toy_batch())
    graphs = inputs["graphs"]
    weights = model(**inputs, output_attentions=True).node_attention
    assert weights.shape == (graphs.num_nodes,)
    assert bool((weights >= 0).all())
    for g in range(B * C):
        lo, hi = int(graphs.ptr[g]), int(graphs.ptr[g + 1])
        kinds = graphs.node_type[lo:hi]
        knowledge = weights[lo:hi][kinds != 3]
        if knowledge.numel():  # the context node is pooled only in a graph without others
            assert float(knowledge.sum()) == pytest.approx(1.0, abs=1e-5)
            assert float(weights[lo:hi][kinds == 3].sum()) == 0.0


def test_kagnet_path_attention_sums_to_one_per_statement_with_paths() -> None:
    model = make_model("kagnet").eval()
    inputs = inputs_for("kagnet", toy_batch())
    weights = model(**inputs, output_attentions=True).path_attention
    assert weights.shape == inputs["path_mask"].shape
    totals = weights.sum(-1)
    has_paths = inputs["path_mask"].bool().any(-1)
    assert torch.allclose(totals[has_paths], torch.ones(int(has_paths.sum())), atol=1e-5)
    assert float(totals[~has_paths].abs().sum()) == 0.0
    assert float(weights[~inputs["path_mask"].bool()].abs().sum()) == 0.0
