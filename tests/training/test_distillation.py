"""Task distillation in ``kelm train`` (``distill.teacher``): the choice-level KL loss, the
teacher's soft targets, resume, and one-line errors for a teacher that does not fit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from training_fixtures import (
    one_line_error,
    tiny_config,
    train_run,
    write_config,
)
from typer.testing import CliRunner

from kelm.cli import app
from kelm.training import load_train_config, train
from kelm.training.distillation import choice_distillation_loss, teacher_batch

runner = CliRunner()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("distill")


def test_loss_is_tempered_kl_over_present_choices() -> None:
    student = torch.tensor([[1.0, 0.0, 5.0], [0.5, -1.0, 0.0]])
    teacher = torch.tensor([[0.0, 2.0, -9.0], [0.5, -1.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    t = 2.0
    loss = choice_distillation_loss(student, teacher, mask, t)
    # by hand: row 0 over its two choices, row 1 identical distributions (KL 0)
    p = torch.softmax(teacher[0, :2] / t, -1)
    q = torch.log_softmax(student[0, :2] / t, -1)
    expected = float((p * (p.log() - q)).sum()) / 2 * t * t
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert math.isfinite(float(loss))
    # identical logits: zero, and the gradient flows to the student only where choices exist
    same = student.clone().requires_grad_(True)
    zero = choice_distillation_loss(same, student, mask, 1.0)
    zero.backward()
    assert float(zero.detach()) == pytest.approx(0.0, abs=1e-6)
    assert same.grad is not None and float(same.grad[0, 2]) == 0.0


def test_teacher_batch_pads_absent_choices() -> None:
    logits = [np.array([1.0, 2.0]), np.array([3.0, 4.0, 5.0])]
    batch = teacher_batch(logits, [1, 0], 3, "cpu")
    assert batch.shape == (2, 3)
    assert batch[0].tolist() == [3.0, 4.0, 5.0]
    assert batch[1, :2].tolist() == [1.0, 2.0] and float(batch[1, 2]) < -1e3


def test_student_learns_from_a_teacher_run_and_resumes_exactly(root: Path) -> None:
    teacher = train_run(root, "lm", run_dir=str(root / "teacher"), epochs=3)
    distill = {"teacher": str(teacher), "temperature": 2.0, "alpha": 0.5}
    cfg = tiny_config(root, "lm", run_dir=str(root / "student"), seed=5, distill=distill)
    a = train(load_train_config(write_config(root / "student.yaml", cfg)), progress=False)
    steps = a.history["steps"]
    assert steps and all(s["distill_loss"] >= 0 for s in steps)
    assert any(s["distill_loss"] > 0 for s in steps)
    resolved = (root / "student" / "config.resolved.yaml").read_text()
    assert "teacher: " + str(teacher) in resolved
    # interrupted after one epoch and resumed: the same losses (soft targets recomputed alike)
    split_cfg = {**cfg, "run_dir": str(root / "student-split")}
    split = load_train_config(write_config(root / "student-split.yaml", split_cfg))
    train(split, stop_after_epochs=1, progress=False)
    b = train(split, resume=True, progress=False)
    assert [s["loss"] for s in b.history["steps"]] == pytest.approx(
        [s["loss"] for s in steps], abs=1e-6
    )
    assert [s["distill_loss"] for s in b.history["steps"]] == pytest.approx(
        [s["distill_loss"] for s in steps], abs=1e-6
    )


def test_soft_targets_only_pull_the_student_towards_the_teacher(root: Path) -> None:
    """alpha 1: no answer keys in the gradient; the student's held-out predictions end closer
    to the teacher's than those of the same student trained on the keys alone."""
    teacher = train_run(root, "lm", run_dir=str(root / "teacher"), epochs=3)
    common = {"seed": 7, "epochs": 4, "optim": {"lm_lr": 3e-3, "gnn_lr": 1e-2, "warmup_steps": 0}}
    soft = tiny_config(
        root,
        "lm",
        run_dir=str(root / "soft"),
        distill={"teacher": str(teacher), "alpha": 1.0, "temperature": 1.0},
        **common,
    )
    hard = tiny_config(root, "lm", run_dir=str(root / "hard"), **common)
    for cfg, name in ((soft, "soft"), (hard, "hard")):
        train(load_train_config(write_config(root / f"{name}.yaml", cfg)), progress=False)

    def scores(run: Path) -> dict[str, list[float]]:
        lines = (run / "predictions.jsonl").read_text().splitlines()
        out = {}
        for line in lines:
            record = json.loads(line)
            values = list(record["scores"].values())
            out[record["id"]] = torch.softmax(torch.tensor(values), -1).tolist()
        return out

    t, s, h = scores(teacher), scores(root / "soft"), scores(root / "hard")

    def distance(a: dict[str, list[float]]) -> float:
        return sum(abs(x - y) for q in t for x, y in zip(t[q], a[q], strict=True))

    assert distance(s) < distance(h)


def test_a_bad_teacher_or_setting_is_a_one_line_error(root: Path) -> None:
    cfg = tiny_config(root, "lm", run_dir=str(root / "bad"), distill={"teacher": str(root)})
    path = write_config(root / "bad.yaml", cfg)
    one_line_error(runner.invoke(app, ["train", "-c", str(path), "--no-progress"]), "not a kelm")
    cfg["distill"]["alpha"] = 2
    path = write_config(root / "bad3.yaml", cfg)
    one_line_error(runner.invoke(app, ["train", "-c", str(path)]), "distill.alpha")
