"""``kelm graph build | info | export`` through Typer's runner: commands print results, user
errors are one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kelm.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def built(tmp_path: Path) -> Path:
    out = tmp_path / "g"
    result = invoke(
        "graph",
        "build",
        "--format",
        "tsv",
        FIXTURES / "tsv/good.tsv",
        "--out",
        out,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert "5 nodes, 5 edges, 3 relations" in result.output
    return out


def test_build_help_lists_options() -> None:
    result = invoke("graph", "build", "--help")
    assert result.exit_code == 0 and "--format" in result.output and "--strict" in result.output


def test_build_flags_become_the_manifest_options(tmp_path: Path) -> None:
    from kelm.graph.sources.base import BuildOptions

    out = tmp_path / "g"
    flags = ("--keep-self-loops", "--lowercase", "--no-merge-relations", "--literals", "drop")
    result = invoke("graph", "build", "-f", "tsv", FIXTURES / "tsv/good.tsv", "-o", out, *flags)
    assert result.exit_code == 0, result.output
    expected = BuildOptions(
        format="tsv", keep_self_loops=True, lowercase=True, merge_relations=False, literals="drop"
    )
    assert json.loads((out / "manifest.json").read_text())["options"] == expected.to_dict()


def test_info_json(built: Path) -> None:
    result = invoke("graph", "info", built, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["nodes"] == 5 and info["edges"] == 5
    assert info["relations"] == {"atlocation": 2, "isa": 2, "partof": 1}
    text = invoke("graph", "info", built)
    assert text.exit_code == 0 and "isa" in text.output


def test_export_edgelist_and_graphml(built: Path, tmp_path: Path) -> None:
    result = invoke("graph", "export", built, "--to", "edgelist", "--out", tmp_path / "e.tsv")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "e.tsv").read_text().splitlines()
    assert "dog\tisa\tanimal\t3" in lines and len(lines) == 5
    result = invoke("graph", "export", built, "--to", "graphml", "--out", tmp_path / "g.graphml")
    assert result.exit_code == 0, result.output
    import networkx as nx

    graph = nx.read_graphml(tmp_path / "g.graphml")
    assert graph.number_of_nodes() == 5 and graph.number_of_edges() == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["graph", "info", "/nonexistent/index"], "does not exist"),
        (
            ["graph", "build", "--format", "tsv", "/nonexistent.tsv", "--out", "{tmp}/x"],
            "no such file",
        ),
        (
            ["graph", "build", "--format", "nosuch", "{fixtures}/tsv/good.tsv", "--out", "{tmp}/x"],
            "unknown --format",
        ),
        (
            [
                "graph",
                "build",
                "--format",
                "tsv",
                "--strict",
                "{fixtures}/tsv/malformed.tsv",
                "--out",
                "{tmp}/x",
            ],
            "malformed.tsv:2: wrong column count",
        ),
        (["graph", "export", "{tmp}", "--to", "pdf"], "unknown export format"),
        (
            [
                "graph",
                "build",
                "--format",
                "cn100k",
                "--relation-map",
                "{fixtures}/tsv/good.tsv",
                "{fixtures}/tsv/good.tsv",
                "--out",
                "{tmp}/x",
            ],
            "good.tsv: not a valid relation mapping",
        ),
        (["graph", "info", "{fixtures}/tsv"], "manifest.json missing"),
    ],
)
def test_user_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    args = [a.format(tmp=tmp_path, fixtures=FIXTURES) for a in args]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [["graph", "info", "{g}"], ["link", "a dog", "--graph", "{g}"]])
def test_index_without_relations_json_is_one_line(built: Path, command: list[str]) -> None:
    """It used to escape as a FileNotFoundError; every other missing file gets this line."""
    (built / "relations.json").unlink()
    result = invoke(*[a.format(g=built) for a in command])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "relations.json missing from the index" in lines[0]
    assert "Traceback" not in result.output


def test_malformed_lines_reported(tmp_path: Path) -> None:
    result = invoke(
        "graph",
        "build",
        "--format",
        "tsv",
        FIXTURES / "tsv/malformed.tsv",
        "--out",
        tmp_path / "m",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert "skipped 5 malformed line(s)" in result.output
    assert "malformed.tsv:2: wrong column count" in result.output


def test_cn100k_integration(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "cn100k"
    result = invoke(
        "graph",
        "build",
        "--format",
        "cn100k",
        data_root / "kg/conceptnet100k/train.txt",
        "--out",
        out,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    info = json.loads(invoke("graph", "info", out, "--json").output)
    assert info["nodes"] > 78_000 and info["edges"] > 99_000
    assert len(info["relations"]) == 34
