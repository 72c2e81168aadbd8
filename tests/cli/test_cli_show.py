"""``kelm show``: a PNG of a statement's retrieved subgraph; one-line errors on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kelm.cli import app

runner = CliRunner()


@pytest.fixture()
def graph(tmp_path: Path) -> Path:
    tsv = tmp_path / "g.tsv"
    tsv.write_text(
        "dish\tAtLocation\tkitchen\nsink\tPartOf\tkitchen\ndish\tAtLocation\tsink\n"
        "dish\tUsedFor\teat\nsink\tUsedFor\twash\ndish\tReceivesAction\twash\n"
    )
    out = tmp_path / "graph"
    result = runner.invoke(
        app, ["graph", "build", "--format", "tsv", str(tsv), "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    return out


def test_show_writes_a_png(graph: Path, tmp_path: Path) -> None:
    png = tmp_path / "sub.png"
    result = runner.invoke(
        app,
        [
            "show",
            "--graph",
            str(graph),
            "--question",
            "Where do you put a dish?",
            "--choice",
            "sink",
            "--out",
            str(png),
        ],
    )
    assert result.exit_code == 0, result.output
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


@pytest.mark.parametrize(
    ("question", "choice", "message"),
    [("", "sink", "must both be non-empty"), ("zzz qqq?", "xyzzy", "no graph concept found")],
)
def test_show_bad_input(
    graph: Path, tmp_path: Path, question: str, choice: str, message: str
) -> None:
    png = tmp_path / "bad.png"
    result = runner.invoke(
        app,
        [
            "show",
            "--graph",
            str(graph),
            "--question",
            question,
            "--choice",
            choice,
            "--out",
            str(png),
        ],
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not png.exists()
