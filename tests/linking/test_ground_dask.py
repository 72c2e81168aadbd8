"""``kelm ground --scheduler``: partitions grounded on Dask workers give the single-process
file and manifest, and a re-run grounds only the partitions that are not complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kelm.graph.build import build_index
from kelm.graph.sources.base import BuildOptions
from kelm.linking import ground_dask
from kelm.linking.ground import ground_file, manifest_path

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
QA = FIXTURES / "qa" / "csqa_hf.jsonl"


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "graph"
    build_index(
        [FIXTURES / "linking" / "tiny.tsv"], out, BuildOptions(format="tsv"), progress=False
    )
    return out


@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client


def manifest(out: Path) -> dict:
    data = json.loads(manifest_path(out).read_text())
    data.pop("graph")  # the same graph either way; the rest must be equal
    return data


def test_partitions_give_the_single_process_file(graph_dir, client, tmp_path):
    cache = tmp_path / "cache"
    single, dist = tmp_path / "single.jsonl", tmp_path / "dist.jsonl"
    ground_file(graph_dir, QA, single, progress=False, cache_dir=cache)
    report = ground_dask.ground_file_distributed(
        graph_dir, QA, dist, client=client, partition_size=3, progress=False, cache_dir=cache
    )
    assert report.statements == 10 and report.resumed_from == 0
    assert dist.read_bytes() == single.read_bytes()
    assert manifest(dist) == manifest(single)
    assert not ground_dask.parts_dir(dist).exists()
    again = ground_dask.ground_file_distributed(
        graph_dir, QA, dist, client=client, partition_size=3, progress=False, cache_dir=cache
    )
    assert again.reused


def test_rerun_skips_complete_partitions(graph_dir, client, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    out = tmp_path / "dist.jsonl"

    def interrupted(*args):
        raise KeyboardInterrupt  # after the partitions, before the file is published

    monkeypatch.setattr(ground_dask, "publish", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ground_dask.ground_file_distributed(
            graph_dir, QA, out, client=client, partition_size=3, progress=False, cache_dir=cache
        )
    monkeypatch.undo()
    assert not out.exists()
    parts = ground_dask.parts_dir(out)
    files = {k: parts / f"part-{k:05d}.jsonl" for k in range(4)}
    assert all(f.is_file() for f in files.values())
    files[1].write_text("damaged\n")  # its sidecar no longer matches
    files[2].unlink()  # never finished
    report = ground_dask.ground_file_distributed(
        graph_dir, QA, out, client=client, partition_size=3, progress=False, cache_dir=cache
    )
    assert report.resumed_from == 4  # partitions 0 (3 statements) and 3 (1) were kept
    single = tmp_path / "single.jsonl"
    ground_file(graph_dir, QA, single, progress=False, cache_dir=cache)
    assert out.read_bytes() == single.read_bytes()
