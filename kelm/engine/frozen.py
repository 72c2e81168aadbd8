"""What a frozen text encoder computes, computed once and reused.

While the encoder is frozen (``optim.unfreeze_epoch`` / ``optim.freeze_lm_steps``), its output
for a statement is the same in every epoch. A model family that can take that output as an
input (:attr:`~kelm.modeling.families.ModelFamily.frozen_input`) gets it computed once, in
evaluation mode (no dropout: a frozen encoder is a fixed feature extractor):

* lm, kagnet, qagnn, gsc: the pooled statement vector (``statement_vectors``, ``[C, H]`` per
  question), so a frozen epoch costs the graph module and the head only;
* ernie: the T-Encoder's token states (``t_encoder_states``, ``[C, L, H]``), so a frozen epoch
  runs the knowledge-fused top layers only.

The model says what its frozen part is (``frozen_parameters()``) and computes the features
(``frozen_features()``). Small features (statement vectors) are cached on disk under
``$KELM_CACHE/frozen/``, keyed on everything that changes them: what is computed (the model's
``frozen_feature_kind``: the families that read statement vectors share them), the frozen
weights (sha256), the pooling, and the tokens of every statement (ids, segment ids, order);
token states stay in memory.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from kelm._io import replace_file
from kelm.engine.batching import move_to
from kelm.paths import cache_dir as default_cache_dir
from kelm.pipeline import Collator, Example
from kelm.pipeline.node_embeddings import tensors_digest

log = logging.getLogger(__name__)

DISK_CACHE_MAX_NUMEL = 8192
"""Features of at most this many numbers per statement are cached on disk."""


def tokens_digest(examples: Sequence[Example]) -> str:
    """sha256 over the tokens of every statement (ids and segment ids), in order."""
    h = hashlib.sha256()
    for e in examples:
        h.update(f"{len(e.input_ids)}|".encode())
        for k, ids in enumerate(e.input_ids):
            h.update(np.asarray(ids, dtype=np.int64).tobytes() + b"|")
            if e.token_type_ids is not None:
                h.update(np.asarray(e.token_type_ids[k], dtype=np.int64).tobytes())
            h.update(b";")
    return h.hexdigest()


@torch.no_grad()
def compute_frozen_features(
    model: nn.Module,
    examples: Sequence[Example],
    collator: Collator,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> list[torch.Tensor]:
    """``model.frozen_features`` of every example (float32, ``[num_choices, ...]`` each; token
    states cut to the example's longest statement), with the model in evaluation mode."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    # Length-sorted batches pad little; the text alone is collated (no graphs or paths).
    order = sorted(range(len(examples)), key=lambda i: (max(map(len, examples[i].input_ids)), i))
    out: list[torch.Tensor | None] = [None] * len(examples)
    try:
        bar = tqdm(total=len(order), desc="frozen encoder", unit="q", disable=not progress)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            text_only = [
                replace(examples[i], graphs=None, paths=None, entity_ids=None, frozen=None)
                for i in idx
            ]
            batch = move_to(collator(text_only), device)
            b, c, length = batch["input_ids"].shape
            features = model.frozen_features(  # type: ignore[operator]
                batch["input_ids"].view(-1, length),
                batch["attention_mask"].view(-1, length),
                batch["token_type_ids"].view(-1, length) if "token_type_ids" in batch else None,
            )  # [B * C, ...]
            features = features.float().cpu().view(b, c, *features.shape[1:])
            for row, i in enumerate(idx):
                e = examples[i]
                f = features[row, : e.num_choices]
                if f.dim() == 3:  # token states: this example's length
                    f = f[:, : max(map(len, e.input_ids))]
                out[i] = f.clone()
            bar.update(len(idx))
        bar.close()
    finally:
        model.train(was_training)
    return [f for f in out if f is not None]


def frozen_features(
    model: nn.Module,
    examples: Sequence[Example],
    collator: Collator,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    cache: bool = True,
    progress: bool = False,
) -> list[torch.Tensor]:
    """:func:`compute_frozen_features`, small ones cached on disk (see the module docstring).

    A damaged or mismatched cache entry is recomputed; entries are written atomically.
    """
    if not examples:
        return []

    def compute() -> list[torch.Tensor]:
        return compute_frozen_features(
            model, examples, collator, batch_size=batch_size, device=device, progress=progress
        )

    numel = int(getattr(model, "frozen_feature_numel", DISK_CACHE_MAX_NUMEL + 1))
    if not cache or numel > DISK_CACHE_MAX_NUMEL:
        return compute()
    from safetensors.torch import load_file, save_file

    pooling = str(getattr(model.config, "pooling", ""))  # type: ignore[union-attr]
    frozen = tensors_digest(model.frozen_named_parameters())  # type: ignore[operator]
    # keyed on what is computed, not on the model class: lm, kagnet, qagnn and gsc on one
    # encoder share their statement vectors
    kind = str(getattr(model, "frozen_feature_kind", type(model).__name__))
    parts = [kind, frozen, pooling, tokens_digest(examples)]
    key = hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]
    path = default_cache_dir() / "frozen" / f"{key}.safetensors"
    counts = [e.num_choices for e in examples]
    if path.is_file():
        try:
            flat = load_file(str(path))["features"]
            if flat.shape[0] == sum(counts):
                return list(torch.split(flat, counts))
            log.warning("%s: frozen feature cache does not fit, recomputing", path)
        except Exception:  # a damaged cache entry is recomputed
            log.warning("%s: unreadable frozen feature cache, recomputing", path)
    features = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{time.time_ns()}")
    save_file({"features": torch.cat(features).contiguous()}, str(tmp))
    replace_file(tmp, path)
    return features


def with_frozen_features(
    examples: Sequence[Example], features: Sequence[torch.Tensor] | None
) -> list[Example]:
    """Copies of ``examples`` carrying ``features`` (``None``: without)."""
    if features is None:
        return [replace(e, frozen=None) for e in examples]
    return [replace(e, frozen=f) for e, f in zip(examples, features, strict=True)]


__all__ = [
    "compute_frozen_features",
    "frozen_features",
    "tokens_digest",
    "with_frozen_features",
]
