"""The options every command shares a check of: output paths (not writable, of the wrong
kind), ``--device`` and count options. Each bad value is a one-line error, exit status 2,
no traceback, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_fixtures import REPO, assert_one_line_error, invoke, tiny_graph

sys.path.insert(0, str(REPO / "tests" / "training"))
from training_fixtures import tiny_config, write_config  # noqa: E402

QA = REPO / "tests" / "fixtures" / "qa" / "csqa_original.jsonl"
SHOW = ("--question", "Where does a dog live?", "--choice", "house")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A graph index, its TSV, a grounded file of it, a training config and the QA file."""
    from kelm.graph.index import GraphIndex

    root = tmp_path_factory.mktemp("inputs")
    graph = tiny_graph(root)
    index = GraphIndex.load(graph)
    grounded = root / "stmts.jsonl"
    record = {
        "id": "q1",
        "choice": 0,
        "question": "Where does a dog live?",
        "answer": "house",
        "question_concepts": [index.node_id("dog")],
        "answer_concepts": [index.node_id("house")],
    }
    grounded.write_text(json.dumps(record) + "\n")
    sidecar = grounded.with_name(grounded.name + ".manifest.json")
    sidecar.write_text(json.dumps({"graph_checksum": index.checksum}))
    config = write_config(root / "train.yaml", tiny_config(root / "train"))
    return {"graph": graph, "tsv": root / "g.tsv", "grounded": grounded, "config": config}


def commands(i: dict[str, Path], out: Path, *, file: bool) -> dict[str, list[object]]:
    """Every command that writes, with its output at ``out`` (``file``: the commands whose
    output is a file, else those whose output is a directory)."""
    g = i["graph"]
    if file:
        return {
            "ground": ["ground", "-g", g, "--qa", QA, "-o", out, "--no-progress"],
            "graph export": ["graph", "export", g, "--to", "edgelist", "-o", out],
            "show": ["show", "-g", g, *SHOW, "-o", out],
        }
    return {
        "graph build": ["graph", "build", "-f", "tsv", i["tsv"], "-o", out, "--no-progress"],
        "embed-kg": ["embed-kg", "-g", g, "-o", out, "--epochs", "1", "--no-progress"],
        "retrieve": [
            "retrieve",
            "-g",
            g,
            "--grounded",
            i["grounded"],
            "-o",
            out,
            "--scorer",
            "none",
            "--no-progress",
        ],  # fmt: skip
        "evaluate": ["evaluate", "--qa", QA, "-m", out.parent / "run", "-o", out],
        "train": ["train", "-c", i["config"], "--run-dir", out, "--no-progress"],
        "data synthetic": ["data", "synthetic", "--out", out],
    }


# ---------------------------------------------------------------------- not writable
def _drop_dac() -> list[str]:
    """The command prefix under which root is refused a directory's permissions as anyone
    (``chmod`` does not stop root: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a directory unwritable")
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    if subprocess.run([*prefix, "true"], check=False).returncode != 0:
        pytest.skip("setpriv cannot drop capabilities here")
    return prefix


_RUN_ALL = """
import json, sys
from typer.testing import CliRunner
from kelm.cli import app
runner = CliRunner()
results = {}
for name, args in json.loads(sys.argv[1]).items():
    r = runner.invoke(app, args)
    results[name] = [r.exit_code, r.output]
