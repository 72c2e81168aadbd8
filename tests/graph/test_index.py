"""GraphIndex: build from TSV, save/load round trip, adjacency, conversions, refusal to load
a corrupt or unknown-version index."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kelm.errors import IndexFormatError, InputError
from kelm.graph import GraphIndex, build_index
from kelm.graph.sources.base import BuildOptions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture()
def tsv_index(tmp_path: Path) -> GraphIndex:
    build_index(
        [FIXTURES / "tsv/good.tsv"], tmp_path / "g", BuildOptions(format="tsv"), progress=False
    )
    return GraphIndex.load(tmp_path / "g")


def triples_of(graph: GraphIndex) -> set[tuple[str, str, str, float]]:
    heads, rels, tails, weights = graph.edges()
    return {
        (graph.node_name(h), graph.relations[r], graph.node_name(t), float(w))
        for h, r, t, w in zip(heads, rels, tails, weights, strict=True)
    }


def test_vocabulary_and_edges(tsv_index: GraphIndex) -> None:
    g = tsv_index
    assert g.names.to_list() == sorted(["animal", "cat", "dog", "house", "street"])
    # the duplicate dog-isa-animal keeps its largest weight; the self loop is dropped
    assert triples_of(g) == {
        ("dog", "isa", "animal", 3.0),
        ("cat", "isa", "animal", 1.0),
        ("dog", "atlocation", "house", 0.5),
        ("cat", "atlocation", "house", 1.0),
        ("house", "partof", "street", 1.0),
    }
    assert g.num_relations == 3
    assert g.relations[g.num_relations :] == ["~" + r for r in g.relations[: g.num_relations]]
    counts = g.manifest["counts"]
    assert counts["self_loops_dropped"] == 1 and counts["duplicates_merged"] == 1


def test_neighbors_both_directions(tsv_index: GraphIndex) -> None:
    g = tsv_index
    nodes, rels, _ = g.neighbors("animal")
    got = {(g.node_name(n), g.relations[r]) for n, r in zip(nodes, rels, strict=True)}
    assert got == {("dog", "~isa"), ("cat", "~isa")}
    nodes, rels, w = g.neighbors(g.node_id("dog"), direction="out")
    assert {(g.node_name(n), g.relations[r]) for n, r in zip(nodes, rels, strict=True)} == {
        ("animal", "isa"),
        ("house", "atlocation"),
    }
    nodes, _, _ = g.neighbors("house", relations=["~atlocation"])
    assert sorted(g.node_name(n) for n in nodes) == ["cat", "dog"]
    with pytest.raises(KeyError):
        g.node_id("unicorn")
    assert list(g.node_ids(["dog", "unicorn"])) == [g.node_id("dog"), -1]


def test_csr_is_consistent(tsv_index: GraphIndex) -> None:
    csr = tsv_index.csr
    edge = np.asarray(csr["in.edge"])
    heads, rels, tails, _ = tsv_index.edges()
    np.testing.assert_array_equal(heads[edge], csr["in.indices"])
    np.testing.assert_array_equal(rels[edge], csr["in.type"])
    assert np.all(np.diff(csr["in.indptr"]) >= 0)
    tails_in = np.repeat(np.arange(tsv_index.num_nodes), np.diff(csr["in.indptr"]))
    np.testing.assert_array_equal(tails[edge], tails_in)


def test_to_pyg_and_networkx(tsv_index: GraphIndex) -> None:
    data = tsv_index.to_pyg()
    assert data.edge_index.shape == (2, 5) and data.num_nodes == 5
    assert data.edge_type.shape == (5,) and data.edge_weight.dtype.is_floating_point
    both = tsv_index.to_pyg(with_inverse=True)
    assert both.edge_index.shape == (2, 10) and int(both.edge_type.max()) >= 3
    nxg = tsv_index.to_networkx()
    assert nxg.number_of_nodes() == 5 and nxg.number_of_edges() == 5
    dog = tsv_index.node_id("dog")
    assert {d["relation"] for _, _, d in nxg.out_edges(dog, data=True)} == {"isa", "atlocation"}


def test_round_trip_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        build_index(
            [FIXTURES / "tsv/good.tsv"], tmp_path / name, BuildOptions(format="tsv"), progress=False
        )
    a, b = GraphIndex.load(tmp_path / "a"), GraphIndex.load(tmp_path / "b")
    assert a.checksum == b.checksum
    assert triples_of(a) == triples_of(b)
    eager = GraphIndex.load(tmp_path / "a", mmap=False)
    assert triples_of(eager) == triples_of(a)


def test_info(tsv_index: GraphIndex) -> None:
    info = tsv_index.info()
    assert info["nodes"] == 5 and info["edges"] == 5
    assert info["relations"] == {"atlocation": 2, "isa": 2, "partof": 1}
    assert info["degree"]["max"] == 2 + 1 and info["degree"]["isolated"] == 0


def test_checksum_refusal(tmp_path: Path, tsv_index: GraphIndex) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(tsv_index.path, bad)
    target = bad / "out.indices.npy"
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(IndexFormatError, match="checksum"):
        GraphIndex.load(bad)
    GraphIndex.load(bad, verify=False)  # an explicit opt-out still opens it


def test_unknown_version_and_missing_files(tmp_path: Path, tsv_index: GraphIndex) -> None:
    newer = tmp_path / "newer"
    shutil.copytree(tsv_index.path, newer)
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["format_version"] = 99
    (newer / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="version 99"):
        GraphIndex.load(newer)
    partial = tmp_path / "partial"
    shutil.copytree(tsv_index.path, partial)
    (partial / "manifest.json").unlink()
    with pytest.raises(IndexFormatError, match="manifest.json missing"):
        GraphIndex.load(partial)
    with pytest.raises(IndexFormatError, match="does not exist"):
        GraphIndex.load(tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["relations.json", "out.indices.npy"])
def test_every_missing_file_gets_the_same_message(
    tmp_path: Path, tsv_index: GraphIndex, name: str
) -> None:
    """relations.json used to escape as a FileNotFoundError (``graph info``, ``link``)."""
    partial = tmp_path / "partial"
    shutil.copytree(tsv_index.path, partial)
    (partial / name).unlink()
    for verify in (True, False):
        with pytest.raises(IndexFormatError, match=rf"{name} missing from the index"):
            GraphIndex.load(partial, verify=verify)


def test_relations_json_is_checked(tmp_path: Path, tsv_index: GraphIndex) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(tsv_index.path, bad)
    (bad / "relations.json").write_text("[]\n")
    with pytest.raises(IndexFormatError, match=r"relations\.json: checksum does not match"):
        GraphIndex.load(bad)
    (bad / "relations.json").write_bytes(b"\xff[")
    with pytest.raises(IndexFormatError, match="unreadable relation vocabulary"):
        GraphIndex.load(bad, verify=False)


def test_edited_checksum_is_refused(tmp_path: Path, tsv_index: GraphIndex) -> None:
    """The checksum is the index's identity (caches and embeddings are keyed on it): it must be
    the digest of the files the manifest lists, even when the files are not hashed."""
    edited = tmp_path / "edited"
    shutil.copytree(tsv_index.path, edited)
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["checksum"] = "0" * 64
    (edited / "manifest.json").write_text(json.dumps(manifest))
    for verify in (True, False):
        with pytest.raises(IndexFormatError, match="recorded checksum is not the one"):
            GraphIndex.load(edited, verify=verify)


def test_files_are_hashed_once_per_process(
    tmp_path: Path, tsv_index: GraphIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second load of an unchanged index hashes nothing; a file written since is hashed
    again (and a flipped byte found)."""
    from kelm import _io

    copy = tmp_path / "copy"
    shutil.copytree(tsv_index.path, copy)
    GraphIndex.load(copy)
    hashed: list[str] = []
    real = _io.sha256_file
    monkeypatch.setattr(_io, "sha256_file", lambda p: hashed.append(Path(p).name) or real(p))
    GraphIndex.load(copy)
    assert hashed == []
    target = copy / "out.weight.npy"
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0x01
    target.write_bytes(bytes(raw))
    with pytest.raises(IndexFormatError, match="out.weight.npy: checksum"):
        GraphIndex.load(copy)
    assert hashed == ["out.weight.npy"]


