"""Shards and cache: round trip, the cache key (every option, the graph, the grounded file),
atomic publication, and refusal of incomplete or unknown-version directories."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from retrieval_fixtures import build_graph, grounded_record, hand_records, write_grounded

from kelm.errors import KelmError
from kelm.retrieval import store
from kelm.retrieval.retrieve import RetrieveOptions, Retriever, retrieve
from kelm.retrieval.store import RetrievalFormatError, RetrievalStore, ShardWriter
from kelm.retrieval.subgraph import Adjacency


@pytest.fixture()
def setup(tmp_path: Path):
    graph = build_graph(tmp_path)
    grounded = write_grounded(tmp_path / "stmts.jsonl", hand_records(graph), graph.checksum)
    return graph, grounded, tmp_path / "out"


def run(setup, options: RetrieveOptions | None = None, **kwargs):
    graph, grounded, out = setup
    options = options or RetrieveOptions(scorer="none")
    return retrieve(graph.path, grounded, out, options, progress=False, **kwargs)


def test_round_trip_across_shards(setup, tmp_path: Path) -> None:
    graph, grounded, out = setup
    retriever = Retriever(Adjacency.from_index(graph), max_paths=3, context=True)
    records = hand_records(graph)
    expected = []
    staged = tmp_path / "staged"
    staged.mkdir()
    writer = ShardWriter(staged, shard_size=2)
    for rec in records:
        sub, paths = retriever(rec["question_concepts"], rec["answer_concepts"])
        paths.score = np.linspace(0, 1, len(paths), dtype=np.float32)
        writer.add(rec["id"], rec["choice"], sub, paths)
        expected.append((sub, paths))
    writer.close()
    store.publish_manifest(staged, writer, {"cache_key": "k", "num_relations": 7})
    loaded = RetrievalStore(staged, verify=True)
    assert len(loaded) == len(records) == 5
    assert sorted(p.name for p in staged.glob("shard-*")) == [
        "shard-00000.safetensors",
        "shard-00001.safetensors",
        "shard-00002.safetensors",
    ]
    for i in (4, 0, 3, 1, 2):  # out of order: shards are loaded on demand
        sub, paths = expected[i]
        item = loaded[i]
        assert (item.id, item.choice) == (records[i]["id"], records[i]["choice"])
        data = item.subgraph
        assert data.node_ids.tolist() == sub.node_ids.tolist()
        assert data.node_type.tolist() == sub.node_type.tolist()
        assert data.edge_index.tolist() == sub.edge_index.tolist()
        assert data.edge_type.tolist() == sub.edge_type.tolist()
        np.testing.assert_allclose(data.node_score.numpy(), sub.node_score)
        assert data.num_nodes == sub.num_nodes
        assert [(p.nodes, p.relations) for p in item.paths] == paths.to_list()
        np.testing.assert_allclose([p.score for p in item.paths], paths.score, rtol=1e-6)
    assert loaded.index_of("q3", 0) == 3
    inverse = loaded.subgraph(0, with_inverse=True)
    assert inverse.edge_index.shape[1] == 2 * expected[0][0].edge_type.shape[0]


def test_retrieve_writes_and_reuses(setup) -> None:
    first = run(setup)
    assert not first.reused and first.counts["statements"] == 5
    assert first.counts["empty_subgraphs"] == 1  # the statement with no concept
    out = setup[2]
    stamp = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = run(setup)
    assert again.reused and again.cache_key == first.cache_key
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamp
    loaded = RetrievalStore(out)
    empty = loaded[loaded.index_of("q2", 0)]
    assert empty.subgraph.num_nodes == 0 and empty.paths == []
    assert not list(out.parent.glob(".out.*"))  # no staging leftovers


@pytest.mark.parametrize(
    "change",
    [
        {"max_nodes": 3},
        {"hops": 2},
        {"paths": 1},
        {"context": True},
        {"shard_size": 2},
    ],
)
def test_any_option_change_rebuilds(setup, change) -> None:
    base = run(setup)
    changed = run(setup, RetrieveOptions(scorer="none", **change))
    assert not changed.reused and changed.cache_key != base.cache_key
    manifest = json.loads((setup[2] / "manifest.json").read_text())
    for key, value in change.items():
        assert manifest["key"]["options"][key] == value
    assert run(setup, RetrieveOptions(scorer="none", **change)).reused


def test_input_changes_rebuild(setup, tmp_path: Path) -> None:
    graph, grounded, out = setup
    base = run(setup)
    # the grounded file changes
    records = hand_records(graph)[:3]
    write_grounded(grounded, records, graph.checksum)
    second = run(setup)
    assert not second.reused and second.counts["statements"] == 3
    # the graph changes (one more edge): new checksum, new key
    text = (tmp_path / "edges.tsv").read_text() + "zoo\tisa\tanimal\n"
    graph2 = build_graph(tmp_path / "g2", text)
    write_grounded(grounded, records, graph2.checksum)
    third = retrieve(graph2.path, grounded, out, RetrieveOptions(scorer="none"), progress=False)
    assert not third.reused and len({base.cache_key, second.cache_key, third.cache_key}) == 3
    # a KG embedding file is part of the key too
    ent = tmp_path / "ent.npy"
    rel = tmp_path / "rel.npy"
    np.save(ent, np.random.default_rng(0).normal(size=(graph2.num_nodes, 4)))
    np.save(rel, np.random.default_rng(1).normal(size=(graph2.num_relations, 4)))
    options = RetrieveOptions(scorer="none", entity_emb=str(ent), relation_emb=str(rel))
    scored = retrieve(graph2.path, grounded, out, options, progress=False)
    assert not scored.reused
    paths = RetrievalStore(out).paths(1)
    assert paths and all(0 <= p.score <= 1 for p in paths)
    np.save(rel, np.random.default_rng(2).normal(size=(graph2.num_relations, 4)))
    assert not retrieve(graph2.path, grounded, out, options, progress=False).reused


def test_force_and_scorer_without_key(setup) -> None:
    base = run(setup)
    assert not run(setup, force=True).reused

    class Keyless:
        def score(self, statement, node_ids):
            return np.zeros(len(node_ids), np.float32)

    first = run(setup, scorer=Keyless())
    assert not first.reused and first.cache_key != base.cache_key
    assert not run(setup, scorer=Keyless()).reused  # never served from the cache


def test_failed_run_leaves_previous_result(setup, monkeypatch) -> None:
    out = setup[2]
    run(setup)
    before = (out / "manifest.json").read_text()
    calls = {"n": 0}
    original = ShardWriter.add

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed mid-run")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ShardWriter, "add", failing)
    with pytest.raises(RuntimeError):
        run(setup, RetrieveOptions(scorer="none", hops=2, shard_size=1))
    assert (out / "manifest.json").read_text() == before  # old complete result untouched
    assert not list(out.parent.glob(".out.*"))
    RetrievalStore(out, verify=True)


def test_failed_first_run_leaves_nothing(setup, monkeypatch) -> None:
    out = setup[2]
    monkeypatch.setattr(ShardWriter, "close", lambda self: (_ for _ in ()).throw(OSError("disk")))
    with pytest.raises(OSError):
        run(setup)
    assert not out.exists() and not list(out.parent.glob(".out.*"))


def test_incomplete_or_foreign_directories(setup) -> None:
    out = setup[2]
    run(setup)
    shard = out / "shard-00000.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])  # truncated by hand
    with pytest.raises(RetrievalFormatError, match="truncated"):
        RetrievalStore(out)
    assert not store.reusable(out, json.loads((out / "manifest.json").read_text())["cache_key"])
    assert not run(setup).reused  # rebuilt
    RetrievalStore(out, verify=True)

    manifest = json.loads((out / "manifest.json").read_text())
    manifest["format_version"] = 99
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RetrievalFormatError, match="version 99"):
        RetrievalStore(out)
    assert not run(setup).reused

    (out / "manifest.json").unlink()
    with pytest.raises(RetrievalFormatError, match="manifest.json missing"):
        RetrievalStore(out)
    with pytest.raises(KelmError, match="not a kelm retrieval directory"):
        run(setup)  # a directory with files but no manifest is never replaced
    with pytest.raises(RetrievalFormatError, match="does not exist"):
        RetrievalStore(out.parent / "nowhere")


def flip_last_byte(file: Path) -> None:
    raw = bytearray(file.read_bytes())
    raw[-1] ^= 0x01
    file.write_bytes(bytes(raw))


@pytest.mark.parametrize("target", ["shard-00001.safetensors", "statements.json"])
def test_modified_files_are_refused_and_recomputed(setup, target: str) -> None:
    """A flipped byte in a shard or an edited statements.json used to load, and a rerun called
    the directory reused (training opened it unverified)."""
    out = setup[2]
    options = RetrieveOptions(scorer="none", shard_size=2)
    first = run(setup, options)
    if target == "statements.json":
        keys = json.loads((out / target).read_text())
        keys[0], keys[1] = keys[1], keys[0]  # same size, other statements
        (out / target).write_text(json.dumps(keys) + "\n")
    else:
        flip_last_byte(out / target)
    loaded = RetrievalStore(out) if target != "statements.json" else None
    with pytest.raises(RetrievalFormatError, match=f"{target}: checksum does not match"):
        if loaded is None:
            RetrievalStore(out)
        else:
            loaded.arrays(2)  # shard 1 is checked when it is first read
    assert not store.reusable(out, first.cache_key)
    again = run(setup, options)
    assert not again.reused and again.cache_key == first.cache_key
    assert run(setup, options).reused
    RetrievalStore(out)[2]


def test_edited_manifest_is_refused(setup) -> None:
    out = setup[2]
    first = run(setup, RetrieveOptions(scorer="none", shard_size=2))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shard_size"] = 1
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RetrievalFormatError, match="recorded checksum is not the one"):
        RetrievalStore(out)
    assert not store.reusable(out, first.cache_key)


def test_shards_are_hashed_once_per_process(setup, monkeypatch) -> None:
    from kelm import _io

    out = setup[2]
    run(setup, RetrieveOptions(scorer="none", shard_size=2))
    hashed: list[str] = []
    real = _io.sha256_file
    monkeypatch.setattr(_io, "sha256_file", lambda p: hashed.append(Path(p).name) or real(p))
    for _ in range(3):  # as in training epochs: stores reopened, shards read again
        loaded = RetrievalStore(out, cached_shards=1)
        for i in (0, 4, 2, 0):
            loaded[i]
    assert sorted(hashed) == [
        "shard-00000.safetensors",
        "shard-00001.safetensors",
        "shard-00002.safetensors",
        "statements.json",
    ]


def test_records_with_unusual_ids(setup, tmp_path: Path) -> None:
    graph, _, out = setup
    recs = [
        grounded_record(7, "A", "q", "a", [graph.node_id("dog")], [graph.node_id("cat")]),
        grounded_record("x", None, "q", "", [], [graph.node_id("cat")]),
    ]
    grounded = write_grounded(tmp_path / "odd.jsonl", recs, None)  # no sidecar: a warning
    retrieve(graph.path, grounded, out, RetrieveOptions(scorer="none"), progress=False)
    loaded = RetrievalStore(out)
    assert loaded.keys == [[7, "A"], ["x", None]]
    assert loaded.index_of(7, "A") == 0
    assert os.path.exists(out / "statements.json")
