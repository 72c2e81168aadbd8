"""(slow) ``kelm pretrain`` on another number of processes: a run of 2 CPU processes
(torchrun, gloo) resumed on 1, and a run of 1 resumed on 2, equal an uninterrupted run of 1,
and only rank 0 writes the run's files.

``batch_size`` is the global micro-batch and the run has one collate stream: every process
masks the whole micro-batch alike and keeps its share, weighting its loss by its share of the
masked tokens, so a step of 2 processes is the step of 1 up to the order of the float sums
(losses agree to 1e-5 relative, the held-out accuracy exactly). ``mlm`` is one mean over the
masked tokens; objectives adding terms over other counts agree closely, not to 1e-5. The
encoder runs without dropout, whose masks are drawn per process.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from pretrain_fixtures import tiny_config, write_config

from kelm.pretraining import load_pretrain_config, pretrain

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from rank_launch import torchrun  # noqa: E402


def only_rank_files(written: list[str]) -> None:
    """Rank 1 wrote nothing of the run but its own RNG states into a checkpoint's staging."""
    for path in written:
        parts = Path(path).parts
        assert len(parts) == 3 and parts[0] == "checkpoints", written
        assert parts[1].endswith(".staging") and parts[2].startswith("rng-1."), written


@pytest.mark.slow
def test_resume_on_another_number_of_processes(tmp_path: Path) -> None:
    root = tmp_path / "inputs"
    tiny_config(root)  # the encoder, graph and corpus
    encoder = root / "encoder-no-dropout"
    shutil.copytree(root / "encoder", encoder)
    settings = json.loads((encoder / "config.json").read_text())
    settings.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (encoder / "config.json").write_text(json.dumps(settings))
    cfg = tiny_config(
        root,
        "mlm",
        batch_size=4,
        grad_accum_steps=2,
        probe={"enabled": False},
        model={"encoder": str(encoder)},
    )

    def config(name: str) -> Path:
        return write_config(tmp_path / f"{name}.yaml", {**cfg, "run_dir": str(tmp_path / name)})

    straight = pretrain(load_pretrain_config(config("straight")), progress=False)
    losses = [s["loss"] for s in straight.history["steps"]]

    out, written = torchrun(
        tmp_path, tmp_path / "two-one", "pretrain", "-c", config("two-one"),
        "--stop-after-steps", "2", "--no-progress",
    )  # fmt: skip
    only_rank_files(written)
    checkpoint = tmp_path / "two-one" / "checkpoints" / "epoch-0002"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and state["micro_batches"] == 4
    assert not (checkpoint / "generator-1.safetensors").exists()
    two_one = pretrain(load_pretrain_config(config("two-one")), resume=True, progress=False)

    pretrain(load_pretrain_config(config("one-two")), stop_after_steps=2, progress=False)
    out, written = torchrun(
        tmp_path, tmp_path / "one-two", "pretrain", "--resume", "--run-dir",
        tmp_path / "one-two", "--no-progress",
    )  # fmt: skip
    assert out.count("pretrained mlm") == 1  # the main process reports
    only_rank_files(written)

    for name in ("two-one", "one-two"):
        history = json.loads((tmp_path / name / "history.json").read_text())
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        assert [s["loss"] for s in history["steps"]] == pytest.approx(losses, rel=1e-5), name
        assert metrics["mlm_accuracy"] == straight.metrics["mlm_accuracy"], name
        assert metrics["train_tokens"] == straight.metrics["train_tokens"], name
    assert two_one.completed and two_one.resumed_from is not None
