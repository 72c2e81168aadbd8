"""A good start for a new masked-LM head: identity transform, then a short head-only warm-up.

A backbone without MLM head (the bundled MiniLM is a sentence encoder) gets a random head, and
a short pretraining run spends its budget learning one: MLM accuracy is 0 at step 0 and the
first hundreds of steps say nothing about the encoder. Two steps fix that, before the run's
first optimizer step:

1. **Identity start.** The head is ``decoder(LayerNorm(act(dense(h))))`` with the decoder tied
   to the word embeddings; ``dense`` starts as the identity and the output bias at zero, so the
   head scores each token by the dot product of (a normalised) ``h`` with its embedding: the
   encoder's own geometry, instead of a random rotation of it.
2. **Head-only warm-up** (``model.head_warmup_steps``; 0: off). The encoder is frozen, so its
   states at the masked positions of a few training batches are computed once (the objective's
   own masking, from a generator of its own: the run's collate stream is not touched) and the
   head's own parameters (transform and bias; never the tied embeddings) are fitted to them
   with Adam. At step 0 the ERNIE K-Encoder equals its backbone (the fusion starts at zero), so
   ERNIE and its MLM control start from the same head.

The warmed head is kept only if it predicts the held-back features better than the head it
started from (a checkpoint with a trained head keeps its own). It is cached under
``<cache_dir>/mlm_head/<digest>.safetensors``, the digest covering the encoder's weights, the
instances, the masking, the warm-up settings and the head's layout; a second run with the same
key loads it (same values: the warm-up draws nothing from the run's random streams).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from kelm.pipeline.node_embeddings import tensors_digest

log = logging.getLogger(__name__)

WARMUP_VERSION = 2
_HELD_BACK = 0.1  # fraction of the features kept to decide whether the warm-up helped


class _Captured(Exception):  # noqa: N818 - control flow, not an error
    """Raised by the pre-hook: the head's input is all the warm-up needs, so the vocabulary
    projection (the costly ``[B, L, V]`` part) never runs."""


def find_mlm_head(model: nn.Module) -> nn.Module | None:
    """The module that maps token states to vocabulary logits: ERNIE's ``mlm_head``, BERT's
    ``cls.predictions`` (with or without NSP); ``None`` for other layouts."""
    head = getattr(model, "mlm_head", None)
    if isinstance(head, nn.Module):
        return head
    predictions = getattr(getattr(model, "cls", None), "predictions", None)
    return predictions if isinstance(predictions, nn.Module) else None


def _transform_parts(head: nn.Module) -> tuple[nn.Linear | None, nn.Module | None]:
    """The head's dense layer and the module holding its output bias."""
    if isinstance(getattr(head, "dense", None), nn.Linear):  # ErnieMLMHead
        return head.dense, head.decoder  # type: ignore[return-value]
    dense = getattr(getattr(head, "transform", None), "dense", None)  # BERT
    if isinstance(dense, nn.Linear):
        return dense, head
    return None, None


def identity_start(head: nn.Module) -> bool:
    """Dense layer to the identity, output bias to zero (see the module docstring).

    Returns:
        Whether the head's layout was known (else it is left as it is).
    """
    dense, out = _transform_parts(head)
    if dense is None or dense.in_features != dense.out_features:
        return False
    with torch.no_grad():
        dense.weight.copy_(torch.eye(dense.in_features, dtype=dense.weight.dtype))
        if dense.bias is not None:
            dense.bias.zero_()
        bias = getattr(out, "bias", None)
        if isinstance(bias, Tensor):
            bias.zero_()
    return True


def head_parameters(model: nn.Module, head: nn.Module) -> list[nn.Parameter]:
    """The head's own parameters: the decoder weight tied to the word embeddings is the
    encoder's and stays fixed."""
    embeddings = model.get_input_embeddings().weight  # type: ignore[operator]
    seen: set[int] = set()
    out = []
    for param in head.parameters():
        if param is embeddings or id(param) in seen:
            continue
        seen.add(id(param))
        out.append(param)
    return out


def _encoder_digest(model: nn.Module, head: nn.Module) -> str:
    """Digest of every weight outside the head (the features depend on all of them)."""
    head_ids = {id(p) for p in head_parameters(model, head)}
    named = model.state_dict(keep_vars=True).items()
    return tensors_digest((name, p) for name, p in named if id(p) not in head_ids)


def warmup_key(objective: Any, model: nn.Module, head: nn.Module, store_key: Any) -> str:
    """The cache digest: everything that changes the warmed head."""
    cfg = objective.cfg
    key = {
        "version": WARMUP_VERSION,
        "encoder": _encoder_digest(model, head),
        "instances": store_key,
        "masking": vars(cfg.masking),
        "steps": cfg.model.head_warmup_steps,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "head": type(head).__name__,
        "params": [list(p.shape) for p in head_parameters(model, head)],
    }
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@torch.no_grad()
def collect_features(
    objective: Any,
    model: nn.Module,
    head: nn.Module,
    instances: list[Any],
    *,
    batch_size: int,
    max_targets: int,
    seed: int,
) -> tuple[Tensor, Tensor]:
    """The head's inputs at the masked positions of training batches, and their labels.

    Shapes:
        output: ``([N, H], [N])``
    """
    generator = torch.Generator().manual_seed(seed * 7_368_787 + 11)
    captured: list[Tensor] = []

    def grab(_module: nn.Module, args: tuple[Any, ...]) -> None:
        captured.append(args[0])
        raise _Captured

    feats: list[Tensor] = []
    labels: list[Tensor] = []
    total = 0
    order = torch.randperm(len(instances), generator=generator).tolist()
    handle = head.register_forward_pre_hook(grab)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            batch = objective.collate(
                [instances[i] for i in order[start : start + batch_size]], generator
            )
            with contextlib.suppress(_Captured):
                objective.mlm_logits(model, batch)
            states = captured.pop()  # [B, L, H]
            target = batch["labels"] != -100  # [B, L]
            feats.append(states[target].float())
            labels.append(batch["labels"][target])
            total += int(target.sum())
            if total >= max_targets:
                break
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(feats)[:max_targets], torch.cat(labels)[:max_targets]


