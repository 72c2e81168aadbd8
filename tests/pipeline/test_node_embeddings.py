"""The node-name embedding cache of an in-memory encoder (``<cache>/node-emb``): reused when
it is what was written, computed again (with a warning) when its tensors are not what the
sidecar sha256 records or have no sidecar."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import kelm.modeling as modeling
from kelm.graph.index import GraphIndex
from kelm.pipeline.graph import GraphResources
from kelm.pipeline.node_embeddings import node_name_embeddings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from training_fixtures import build_graph, save_encoder  # noqa: E402


def test_a_modified_cache_is_computed_again(tmp_path: Path, monkeypatch, caplog) -> None:
    from transformers import AutoModel, AutoTokenizer

    path = build_graph(tmp_path / "kg")
    graph = GraphResources(path, GraphIndex.load(path), tmp_path / "cache")
    folder = save_encoder(tmp_path / "encoder")
    encoder, tokenizer = AutoModel.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    first = node_name_embeddings(graph, encoder, tokenizer)
    (cached,) = (graph.cache / "node-emb").glob("*.safetensors")
    assert cached.with_name(cached.name + ".sha256").is_file()

    calls: list[int] = []
    real = modeling.embed_node_names

    def counting(names, *args, **kwargs):
        calls.append(len(names))
        return real(names, *args, **kwargs)

    monkeypatch.setattr(modeling, "embed_node_names", counting)
    assert torch.equal(node_name_embeddings(graph, encoder, tokenizer), first)
    assert calls == []  # reused

    data = bytearray(cached.read_bytes())
    data[-2] ^= 0x40  # a byte of the last vector, not the header
    cached.write_bytes(bytes(data))
    assert torch.equal(node_name_embeddings(graph, encoder, tokenizer), first)
    assert calls == [graph.index.num_nodes]
    assert "unusable node embedding cache" in caplog.text

    cached.with_name(cached.name + ".sha256").unlink()  # written by an older kelm
    assert torch.equal(node_name_embeddings(graph, encoder, tokenizer), first)
    assert len(calls) == 2
