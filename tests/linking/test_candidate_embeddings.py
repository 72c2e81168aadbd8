"""Candidate texts and their embeddings: the recipe, the lazy on-disk cache (shards reused,
damaged shards re-embedded, merging, the manifest), keyed on graph, encoder and recipe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kelm.graph.index import GraphIndex
from kelm.linking import candidate_embeddings as ce
from kelm.linking.candidate_embeddings import CandidateEmbeddings, candidate_text
from kelm.linking.sentence_encoder import SentenceEncoder

VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "bank",
    "river",
    "money",
    "sloping",
    "land",
    "dog",
    "cat",
    "animal",
]


class CountingEncoder(SentenceEncoder):
    """A tiny random BERT that counts the texts it embeds."""

    def __init__(self, model_id: str = "tiny") -> None:
        import torch
        from transformers import BertConfig, BertModel, BertTokenizer

        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=len(VOCAB),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=128,
        )
        tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)})
        super().__init__(
            model=BertModel(config).eval(), tokenizer=tokenizer, model_id=model_id, device="cpu"
        )
        self.embedded = 0

    def encode(self, texts, *args, **kwargs):
        self.embedded += len(texts)
        return super().encode(texts, *args, **kwargs)


def test_candidate_text(wordnet_excerpt, graph) -> None:
    wordnet = GraphIndex.load(wordnet_excerpt)
    bank = candidate_text(wordnet, wordnet.node_id("bank.n.01"))
    assert bank.startswith("bank: sloping land") and '"' in bank  # gloss and its examples
    money = candidate_text(wordnet, wordnet.node_id("depository_financial_institution.n.01"))
    assert money.startswith("depository financial institution, bank, banking company, banking")
    # a graph without node texts: the names of some neighbours
    dog = candidate_text(graph, graph.node_id("dog"))
    assert dog.startswith("dog: ") and "animal" in dog and "house" in dog


def test_lazy_cache_reused_across_instances(wordnet_excerpt, tmp_path) -> None:
    graph = GraphIndex.load(wordnet_excerpt)
    encoder = CountingEncoder()
    first = CandidateEmbeddings(graph, encoder, tmp_path)
    nodes = np.array([3, 7, 7, 1])
    vectors = first.vectors(nodes)
    assert vectors.shape == (4, 16) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(1.0, abs=1e-2)
    assert encoder.embedded == 3  # each text once
    first.vectors(np.array([1, 3]))
    assert encoder.embedded == 3  # in memory
    assert ce.cache_info(first)["rows"] == 3

    again = CountingEncoder()
    second = CandidateEmbeddings(graph, again, tmp_path)
    np.testing.assert_array_equal(second.vectors(nodes), vectors)
    assert again.embedded == 0  # read from the shard on disk
    second.vectors(np.array([1, 2]))
    assert again.embedded == 1  # only the new one
    assert len(list(second.directory.glob("part-*.safetensors"))) == 2

    other = CandidateEmbeddings(graph, CountingEncoder("other model"), tmp_path)
    assert other.directory != first.directory  # keyed on the encoder too


def test_damaged_shard_is_embedded_again(wordnet_excerpt, tmp_path) -> None:
    graph = GraphIndex.load(wordnet_excerpt)
    first = CandidateEmbeddings(graph, CountingEncoder(), tmp_path)
    expected = first.vectors(np.array([0, 1]))
    (shard,) = first.directory.glob("part-*.safetensors")
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0x01
    shard.write_bytes(bytes(raw))
    encoder = CountingEncoder()
    second = CandidateEmbeddings(graph, encoder, tmp_path)
    np.testing.assert_allclose(second.vectors(np.array([0, 1])), expected, atol=1e-3)
    assert encoder.embedded == 2


def test_shards_are_merged(wordnet_excerpt, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(ce, "MAX_SHARDS", 2)
    graph = GraphIndex.load(wordnet_excerpt)
    embeddings = CandidateEmbeddings(graph, CountingEncoder(), tmp_path)
    for node in range(4):
        embeddings.vectors(np.array([node]))
    shards = list(embeddings.directory.glob("part-*.safetensors"))
    assert len(shards) <= 2
    encoder = CountingEncoder()
    fresh = CandidateEmbeddings(graph, encoder, tmp_path)
    fresh.vectors(np.arange(4))
    assert encoder.embedded == 0


def test_embed_all_and_read_only_cache(wordnet_excerpt, tmp_path) -> None:
    graph = GraphIndex.load(wordnet_excerpt)
    encoder = CountingEncoder()
    embeddings = CandidateEmbeddings(graph, encoder, tmp_path)
    embeddings.embed_all()
    assert encoder.embedded == graph.num_nodes
    embeddings.vectors(np.arange(graph.num_nodes))
    assert encoder.embedded == graph.num_nodes

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    readonly = CandidateEmbeddings(graph, CountingEncoder(), blocked)
    assert readonly.vectors(np.array([0, 1])).shape == (2, 16)  # works, caches nothing


def test_manifest_checked_once_per_instance_and_restored(wordnet_excerpt, tmp_path) -> None:
    graph = GraphIndex.load(wordnet_excerpt)
    first = CandidateEmbeddings(graph, CountingEncoder(), tmp_path)
    checks = []
    check = first._manifest_matches
    first._manifest_matches = lambda: checks.append(1) or check()  # type: ignore[method-assign]
    for node in range(3):
        first.vectors(np.array([node]))
    assert len(checks) == 1  # three shards written, the manifest read once
    manifest = first.directory / "manifest.json"
    manifest.write_text("{}")  # damaged: its shards are not trusted
    encoder = CountingEncoder()
    second = CandidateEmbeddings(graph, encoder, tmp_path)
    second.vectors(np.array([0, 3]))
    assert encoder.embedded == 2 and json.loads(manifest.read_text()) == second.key
    fresh = CountingEncoder()
    CandidateEmbeddings(graph, fresh, tmp_path).vectors(np.arange(4))
    assert fresh.embedded == 0
