"""Checkpoint pieces: optimizer and RNG state round trips through safetensors + JSON, and
verification of corrupt or truncated checkpoints."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from kelm.engine import checkpoint as ckpt


def _trained_optimizer() -> tuple[torch.nn.Module, torch.optim.AdamW]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    opt = torch.optim.AdamW(
        [
            {"params": model[0].parameters(), "lr": 1e-2, "name": "a"},
            {"params": model[1].parameters(), "lr": 1e-3, "weight_decay": 0.0, "name": "b"},
        ]
    )
    for _ in range(2):
        model(torch.randn(5, 4)).sum().backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model, opt = _trained_optimizer()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (s + 1))
    opt.step()  # no gradients: changes nothing, but orders the calls as torch expects
    sched.step()
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    path = ckpt.save_checkpoint(
        tmp_path,
        1,
        model_state=model.state_dict(),
        optimizer_state=opt.state_dict(),
        scheduler_state=sched.state_dict(),
        trainer_state={"epoch": 1, "global_step": 2, "history": {"steps": [], "epochs": []}},
    )
    expected = (random.random(), np.random.rand(), torch.rand(1))
    assert ckpt.latest_checkpoint(tmp_path) == path
    loaded = ckpt.load_checkpoint(path)
    model2, opt2 = _trained_optimizer()
    opt2.load_state_dict(loaded.optimizer)
    for a, b in zip(opt.state.values(), opt2.state.values(), strict=True):
        for key in a:
            assert torch.equal(a[key], b[key])
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    assert opt2.param_groups[0]["betas"] == opt.param_groups[0]["betas"]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.model.items())
    assert loaded.scheduler["last_epoch"] == 1 and loaded.trainer_state["global_step"] == 2
    ckpt.set_rng_state(loaded.rng["tensors"], loaded.rng["meta"])
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
    # a second process's RNG state is absent: None, not an error
    assert ckpt.load_checkpoint(path, rank=1).rng is None


def _saved(tmp_path: Path) -> Path:
    model, opt = _trained_optimizer()
    return ckpt.save_checkpoint(
        tmp_path,
        3,
        model_state=model.state_dict(),
        optimizer_state=opt.state_dict(),
        scheduler_state={},
        trainer_state={"epoch": 3},
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "model.safetensors").write_bytes(b"\0" * 10), "model.safetensors has"),
        (lambda p: (p / "optimizer.safetensors").unlink(), "optimizer.safetensors missing"),
        (lambda p: (p / "manifest.json").write_text("{"), "not valid JSON"),
        (lambda p: (p / "manifest.json").unlink(), "manifest.json missing"),
    ],
)
def test_damaged_checkpoints_are_one_line_errors(tmp_path: Path, damage, message: str) -> None:
    path = _saved(tmp_path)
    damage(path)
    with pytest.raises(ckpt.CheckpointError, match=message) as info:
        ckpt.load_checkpoint(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_modified_bytes_fail_the_checksum(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match="does not match its checksum"):
        ckpt.verify_checkpoint(path)


def test_keep_prunes_old_checkpoints(tmp_path: Path) -> None:
    model, opt = _trained_optimizer()
    for epoch in (1, 2, 3):
        ckpt.save_checkpoint(
            tmp_path,
            epoch,
            model_state=model.state_dict(),
            optimizer_state=opt.state_dict(),
            scheduler_state={},
            trainer_state={"epoch": epoch},
            keep=2,
        )
    names = [p.name for p in ckpt.list_checkpoints(tmp_path)]
    assert names == ["epoch-0002", "epoch-0003"]
    manifest = json.loads((tmp_path / "checkpoints/epoch-0003/manifest.json").read_text())
    assert {"model.safetensors", "optimizer.json", "rng-0.safetensors"} <= set(manifest["files"])
