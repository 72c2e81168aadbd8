"""``kelm retrieve --config FILE.yaml --set key=value``: the YAML holds the RetrieveOptions
settings; defaults < YAML < --set < flags given on the command line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from cli_fixtures import REPO, assert_one_line_error, invoke, tiny_graph
from typer.main import get_command

from kelm.cli import app
from kelm.config import load_config
from kelm.retrieval import retrieve as retrieve_module
from kelm.retrieval.retrieve import RetrieveOptions, RetrieveReport


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    """A graph index (dog, cat, animal, house) and a grounded file of two statements."""
    from kelm.graph.index import GraphIndex

    graph = tiny_graph(tmp_path)
    index = GraphIndex.load(graph)
    ids = index.node_id
    grounded = tmp_path / "stmts.jsonl"
    records = [
        {
            "id": "q1",
            "choice": choice,
            "question": "Where does a dog live?",
            "answer": answer,
            "question_concepts": [ids("dog")],
            "answer_concepts": [ids(answer)],
        }
        for choice, answer in enumerate(["house", "cat"])
    ]
    grounded.write_text("".join(json.dumps(r) + "\n" for r in records))
    sidecar = grounded.with_name(grounded.name + ".manifest.json")
    sidecar.write_text(json.dumps({"graph_checksum": index.checksum}))
    return graph, grounded


@pytest.fixture()
def captured(monkeypatch) -> list[RetrieveOptions]:
    """The options `kelm retrieve` passes to the library (which then does nothing)."""
    seen: list[RetrieveOptions] = []

    def fake_retrieve(graph, grounded, out, options, **kwargs):
        seen.append(options)
        return RetrieveReport(out=Path(out), reused=False, cache_key="")

    monkeypatch.setattr(retrieve_module, "retrieve", fake_retrieve)
    monkeypatch.setattr(retrieve_module, "summary", lambda report: "ok")
    return seen


def options_of(tmp_path: Path, captured: list, *args) -> RetrieveOptions:
    base = ("retrieve", "-g", tmp_path / "g", "--grounded", tmp_path / "s", "-o", tmp_path / "o")
    result = invoke(*base, *args)
    assert result.exit_code == 0, result.output
    return captured[-1]


def test_flag_defaults_are_the_dataclass_defaults() -> None:
    params = {p.name: p for p in get_command(app).commands["retrieve"].params}
    for field in dataclasses.fields(RetrieveOptions):
        assert params[field.name].default == field.default, field.name


def test_yaml_config_equals_the_same_flags(files, tmp_path: Path) -> None:
    graph, grounded = files
    out = tmp_path / "out"
    common = ("retrieve", "--graph", graph, "--grounded", grounded, "--out", out, "--no-progress")
    flags = ("--scorer", "none", "--max-nodes", "50", "--hops", "2", "--paths", "10", "--context")
    result = invoke(*common, *flags)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"wrote {out}: 2 statements")
    yaml = tmp_path / "r.yaml"
    yaml.write_text("scorer: none\nmax_nodes: 50\nhops: 2\npaths: 10\ncontext: true\n")
    # the same settings are the same cache key: the result is reused
    result = invoke(*common, "--config", yaml)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"reused {out}")


def test_set_overrides_yaml_and_flags_override_set(tmp_path: Path, captured) -> None:
    yaml = tmp_path / "r.yaml"
    yaml.write_text("scorer: none\nmax_nodes: 50\nhops: 1\nkge: emb/dir\n")
    options = options_of(tmp_path, captured, "--config", yaml)
    assert options == RetrieveOptions(scorer="none", max_nodes=50, hops=1, kge="emb/dir")
    options = options_of(tmp_path, captured, "-c", yaml, "--set", "hops=2", "--set", "paths=7")
    assert (options.hops, options.paths, options.max_nodes) == (2, 7, 50)
    # a flag given on the command line wins, even at its default value
    options = options_of(tmp_path, captured, "-c", yaml, "--set", "hops=2", "--hops", "3")
    assert options.hops == 3 and options.scorer == "none"
    options = options_of(tmp_path, captured, "-c", yaml, "--kge", tmp_path / "other")
    assert options.kge == str(tmp_path / "other")
    # --set without --config
    assert options_of(tmp_path, captured, "--set", "context=true").context is True


@pytest.mark.parametrize(
    ("yaml", "args", "message"),
    [
        ("max_node: 50\n", [], "unknown key 'max_node'"),
        ("hops: two\n", [], "'hops' must be int"),
        (None, ["--set", "scorer_name=none"], "unknown key 'scorer_name'"),
        ("hops: 9\n", [], "--hops must be between 0 and 5"),
    ],
)
def test_bad_config_is_one_line(files, tmp_path: Path, yaml, args, message) -> None:
    graph, grounded = files
    if yaml is not None:
        (tmp_path / "r.yaml").write_text(yaml)
        args = ["--config", tmp_path / "r.yaml", *args]
    out = tmp_path / "out"
    result = invoke("retrieve", "-g", graph, "--grounded", grounded, "-o", out, *args)
    assert_one_line_error(result, message)
    assert not out.exists()


def test_example_config_is_the_readme_command() -> None:
    options = load_config(RetrieveOptions, REPO / "configs/retrieve-cn100k.yaml")
    options.validate()
    assert options == RetrieveOptions(max_nodes=200, hops=3, paths=100, scorer="cosine")
