"""``kelm train`` end to end on tiny random models: the run directory contract, exact resume,
graph models on questions without grounded concepts, one-line errors for bad input, and (slow)
two CPU processes under torchrun."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from training_fixtures import (
    QUESTIONS,
    one_line_error,
    qa_record,
    tiny_config,
    train_run,
    write_config,
    write_qa,
)
from typer.testing import CliRunner

from kelm.cli import app
from kelm.training import load_train_config, train

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("training")


def test_run_directory_contract(root: Path) -> None:
    cfg = tiny_config(root, "lm", run_dir=str(root / "contract"))
    path = write_config(root / "contract.yaml", cfg)
    result = invoke("train", "--config", path, "--set", "epochs=1", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "trained lm for 1 epochs" in result.output
    run = root / "contract"
    for name in ("config.resolved.yaml", "curves.png", "metrics.json", "predictions.jsonl"):
        assert (run / name).is_file(), name
    assert (run / "model" / "config.json").is_file()
    assert (run / "model" / "model.safetensors").is_file()
    assert (run / "model" / "tokenizer_config.json").is_file()
    assert "model.safetensors" in json.loads((run / "model" / "manifest.json").read_text())["files"]
    assert (run / "checkpoints" / "epoch-0001" / "manifest.json").is_file()
    assert any((run / "tb").iterdir())
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    resolved = yaml.safe_load((run / "config.resolved.yaml").read_text())
    assert resolved["epochs"] == 1 and resolved["optim"]["lm_lr"] == pytest.approx(1e-3)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n"] == 3 and 0.0 <= metrics["accuracy"] <= 1.0 and metrics["model"] == "lm"
    lines = (run / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 3 and {"id", "prediction", "answer", "correct", "scores"} <= set(
        json.loads(lines[0])
    )
    # the same run directory again: refused without --resume / --overwrite
    one_line_error(invoke("train", "--config", path, "--set", "epochs=1"), "--resume")


def _losses(run: Path) -> list[float]:
    history = json.loads((run / "history.json").read_text())
    return [s["loss"] for s in history["steps"]]


def test_cli_resume_equals_uninterrupted(root: Path) -> None:
    """lm: 2 epochs straight vs 1 epoch, stop, ``--resume`` for the second (CLI)."""
    cfg = tiny_config(root, "lm", run_dir=str(root / "lm-straight"))
    straight = write_config(root / "lm-straight.yaml", cfg)
    assert invoke("train", "-c", straight, "--no-progress").exit_code == 0
    split = write_config(root / "lm-split.yaml", {**cfg, "run_dir": str(root / "lm-split")})
    first = invoke("train", "-c", split, "--stop-after-epochs", "1", "--no-progress")
    assert first.exit_code == 0 and "stopped after epoch 1 of 2" in first.output
    assert not (root / "lm-split" / "metrics.json").exists()
    second = invoke("train", "--resume", "--run-dir", root / "lm-split", "--no-progress")
    assert second.exit_code == 0, second.output
    a = json.loads((root / "lm-straight" / "metrics.json").read_text())
    b = json.loads((root / "lm-split" / "metrics.json").read_text())
    assert _losses(root / "lm-straight") == pytest.approx(_losses(root / "lm-split"), abs=1e-6)
    assert b["accuracy"] == a["accuracy"] and b["loss"] == pytest.approx(a["loss"], abs=1e-6)
    assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-6)
    # a changed config cannot resume the run
    one_line_error(
        invoke("train", "-c", split, "--resume", "--set", "optim.lm_lr=0.5", "--no-progress"),
        "optim.lm_lr",
    )


def test_graph_model_resume_equals_uninterrupted(root: Path) -> None:
    """QA-GNN (dropout, frozen encoder across the epoch boundary): 2 epochs straight vs 1 +
    resume 1; every step's loss and the held-out metrics agree to 1e-6."""
    cfg = tiny_config(root, "qagnn", run_dir=str(root / "q-straight"), optim={"freeze_lm_steps": 4})
    a = train(load_train_config(write_config(root / "q-straight.yaml", cfg)), progress=False)
    split = load_train_config(
        write_config(root / "q-split.yaml", {**cfg, "run_dir": str(root / "q-split")})
    )
    partial = train(split, stop_after_epochs=1, progress=False)
    assert not partial.completed and len(partial.history["epochs"]) == 1
    b = train(split, resume=True, progress=False)
    assert b.completed and b.resumed_from is not None
    assert [s["lm_frozen"] for s in b.history["steps"]] == [True] * 4 + [False] * 2
    assert [s["loss"] for s in b.history["steps"]] == pytest.approx(
        [s["loss"] for s in a.history["steps"]], abs=1e-6
    )
    for key in ("accuracy", "loss", "train_loss", "train_accuracy"):
        assert b.metrics[key] == pytest.approx(a.metrics[key], abs=1e-6), key


