"""``scripts/gpu_run.sh``: the pack made here (grounded and retrieved questions, the data, the
encoder in float16) and its run on a machine without spaCy, pyarrow, matplotlib and
TensorBoard, on the CPU (``--allow-cpu``), printing bench_qa's JSON. Tiny sizes: a 12-edge graph
in CN-100K form, 120 questions in CommonsenseQA form (20 trained, 10 held out), a 1-layer BERT."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_run.sh"
sys.path.insert(0, str(REPO / "tests" / "training"))
from training_fixtures import GRAPH_TSV, QUESTIONS, qa_record, save_encoder  # noqa: E402

BENCH = ["--models", "lm", "qagnn", "--train-questions", "20", "--eval-questions", "10"]
BENCH += ["--max-length", "16", "--max-nodes", "8", "--epochs", "1", "--seeds", "0"]
OPTIONAL = ("spacy", "pyarrow", "matplotlib", "tensorboard")
BLOCKED = (*OPTIONAL, "spacy_lookups_data", "typer", "rdflib", "gguf")


def _gpu_run():
    spec = importlib.util.spec_from_file_location("gpu_run", REPO / "scripts" / "gpu_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHON": sys.executable, "KELM_CACHE": str(root / "kelm-cache")}
    env.pop("OUT", None)
    return {**env, **extra}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``data/`` laid out as ``$KELM_DATA`` (the shipped configs' paths) and ``encoder/``."""
    root = tmp_path_factory.mktemp("gpu-run")
    graph = root / "data" / "kg" / "conceptnet100k" / "train.txt"
    graph.parent.mkdir(parents=True)
    rows = (line.split("\t") for line in GRAPH_TSV.strip().splitlines())
    graph.write_text("".join(f"{rel}\t{head}\t{tail}\n" for head, rel, tail in rows))
    qa = root / "data" / "qa" / "csqa" / "train_rand_split_v1.0.jsonl"
    qa.parent.mkdir(parents=True)
    records = [qa_record(i, *QUESTIONS[i % len(QUESTIONS)]) for i in range(120)]
    qa.write_text("".join(json.dumps(r) + "\n" for r in records))
    save_encoder(root / "encoder")
    return root


