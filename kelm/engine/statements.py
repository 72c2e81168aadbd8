"""Statement vectors of a frozen text encoder, computed once and reused.

While the text encoder is frozen (``optim.unfreeze_epoch`` / ``optim.freeze_lm_steps``), a
model that reads the text only through one pooled vector per statement (lm, kagnet, qagnn, gsc:
:attr:`~kelm.modeling.families.ModelFamily.reuses_statement_vectors`) gets the same vector for a
statement in every epoch. The loop computes the vectors once, in evaluation mode (no dropout: a
frozen encoder is a fixed feature extractor), and hands them to the model
(``statement_vectors``), so a frozen epoch costs the graph module and the head only.

The vectors are cached on disk under ``$KELM_CACHE/statements/``, keyed on everything that
changes them: the encoder's weights (sha256 of its state dict), the pooling, and the tokens of
every statement (ids, segment ids, order).
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

from kelm.engine.batching import move_to
from kelm.paths import cache_dir as default_cache_dir
from kelm.pipeline import Collator, Example
from kelm.pipeline.node_embeddings import state_digest

log = logging.getLogger(__name__)


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
def compute_statement_vectors(
    model: nn.Module,
    examples: Sequence[Example],
    collator: Collator,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> list[torch.Tensor]:
    """The encoder's statement vectors of every example (``[num_choices, H]`` float32 each),
    with the text encoder in evaluation mode."""
    from tqdm.auto import tqdm

    encoder = model.text_encoder  # type: ignore[attr-defined]
    was_training = encoder.training
    encoder.eval()
    # Length-sorted batches pad little; the text alone is collated (no graphs or paths).
    order = sorted(range(len(examples)), key=lambda i: (max(map(len, examples[i].input_ids)), i))
    out: list[torch.Tensor | None] = [None] * len(examples)
    try:
        bar = tqdm(total=len(order), desc="statement vectors", unit="q", disable=not progress)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            text_only = [
                replace(examples[i], graphs=None, paths=None, statement_vectors=None) for i in idx
            ]
            batch = move_to(collator(text_only), device)
            vectors, c = model.encode_statements(  # type: ignore[attr-defined]
                batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")
            )  # [B * C, H]
            vectors = vectors.float().cpu().view(len(idx), c, -1)  # [B, C, H]
            for row, i in enumerate(idx):
                out[i] = vectors[row, : examples[i].num_choices].clone()
            bar.update(len(idx))
        bar.close()
    finally:
        encoder.train(was_training)
    return [v for v in out if v is not None]


def statement_vectors(
    model: nn.Module,
    examples: Sequence[Example],
    collator: Collator,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    cache: bool = True,
    progress: bool = False,
) -> list[torch.Tensor]:
    """:func:`compute_statement_vectors`, cached on disk (see the module docstring).

    A damaged or mismatched cache entry is recomputed; entries are written atomically.
    """
    if not examples:
        return []
    if not cache:
        return compute_statement_vectors(
            model, examples, collator, batch_size=batch_size, device=device, progress=progress
        )
    from safetensors.torch import load_file, save_file

    pooling = str(getattr(model.config, "pooling", ""))  # type: ignore[union-attr]
    key = hashlib.sha256(
        "|".join(
            [state_digest(model.text_encoder), pooling, tokens_digest(examples)]  # type: ignore[arg-type]
        ).encode()
    ).hexdigest()[:32]
    path = default_cache_dir() / "statements" / f"{key}.safetensors"
    counts = [e.num_choices for e in examples]
    if path.is_file():
        try:
            flat = load_file(str(path))["vectors"]
            if flat.shape[0] == sum(counts):
                return list(torch.split(flat, counts))
            log.warning("%s: statement vector cache does not fit, recomputing", path)
        except Exception:  # a damaged cache entry is recomputed
            log.warning("%s: unreadable statement vector cache, recomputing", path)
    vectors = compute_statement_vectors(
        model, examples, collator, batch_size=batch_size, device=device, progress=progress
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{time.time_ns()}")
    save_file({"vectors": torch.cat(vectors).contiguous()}, str(tmp))
    tmp.replace(path)
    return vectors


def with_statement_vectors(
    examples: Sequence[Example], vectors: Sequence[torch.Tensor] | None
) -> list[Example]:
    """Copies of ``examples`` carrying ``vectors`` (``None``: without vectors)."""
    if vectors is None:
        return [replace(e, statement_vectors=None) for e in examples]
    return [replace(e, statement_vectors=v) for e, v in zip(examples, vectors, strict=True)]


__all__ = [
    "compute_statement_vectors",
    "statement_vectors",
    "tokens_digest",
    "with_statement_vectors",
]