def test_a_run_leaves_the_callers_thread_count(root: Path) -> None:
    import torch

    cfg = tiny_config(root, "lm", run_dir=str(root / "threads"), epochs=1, threads=1)
    torch.set_num_threads(2)
    train(load_train_config(write_config(root / "threads.yaml", cfg)), progress=False)
    assert torch.get_num_threads() == 2  # the run used 1 thread and gave the 2 back


def test_questions_without_concepts_still_answered(root: Path) -> None:
    """KagNet: a question whose words are not in the graph gets an empty graph and no paths."""
    qa = root / "with-unknown.jsonl"
    records = [qa_record(i, s, c, a) for i, (s, c, a) in enumerate(QUESTIONS[:4])]
    records.append(qa_record(9, "qwerty zxcv", ["plugh", "xyzzy", "frob"], 2))
    write_qa(qa, records)
    cfg = tiny_config(
        root,
        "kagnet",
        run_dir=str(root / "kag-unknown"),
        epochs=1,
        data={"train": str(qa), "holdout": 0.0},
    )
    result = train(load_train_config(write_config(root / "kag.yaml", cfg)), progress=False)
    assert result.metrics["data"]["train_empty_graphs"] >= 3
    assert result.metrics["train_loss"] > 0


@pytest.mark.parametrize(
    ("qa_lines", "fragments"),
    [
        ([qa_record(0, "a dog", ["house", "sky"], None)], ["no answer key"]),
        (
            [qa_record(0, "a dog", ["house", "sky"], 0), qa_record(0, "a cat", ["sky", "sea"], 0)],
            ["duplicate id 'q0'"],
        ),
        (
            [qa_record(0, "a dog", ["house", "sky"], 0), qa_record(1, "a cat", ["house"], 0)],
            ["bad.jsonl:2: only 1 choice"],
        ),
        ([{"id": "q0", "question": {"stem": "x", "choices": []}, "answerKey": "A"}], ["choices"]),
    ],
)
def test_bad_training_files_are_one_line_errors(root: Path, qa_lines, fragments) -> None:
    qa = write_qa(root / "bad.jsonl", qa_lines)
    cfg = tiny_config(root, "lm", run_dir=str(root / "bad-run"), data={"train": str(qa)})
    path = write_config(root / "bad.yaml", cfg)
    one_line_error(invoke("train", "-c", path, "--overwrite", "--no-progress"), *fragments)


def test_bad_configs_and_checkpoints_are_one_line_errors(root: Path) -> None:
    # A run directory of its own: `lm-straight` belongs to the resume test, which trains it from
    # scratch and would find it taken if this test ran first.
    cfg = tiny_config(root, "lm", run_dir=str(root / "lm-complete"))
    path = write_config(root / "again.yaml", cfg)
    one_line_error(
        invoke("train", "-c", path, "--set", "optim.lr=1"), "unknown key 'optim.lr'", "lm_lr"
    )
    one_line_error(invoke("train", "-c", root / "none.yaml"), "no such file (the config file)")
    one_line_error(invoke("train", "--resume", "--run-dir", root / "nothing-here"), "no such file")
    # a truncated checkpoint: --resume names it instead of loading garbage
    run = root / "lm-truncated"
    shutil.copytree(train_run(root, "lm", run_dir=str(root / "lm-complete")), run)
    resolved = yaml.safe_load((run / "config.resolved.yaml").read_text())
    resolved["run_dir"] = str(run)
    write_config(run / "config.resolved.yaml", resolved)
    weights = run / "checkpoints" / "epoch-0002" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    one_line_error(
        invoke("train", "--resume", "--run-dir", run, "--no-progress"),
        "corrupt or incomplete",
        "model.safetensors",
    )


