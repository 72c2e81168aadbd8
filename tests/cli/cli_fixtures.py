"""Shared helpers of the CLI tests: invoking ``kelm``, one-line errors, a tiny graph index."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from kelm.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def invoke(*args):
    """``kelm ARGS...`` through Typer's runner (paths and numbers as strings)."""
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, message: str) -> None:
    """Exit status 2 and a single ``error: ...`` line containing ``message``; no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in result.output


def tiny_graph(directory: Path) -> Path:
    """A graph index of dog, cat, animal and house (built by ``kelm graph build``)."""
    tsv = directory / "g.tsv"
    tsv.write_text("dog\tisa\tanimal\ncat\tisa\tanimal\ndog\tatlocation\thouse\n")
    out = directory / "graph"
    result = invoke("graph", "build", "--format", "tsv", tsv, "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    return out
