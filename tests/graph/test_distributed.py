"""Distributed builds on a Dask LocalCluster equal the single-process build, file for file."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from kelm.errors import InputError, KelmError
from kelm.graph.build import build_index
from kelm.graph.index import GraphIndex
from kelm.graph.sources.base import BuildOptions

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
WD = "http://www.wikidata.org/entity/"
WDT = "http://www.wikidata.org/prop/direct/"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"


@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client


def both(tmp_path: Path, client, inputs: list[Path], **kw) -> tuple[GraphIndex, GraphIndex]:
    from kelm.graph.distributed import build_index_distributed

    options = BuildOptions(**kw)
    build_index(inputs, tmp_path / "single", options, progress=False)
    build_index_distributed(
        inputs, tmp_path / "dist", options, client=client, partition_bytes=700, buckets=3
    )
    return GraphIndex.load(tmp_path / "single"), GraphIndex.load(tmp_path / "dist")


def assert_same(single: GraphIndex, dist: GraphIndex) -> None:
    a, b = single.manifest, dist.manifest
    assert b["distributed"]["partitions"] > 1
    assert {k for k in a["files"] if a["files"][k] != b["files"][k]} == set()
    assert a["checksum"] == b["checksum"]
    for key in ("counts", "malformed", "inputs", "options"):
        assert a[key] == b[key], key


def tsv_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        h, t = f"node {rng.randrange(60)}", f"Node-é{rng.randrange(60)}"
        row = [h, f"rel{rng.randrange(5)}", t if i % 17 else h]  # some self loops
        if i % 3:
            row.append(str(rng.choice([0.5, 1, 2.25])))
        lines.append("\t".join(row))
        if i % 41 == 0:
            lines.append("only\ttwo")  # malformed
    return lines


def test_tsv_equals_single_process(tmp_path, client):
    first, second = tmp_path / "a.tsv", tmp_path / "b.tsv"
    first.write_text("\n".join(tsv_lines(400, 1)) + "\n")
    second.write_text("\n".join(tsv_lines(300, 2)) + "\n")
    single, dist = both(tmp_path, client, [first, second], format="tsv")
    assert single.manifest["counts"]["duplicates_merged"] > 0
    assert single.manifest["counts"]["self_loops_dropped"] > 0
    assert single.manifest["malformed"]["total"] > 5
    assert_same(single, dist)


def test_keep_duplicates_and_self_loops(tmp_path, client):
    path = tmp_path / "a.tsv"
    path.write_text("\n".join(tsv_lines(300, 3)) + "\n")
    single, dist = both(
        tmp_path, client, [path], format="tsv", keep_duplicates=True, keep_self_loops=True
    )
    assert_same(single, dist)


def test_conceptnet_equals_single_process(tmp_path, client):
    single, dist = both(tmp_path, client, [FIXTURES / "conceptnet" / "malformed.csv"])
    assert_same(single, dist)


def test_gzip_input_is_one_partition(tmp_path, client):
    inputs = [FIXTURES / "conceptnet" / "good.csv.gz", FIXTURES / "conceptnet" / "malformed.csv"]
    single, dist = both(tmp_path, client, inputs)
    assert_same(single, dist)
    assert single.manifest["counts"]["edges"] > 0


def rdf_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        s = f"<{WD}Q{rng.randrange(40)}>"
        kind = i % 9
        if kind < 4:
            lines.append(f"{s} <{WDT}P{rng.randrange(4)}> <{WD}Q{rng.randrange(40)}> .")
        elif kind == 4:
            lang = rng.choice(["en", "de", "fr", ""])
            pred = rng.choice([RDFS + "label", SKOS + "prefLabel", SKOS + "altLabel"])
            tag = f"@{lang}" if lang else ""
            lines.append(f'{s} <{pred}> "Label {i}  X"{tag} .')
        elif kind == 5:
            lines.append(f'{s} <{RDFS}comment> "text \\"{i}\\""@en .')
        elif kind == 6:
            lines.append(f'{s} <http://schema.org/P{i % 3}> "{i}" .')
        elif kind == 7:
            lines.append(f"_:b{i % 4} <{WDT}P1> {s} .")
        else:
            lines.append(f"{s} <http://other.org/P{i % 2}> <{WD}Q{i % 40}> .")
    lines.insert(50, "this is not a statement")
    return lines


def test_rdf_equals_single_process(tmp_path, client):
    first, second = tmp_path / "a.nt", tmp_path / "b.nt"
    first.write_text("\n".join(rdf_lines(500, 1)) + "\n")
    second.write_text("\n".join(rdf_lines(300, 2)))  # no final newline
    single, dist = both(tmp_path, client, [first, second], format="rdf")
    counts = single.manifest["counts"]
    assert counts["aliases"] > 0 and counts["attributes"] > 0
    assert any(single.node_text(i) for i in range(single.num_nodes))
    assert_same(single, dist)


def test_strict_names_the_same_line(tmp_path, client):
    from kelm.graph.distributed import build_index_distributed

    path = tmp_path / "a.tsv"
    path.write_text("\n".join(tsv_lines(200, 4)) + "\n")
    options = BuildOptions(format="tsv", strict=True)
    with pytest.raises(InputError) as single:
        build_index([path], tmp_path / "single", options, progress=False)
    with pytest.raises(InputError) as dist:
        build_index_distributed(
            [path], tmp_path / "dist", options, client=client, partition_bytes=500
        )
    assert str(single.value) == str(dist.value)
    assert not (tmp_path / "dist").exists()
    assert not list(tmp_path.glob(".dist.building-*"))


def test_refuses_formats_it_cannot_cut(tmp_path, client):
    from kelm.graph.distributed import build_index_distributed

    with pytest.raises(KelmError, match="--scheduler builds read"):
        build_index_distributed(
            [FIXTURES / "wordnet"], tmp_path / "x", BuildOptions(format="wordnet"), client=client
        )
    with pytest.raises(KelmError, match="N-Triples only"):
        build_index_distributed(
            [FIXTURES / "rdf" / "people.ttl"],
            tmp_path / "x",
            BuildOptions(format="rdf"),
            client=client,
        )


def test_bucket_vocabulary_gives_every_partition_its_ids(tmp_path):
    """Each bucket's vocabulary is the sorted union of its names; each partition gets the
    positions of its own names there (what encode_partition turns into node ids), and none
    for a bucket it has no name in."""
    import numpy as np
    import pyarrow as pa

    from kelm.graph import dist_tasks

    partitions = [["apple", "kiwi", "pear", "zebra"], ["banana", "kiwi", "melon"], ["yam"]]
    for p, names in enumerate(partitions):
        (tmp_path / f"p{p:05d}").mkdir()
        dist_tasks._write(tmp_path / f"p{p:05d}" / "names", pa.table({"name": names}))
    bounds = [None, "l", "x", None]  # buckets: < "l", "l" .. < "x", >= "x"
    sizes = [dist_tasks.bucket_vocabulary(str(tmp_path), b, bounds, 3) for b in range(3)]
    vocab = [dist_tasks._read(tmp_path / f"vocab.b{b:05d}")["name"].to_pylist() for b in range(3)]
    assert vocab == [["apple", "banana", "kiwi"], ["melon", "pear"], ["yam", "zebra"]]
    assert sizes == [3, 2, 2]
    for p, names in enumerate(partitions):
        for b in range(3):
            path = tmp_path / f"p{p:05d}" / f"ids.b{b:05d}.npy"
            mine = [n for n in names if (bounds[b] or "") <= n < (bounds[b + 1] or "\uffff")]
            if not mine:
                assert not path.exists()
                continue
            ids = np.load(path)
            assert [vocab[b][i] for i in ids] == mine


def hub_lines(n: int, seed: int) -> list[str]:
    """Edges where one head and one tail hold most of them (with repeats: duplicates to merge,
    keeping the largest weight), as in a Wikidata-like graph."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        h = "hub" if rng.random() < 0.5 else f"n{rng.randrange(1000)}"
        t = "sink" if h != "hub" and rng.random() < 0.6 else f"n{rng.randrange(300)}"
        lines.append(f"{h}\tr{rng.randrange(3)}\t{t}\t{rng.choice([0.5, 1, 2])}")
    return lines