print(json.dumps(results))
"""


def test_output_not_writable(inputs, tmp_path: Path) -> None:
    """Every command refuses an output in a directory it may not write in, naming it
    (PermissionError tracebacks before)."""
    prefix = _drop_dac()
    locked = tmp_path / "locked"
    locked.mkdir()
    runs = {
        **commands(inputs, locked / "out.x", file=True),
        **commands(inputs, locked / "sub" / "out", file=False),
    }
    locked.chmod(0o555)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    argv = json.dumps({k: [str(a) for a in v] for k, v in runs.items()})
    done = subprocess.run(
        [*prefix, sys.executable, "-c", _RUN_ALL, argv],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for name, (code, output) in results.items():
        lines = [line for line in output.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1, (name, output)
        assert lines[0].startswith("error: ") and "cannot write there" in lines[0], (name, output)
        assert str(locked) in lines[0], (name, output)
    assert sorted(results) == sorted(runs)
    assert not any(locked.iterdir())


# ---------------------------------------------------------------------- wrong kinds
@pytest.mark.parametrize("name", ["ground", "graph export", "show"])
def test_file_output_that_is_a_directory(inputs, tmp_path: Path, name: str) -> None:
    out = tmp_path / "a-directory"
    out.mkdir()
    (out / "kept").write_text("x")
    result = invoke(*commands(inputs, out, file=True)[name])
    assert_one_line_error(result, f"{out}: is a directory")
    assert [p.name for p in out.iterdir()] == ["kept"]


@pytest.mark.parametrize(
    "name", ["graph build", "embed-kg", "retrieve", "evaluate", "train", "data synthetic"]
)
def test_directory_output_that_is_a_file(inputs, tmp_path: Path, name: str) -> None:
    """Refused, the file untouched (``graph build`` and ``embed-kg`` replaced it by a
    directory, keeping it only as a hidden ``.NAME.old-*`` that the next build removed)."""
    out = tmp_path / "a-file"
    out.write_text("keep me")
    result = invoke(*commands(inputs, out, file=False)[name])
    assert_one_line_error(result, f"{out}: exists and is not a directory")
    assert out.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_file_given_as_the_graph(inputs) -> None:
    result = invoke("graph", "info", inputs["tsv"])
    assert_one_line_error(result, f"{inputs['tsv']}: is a file, not a graph index directory")


# --------------------------------------------------------------------------- devices
def device_commands(i: dict[str, Path], tmp: Path) -> dict[str, list[object]]:
    return {
        "retrieve": [
            "retrieve",
            "-g",
            i["graph"],
            "--grounded",
            i["grounded"],
            "-o",
            tmp / "r",
            "--scorer",
            "cosine",
            "--no-progress",
        ],  # fmt: skip
        "evaluate": ["evaluate", "--qa", QA, "-m", tmp / "run", "-o", tmp / "e"],
        "probe": ["probe", "--run", tmp / "run"],
    }


@pytest.mark.parametrize("name", ["retrieve", "evaluate", "probe"])
def test_unknown_device(inputs, tmp_path: Path, name: str) -> None:
    result = invoke(*device_commands(inputs, tmp_path)[name], "--device", "tpu")
    assert_one_line_error(result, "--device must be auto, cpu, cuda, cuda:N or mps, not 'tpu'")


@pytest.mark.parametrize("name", ["retrieve", "evaluate", "probe"])
def test_cuda_without_cuda(inputs, tmp_path: Path, name: str, monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = invoke(*device_commands(inputs, tmp_path)[name], "--device", "cuda")
    assert_one_line_error(result, "--device cuda: ")
    assert result.output.rstrip().endswith("; use cpu")


# ---------------------------------------------------------------------------- counts
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["retrieve", "--scorer", "cosine", "--batch-size", "0"],
            "--batch-size must be at least 1",
        ),
        (["ground", "--processes", "0"], "--processes must be at least 1, not 0"),
        (["ground", "--batch-size", "0"], "--batch-size must be at least 1, not 0"),
        (["evaluate", "--batch-size", "0"], "--batch-size must be at least 1, not 0"),
        (["probe", "--max-triples", "0"], "--max-triples must be at least 1, not 0"),
        (["show", "--hops", "9"], "--hops must be between 0 and 5, not 9"),
        (["show", "--max-nodes", "0"], "--max-nodes must be at least 1, not 0"),
    ],
)
def test_counts_out_of_range(inputs, tmp_path: Path, args: list[str], message: str) -> None:
    g = inputs["graph"]
    base = {
        "retrieve": ["-g", g, "--grounded", inputs["grounded"], "-o", tmp_path / "r"],
        "ground": ["-g", g, "--qa", QA, "-o", tmp_path / "g.jsonl"],
        "evaluate": ["--qa", QA, "-m", tmp_path / "run", "-o", tmp_path / "e"],
        "probe": ["--run", tmp_path / "run"],
        "show": ["-g", g, *SHOW, "-o", tmp_path / "x.png"],
    }[args[0]]
    quiet = [] if args[0] == "show" else ["--no-progress"]
    result = invoke(args[0], *base, *args[1:], *quiet)
    assert_one_line_error(result, message)
    assert not any(p.name in ("r", "g.jsonl", "e", "x.png") for p in tmp_path.iterdir())
