"""``kelm data synthetic``: writes the task a graph index and training run read; bad settings
are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from kelm.cli import app
from kelm.data.qa import read_qa

runner = CliRunner()


def test_synthetic_task_files(tmp_path: Path) -> None:
    out = tmp_path / "task"
    args = ["data", "synthetic", "--out", str(out), "--hops", "2", "--seed", "4"]
    result = runner.invoke(app, [*args, "--train-questions", "40", "--test-questions", "10"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["hops"] == 2 and manifest["config"]["seed"] == 4
    assert len(read_qa(out / "train.jsonl")) == 40 and len(read_qa(out / "test.jsonl")) == 10
    result = runner.invoke(
        app,
        [
            "graph",
            "build",
            "--format",
            "tsv",
            str(out / "graph.tsv"),
            "--out",
            str(tmp_path / "graph"),
        ],
    )
    assert result.exit_code == 0, result.output


def test_synthetic_bad_settings(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "synthetic", "--out", str(tmp_path), "--hops", "3"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: hops must be 1 or 2, got 3"