@pytest.mark.slow
def test_two_cpu_processes_with_torchrun(root: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed")
    cfg = tiny_config(root, "qagnn", run_dir=str(root / "ddp"))
    path = write_config(root / "ddp.yaml", cfg)
    proc = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "kelm",
            "train",
            "--config",
            str(path),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("trained qagnn") == 1  # the main process reports
    metrics = json.loads((root / "ddp" / "metrics.json").read_text())
    # batch_size is the global batch: 9 questions / 4 = 3 steps per epoch, as on 1 process
    assert metrics["steps"] == 6
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["n"] == 3
    checkpoint = root / "ddp" / "checkpoints" / "epoch-0002"
    assert (checkpoint / "rng-0.safetensors").is_file()
    assert (checkpoint / "rng-1.safetensors").is_file()


def test_node_and_relation_tables_from_kg_embeddings(root: Path) -> None:
    """``model.kge_dir``: KagNet's node and relation tables start from the KG embeddings."""
    import torch
    from torch_geometric.nn.kge import DistMult

    from kelm.graph.index import GraphIndex
    from kelm.kge import save_embeddings

    cfg = tiny_config(root, "kagnet", run_dir=str(root / "kag-kge"), epochs=1)
    index = GraphIndex.load(cfg["graph"]["index"])
    torch.manual_seed(0)
    kge = DistMult(index.num_nodes, index.num_relations, 6)
    emb = save_embeddings(
        root / "kge", kge, {"graph": {"checksum": index.checksum, "path": str(index.path)}}
    )
    cfg["model"] = {**cfg["model"], "kge_dir": str(emb)}
    result = train(load_train_config(write_config(root / "kge.yaml", cfg)), progress=False)
    assert result.completed
    from kelm.training.runs import load_run_model

    model, _, family = load_run_model(result.run_dir)
    assert family.name == "kagnet" and model.config.node_dim == 6
    assert model.config.relation_dim == 6 and model.config.freeze_node_embeddings
    # frozen: the node table is still the KG embeddings after training (as a table reads them:
    # DistMult's parameters, standardised)
    from kelm.kge import load_embeddings

    raw = kge.node_emb.weight.detach()
    torch.testing.assert_close(
        model.node_embedding.weight, (raw - raw.mean(0)) / (raw - raw.mean(0)).std()
    )
    assert torch.equal(model.node_embedding.weight, load_embeddings(emb, index).entity_features())


def test_unfreeze_epoch_reuses_statement_vectors_and_resumes_exactly(root: Path) -> None:
    """QA-GNN frozen for epoch 1 (statement vectors computed once, cached), fine-tuned in
    epoch 2; 2 epochs straight vs 1 + resume agree."""
    import os

    cfg = tiny_config(root, "qagnn", run_dir=str(root / "u-straight"), optim={"unfreeze_epoch": 1})
    a = train(load_train_config(write_config(root / "u-straight.yaml", cfg)), progress=False)
    per_epoch = len(a.history["steps"]) // 2
    assert [s["lm_frozen"] for s in a.history["steps"]] == [True] * per_epoch + [False] * per_epoch
    cached = list((Path(os.environ["KELM_CACHE"]) / "frozen").glob("*.safetensors"))
    assert len(cached) == 2  # training and held-out statements
    split = load_train_config(
        write_config(root / "u-split.yaml", {**cfg, "run_dir": str(root / "u-split")})
    )
    train(split, stop_after_epochs=1, progress=False)
    b = train(split, resume=True, progress=False)
    assert [s["loss"] for s in b.history["steps"]] == pytest.approx(
        [s["loss"] for s in a.history["steps"]], abs=1e-6
    )
    assert b.metrics["accuracy"] == pytest.approx(a.metrics["accuracy"], abs=1e-6)


def test_radam_optimizer_and_bad_optimizer(root: Path) -> None:
    cfg = tiny_config(
        root, "lm", run_dir=str(root / "radam"), epochs=1, optim={"optimizer": "radam"}
    )
    result = train(load_train_config(write_config(root / "radam.yaml", cfg)), progress=False)
    assert result.completed and 0.0 <= result.metrics["accuracy"] <= 1.0
    bad = {**cfg, "optim": {"optimizer": "sgd"}}
    out = invoke("train", "--config", write_config(root / "bad-opt.yaml", bad), "--no-progress")
    one_line_error(out, "optim.optimizer", "radam")


def test_hostile_configs_are_one_line_errors(root: Path, tmp_path: Path) -> None:
    """Files that are not UTF-8 YAML, --set values that are not YAML, values out of range
    and encoders that are not model folders: one line naming the file, item or key."""
    cfg = tiny_config(root, "lm", run_dir=str(tmp_path / "run"))
    path = write_config(tmp_path / "c.yaml", cfg)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(path.read_bytes() + "# caf\xe9\n".encode("latin-1"))
    one_line_error(
        invoke("train", "-c", latin), f"{latin}: the config file is not UTF-8 text (byte 0xe9"
    )
    one_line_error(
        invoke("train", "-c", path, "--set", "epochs=[1,{"), "--set 'epochs=[1,{': invalid YAML"
    )
    for item, key in (
        ("model.classifier_dropout=5", "model.classifier_dropout must be in [0, 1), got 5"),
        ("seed=-1", "seed must be in [0, 2**32), got -1"),
        ("optim.betas=[2,3]", "optim.betas must be in [0, 1), got 2"),
        ("optim.max_grad_norm=-1", "optim.max_grad_norm must be > 0"),
        ("optim.lm_lr=.inf", "optim.lm_lr must be > 0, got inf"),
        ("data.max_length=65", "data.max_length 65 exceeds the text encoder's 64 positions"),
    ):
        one_line_error(
            invoke("train", "-c", path, "--set", item, "--no-progress"), f"config: {key}"
        )
    run = train_run(root, "lm", run_dir=str(root / "lm-complete"))
    one_line_error(
        invoke("train", "-c", path, "--set", f"model.encoder={run}", "--no-progress"),
        "a kelm run directory, not a model folder",
        f"use {run / 'model'}",
    )
    graph = Path(cfg["graph"]["index"])
    one_line_error(
        invoke("train", "-c", path, "--set", f"model.encoder={graph}", "--no-progress"),
        f"{graph}: a kelm graph index",
    )


def _nan_loss_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """The training loss of step ``step`` (1-based) becomes NaN, with a NaN gradient."""
    import torch

    real = torch.nn.functional.cross_entropy
    calls = [0]

    def cross_entropy(*args, **kwargs):
        calls[0] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls[0] == step else loss

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", cross_entropy)


def test_a_non_finite_loss_stops_the_run(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config(root, "lm", run_dir=str(tmp_path / "run"), epochs=1)
    path = write_config(tmp_path / "c.yaml", cfg)
    _nan_loss_at(monkeypatch, 2)
    one_line_error(
        invoke("train", "-c", path, "--no-progress"), "step 2: the loss is nan", "nonfinite_loss"
    )
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_skipped_non_finite_step_is_counted(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config(root, "lm", run_dir=str(tmp_path / "run"), nonfinite_loss="skip")
    _nan_loss_at(monkeypatch, 2)
    result = train(load_train_config(write_config(tmp_path / "c.yaml", cfg)), progress=False)
    assert result.completed and result.metrics["skipped_steps"] == 1
    steps = result.history["steps"]
    assert steps[1] == {"step": 2, "epoch": 1, "loss": None, "skipped": True}
    assert all(s["loss"] is not None for s in steps if s["step"] != 2)
    # strict JSON: no bare NaN anywhere; compare reads the run
    for name in ("metrics.json", "history.json"):
        json.loads((tmp_path / "run" / name).read_text(), parse_constant=pytest.fail)
    out = invoke("compare", tmp_path / "run")
    assert out.exit_code == 0 and str(tmp_path / "run") in out.output


def test_a_pretraining_run_where_a_training_run_belongs(root: Path, tmp_path: Path) -> None:
    """--resume, evaluate and distill.teacher given a `kelm pretrain` run say what it is."""
    from kelm.config import dump_config
    from kelm.pretraining.config import CorpusConfig, PretrainConfig

    run = tmp_path / "pretrained"
    dump_config(PretrainConfig(corpus=CorpusConfig(paths=["x"])), run / "config.resolved.yaml")
    (run / "checkpoints").mkdir()
    said = f"{run}: a `kelm pretrain` run directory, not a `kelm train` run"
    one_line_error(invoke("train", "--resume", "--run-dir", run), said, f"{run}/model")
    qa = write_qa(tmp_path / "qa.jsonl")
    one_line_error(invoke("evaluate", "--model", run, "--qa", qa, "--out", tmp_path / "e"), said)
    cfg = tiny_config(root, "lm", run_dir=str(tmp_path / "student"), distill={"teacher": str(run)})
    path = write_config(tmp_path / "student.yaml", cfg)
    one_line_error(invoke("train", "-c", path, "--no-progress"), said)


def test_a_damaged_saved_model_is_named_and_an_old_one_still_loads(
    root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``model/`` carries the sha256 of its files: a bit flipped inside the weights (which
    transformers loads without a word) is one line naming the file, in ``load_run_model`` and
    where the model is given as an encoder; a run saved without the manifest still loads."""
    import logging

    from kelm.errors import KelmError
    from kelm.training.runs import load_run_model

    run = tmp_path / "run"
    shutil.copytree(train_run(root, "lm", run_dir=str(root / "lm-complete")), run)
    weights = run / "model" / "model.safetensors"
    good = weights.read_bytes()
    data = bytearray(good)
    data[-3] ^= 0x04  # in the last tensor's data, not in the header
    weights.write_bytes(bytes(data))
    with pytest.raises(KelmError, match=r"model\.safetensors: checksum does not match"):
        load_run_model(run)
    cfg = tiny_config(root, "lm", run_dir=str(tmp_path / "next"))
    path = write_config(tmp_path / "next.yaml", cfg)
    one_line_error(
        invoke("train", "-c", path, "--set", f"model.encoder={run / 'model'}", "--no-progress"),
        "model.safetensors: checksum does not match",
    )
    weights.write_bytes(good)
    (run / "model" / "manifest.json").unlink()
    with caplog.at_level(logging.WARNING, logger="kelm.modeling.model_files"):
        model, _, family = load_run_model(run)
    assert family.name == "lm" and "loaded unverified" in caplog.text
