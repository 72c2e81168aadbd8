"""A new model for a training run: the family's tokenizer and builder
(:mod:`kelm.modeling.families`) with the node (entity) table initialised from KG embeddings, from
text embeddings of the node names, or left random."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from kelm.errors import KelmError
from kelm.pipeline.graph import GraphResources
from kelm.training.config import TrainConfig

log = logging.getLogger(__name__)


def _check_local_sources(cfg: TrainConfig) -> None:
    """A ``model.encoder`` / ``model.tokenizer`` that is a local path (a hub id has at most one
    ``/``) must exist: say so, rather than let the hub client reject it as a repository id."""
    for key in ("encoder", "tokenizer"):
        name = getattr(cfg.model, key)
        if not name or Path(name).exists():
            continue
        if name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith(".gguf"):
            raise KelmError(
                f"config: model.{key} {name!r} does not exist (a pretraining run's output? run "
                "the `kelm pretrain` config named in the training config's comments first)"
            )


def run_tokenizer(cfg: TrainConfig) -> Any:
    """The run's tokenizer, as its family loads it (``gpt``: the causal LM's, with the GPT-1
    transfer tokens added)."""
    _check_local_sources(cfg)
    return cfg.family.load_tokenizer(cfg.model.tokenizer or cfg.model.encoder)


def _bad_model_settings(exc: Exception) -> KelmError:
    """The one-line error for a model class that refused the settings: the last line of its
    message (a strict config's validation error runs over several lines)."""
    detail = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else ""
    return KelmError(f"config: bad model settings ({detail})")


def build_model(
    cfg: TrainConfig, tokenizer: Any, graph: GraphResources | None, *, progress: bool = False
) -> nn.Module:
    """A new model of ``cfg.model.type`` on the pretrained text encoder; families with a graph
    get a node (entity) table of the graph's size, initialised per ``cfg.model.node_init``.

    Raises:
        KelmError: bad model settings, unloadable encoder or KG embeddings.
    """
    from huggingface_hub.errors import StrictDataclassError

    from kelm.modeling import BuildContext, resolve_encoder
    from kelm.modeling.causal_lm import check_positions

    family, m = cfg.family, cfg.model
    source = resolve_encoder(m.encoder)
    context = BuildContext(
        encoder=source,
        tokenizer=tokenizer,
        max_length=cfg.data.max_length,
        max_hops=cfg.graph.hops,
    )
    if family.needs_graph:
        assert graph is not None, f"{family.name} is built with its graph"
        context = replace(context, graph=graph.index)
        if family.node_table:  # no KG embeddings or name embeddings loaded for nothing
            context = _with_node_table(cfg, context, graph, progress=progress)
    try:
        model = family.build(m, context)
    except (ValueError, TypeError, StrictDataclassError) as exc:
        raise _bad_model_settings(exc) from None
    check_positions(getattr(model, "text_encoder", model), cfg.data.max_length, "text encoder")
    return model


def _with_node_table(
    cfg: TrainConfig, context: Any, graph: GraphResources, *, progress: bool
) -> Any:
    """``context`` with the graph, the node table's width and its initialisation."""
    m = cfg.model
    init = m.node_init
    if init == "auto":
        init = "kge" if m.kge_dir else cfg.family.default_node_init
    kge = None
    if init == "kge":
        from kelm.kge import load_embeddings

        kge = load_embeddings(m.kge_dir, graph.index)  # type: ignore[arg-type]
        node_dim = int(kge.entity.shape[1])
    elif init == "graph":
        kge = graph_embeddings(cfg, graph, progress=progress)
        node_dim = int(kge.entity.shape[1])
    elif init == "names":
        from transformers import AutoConfig

        node_dim = int(AutoConfig.from_pretrained(context.encoder).hidden_size)
    else:
        node_dim = m.node_dim

    def init_nodes(model: nn.Module, set_table: Any) -> None:
        if kge is not None:
            set_table(kge.entity_features(), freeze=m.freeze_node_embeddings)
        elif init == "names":
            from kelm.pipeline.node_embeddings import node_name_embeddings

            vectors = node_name_embeddings(
                graph, model.text_encoder, context.tokenizer, context.encoder, progress=progress
            )
            set_table(vectors, freeze=m.freeze_node_embeddings)

    return replace(context, node_dim=node_dim, kge=kge, init_nodes=init_nodes)


def graph_embeddings(
    cfg: TrainConfig, graph: GraphResources, *, progress: bool = False, device: str = "cpu"
) -> Any:
    """KG embeddings of the run's graph (``model.node_init: graph``), trained once with
    :func:`kelm.kge.embed_kg` and cached under ``<graph cache>/kge/``, keyed on the graph
    checksum and every training setting (model, width, epochs and the model defaults that
    :meth:`~kelm.kge.KGEConfig.resolved` fills in; seed 0). ``device`` trains missing ones
    (``cuda``: seconds); like the thread count, it is not part of the key."""
    from kelm.kge import KGEConfig, embed_kg, load_embeddings

    m = cfg.model
    epochs = m.kge_epochs or kge_auto_epochs(graph.index.num_edges)
    kge_cfg = KGEConfig(model=m.kge_model, dim=m.kge_dim, epochs=epochs, seed=0).resolved()
    settings = {k: v for k, v in kge_cfg.to_dict().items() if k != "threads"}
    key = hashlib.sha256(
        json.dumps([graph.index.checksum, settings], sort_keys=True).encode()
    ).hexdigest()[:16]
    out = graph.cache / "kge" / f"{m.kge_model}-{key}"
    if not (out / "manifest.json").is_file():
        log.info(
            "training %s graph embeddings of %s (cached in %s)", m.kge_model, graph.index.path, out
        )
        # embed_kg seeds the global generators: keep the run's streams as they were, so a run
        # that trains the embeddings and one that finds them cached give the same numbers
        with preserved_rng():
            embed_kg(graph.index, out, kge_cfg, progress=progress, device=device)
    return load_embeddings(out, graph.index)


KGE_MIN_STEPS = 2000
"""``kge_epochs: null`` trains at least this many batches (and 30 epochs)."""


def kge_auto_epochs(num_edges: int, batch_size: int = 1000) -> int:
    """Epochs of at least :data:`KGE_MIN_STEPS` batches of ``batch_size`` triples, 30 at
    least (CN-100K's 100k edges: 30)."""
    batches = max(1, math.ceil(num_edges / batch_size))
    return max(30, math.ceil(KGE_MIN_STEPS / batches))


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore the torch, numpy and ``random`` generator states on exit."""
    import random

    import numpy as np
    import torch

    states = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


def set_lm_trainable(model: nn.Module, trainable: bool) -> None:
    """Freeze or unfreeze the text encoder: the parameters the model names in
    ``frozen_named_parameters()`` (ERNIE: its T-Encoder), else all of ``model.text_encoder``."""
    named = getattr(model, "frozen_named_parameters", None)
    params = (p for _, p in named()) if named is not None else model.text_encoder.parameters()
    for p in params:
        p.requires_grad_(trainable)


__all__ = ["build_model", "graph_embeddings", "run_tokenizer", "set_lm_trainable"]
