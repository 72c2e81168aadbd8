"""``scripts/bench_qa.py``: ``--resume`` continues an interrupted run from its checkpoint (and
gets the uninterrupted run's numbers), and ``--time-limit`` leaves out the runs that would end
past it, in the JSON as well."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "training"))
from training_fixtures import tiny_config, write_config  # noqa: E402


def _bench():
    spec = importlib.util.spec_from_file_location("bench_qa", REPO / "scripts" / "bench_qa.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """bench_qa with every model on the tiny lm config (a 1-layer BERT, 12 questions)."""
    bench = _bench()
    config = write_config(tmp_path / "lm.yaml", tiny_config(tmp_path / "inputs"))
    monkeypatch.setattr(bench, "config_of", lambda model: config)
    return bench


def _args(bench, out: Path, *extra: str):
    argv = ["--models", "lm", "--seeds", "0", "--epochs", "2", "--train-questions", "8"]
    return bench.parse_args([*argv, "--batch-size", "4", "--out", str(out), *extra])


def test_resume_continues_an_interrupted_run_exactly(tiny_bench, tmp_path: Path) -> None:
    from kelm.training import load_train_config, train

    bench = tiny_bench
    plain = bench.run_one(_args(bench, tmp_path / "plain"), "lm", 0)
    assert plain["resumed_from"] is None

    args = _args(bench, tmp_path / "cut", "--resume")
    cfg = load_train_config(bench.config_of("lm"), bench.overrides(args, "lm", 0))
    assert bench.resume_point(cfg) is None  # nothing there yet
    train(cfg, overwrite=True, stop_after_epochs=1, progress=False)  # cut after epoch 1
    assert bench.resume_point(cfg).name == "epoch-0001"
    other = load_train_config(bench.config_of("lm"), [*bench.overrides(args, "lm", 0), "seed=5"])
    assert bench.resume_point(other) is None  # a checkpoint of another config

    resumed = bench.run_one(args, "lm", 0)
    assert resumed["resumed_from"] == "epoch-0001"
    assert resumed["accuracy"] == plain["accuracy"] and resumed["n"] == plain["n"]
    history = [
        json.loads((tmp_path / name / "lm-s0" / "metrics.json").read_text())["history"]
        for name in ("plain", "cut")
    ]
    assert len(history[0]) == 2 and history[1] == history[0]  # losses to the last bit
    assert not (tmp_path / "cut" / "lm-s0" / "checkpoints").exists()
    # finished: bench.json is reused as it is
    assert bench.run_one(args, "lm", 0) == resumed


def test_jobs_run_in_processes_and_give_the_same_numbers(
    tiny_bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = tiny_bench
    # the worker processes import bench_qa by name: from scripts/, this very module here
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    monkeypatch.setitem(sys.modules, "bench_qa", bench)
    extra = ("--models", "lm", "qagnn", "--seeds", "0", "1")
    one = _args(bench, tmp_path / "one", *extra)
    two = _args(bench, tmp_path / "two", *extra, "--jobs", "2")
    saved: list[dict] = []
    seq, _ = bench.run_all(one, 0.0)
    par, left_out = bench.run_all(two, 0.0, after_run=lambda runs, _: saved.append(runs))
    assert left_out == [] and len(saved) == 4 and saved[-1] == par
    for model in ("lm", "qagnn"):  # the same runs, reported in seed order
        assert [r["accuracy"] for r in par[model]] == [r["accuracy"] for r in seq[model]]
        assert [r["overrides"] for r in par[model]] == [
            [o.replace("/one/", "/two/") for o in r["overrides"]] for r in seq[model]
        ]
    with pytest.raises(SystemExit):  # each run's estimate needs the one before it
        bench.parse_args(["--jobs", "2", "--time-limit", "5"])


def test_resume_starts_afresh_without_a_checkpoint_of_the_config(
    tiny_bench, tmp_path: Path
) -> None:
    from kelm.training import load_train_config, train

    bench = tiny_bench
    args = _args(bench, tmp_path / "cut", "--resume")
    sets = bench.overrides(args, "lm", 0)
    cfg = load_train_config(bench.config_of("lm"), [*sets, "optim.lm_lr=0.01"])
    train(cfg, overwrite=True, stop_after_epochs=1, progress=False)  # another learning rate
    assert bench.run_one(args, "lm", 0)["resumed_from"] is None


def test_time_limit_leaves_out_runs_and_reports_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    bench = _bench()
    ran: list[tuple[str, int]] = []

    def fake_run(args, model: str, seed: int) -> dict:
        ran.append((model, seed))
        return {
            "accuracy": 0.5,
            "n": 10,
            "eval_statements_per_second": 100.0,
            "train_statements_per_second": 50.0,
            "seconds": 100.0,
        }

    monkeypatch.setattr(bench, "run_one", fake_run)
    argv = ["--models", "lm", "qagnn", "--seeds", "0", "1", "--time-limit", "1"]
    args = bench.parse_args([*argv, "--out", str(tmp_path)])
    saved: list[int] = []
    runs, left_out = bench.run_all(
        args, time.perf_counter(), after_run=lambda r, _: saved.append(len(r["lm"]))
    )
    # lm seed 0 has no estimate and runs; every later run would take 100 s > 60 s
    assert ran == [("lm", 0)] and saved == [1]
    assert left_out == ["qagnn-s0", "lm-s1", "qagnn-s1"]
    out = bench.report(args, runs, left_out, {}, {})
    assert out["lm"] == {"mean": 0.5, "std": 0.0, "accuracies": [0.5]}
    assert out["qagnn"] == {"mean": None, "std": None, "accuracies": []}
    assert out["throughput"] == {"lm": 100.0} and out["settings"]["left_out"] == left_out
    assert out["settings"]["device"] and out["settings"]["eval_questions"] == 10
    assert bench.run_all(bench.parse_args([*argv[:-2], "--out", str(tmp_path)]), 0.0)[1] == []


def test_variants_and_set_overrides(tmp_path: Path) -> None:
    """``ernie-text`` trains the ERNIE config with no entity linked; ``--set`` reaches every run."""
    bench = _bench()
    args = bench.parse_args(
        ["--models", "lm", "ernie-text", "--set", "model.gnn_dropout=0.5", "--out", str(tmp_path)]
    )
    assert bench.config_of("ernie-text").name == "csqa-ernie.yaml"
    text = bench.overrides(args, "ernie-text", 1)
    assert "model.entities=false" in text and text[-1] == "model.gnn_dropout=0.5"
    assert f"run_dir={tmp_path / 'ernie-text-s1'}" in text
    assert "model.entities=false" not in bench.overrides(args, "lm", 1)
    assert bench.report(args, {"lm": [], "ernie-text": []}, [], {}, {})["settings"][
        "overrides"
    ] == ["model.gnn_dropout=0.5"]


@pytest.mark.parametrize(
    ("argv", "epochs", "frozen"),
    [
        ([], 2, 0),
        (["--full"], 3, 1),
        (["--full", "--epochs", "4", "--frozen-epochs", "2"], 4, 2),
        (["--full", "--frozen-epochs", "0"], 3, 0),
        (["--quick", "--epochs", "5"], 1, 0),
    ],
)
def test_full_takes_its_epochs_unless_given(argv: list[str], epochs: int, frozen: int) -> None:
    """An ablation of the full recipe may change its epochs and frozen epochs."""
    bench = _bench()
    args = bench.parse_args(argv)
    sets = bench.overrides(args, "gsc", 0)
    assert (args.epochs, args.frozen_epochs) == (epochs, frozen)
    assert f"epochs={epochs}" in sets and f"optim.unfreeze_epoch={frozen}" in sets
