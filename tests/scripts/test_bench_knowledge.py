"""``scripts/bench_knowledge.py``: its recipe and overrides load with every shipped config it
trains, and one tiny task runs end to end."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from kelm.training import load_train_config

REPO = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_knowledge", REPO / "scripts" / "bench_knowledge.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_overrides_load_with_the_shipped_configs(tmp_path: Path) -> None:
    bench = _bench()
    args = bench.parse_args(["--out", str(tmp_path)])
    assert args.batch_size == 8 and args.epochs == 3 and len(args.pairs) == 5
    data = tmp_path / "data"
    for model in bench.MODELS:
        sets = bench.run_overrides(args, data, model, 4, tmp_path / "run")
        cfg = load_train_config(REPO / "configs" / f"csqa-{model}.yaml", sets)
        assert cfg.seed == 4 and cfg.batch_size == 8 and cfg.optim.optimizer == "radam"
        assert cfg.optim.unfreeze_epoch == 3 and cfg.model.gnn_dropout == 0
        assert cfg.optim.warmup_steps == 3 * 300 // 20  # 5% of 3 epochs x 300 batches
        assert cfg.data.eval == str(data / "test.jsonl") and cfg.graph.source is None


def test_tiny_task_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    bench = _bench()
    argv = ["--models", "lm", "gsc", "--hops", "1", "--pairs", "0:0", "--train-questions", "40"]
    bench.main([*argv, "--test-questions", "10", "--epochs", "1", "--out", str(tmp_path)])
    report = json.loads(capsys.readouterr().out)
    for model in ("lm", "gsc"):
        assert 0.0 <= report["1hop"][model]["min"] <= 1.0