def _accuracy(head: nn.Module, feats: Tensor, labels: Tensor) -> float:
    if not len(labels):
        return 0.0
    with torch.no_grad():
        right = sum(
            int((head(feats[i : i + 512]).argmax(-1) == labels[i : i + 512]).sum())
            for i in range(0, len(labels), 512)
        )
    return right / len(labels)


def fit_head(
    model: nn.Module,
    head: nn.Module,
    feats: Tensor,
    labels: Tensor,
    *,
    steps: int,
    lr: float = 2e-3,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Adam on the head's own parameters over the features (a fixed order from ``seed``),
    keeping the result only when it beats the starting head on the held-back features.

    Returns:
        ``{"accuracy_before", "accuracy_after", "kept"}`` (held-back top-1 accuracy).
    """
    n = len(labels)
    hold = max(1, int(n * _HELD_BACK)) if n > 1 else 0
    fx, fy, hx, hy = feats[hold:], labels[hold:], feats[:hold], labels[:hold]
    params = head_parameters(model, head)
    start = [p.detach().clone() for p in params]
    before = _accuracy(head, hx, hy)
    generator = torch.Generator().manual_seed(seed * 1_000_033 + 5)
    opt = torch.optim.Adam(params, lr=lr)
    was_training = head.training
    head.train()
    # The tied decoder weight is the encoder's: no gradient may reach it (one left behind
    # would be added to the run's first step).
    own = {id(p) for p in params}
    others = [p for p in head.parameters() if id(p) not in own and p.requires_grad]
    for p in others:
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            idx = torch.randint(len(fy), (min(batch_size, len(fy)),), generator=generator)
            loss = nn.functional.cross_entropy(head(fx[idx]).float(), fy[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        for p in others:
            p.requires_grad_(True)
        head.train(was_training)
    for p in params:  # the Adam state is dropped; no gradient is left behind
        p.grad = None
    after = _accuracy(head, hx, hy)
    kept = after > before
    if not kept:
        with torch.no_grad():
            for p, s in zip(params, start, strict=True):
                p.copy_(s)
    return {"accuracy_before": before, "accuracy_after": after, "kept": float(kept)}


def warm_up_head(
    objective: Any,
    model: nn.Module,
    instances: list[Any],
    *,
    store_key: Any,
    cache_dir: Path,
    max_targets: int = 20_000,
) -> dict[str, Any] | None:
    """Identity start and head-only warm-up of ``model``'s MLM head (cached); see the module
    docstring.

    Returns:
        What was done (``{"cached", "accuracy_before", "accuracy_after", "kept"}``), or
        ``None`` when the model has no head of a known layout or there is nothing to fit.
    """
    from safetensors.torch import load_file, save

    from kelm._io import atomic_file

    cfg = objective.cfg
    steps = int(cfg.model.head_warmup_steps)
    head = find_mlm_head(model)
    if head is None or not steps or not instances:
        return None
    key = warmup_key(objective, model, head, store_key)
    file = cache_dir / "mlm_head" / f"{key}.safetensors"
    params = head_parameters(model, head)
    names = [f"p{i}" for i in range(len(params))]
    if file.is_file():
        saved = load_file(str(file))
        with torch.no_grad():
            for name, p in zip(names, params, strict=True):
                p.copy_(saved[name].to(p.dtype))
        return {"cached": True, **json.loads(file.with_suffix(".json").read_text("utf-8"))}
    start = [p.detach().clone() for p in params]
    identity_start(head)
    feats, labels = collect_features(
        objective,
        model,
        head,
        instances,
        batch_size=max(cfg.batch_size, 32),
        max_targets=max_targets,
        seed=cfg.seed,
    )
    if len(labels) < 2:  # nothing masked to fit (an objective without MLM targets: tinybert)
        with torch.no_grad():
            for p, s in zip(params, start, strict=True):
                p.copy_(s)
        return None
    # The identity start counts as "the head it started from" only if it is better than the
    # loaded head (a checkpoint with a trained head keeps its own).
    identity = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, s in zip(params, start, strict=True):
            p.copy_(s)
    loaded_acc = _accuracy(head, feats, labels)
    with torch.no_grad():
        for p, s in zip(params, identity, strict=True):
            p.copy_(s)
    if _accuracy(head, feats, labels) < loaded_acc:
        with torch.no_grad():
            for p, s in zip(params, start, strict=True):
                p.copy_(s)
    info = fit_head(model, head, feats, labels, steps=steps, seed=cfg.seed)
    info["targets"] = len(labels)
    file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(file, "wb") as fh:
        tensors = {n: p.detach().cpu().contiguous() for n, p in zip(names, params, strict=True)}
        fh.write(save(tensors))
    with atomic_file(file.with_suffix(".json"), "w") as fh:
        json.dump(info, fh)
    return {"cached": False, **info}


__all__ = [
    "collect_features",
    "find_mlm_head",
    "fit_head",
    "head_parameters",
    "identity_start",
    "warm_up_head",
    "warmup_key",
]
