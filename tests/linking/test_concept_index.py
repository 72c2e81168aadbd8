"""The on-disk index cache: reused, pickle-free, keyed by graph, lemma source and options."""

from __future__ import annotations

import numpy as np

from kelm.linking.concept_index import ConceptIndex, cache_key
from kelm.linking.linker import Linker
from kelm.linking.options import LinkerOptions


def test_cache_is_reused_and_pickle_free(graph, nlp, tmp_path, monkeypatch):
    first = Linker(graph, nlp, cache_dir=tmp_path)
    files = sorted(p.name for p in next(tmp_path.iterdir()).iterdir())
    assert files and all(f.endswith((".npy", ".json")) for f in files)
    for f in files:
        if f.endswith(".npy"):
            np.load(next(tmp_path.iterdir()) / f, allow_pickle=False)

    def no_build(*args, **kwargs):
        raise AssertionError("index rebuilt although cached")

    monkeypatch.setattr(ConceptIndex, "build", no_build)
    second = Linker(graph, nlp, cache_dir=tmp_path)
    assert second.index.vocab == first.index.vocab
    assert np.array_equal(second.table.hashes, first.table.hashes)


def test_cache_key_covers_options(graph, nlp, tmp_path):
    Linker(graph, nlp, cache_dir=tmp_path)
    Linker(graph, nlp, LinkerOptions(max_ngram=3), cache_dir=tmp_path)
    Linker(graph, nlp, LinkerOptions(blacklist=("dog",)), cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 3


def test_corrupt_cache_is_rebuilt(graph, nlp, tmp_path, names_of):
    Linker(graph, nlp, cache_dir=tmp_path)
    directory = next(tmp_path.iterdir())
    (directory / "table.hashes.npy").write_bytes(b"garbage")
    linker = Linker(graph, nlp, cache_dir=tmp_path)
    assert names_of(linker, nlp("a dog")) == [("dog", ["dog"])]


def test_modified_cache_is_rebuilt(graph, nlp, tmp_path, names_of, monkeypatch):
    """A cache file that still parses but is not what was written (a flipped byte in the
    vocabulary) used to be loaded: every file is checked against its recorded sha256."""
    Linker(graph, nlp, cache_dir=tmp_path)
    directory = next(tmp_path.iterdir())
    target = directory / "vocab.data.npy"
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0x01
    target.write_bytes(bytes(raw))
    built: list[bool] = []
    real_build = ConceptIndex.build.__func__  # type: ignore[attr-defined]

    def counting_build(cls, *args, **kwargs):
        built.append(True)
        return real_build(cls, *args, **kwargs)

    monkeypatch.setattr(ConceptIndex, "build", classmethod(counting_build))
    linker = Linker(graph, nlp, cache_dir=tmp_path)
    assert built == [True] and names_of(linker, nlp("a dog")) == [("dog", ["dog"])]
    Linker(graph, nlp, cache_dir=tmp_path)
    assert built == [True]  # the rebuilt cache is intact and reused


def test_key_records_graph_and_lemma_source(graph, nlp):
    key = cache_key(graph, nlp, LinkerOptions())
    assert key["graph_checksum"] == graph.checksum
    assert key["lemma_source"]["lookup"].startswith("spacy-lookups-data==")
    assert key["options"]["max_ngram"] == 5