@pytest.mark.parametrize("keep_duplicates", [False, True])
def test_hubs_are_sorted_in_slices(tmp_path, client, monkeypatch, keep_duplicates):
    """With slices far smaller than the hub's edges, the hub's bucket is cut into slices of
    about that size (a worker never sorts the whole bucket), and the index is the same."""
    from kelm.graph import dist_csr, dist_tasks
    from kelm.graph.distributed import build_index_distributed

    path = tmp_path / "hubs.tsv"
    path.write_text("\n".join(hub_lines(4000, 5)) + "\n")
    options = BuildOptions(format="tsv", keep_duplicates=keep_duplicates)
    monkeypatch.setattr(dist_tasks, "SAMPLE_EVERY", 4)
    log = tmp_path / "slices.txt"  # the tasks may run on a copy of the spies: a file it is
    out_slice, in_slice = dist_csr.out_slice, dist_csr.in_slice

    def spy_out(*args, **kw):
        stats = out_slice(*args, **kw)
        with open(log, "a") as fh:
            fh.write(f"out {stats['edges']}\n")
        return stats

    def spy_in(*args, **kw):
        edges = in_slice(*args, **kw)
        with open(log, "a") as fh:
            fh.write(f"in {edges}\n")
        return edges

    monkeypatch.setattr(dist_csr, "out_slice", spy_out)
    monkeypatch.setattr(dist_csr, "in_slice", spy_in)
    build_index([path], tmp_path / "single", options, progress=False)
    build_index_distributed(
        [path], tmp_path / "dist", options, client=client, partition_bytes=4000, bucket_edges=200
    )
    single, dist = GraphIndex.load(tmp_path / "single"), GraphIndex.load(tmp_path / "dist")
    assert_same(single, dist)
    sizes = {"out": [], "in": []}
    for line in log.read_text().splitlines():
        kind, edges = line.split()
        sizes[kind].append(int(edges))
    # slices hold about bucket_edges input edges (the sample's quantiles, so not exactly),
    # fewer than the hub's own: one node's edges span several slices
    assert max(sizes["out"]) < 300 and max(sizes["in"]) < 300
    assert single.degree("out")[single.node_id("hub")] > 2 * max(sizes["out"])
    assert single.degree("in")[single.node_id("sink")] > max(sizes["in"])
    slices = dist.manifest["distributed"]["slices"]
    assert slices["out"] > dist.manifest["distributed"]["buckets"] + 3
    assert slices["in"] > dist.manifest["distributed"]["buckets"] + 2
    assert sum(sizes["out"]) == sum(sizes["in"]) == single.manifest["counts"]["edges"]