@pytest.fixture(scope="module")
def pack(inputs: Path) -> tuple[Path, str]:
    """``gpu_run.sh pack`` of the tiny benchmark; the pack and what it printed."""
    out = inputs / "pack"
    argv = ["pack", "--pack", str(out), "--data-dir", str(inputs / "data")]
    argv += ["--encoder", str(inputs / "encoder"), *BENCH]
    done = subprocess.run(
        ["bash", str(SCRIPT), *argv], env=_env(inputs), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stderr


def test_pack_holds_the_caches_the_data_and_a_half_precision_encoder(pack) -> None:
    from safetensors.torch import load_file

    out, printed = pack
    assert "MiB of 64 MiB" in printed and "Traceback" not in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "kelm-gpu-pack" and manifest["bench_args"][-len(BENCH) :] == BENCH
    assert manifest["models"] == ["lm", "qagnn"] and manifest["graph"]["statements"] == 90
    targets = {entry["to"] for entry in manifest["files"]}
    assert {
        "data/qa/csqa/train_rand_split_v1.0.jsonl",
        "data/kg/conceptnet100k/train.txt",
    } <= targets
    parts = {Path(t).parts[1] for t in targets if t.startswith("cache/")}
    assert parts == {"graphs", "grounded", "retrieval"}  # no linker index, no embeddings
    grounded = [t for t in targets if t.startswith("cache/grounded/") and t.endswith(".jsonl")]
    assert len(grounded) == 2  # the training and the held-out questions
    for entry in manifest["files"]:
        data = gzip.decompress((out / entry["path"]).read_bytes())
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
    weights = load_file(str(out / "encoder" / "model.safetensors"))
    assert {str(t.dtype) for t in weights.values() if t.is_floating_point()} == {"torch.float16"}
    source = sorted(p.name for p in (out.parent / "encoder").iterdir())
    assert sorted(p.name for p in (out / "encoder").iterdir()) == source  # config, tokenizer
    assert manifest["encoder"]["dtype"] == "float16"


def test_pack_over_the_budget_is_refused_in_one_line(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    monkeypatch.setenv("KELM_DATA", str(inputs / "data"))
    gpu_run = _gpu_run()
    out = tmp_path / "pack"
    argv = ["pack", "--pack", str(out), "--budget-mib", "0.05", "--encoder"]
    with pytest.raises(SystemExit) as exc:
        gpu_run.main([*argv, str(inputs / "encoder"), *BENCH])
    message = str(exc.value)
    assert message.startswith("error: pack ") and "over the budget" in message
    assert "\n" not in message and not out.exists()
    assert not list(tmp_path.iterdir())  # no staging left behind


def test_run_without_spacy_prints_the_bench_json(pack, tmp_path: Path) -> None:
    out, _ = pack
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in BLOCKED)
    )
    argv = ["run", "--pack", str(out), "--work", str(tmp_path / "work"), "--allow-cpu"]
    env = _env(tmp_path, PYTHONPATH=str(blocker), OUT=str(tmp_path / "out"))
    done = subprocess.run(["bash", str(SCRIPT), *argv], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    settings = report["settings"]
    assert set(settings["gpu_run"]["missing_optional_modules"]) == set(OPTIONAL)
    assert settings["device"] == "cpu" and settings["mixed_precision"] == "bf16"
    assert settings["left_out"] == [] and settings["eval_questions"] == 10
    assert settings["train_questions"] == 20
    assert settings["gpu_run"]["encoder_carried_as"] == "float16"
    for model in ("lm", "qagnn"):
        [accuracy] = report[model]["accuracies"]
        assert math.isfinite(accuracy) and 0.0 <= accuracy <= 1.0
        assert report[model]["mean"] == accuracy and report[model]["std"] == 0.0
        assert report["throughput"][model] > 0 and report["train_throughput"][model] > 0
    assert report["graph"]["statements"] == 90 and report["seconds"]["total"] > 0
    # the 10 held-out questions by what the graph says of their choices, accuracy by class
    assert sum(report["graph"]["question_classes"].values()) == 10
    for model in ("lm", "qagnn"):
        by_class = report["accuracy_by_question_class"][model]
        sizes = report["graph"]["question_classes"]
        right = sum(sizes[c] * accuracy for c, accuracy in by_class.items())
        assert right == pytest.approx(10 * report[model]["mean"], abs=1e-3)  # 4 decimals
    assert json.loads((tmp_path / "out" / "bench_qa_gpu.json").read_text()) == report

    # a second call on the same machine with --resume reuses the finished runs
    again = subprocess.run(
        ["bash", str(SCRIPT), *argv, "--resume"], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "lm seed 0: reusing the finished run" in again.stderr
    second = json.loads(again.stdout)
    for model in ("lm", "qagnn"):
        assert second[model] == report[model]
        assert second["seconds"][model] == report["seconds"][model]


def test_run_refusals_are_one_line(pack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    out, _ = pack
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    gpu_run = _gpu_run()
    base = ["run", "--pack", str(out), "--work", str(tmp_path / "work")]
    cases = [
        ([*base, "--allow-cpu", "--train-questions", "30"], "other settings (train_questions)"),
        ([*base, "--allow-cpu", "--models", "lm", "ernie"], "other settings (model ernie)"),
        ([*base, "--allow-cpu", "--encoder", "x"], "--encoder is set by the run"),
        (["run", "--pack", str(tmp_path), "--allow-cpu"], "no readable manifest.json"),
    ]
    if not torch.cuda.is_available():
        cases.append((base, "no CUDA device here"))
    for argv, fragment in cases:
        with pytest.raises(SystemExit) as exc:
            gpu_run.main(argv)
        assert fragment in str(exc.value) and "\n" not in str(exc.value), argv
    assert not (tmp_path / "work").exists()  # refused before unpacking
