"""The MLM head's start: identity transform, head-only warm-up, its cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from kelm.pretraining.config import load_pretrain_config
from kelm.pretraining.head_warmup import find_mlm_head, fit_head, head_parameters, identity_start
from kelm.pretraining.loop import pretrain
from tests.pretraining.pretrain_fixtures import tiny_config, write_config


def _bert() -> BertForMaskedLM:
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    return BertForMaskedLM(cfg)


def test_identity_start_and_own_parameters_leave_the_tied_decoder() -> None:
    model = _bert()
    head = find_mlm_head(model)
    assert head is model.cls.predictions
    embeddings = model.get_input_embeddings().weight
    assert head.decoder.weight is embeddings  # tied
    params = head_parameters(model, head)
    assert all(p is not embeddings for p in params) and params
    assert identity_start(head)
    assert torch.equal(head.transform.dense.weight, torch.eye(16))
    assert not head.bias.any()


def test_fit_head_learns_a_learnable_mapping_and_keeps_only_an_improvement() -> None:
    model = _bert()
    head = find_mlm_head(model)
    embeddings = model.get_input_embeddings().weight.detach().clone()
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2000, 16, generator=g)
    labels = (feats @ torch.randn(16, 16, generator=g) @ embeddings.t()).argmax(-1)
    info = fit_head(model, head, feats, labels, steps=300, seed=0)
    assert info["kept"] == 1.0 and info["accuracy_after"] > info["accuracy_before"] + 0.2
    assert torch.equal(model.get_input_embeddings().weight, embeddings)  # never trained
    before = [p.detach().clone() for p in head_parameters(model, head)]
    still = fit_head(model, head, feats, labels, steps=0)  # no gain: nothing is kept
    assert still["kept"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, head_parameters(model, head), strict=True))


def test_pretrain_warms_the_head_once_then_reuses_the_cache(tmp_path: Path) -> None:
    cfg = tiny_config(
        tmp_path,
        "ernie",
        model={"head_warmup_steps": 30},
        probe={"enabled": False},
        max_steps=2,
    )
    first = pretrain(load_pretrain_config(write_config(tmp_path / "a.yaml", cfg)), progress=False)
    warm = first.history["head_warmup"]
    assert warm["cached"] is False and warm["targets"] > 0
    assert warm["accuracy_after"] >= warm["accuracy_before"]
    assert list((tmp_path / "cache" / "mlm_head").glob("*.safetensors"))
    cfg["run_dir"] = str(tmp_path / "again")
    second = pretrain(load_pretrain_config(write_config(tmp_path / "b.yaml", cfg)), progress=False)
    assert second.history["head_warmup"]["cached"] is True
    last = first.history["steps"][-1]["loss"]
    assert second.history["steps"][-1]["loss"] == pytest.approx(last, abs=1e-6)
    cfg["run_dir"] = str(tmp_path / "off")
    cfg["model"] = {**cfg["model"], "head_warmup_steps": 0}
    off = pretrain(load_pretrain_config(write_config(tmp_path / "c.yaml", cfg)), progress=False)
    assert "head_warmup" not in off.history