def test_hub_metadata_is_sorted_in_slices(tmp_path, client, monkeypatch):
    """A node with more aliases and attributes than a slice holds: its rows are sorted in
    slices, and the index is the single-process build's."""
    from kelm.graph import dist_tasks
    from kelm.graph.distributed import build_index_distributed

    rng = random.Random(7)
    lines = rdf_lines(300, 3)
    for i in range(900):
        s = f"<{WD}Q{0 if i % 3 else rng.randrange(40)}>"  # Q0 is the hub
        if i % 2:
            lines.append(f'{s} <http://schema.org/P{rng.randrange(4)}> "v{rng.randrange(200)}" .')
        else:
            lines.append(f'{s} <{SKOS}altLabel> "Alias {rng.randrange(150)}"@en .')
    rng.shuffle(lines)
    path = tmp_path / "hub.nt"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(dist_tasks, "SAMPLE_EVERY", 2)
    options = BuildOptions(format="rdf")
    build_index([path], tmp_path / "single", options, progress=False)
    build_index_distributed(
        [path], tmp_path / "dist", options, client=client, partition_bytes=3000, bucket_edges=80
    )
    single, dist = GraphIndex.load(tmp_path / "single"), GraphIndex.load(tmp_path / "dist")
    assert_same(single, dist)
    slices, buckets = (
        dist.manifest["distributed"]["slices"],
        dist.manifest["distributed"]["buckets"],
    )
    assert slices["attrs"] > buckets + 3 and slices["aliases"] > buckets + 3
    counts = single.manifest["counts"]
    assert counts["attributes"] > 200 and counts["aliases"] > 100