def test_malformed_lines_are_counted_with_line_numbers(tmp_path: Path) -> None:
    report = build_index(
        [FIXTURES / "tsv/malformed.tsv"], tmp_path / "m", BuildOptions(format="tsv"), progress=False
    )
    issues = {(i.line, i.reason.split(" (")[0]) for i in report.issues.first}
    assert report.issues.total == 5  # line 7 holds only tabs: a blank line
    assert (2, "wrong column count") in issues
    assert (3, "non-numeric weight") in issues
    assert (4, "wrong column count") in issues
    assert (5, "invalid UTF-8 in head") in issues
    assert (6, "wrong column count") in issues
    assert report.issues.counts == {str(FIXTURES / "tsv/malformed.tsv"): 5}
    g = GraphIndex.load(tmp_path / "m")
    assert {g.node_name(n) for n in range(g.num_nodes)} == {"dog", "animal", "fish", "water"}


def test_strict_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"malformed\.tsv:2: wrong column count"):
        build_index(
            [FIXTURES / "tsv/malformed.tsv"],
            tmp_path / "m",
            BuildOptions(format="tsv", strict=True),
            progress=False,
        )
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_empty_inputs_are_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.tsv"
    path.write_bytes(content)
    with pytest.raises(InputError, match="empty"):
        build_index([path], tmp_path / "g", BuildOptions(format="tsv"), progress=False)


