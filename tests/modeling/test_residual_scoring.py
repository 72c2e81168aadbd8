"""Residual scoring (kagnet, qagnn): at step 0 a knowledge model is its text baseline; one
optimizer step later the graph contributes."""

from __future__ import annotations

import pytest
import torch

from tests.modeling.modeling_fixtures import make_model, toy_batch, toy_paths

GRAPH_FAMILIES = ["kagnet", "qagnn"]


def _inputs(family: str) -> dict:
    batch = toy_batch()
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels", "graphs")}
    if family == "kagnet":
        inputs.update(toy_paths())
    return inputs


@pytest.mark.parametrize("family", GRAPH_FAMILIES)
def test_residual_model_starts_as_its_text_baseline(family: str) -> None:
    model = make_model(family, residual=True).eval()
    inputs = _inputs(family)
    with torch.no_grad():
        logits = model(**inputs).logits  # [B, C]
        statements, c = model.encode_statements(inputs["input_ids"], inputs["attention_mask"])
        text_only = model.text_head(statements).view(-1, c)  # [B, C]
    assert torch.equal(model.classifier[-1].weight, torch.zeros_like(model.classifier[-1].weight))
    torch.testing.assert_close(logits, text_only, rtol=0, atol=0)


@pytest.mark.parametrize("family", GRAPH_FAMILIES)
def test_residual_graph_contribution_grows_after_a_step(family: str) -> None:
    model = make_model(family, residual=True)
    inputs = _inputs(family)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(3):
        model(**inputs).loss.backward()
        if step == 0:  # only the zero layer gets a gradient at first (its input: graph features)
            assert model.classifier[-1].weight.grad.abs().sum() > 0
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    with torch.no_grad():
        statements, c = model.encode_statements(inputs["input_ids"], inputs["attention_mask"])
        graph_part = model(**inputs).logits - model.text_head(statements).view(-1, c)  # [B, C]
    assert graph_part.abs().max() > 1e-3  # float32 rounding of O(1) logits is ~1e-7


@pytest.mark.parametrize("family", GRAPH_FAMILIES)
def test_residual_flag_is_saved_and_the_head_reloads(family: str, tmp_path) -> None:
    model = make_model(family, residual=True).eval()
    model.save_pretrained(tmp_path)
    loaded = type(model).from_pretrained(tmp_path).eval()
    assert loaded.config.residual is True
    inputs = _inputs(family)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, model(**inputs).logits)


def test_statement_vectors_replace_the_encoder() -> None:
    model = make_model("qagnn", residual=True).eval()
    inputs = _inputs("qagnn")
    with torch.no_grad():
        statements, c = model.encode_statements(inputs["input_ids"], inputs["attention_mask"])
        vectors = statements.view(-1, c, statements.shape[-1])  # [B, C, H]
        direct = model(**inputs).logits
        reused = model(**{**inputs, "statement_vectors": vectors}).logits
        # a different vector changes the scores: the model reads them
        other = model(**{**inputs, "statement_vectors": vectors.flip(0)}).logits
    torch.testing.assert_close(reused, direct, rtol=0, atol=0)
    assert not torch.equal(other, direct)
    with pytest.raises(ValueError, match="statement_vectors"):
        model(**{**inputs, "statement_vectors": vectors[..., :5]})


def test_qagnn_statement_features_reach_the_graph_layers() -> None:
    """With ``statement_features`` every node's attention reads its statement: the
    projection gets a gradient through the GNN; without, the module does not exist."""
    model = make_model("qagnn", statement_features=True)
    model(**_inputs("qagnn")).loss.backward()
    assert model.statement_feature.weight.grad.abs().sum() > 0
    assert make_model("qagnn", statement_features=False).statement_feature is None


def test_kagnet_statement_paths_condition_the_path_encoder() -> None:
    """With ``statement_paths`` the path LSTM starts from the statement: its initial-state
    projection gets a gradient; without, the module does not exist."""
    model = make_model("kagnet", statement_paths=True)
    model(**_inputs("kagnet")).loss.backward()
    assert model.path_init.weight.grad.abs().sum() > 0
    assert make_model("kagnet", statement_paths=False).path_init is None
