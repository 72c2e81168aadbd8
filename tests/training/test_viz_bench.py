"""``kelm.engine.curves.plot_curves`` on full and partial histories, and the settings of
``scripts/bench_qa.py`` (its overrides must load with the shipped configs)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from kelm.engine.curves import plot_curves
from kelm.training.config import load_train_config

REPO = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_curves_full_and_partial(tmp_path: Path) -> None:
    history = {
        "steps": [{"step": s, "loss": 1.1 - 0.01 * s} for s in range(1, 7)],
        "epochs": [
            {
                "epoch": 1,
                "step": 3,
                "train_loss": 1.08,
                "train_accuracy": 0.4,
                "eval_loss": 1.09,
                "eval_accuracy": 0.35,
            },
            {
                "epoch": 2,
                "step": 6,
                "train_loss": 1.05,
                "train_accuracy": 0.5,
                "eval_loss": None,
                "eval_accuracy": None,
            },
        ],
    }
    assert plot_curves(history, tmp_path / "a" / "curves.png").read_bytes()[:8] == PNG
    assert plot_curves({"steps": [], "epochs": []}, tmp_path / "b.png").read_bytes()[:8] == PNG
    assert not list(tmp_path.glob("**/*.tmp"))


def test_history_without_matplotlib_has_no_plot(tmp_path: Path, monkeypatch) -> None:
    """A machine without matplotlib (a bare GPU image) still writes the history, not the plot."""
    import json
    import sys

    from kelm.engine.runtime import write_history

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    write_history(tmp_path, {"steps": [], "epochs": []})
    assert json.loads((tmp_path / "history.json").read_text()) == {"steps": [], "epochs": []}
    assert not (tmp_path / "curves.png").exists()


def _bench():
    spec = importlib.util.spec_from_file_location("bench_qa", REPO / "scripts" / "bench_qa.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_settings_load_with_the_shipped_configs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KELM_DATA", str(tmp_path))
    bench = _bench()
    quick = bench.parse_args(["--quick", "--out", str(tmp_path / "out")])
    assert quick.seeds == [0] and quick.train_questions == 100 and quick.epochs == 1
    full = bench.parse_args(["--out", str(tmp_path / "out")])
    assert full.seeds == [0, 1, 2] and full.max_length == 48 and full.max_nodes == 32
    for model in bench.MODELS:
        cfg = load_train_config(bench.config_of(model), bench.overrides(full, model, 2))
        assert cfg.seed == 2 and cfg.data.max_train == full.train_questions
        assert cfg.data.holdout == pytest.approx(0.1) and cfg.data.max_length == 48
        assert cfg.optim.unfreeze_epoch == full.frozen_epochs and cfg.optim.freeze_lm_steps == 0
        assert Path(cfg.run_dir) == tmp_path / "out" / f"{model}-s2"
    # the full comparison: all training questions, the recipe, and the pretrained ERNIE
    # (the warm-up is 10% of the steps that the file's questions less the held-out 10% make)
    csqa = tmp_path / "qa" / "csqa" / "train_rand_split_v1.0.jsonl"
    csqa.parent.mkdir(parents=True)
    csqa.write_text('{"id": "q"}\n' * 205 + "\n")  # 205 questions: 184 train, 21 held out
    pretrained = tmp_path / "pretrained"
    pretrained.mkdir()
    (pretrained / "config.json").write_text("{}")
    args = ["--full", "--out", str(tmp_path / "out"), "--ernie-pretrained", str(pretrained)]
    counted = bench.parse_args(args)
    assert counted.models[-1] == "ernie-pretrained" and counted.epochs == 3
    cfg = load_train_config(
        bench.config_of("ernie-pretrained"), bench.overrides(counted, "ernie-pretrained", 0)
    )
    assert cfg.model.type == "ernie" and cfg.model.encoder == str(pretrained)
    assert cfg.data.max_train is None and cfg.optim.optimizer == "radam"
    assert cfg.optim.unfreeze_epoch == 1
    assert cfg.optim.warmup_steps == (184 // 16 + 1) * 3 // 10  # 12 steps per epoch, 3 epochs
    with pytest.raises(SystemExit, match="config.json"):
        bench.parse_args(["--full", "--ernie-pretrained", str(tmp_path / "nothing")])
    # the pretrained variant alone (beside runs made before), named once
    alone = bench.parse_args([*args, "--models", "ernie-pretrained"])
    assert alone.models == ["ernie-pretrained"]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        bench.parse_args(["--full", "--models", "lm", "ernie-pretrained"])
    assert "ernie-pretrained needs --ernie-pretrained" in capsys.readouterr().err
