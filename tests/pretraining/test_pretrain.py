"""``kelm pretrain`` end to end on tiny random models: the run directory for ``mlm`` and
``ernie``, exact resume, the objective registry, one-line errors, the probe, and (slow) two
CPU processes under torchrun."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pretrain_fixtures import one_line_error, tiny_config, write_config
from typer.testing import CliRunner

from kelm.cli import app
from kelm.errors import KelmError
from kelm.pretraining import load_pretrain_config, pretrain
from kelm.pretraining.objectives import get_objective, objective_names

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pretraining")


def _run(root: Path, objective: str, **sections):
    cfg = tiny_config(root, objective, **sections)
    path = write_config(root / f"{Path(cfg['run_dir']).name}.yaml", cfg)
    return pretrain(load_pretrain_config(path), overwrite=True, progress=False), cfg


@pytest.mark.parametrize("objective", ["mlm", "ernie"])
def test_run_directory_contract(root: Path, objective: str) -> None:
    result, cfg = _run(root, objective)
    run = Path(cfg["run_dir"])
    for name in (
        "config.resolved.yaml",
        "metrics.json",
        "history.json",
        "curves.png",
        "probe.json",
        "model/config.json",
        "model/model.safetensors",
    ):
        assert (run / name).exists(), name
    assert list((run / "tb").iterdir())
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["epoch-0004"]
    m = json.loads((run / "metrics.json").read_text())
    assert m["steps"] == 4 and len(result.history["steps"]) == 4
    assert 0.0 <= m["mlm_accuracy"] <= 1.0 and m["perplexity"] > 1.0
    assert m["tokens_per_second"] > 0 and m["data"]["train_instances"] > 0
    assert 0.0 <= m["probe"]["hits@10"] <= 1.0 and m["probe"]["n"] == 3
    if objective == "ernie":
        assert 0.0 <= m["dea_accuracy"] <= 1.0
        assert m["data"]["entities"] > 0 and m["probe"]["heads_linked"] == 3
        assert {"mlm_loss", "dea_loss"} <= set(result.history["steps"][0])
        config = json.loads((run / "model" / "config.json").read_text())
        assert config["model_type"] == "kelm_ernie"
    else:
        assert m["data"]["entities"] == 0  # the control is not linked


@pytest.mark.parametrize("objective", ["mlm", "ernie"])
def test_resume_equals_uninterrupted(root: Path, objective: str) -> None:
    full, _ = _run(root, objective, run_dir=str(root / f"full-{objective}"), save_every=2)
    cfg = tiny_config(root, objective, run_dir=str(root / f"cut-{objective}"), save_every=2)
    path = write_config(root / f"cut-{objective}.yaml", cfg)
    half = pretrain(load_pretrain_config(path), stop_after_steps=2, progress=False)
    assert not half.completed and not half.metrics
    done = invoke("pretrain", "--config", path, "--resume", "--no-progress", "--json")
    assert done.exit_code == 0, done.output
    resumed = json.loads((root / f"cut-{objective}" / "history.json").read_text())
    assert [s["loss"] for s in resumed["steps"]] == [s["loss"] for s in full.history["steps"]]
    assert resumed["epochs"][-1]["eval_mlm_loss"] == full.history["epochs"][-1]["eval_mlm_loss"]


def test_unknown_objective_lists_the_valid_ones(root: Path) -> None:
    assert {"mlm", "ernie"} <= set(objective_names())
    with pytest.raises(KelmError) as info:
        get_objective("gpt9")
    assert "mlm" in str(info.value) and "ernie" in str(info.value)
    bad = {**tiny_config(root, "mlm"), "objective": "gpt9"}
    path = write_config(root / "bad.yaml", bad)
    one_line_error(invoke("pretrain", "--config", path), "unknown objective 'gpt9'", "ernie, mlm")
    path = write_config(
        root / "bad-opt.yaml", tiny_config(root, "mlm", objective_options={"nope": 1})
    )
    one_line_error(invoke("pretrain", "--config", path), "objective_options.nope")


def test_bad_corpora_and_runs_are_one_line_errors(root: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("\n\n", encoding="utf-8")
    latin = tmp_path / "latin"
    latin.mkdir()
    (latin / "a.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    for folder, fragment in ((empty, "corpus is empty"), (latin, "a.txt:1: not UTF-8")):
        cfg = tiny_config(root, "mlm", run_dir=str(tmp_path / "r"), corpus={"paths": [str(folder)]})
        path = write_config(tmp_path / "c.yaml", cfg)
        one_line_error(invoke("pretrain", "--config", path, "--no-progress"), fragment)
    # A finished run of this test's own (the contract test's run-mlm may not exist yet).
    _, done = _run(root, "mlm", run_dir=str(tmp_path / "done"))
    path = write_config(tmp_path / "ok.yaml", done)
    one_line_error(invoke("pretrain", "--config", path), "already holds a run")
    one_line_error(
        invoke("pretrain", "--config", path, "--resume", "--set", "max_steps=9"),
        "cannot resume with a different config",
        "max_steps",
    )


def test_cli_pretrain_and_probe(root: Path) -> None:
    path = write_config(root / "cli.yaml", tiny_config(root, "mlm", run_dir=str(root / "cli")))
    result = invoke("pretrain", "--config", path, "--set", "max_steps=2", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "pretrained mlm for 2 steps" in result.output
    result = invoke("probe", "--run", root / "cli", "--no-progress", "--json")
    assert result.exit_code == 0, result.output
    probe = json.loads(result.output)
    assert probe["n"] == 3 and set(probe["per_relation"]) == {"IsA", "AtLocation", "CapableOf"}
    assert probe["counts"]["multi_piece_tail"] == 1  # "zebra" is not one wordpiece here
    assert probe == json.loads((root / "cli" / "probe.json").read_text())
    one_line_error(invoke("probe", "--run", root / "nowhere"), "not a finished pretraining run")


def test_probe_verifies_the_saved_model(root: Path, tmp_path: Path) -> None:
    """A bit flipped inside the saved weights (which transformers loads without a word) is
    named by the model's file manifest; a run saved before kelm wrote one still probes."""
    import shutil

    from kelm.modeling.model_files import MANIFEST

    _, cfg = _run(root, "mlm", run_dir=str(tmp_path / "saved"), max_steps=1)
    run = Path(cfg["run_dir"])
    manifest = json.loads((run / "model" / MANIFEST).read_text())
    assert set(manifest["files"]) == {p.name for p in (run / "model").iterdir()} - {MANIFEST}
    weights = run / "model" / "model.safetensors"
    good = weights.read_bytes()
    data = bytearray(good)
    data[-3] ^= 0x04  # in the last tensor's data, not in the header
    weights.write_bytes(bytes(data))
    one_line_error(
        invoke("probe", "--run", run, "--no-progress"),
        "model.safetensors: checksum does not match",
    )
    # the same model given as an encoder to pretrain from
    again = tiny_config(root, "mlm", run_dir=str(tmp_path / "next"))
    path = write_config(tmp_path / "next.yaml", again)
    one_line_error(
        invoke("pretrain", "-c", path, "--set", f"model.encoder={run / 'model'}", "--no-progress"),
        "model.safetensors: checksum does not match",
    )
    weights.write_bytes(good)
    (run / "model" / MANIFEST).unlink()
    shutil.rmtree(run / "checkpoints")  # keeps the run small; the probe reads only model/
    result = invoke("probe", "--run", run, "--no-progress", "--json")
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_two_cpu_processes_with_torchrun(root: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed")
    cfg = tiny_config(root, "ernie", run_dir=str(root / "ddp"), grad_accum_steps=2)
    path = write_config(root / "ddp.yaml", cfg)
    proc = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "kelm",
            "pretrain",
            "--config",
            str(path),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("pretrained ernie") == 1
    checkpoint = root / "ddp" / "checkpoints" / "epoch-0004"
    for name in ("rng-0.safetensors", "rng-1.safetensors", "generator-0.safetensors"):
        assert (checkpoint / name).is_file()
    # one collate stream for the run, whatever the number of processes
    assert not (checkpoint / "generator-1.safetensors").exists()


def test_hostile_configs_are_one_line_errors(root: Path, tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", tiny_config(root, "mlm", run_dir=str(tmp_path / "r")))
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(path.read_bytes() + "# caf\xe9\n".encode("latin-1"))
    one_line_error(invoke("pretrain", "-c", latin), f"{latin}: the config file is not UTF-8 text")
    one_line_error(
        invoke("pretrain", "-c", path, "--set", "max_steps=[1,{"),
        "--set 'max_steps=[1,{': invalid YAML",
    )
    one_line_error(
        invoke("pretrain", "-c", path, "--set", "seed=-1"),
        "config: seed must be in [0, 2**32), got -1",
    )
    one_line_error(
        invoke("pretrain", "-c", path, "--set", "data.max_length=65", "--no-progress"),
        "config: data.max_length 65 exceeds the model's 64 positions",
    )
    ernie = tiny_config(root, "ernie", run_dir=str(tmp_path / "e"))
    ernie["objective_options"]["num_knowledge_layers"] = 9  # the encoder has 2 layers
    one_line_error(
        invoke("pretrain", "-c", write_config(tmp_path / "e.yaml", ernie), "--no-progress"),
        "config: bad ernie settings",
        "num_knowledge_layers",
    )
    graph = Path(tiny_config(root, "mlm")["knowledge"]["index"])
    one_line_error(
        invoke("pretrain", "-c", path, "--set", f"model.encoder={graph}"),
        f"{graph}: a kelm graph index",
    )


def test_a_diverging_run_stops_at_its_first_non_finite_loss(root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(root, "mlm", run_dir=str(tmp_path / "r"), optim={"lr": 1e30})
    path = write_config(tmp_path / "c.yaml", cfg)
    line = one_line_error(invoke("pretrain", "-c", path, "--no-progress"), "the loss is nan")
    assert line.startswith("error: step ")
    assert not (tmp_path / "r" / "metrics.json").exists()
    # skipping cannot save diverged weights: the held-out evaluation says so
    one_line_error(
        invoke(
            "pretrain", "-c", path, "--overwrite", "--set", "nonfinite_loss=skip", "--no-progress"
        ),
        "held-out evaluation",
        "weights diverged",
    )


def test_a_training_run_where_a_pretraining_run_belongs(tmp_path: Path) -> None:
    from kelm.config import dump_config
    from kelm.training.config import QADataConfig, TrainConfig

    run = tmp_path / "trained"
    dump_config(TrainConfig(data=QADataConfig(train="qa.jsonl")), run / "config.resolved.yaml")
    (run / "model").mkdir()
    (run / "checkpoints").mkdir()
    said = f"{run}: a `kelm train` run directory, not a `kelm pretrain` run"
    one_line_error(invoke("probe", "--run", run), said)
    one_line_error(invoke("pretrain", "--resume", "--run-dir", run), said)
