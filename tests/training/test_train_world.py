"""(slow) ``kelm train`` on another number of processes: a run of 2 CPU processes (torchrun,
gloo) resumed on 1, and a run of 1 resumed on 2, equal an uninterrupted run of 1, and only
rank 0 writes the run's files.

``batch_size`` is the global batch, so the steps do not depend on the processes and each step
of 2 processes is the step of 1 on the same questions; the float sums run in another order
(the gradients are summed across processes), so losses agree to 1e-5 relative, and accuracy
and every prediction exactly. The models run without dropout: its masks are drawn on each
process for its share, so they (and the numbers) differ with the number of processes.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from training_fixtures import tiny_config, write_config

from kelm.training import load_train_config, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from rank_launch import torchrun  # noqa: E402


def no_dropout_encoder(root: Path) -> Path:
    """The tiny encoder with its dropout off."""
    encoder = root / "encoder-no-dropout"
    if not encoder.is_dir():
        shutil.copytree(root / "encoder", encoder)
        config = json.loads((encoder / "config.json").read_text())
        config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        (encoder / "config.json").write_text(json.dumps(config))
    return encoder


def only_rank_files(written: list[str]) -> None:
    """Rank 1 wrote nothing of the run but its own RNG states into a checkpoint's staging."""
    for path in written:
        parts = Path(path).parts
        assert len(parts) == 3 and parts[0] == "checkpoints", written
        assert parts[1].endswith(".staging") and parts[2].startswith("rng-1."), written


def outcome(run: Path) -> tuple[list[float], dict, list[tuple[str, str]]]:
    history = json.loads((run / "history.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    lines = (run / "predictions.jsonl").read_text().splitlines()
    predictions = [(r["id"], r["prediction"]) for r in map(json.loads, lines)]
    return [s["loss"] for s in history["steps"]], metrics, predictions


@pytest.mark.slow
def test_resume_on_another_number_of_processes(tmp_path: Path) -> None:
    root = tmp_path / "inputs"
    tiny_config(root)  # the encoder, graph and questions
    cfg = tiny_config(
        root,
        "qagnn",
        model={
            "encoder": str(no_dropout_encoder(root)),
            "classifier_dropout": 0.0,
            "gnn_dropout": 0.0,
        },
    )

    def config(name: str) -> Path:
        return write_config(tmp_path / f"{name}.yaml", {**cfg, "run_dir": str(tmp_path / name)})

    straight = train(load_train_config(config("straight")), progress=False)
    losses, metrics, predictions = outcome(straight.run_dir)
    # 9 training questions in global batches of 4: 3 steps an epoch on any number of
    # processes; the last batch holds 1 question, so rank 1 has no share of it
    assert metrics["steps"] == 6

    # 2 processes for the first epoch, 1 for the second
    out, written = torchrun(
        tmp_path, tmp_path / "two-one", "train", "-c", config("two-one"),
        "--stop-after-epochs", "1", "--no-progress",
    )  # fmt: skip
    assert out.count("stopped after epoch 1 of 2") == 1  # the main process reports
    only_rank_files(written)
    state = json.loads(
        (tmp_path / "two-one" / "checkpoints" / "epoch-0001" / "trainer_state.json").read_text()
    )
    assert state["world_size"] == 2 and state["global_step"] == 3
    assert not (tmp_path / "two-one" / "metrics.json").exists()
    train(load_train_config(config("two-one")), resume=True, progress=False)

    # 1 process for the first epoch, 2 for the second
    train(load_train_config(config("one-two")), stop_after_epochs=1, progress=False)
    out, written = torchrun(
        tmp_path, tmp_path / "one-two", "train", "--resume", "--run-dir", tmp_path / "one-two",
        "--no-progress",
    )  # fmt: skip
    assert out.count("trained qagnn") == 1
    only_rank_files(written)

    for name in ("two-one", "one-two"):
        got_losses, got_metrics, got_predictions = outcome(tmp_path / name)
        assert got_losses == pytest.approx(losses, rel=1e-5), name
        assert got_predictions == predictions, name
        assert got_metrics["accuracy"] == metrics["accuracy"], name
        assert got_metrics["loss"] == pytest.approx(metrics["loss"], rel=1e-5), name
        assert got_metrics["steps"] == 6
