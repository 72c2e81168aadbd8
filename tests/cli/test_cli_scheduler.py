"""``kelm graph build --scheduler local`` gives the index of the single-process build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kelm.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
runner = CliRunner()


def test_graph_build_on_a_local_cluster_equals_the_plain_build(tmp_path: Path) -> None:
    pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    source = FIXTURES / "conceptnet" / "malformed.csv"
    common = ["graph", "build", str(source), "--no-progress"]
    plain = runner.invoke(app, [*common, "-o", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    dist = runner.invoke(
        app, [*common, "-o", str(tmp_path / "dist"), "--scheduler", "local", "--workers", "1"]
    )
    assert dist.exit_code == 0, dist.output
    assert plain.output.split(" in ")[0] == dist.output.split(" in ")[0]
    a, b = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("plain", "dist"))
    assert a["checksum"] == b["checksum"] and b["distributed"]["workers"] == 1


def test_scheduler_needs_a_format_it_can_cut(tmp_path: Path) -> None:
    pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    result = runner.invoke(
        app,
        [
            "graph",
            "build",
            "-f",
            "wordnet",
            str(FIXTURES / "wordnet"),
            "-o",
            str(tmp_path / "w"),
            "--scheduler",
            "local",
        ],
    )
    assert result.exit_code == 2
    assert result.output.startswith("error: --scheduler builds read")


def test_ground_scheduler_refuses_processes(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "ground",
            "-g",
            str(tmp_path),
            "--qa",
            str(FIXTURES / "qa" / "obqa.jsonl"),
            "-o",
            str(tmp_path / "o.jsonl"),
            "--scheduler",
            "local",
            "--processes",
            "2",
        ],
    )
    assert result.exit_code == 2
    assert result.output.startswith("error: --processes is for runs without --scheduler")
