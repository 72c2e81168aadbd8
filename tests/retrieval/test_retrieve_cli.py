"""``kelm retrieve`` through Typer's runner: results, cache reuse, and one-line errors (exit 2,
no traceback, no output directory) for every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from retrieval_fixtures import build_graph, hand_records, save_tiny_encoder, write_grounded
from typer.testing import CliRunner

from kelm._io import sha256_file
from kelm.cli import app
from kelm.retrieval.store import RetrievalStore

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def files(tmp_path: Path):
    graph = build_graph(tmp_path)
    grounded = write_grounded(tmp_path / "stmts.jsonl", hand_records(graph), graph.checksum)
    return graph, grounded, tmp_path / "out"


def retrieve_args(graph, grounded, out, *extra):
    return (
        "retrieve",
        "--graph",
        graph.path,
        "--grounded",
        grounded,
        "--out",
        out,
        "--no-progress",
        *extra,
    )


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_help_lists_retrieve() -> None:
    assert "retrieve" in invoke("--help").output
    result = invoke("retrieve", "--help")
    assert result.exit_code == 0
    for option in ("--graph", "--grounded", "--out", "--max-nodes", "--hops", "--paths"):
        assert option in result.output


def test_retrieve_then_reuse(files) -> None:
    graph, grounded, out = files
    args = retrieve_args(
        graph,
        grounded,
        out,
        "--scorer",
        "none",
        "--max-nodes",
        "50",
        "--hops",
        "2",
        "--paths",
        "10",
        "--context",
    )
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"wrote {out}: 5 statements")
    assert "1 empty subgraphs" in result.output
    result = invoke(*args)
    assert result.exit_code == 0 and result.stdout.startswith(f"reused {out}")
    result = invoke(*args[:-1])  # without --context: another key
    assert result.exit_code == 0 and result.stdout.startswith(f"wrote {out}")
    loaded = RetrievalStore(out, verify=True)
    assert len(loaded) == 5
    key = json.loads((out / "manifest.json").read_text())["key"]
    assert key["options"] == {
        "max_nodes": 50,
        "hops": 2,
        "paths": 10,
        "context": False,
        "shard_size": 1000,
    }
    assert key["graph_checksum"] == graph.checksum


def test_cosine_scorer_with_local_model(files, tmp_path: Path, monkeypatch) -> None:
    graph, grounded, out = files
    model = save_tiny_encoder(tmp_path / "tiny-encoder")
    monkeypatch.setenv("KELM_CACHE", str(tmp_path / "cache"))
    args = retrieve_args(
        graph,
        grounded,
        out,
        "--scorer",
        "cosine",
        "--model",
        model,
        "--device",
        "cpu",
        "--max-nodes",
        "3",
    )
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "cache" / "retrieval").glob("node-emb-*.npy"))
    loaded = RetrievalStore(out)
    scores = loaded.subgraph(1).node_score
    assert scores.abs().max() <= 1.0001 and scores.abs().sum() > 0
    assert invoke(*args).stdout.startswith("reused")
    # another model is another key
    other = save_tiny_encoder(tmp_path / "other-encoder")
    (other / "config.json").write_text((other / "config.json").read_text() + "\n")
    args2 = retrieve_args(
        graph,
        grounded,
        out,
        "--scorer",
        "cosine",
        "--model",
        other,
        "--device",
        "cpu",
        "--max-nodes",
        "3",
    )
    assert invoke(*args2).stdout.startswith("wrote")


def test_graph_of_unknown_version(files) -> None:
    graph, grounded, out = files
    manifest = json.loads((graph.path / "manifest.json").read_text())
    manifest["format_version"] = 99
    (graph.path / "manifest.json").write_text(json.dumps(manifest))
    result = invoke(
        "retrieve", "--graph", graph.path, "--grounded", grounded, "--out", out, "--scorer", "none"
    )
    assert_one_line_error(result, "format version 99")
    assert not out.exists()


def test_graph_missing_one_line(files, tmp_path: Path) -> None:
    _, grounded, out = files
    result = invoke(
        "retrieve",
        "--graph",
        tmp_path / "nope",
        "--grounded",
        grounded,
        "--out",
        out,
        "--scorer",
        "none",
    )
    assert_one_line_error(result, "nope")
    assert not out.exists()


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "empty",
        "truncated",
        "not-object",
        "no-field",
        "bad-ids",
        "out-of-range",
        "other-graph",
        "bad-sidecar",
        "cut-short",
        "edited",
        "partial",
        "incomplete",
    ],
)
def test_bad_grounded_file(files, case: str) -> None:
    graph, grounded, out = files
    lines = grounded.read_text().splitlines()
    sidecar = grounded.with_name(grounded.name + ".manifest.json")
    expect = {
        "missing": "no such file",
        "empty": "empty",
        "truncated": ":5: not valid JSON",
        "not-object": ":2: expected a JSON object",
        "no-field": "missing field",
        "bad-ids": "list of integer node ids",
        "out-of-range": "outside this graph",
        "other-graph": "grounded on another graph",
        "bad-sidecar": "not valid JSON",
        "cut-short": "3 statements where its manifest stmts.jsonl.manifest.json records 5",
        "edited": "stmts.jsonl: checksum does not match the manifest",
        "partial": "an unfinished grounding",
        "incomplete": "marks it incomplete",
    }[case]
    # What `kelm ground` writes beside a grounded file (sha256 recorded since it was added).
    manifest = {"kind": "kelm-grounded", "graph_checksum": graph.checksum, "statements": 5}
    manifest["complete"] = True
    if case == "missing":
        grounded.unlink()
    elif case == "empty":
        grounded.write_text("")
    elif case == "truncated":
        grounded.write_text("\n".join(lines[:4]) + "\n" + lines[4][: len(lines[4]) // 2])
    elif case == "not-object":
        grounded.write_text(lines[0] + "\n[1, 2]\n")
    elif case == "no-field":
        rec = json.loads(lines[0])
        del rec["answer_concepts"]
        grounded.write_text(json.dumps(rec) + "\n")
    elif case == "bad-ids":
        rec = json.loads(lines[0])
        rec["question_concepts"] = ["dog"]
        grounded.write_text(json.dumps(rec) + "\n")
    elif case == "out-of-range":
        rec = json.loads(lines[0])
        rec["answer_concepts"] = [graph.num_nodes + 5]
        grounded.write_text(lines[1] + "\n" + json.dumps(rec) + "\n")
    elif case == "other-graph":
        sidecar.write_text(json.dumps({"graph_checksum": "0" * 64}))
    elif case == "bad-sidecar":
        sidecar.write_text("{not json")
    elif case == "cut-short":  # used to be retrieved as if complete
        sidecar.write_text(json.dumps(manifest))
        grounded.write_text("\n".join(lines[:3]) + "\n")
    elif case == "edited":
        sidecar.write_text(json.dumps({**manifest, "sha256": sha256_file(grounded)}))
        grounded.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    elif case == "partial":  # used to go on with a warning
        grounded = grounded.rename(grounded.with_name(grounded.name + ".partial"))
        grounded.with_name(grounded.name + ".json").write_text(
            json.dumps({**manifest, "complete": False})
        )
    elif case == "incomplete":
        sidecar.write_text(json.dumps({**manifest, "complete": False}))
    result = invoke(*retrieve_args(graph, grounded, out, "--scorer", "none"))
    assert_one_line_error(result, expect)
    assert not out.exists()
    assert not list(out.parent.glob(".out.*"))


@pytest.mark.parametrize(
    "args,expect",
    [
        (("--scorer", "bm25"), "unknown --scorer"),
        (("--hops", "9"), "--hops must be between"),
        (("--max-nodes", "0"), "--max-nodes must be at least 1"),
        (("--paths", "-1"), "--paths must be between 0 and 1,000,000, not -1"),
        (("--shard-size", "0"), "--shard-size"),
        (("--scorer", "lm"), "needs --model"),
        (("--entity-emb", "x.npy"), "both --entity-emb and --relation-emb"),
        (
            ("--scorer", "cosine", "--model", "/nonexistent/model"),
            "not a Hugging Face model folder",
        ),
    ],
)
def test_bad_options(files, args, expect) -> None:
    graph, grounded, out = files
    result = invoke(*retrieve_args(graph, grounded, out, *args))
    assert_one_line_error(result, expect)
    assert not out.exists()


def test_bad_embeddings(files, tmp_path: Path) -> None:
    import numpy as np

    graph, grounded, out = files
    ent, rel = tmp_path / "ent.npy", tmp_path / "rel.npy"
    np.save(ent, np.zeros((graph.num_nodes + 1, 4)))
    np.save(rel, np.zeros((graph.num_relations, 4)))
    result = invoke(
        *retrieve_args(
            graph, grounded, out, "--scorer", "none", "--entity-emb", ent, "--relation-emb", rel
        )
    )
    assert_one_line_error(result, "entity embeddings for a graph of")
    result = invoke(
        *retrieve_args(
            graph,
            grounded,
            out,
            "--scorer",
            "none",
            "--entity-emb",
            tmp_path / "none.npy",
            "--relation-emb",
            rel,
        )
    )
    assert_one_line_error(result, "no such entity embedding file")


def test_out_is_not_a_retrieval_directory(files, tmp_path: Path) -> None:
    graph, grounded, _ = files
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    result = invoke(*retrieve_args(graph, grounded, precious, "--scorer", "none"))
    assert_one_line_error(result, "not a kelm retrieval directory")
    assert (precious / "thesis.tex").read_text() == "do not delete"
    result = invoke(*retrieve_args(graph, grounded, graph.path, "--scorer", "none"))
    assert_one_line_error(result, "not a kelm retrieval")


def test_kge_directory_scores_paths_and_is_checked(files, tmp_path: Path) -> None:
    graph, grounded, out = files
    emb = tmp_path / "emb"
    result = invoke(
        "embed-kg",
        "--graph",
        graph.path,
        "--out",
        emb,
        "--epochs",
        "1",
        "--dim",
        "4",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    result = invoke(*retrieve_args(graph, grounded, out, "--scorer", "none", "--kge", emb))
    assert result.exit_code == 0, result.output
    store = RetrievalStore(out)
    paths = [p for i in range(len(store)) for p in store.paths(i)]
    assert paths and all(p.score is not None and 0.0 <= p.score <= 1.0 for p in paths)
    # embeddings of another graph are refused in one line
    other = tmp_path / "other.tsv"
    other.write_text("x\tr\ty\n")
    assert (
        invoke(
            "graph", "build", "--format", "tsv", other, "--out", tmp_path / "og", "--no-progress"
        ).exit_code
        == 0
    )
    other_emb = tmp_path / "other_emb"
    assert (
        invoke(
            "embed-kg",
            "--graph",
            tmp_path / "og",
            "--out",
            other_emb,
            "--epochs",
            "1",
            "--dim",
            "4",
            "--no-progress",
        ).exit_code
        == 0
    )
    result = invoke(
        *retrieve_args(graph, grounded, tmp_path / "out2", "--scorer", "none", "--kge", other_emb)
    )
    assert_one_line_error(result, "another graph")
