"""``kelm pretrain --scheduler``: the instance shards prepared on Dask workers give the
single-process cache byte for byte, and an interrupted preparation resumes at its missing
shards."""

from __future__ import annotations

from pathlib import Path

import pytest
from pretrain_fixtures import build_graph, save_encoder

from kelm.pretraining.corpus import Document, Unit
from kelm.pretraining.entity_linking import EntityLinker
from kelm.pretraining.instances import instance_dir, instance_key, prepare_instances
from kelm.pretraining.instances_dask import dask_shard_runner

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("instances-dask")
    save_encoder(root / "encoder")
    build_graph(root / "kg")
    return root


@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client


DOCS = [
    Document("d0", [Unit("the dog is an animal ."), Unit("a cat is an animal .")]),
    Document("d1", [Unit("a bird can fly ."), Unit(""), Unit("the fish can swim .")]),
    Document("d2", [Unit("a dog can swim ."), Unit("the cat is a pet .")]),
    Document("d3", [Unit("a fish is an animal .")]),
    Document("d4", [Unit("the bird is a pet ."), Unit("a dog .")]),
]


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_shards_on_workers_give_the_single_process_cache(root, client, tmp_path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(root / "encoder")
    linker_cache = tmp_path / "linker"
    linker = EntityLinker(root / "kg" / "graph", cache_dir=linker_cache)
    key = instance_key({"test": "corpus"}, tokenizer, 12, "single", linker.identity())

    def prepare(cache: Path, **kw):
        return prepare_instances(
            DOCS, tokenizer, key=key, cache_dir=cache, linker=linker, shard_documents=2, **kw
        )

    single = prepare(tmp_path / "one")
    assert single.counts["entities"] > 0 and single.counts["documents"] == 5
    setup = {
        "graph": str(root / "kg" / "graph"),
        "mode": "concept",
        "pipeline": None,
        "cache_dir": str(linker_cache),
    }
    runner = dask_shard_runner(client, tokenizer, setup, key=key)
    submitted: list[list[int]] = []

    def recorded(partial: Path, jobs) -> None:
        submitted.append([j.number for j in jobs])
        runner(partial, jobs)

    dist = prepare(tmp_path / "dask", run_shards=recorded)
    assert submitted == [[0, 1, 2]]  # 5 documents in shards of 2
    assert files(dist.path) == files(single.path)  # manifest and shards, byte for byte
    assert not list((tmp_path / "dask" / "instances").glob("*.tokenizer"))

    # interrupted after the first shard: the next run prepares the two others only
    def interrupted(partial: Path, jobs) -> None:
        runner(partial, jobs[:1])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path / "resumed", run_shards=interrupted)
    assert not (instance_dir(key, tmp_path / "resumed") / "manifest.json").exists()
    submitted.clear()
    resumed = prepare(tmp_path / "resumed", run_shards=recorded)
    assert submitted == [[1, 2]]
    assert files(resumed.path) == files(single.path)


def test_a_worker_with_another_tokenizer_refuses(root, client, tmp_path) -> None:
    from transformers import AutoTokenizer

    from kelm.errors import KelmError

    tokenizer = AutoTokenizer.from_pretrained(root / "encoder")
    key = instance_key({"test": "corpus"}, tokenizer, 12, "single", None)
    key["tokenizer"] = {**key["tokenizer"], "sha256": "0" * 64}  # not what the workers load
    runner = dask_shard_runner(client, tokenizer, None, key=key)
    with pytest.raises(KelmError, match="another tokenizer"):
        prepare_instances(
            DOCS, tokenizer, key=key, cache_dir=tmp_path, shard_documents=2, run_shards=runner
        )


def test_pretrain_with_a_scheduler_prepares_the_same_instances(root, client, tmp_path) -> None:
    """``kelm pretrain --scheduler ADDRESS`` (ernie: linked instances) caches the instances
    of a run without it, and trains on them alike."""
    import json

    from pretrain_fixtures import tiny_config, write_config
    from typer.testing import CliRunner

    from kelm.cli import app
    from kelm.pretraining import instances_dask

    instances_dask._LOADED.clear()  # the workers (threads here) record what they load
    runs = {}
    for name, extra in (("one", []), ("dask", ["--scheduler", client.scheduler.address])):
        cfg = tiny_config(
            tmp_path / "inputs",
            "ernie",
            run_dir=str(tmp_path / name),
            max_steps=1,
            probe={"enabled": False},
            data={"cache_dir": str(tmp_path / f"cache-{name}"), "shard_documents": 1},
        )
        path = write_config(tmp_path / f"{name}.yaml", cfg)
        result = CliRunner().invoke(app, ["pretrain", "-c", str(path), "--no-progress", *extra])
        assert result.exit_code == 0, result.output
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
        assert len(instances_dask._LOADED) == (name == "dask")  # the shards went to Dask
    caches = {n: Path(runs[n]["data"]["cache"]) for n in runs}
    assert caches["one"] != caches["dask"] and files(caches["one"]) == files(caches["dask"])
    assert runs["dask"]["train_loss"] == runs["one"]["train_loss"]
