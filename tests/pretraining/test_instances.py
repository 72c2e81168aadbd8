"""Instances: packing and truncation counts, segment pairs, entity alignment on the first
wordpiece, the cache (reuse, invalidation on an option change, resumable preparation)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pretrain_fixtures import WORDS, build_graph, save_encoder

import kelm.pretraining.instances as inst
from kelm._io import output_lock
from kelm.pretraining.corpus import Document, Unit
from kelm.pretraining.entity_linking import EntityLinker
from kelm.pretraining.instances import instance_key, prepare_instances


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("instances")
    save_encoder(root / "encoder")
    build_graph(root / "kg")
    return root


@pytest.fixture(scope="module")
def tokenizer(root: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(root / "encoder")


def _docs() -> list[Document]:
    return [
        Document("d0", [Unit("the dog is an animal ."), Unit("a cat is an animal .")]),
        Document("d1", [Unit(" ".join(["dog"] * 20))]),  # longer than the room: truncated
        Document("d2", [Unit("a bird can fly ."), Unit(""), Unit("the fish can swim .")]),
    ]


def _prepare(tokenizer, cache: Path, docs=None, max_length: int = 10, segments="single", **kw):
    key = instance_key({"test": "corpus"}, tokenizer, max_length, segments, kw.pop("link", None))
    return prepare_instances(docs or _docs(), tokenizer, key=key, cache_dir=cache, **kw)


def test_packing_and_truncation_counts(tokenizer, tmp_path: Path) -> None:
    store = _prepare(tokenizer, tmp_path)
    c = store.counts
    assert c["documents"] == 3 and c["units"] == 6 and c["empty_units"] == 1
    # d0: two units of 6 pieces do not fit 8 together -> 2 instances; d1: 1 truncated;
    # d2: 5 + 5 pieces -> 2 instances
    assert c["instances"] == len(store) == 5
    assert c["truncated_units"] == 1 and c["truncated_tokens"] == 20 - 8
    first = store[0]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert first.input_ids[0] == cls and first.input_ids[-1] == sep and first.sep == -1
    assert tokenizer.decode(first.input_ids[1:-1]) == "the dog is an animal."
    assert all(len(store[i]) <= 10 for i in range(len(store)))
    assert len(store[2]) == 10  # the truncated unit fills the instance
    assert (first.entity_ids == -1).all()
    assert [int(store[i].doc) for i in range(len(store))] == [0, 0, 1, 2, 2]
    assert c["tokens"] == sum(len(store[i]) for i in range(len(store)))


def test_pairs_and_split_by_document(tokenizer, tmp_path: Path) -> None:
    docs = [Document("d", [Unit("a dog ."), Unit("a cat ."), Unit("a bird .")])]
    store = _prepare(tokenizer, tmp_path, docs, max_length=16, segments="pair")
    x = store[0]
    words = [WORDS[i] for i in x.input_ids]
    assert words == ["[CLS]", "a", "dog", ".", "[SEP]", "a", "cat", ".", "a", "bird", ".", "[SEP]"]
    assert x.sep == 4
    store = _prepare(tokenizer, tmp_path / "s", _docs(), max_length=10)
    train, held = store.split(0.34, seed=0)
    held_docs = {int(store.docs[i]) for i in held}
    assert len(held_docs) == 1 and held_docs.isdisjoint(int(store.docs[i]) for i in train)


def test_entities_on_the_first_wordpiece(root: Path, tokenizer, tmp_path: Path) -> None:
    linker = EntityLinker(root / "kg" / "graph", cache_dir=tmp_path / "linker")
    docs = [Document("d", [Unit("the dog lives in a house ."), Unit("nothing : here .")])]
    store = _prepare(
        tokenizer, tmp_path, docs, max_length=16, linker=linker, link=linker.identity()
    )
    x = store[0]
    graph = linker.graph
    words = [WORDS[i] for i in x.input_ids]
    by_word = {words[i]: int(e) for i, e in enumerate(x.entity_ids) if e >= 0}
    assert by_word == {"dog": graph.node_id("dog"), "house": graph.node_id("house")}
    assert store.counts["entities"] == 2 and store.counts["units_without_entities"] == 1


def test_cache_reused_invalidated_and_resumable(tokenizer, tmp_path: Path, monkeypatch) -> None:
    docs = _docs()
    first = _prepare(tokenizer, tmp_path, docs, shard_documents=1)
    assert len(first.manifest["shards"]) == 3
    stamp = (first.path / "manifest.json").stat().st_mtime_ns
    again = _prepare(tokenizer, tmp_path, [], shard_documents=1)  # cached: documents unused
    assert again.path == first.path
    assert (again.path / "manifest.json").stat().st_mtime_ns == stamp
    other = _prepare(tokenizer, tmp_path, docs, max_length=12, shard_documents=1)
    assert other.path != first.path  # max_length is part of the key

    # an interrupted preparation resumes at the first missing shard
    calls: list[str] = []
    real = inst._write_shard

    def failing(path: Path, arrays) -> None:
        calls.append(path.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(path, arrays)

    monkeypatch.setattr(inst, "_write_shard", failing)
    with pytest.raises(KeyboardInterrupt):
        _prepare(tokenizer, tmp_path, docs, max_length=14, shard_documents=1)
    monkeypatch.setattr(inst, "_write_shard", lambda p, a: (calls.append(p.name), real(p, a)))
    done = _prepare(tokenizer, tmp_path, docs, max_length=14, shard_documents=1)
    assert calls == [
        "shard-00000.safetensors",
        "shard-00001.safetensors",
        "shard-00001.safetensors",
        "shard-00002.safetensors",
    ]
    reference = _prepare(tokenizer, tmp_path / "ref", docs, max_length=14)
    assert done.counts == reference.counts
    assert (done.input_ids == reference.input_ids).all()
    assert not done.path.with_name(done.path.name + ".partial").exists()


def test_two_preparations_of_one_cache_take_turns(tokenizer, tmp_path: Path) -> None:
    """Two processes preparing the same instances (two pretraining runs side by side): the
    second waits and loads the first one's store instead of writing into its partial."""
    key = instance_key({"test": "corpus"}, tokenizer, 10, "single", None)
    stores, errors = [], []

    def prepare() -> None:
        try:
            stores.append(
                prepare_instances(
                    _docs(), tokenizer, key=key, cache_dir=tmp_path, shard_documents=1
                )
            )
        except BaseException as exc:  # noqa: BLE001 -- re-raised by the test below
            errors.append(exc)

    with output_lock(inst.instance_dir(key, tmp_path)):
        threads = [threading.Thread(target=prepare) for _ in range(2)]
        for thread in threads:
            thread.start()
        threads[0].join(1.0)
        assert not stores
    for thread in threads:
        thread.join(60)
    assert not errors and len(stores) == 2
    assert stores[0].path == stores[1].path
    assert (stores[0].input_ids == stores[1].input_ids).all() and len(stores[0]) == 5


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_cache_integrity(tokenizer, tmp_path: Path, caplog) -> None:
    """A cached store whose shard or manifest is not what was written is prepared again
    (with a warning), never trained on; loading it directly is refused."""
    reference = _prepare(tokenizer, tmp_path / "ref")
    store = _prepare(tokenizer, tmp_path)
    shard = store.path / store.manifest["shards"][0]
    _flip_byte(shard, shard.stat().st_size - 3)  # an array byte, not the header
    with pytest.raises(inst.KelmError, match="checksum does not match the manifest"):
        inst.InstanceStore.load(store.path)
    again = _prepare(tokenizer, tmp_path)
    assert "preparing it again" in caplog.text
    assert (again.input_ids == reference.input_ids).all()
    assert (again.entity_ids == reference.entity_ids).all()

    # an edited count (the manifest's checksum is the digest of its fields)
    manifest = again.path / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"documents": 3', '"documents": 30'))
    with pytest.raises(inst.KelmError, match="recorded checksum"):
        inst.InstanceStore.load(again.path)
    assert _prepare(tokenizer, tmp_path).counts == reference.counts


def test_a_damaged_partial_shard_is_prepared_again(tokenizer, tmp_path: Path, monkeypatch):
    """Resuming takes a shard of the interrupted preparation only when it is the one its
    record names."""
    docs = _docs()
    real = inst._write_shard
    calls: list[str] = []

    def stop_at_second(path: Path, arrays) -> None:
        calls.append(path.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(path, arrays)

    monkeypatch.setattr(inst, "_write_shard", stop_at_second)
    with pytest.raises(KeyboardInterrupt):
        _prepare(tokenizer, tmp_path, docs, shard_documents=1)
    (partial,) = (tmp_path / "instances").glob("*.partial")
    shard = partial / "shard-00000.safetensors"
    _flip_byte(shard, shard.stat().st_size - 3)
    calls.clear()
    monkeypatch.setattr(inst, "_write_shard", lambda p, a: (calls.append(p.name), real(p, a)))
    done = _prepare(tokenizer, tmp_path, docs, shard_documents=1)
    assert calls[0] == "shard-00000.safetensors"  # redone, not taken as finished
    reference = _prepare(tokenizer, tmp_path / "ref", docs, shard_documents=1)
    assert (done.input_ids == reference.input_ids).all()
