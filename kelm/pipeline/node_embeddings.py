"""Text embeddings of a graph's node names: the initial node (entity) table of graph models that
start from what the names say, cached per graph checksum and encoder."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kelm._io import atomic_file, replace_file, sha256_file, verify_file
from kelm.pipeline.graph import GraphResources

log = logging.getLogger(__name__)


def tensors_digest(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """sha256 over named tensors (names, shapes, dtypes, bytes), in name order."""
    h = hashlib.sha256()
    for name, tensor in sorted(named, key=lambda kv: kv[0]):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        # flat first: a 0-dim tensor cannot be viewed as bytes (the same bytes otherwise)
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def state_digest(module: nn.Module) -> str:
    """sha256 over a module's state dict (:func:`tensors_digest`)."""
    return tensors_digest(module.state_dict().items())


def node_name_embeddings(
    graph: GraphResources,
    encoder: nn.Module | None,
    tokenizer: Any,
    source: str | None = None,
    *,
    device: str = "cpu",
    progress: bool = False,
) -> torch.Tensor:
    """Text embeddings of the graph's node names, ``[num_nodes, H]`` float32, cached per graph
    checksum and encoder.

    With a local encoder folder (the bundled MiniLM included) these are the mean-pooled,
    L2-normalised sentence embeddings of the node labels that the retrieval's cosine scorer
    computes and caches (:meth:`kelm.retrieval.scoring.CosineScorer.node_embeddings`, in its
    shared cache ``$KELM_CACHE/retrieval``, keyed on graph checksum and model): the graph's
    names are embedded once for ``kelm retrieve`` and every training run. Otherwise
    (a hub name) the in-memory ``encoder`` embeds them (:func:`kelm.modeling.embed_node_names`)
    into ``<cache>/node-emb/``, with a sidecar ``.sha256`` file written after the tensors: a
    cached file that is not what was written (or has no sidecar) is computed again, with a
    warning, as the scorer's cache is.

    ``device`` embeds names missing from the scorer's cache (``cuda``: seconds for CN-100K's
    78k names, where 2 CPU cores take minutes); the cache is keyed on the encoder, not on it.
    """
    if source is not None and Path(source).is_dir():
        from kelm.retrieval.scoring import CosineScorer, SentenceEncoder

        scorer = CosineScorer(
            graph.index,
            SentenceEncoder(source, device=device),
            cache_dir=None,  # the scorer's shared cache: reused across runs and `kelm retrieve`
            progress=progress,
        )
        return torch.from_numpy(np.asarray(scorer.node_embeddings(), dtype=np.float32))

    from safetensors.torch import load_file, save_file

    from kelm.modeling import embed_node_names, load_text_encoder

    if encoder is None:
        encoder = load_text_encoder(source)
    key = f"{graph.index.checksum[:16]}-{state_digest(encoder)[:16]}"
    path = graph.cache / "node-emb" / f"{key}.safetensors"
    sidecar = path.with_name(path.name + ".sha256")
    if path.is_file():
        try:
            expected = sidecar.read_text(encoding="ascii").strip()
            verify_file(path, expected, what="node embedding cache", error=ValueError)
            vectors = load_file(str(path))["names"]
            if vectors.shape[0] == graph.index.num_nodes:
                return vectors
        except Exception as exc:  # a damaged cache entry is recomputed
            log.warning("%s: unusable node embedding cache (%s); recomputing", path, exc)
    log.info("embedding %d node names", graph.index.num_nodes)
    names = graph.index.names.to_list()
    # Batches of similar lengths pad little: embed in length order, then put rows back.
    order = sorted(range(len(names)), key=lambda i: (len(names[i]), i))
    sorted_vectors = embed_node_names(
        [names[i] for i in order], encoder, tokenizer, batch_size=128, max_length=16
    )
    vectors = torch.empty_like(sorted_vectors)
    vectors[torch.tensor(order, dtype=torch.long)] = sorted_vectors
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{time.time_ns()}")
    save_file({"names": vectors.contiguous()}, str(tmp))
    replace_file(tmp, path)
    with atomic_file(sidecar, "w") as fh:
        fh.write(sha256_file(path) + "\n")
    return vectors


__all__ = ["node_name_embeddings", "state_digest", "tensors_digest"]