def test_missing_input_and_truncated_gzip(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        build_index([tmp_path / "nope.tsv"], tmp_path / "g", BuildOptions(format="tsv"))
    import gzip

    data = gzip.compress((FIXTURES / "tsv/good.tsv").read_bytes() * 200)
    path = tmp_path / "cut.tsv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        build_index([path], tmp_path / "g", BuildOptions(format="tsv"), progress=False)


def test_gzip_input_matches_plain(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "good.tsv.gz"
    path.write_bytes(gzip.compress((FIXTURES / "tsv/good.tsv").read_bytes()))
    build_index([path], tmp_path / "gz", BuildOptions(format="tsv"), progress=False)
    build_index(
        [FIXTURES / "tsv/good.tsv"], tmp_path / "plain", BuildOptions(format="tsv"), progress=False
    )
    assert triples_of(GraphIndex.load(tmp_path / "gz")) == triples_of(
        GraphIndex.load(tmp_path / "plain")
    )


def test_block_boundaries_keep_line_numbers(tmp_path: Path, monkeypatch) -> None:
    """Tiny blocks force many block boundaries; line numbers must stay exact."""
    from kelm.graph.sources import _blocks

    lines = [f"n{i}\tr\tn{i + 1}\t1" for i in range(500)]
    lines[123] = "bad line"
    lines[401] = "n1\tr\tn2\tweight?"
    path = tmp_path / "many.tsv"
    path.write_text("\n".join(lines))  # no trailing newline on purpose
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 64)
    report = build_index([path], tmp_path / "g", BuildOptions(format="tsv"), progress=False)
    assert [(i.line) for i in report.issues.first] == [124, 402]
    assert report.counts["edges"] == 498


def test_string_column_reads_without_pyarrow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading an index needs numpy only (a GPU machine may lack pyarrow)."""
    import sys

    from kelm.graph.strings import StringColumn

    strings = ["dog", "", "caf\u00e9 au lait", "\u732b", "x y"]
    column = StringColumn.from_list(strings)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert column.to_list() == strings and list(column) == strings and column[2] == strings[2]
