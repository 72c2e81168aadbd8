"""Optimizer pieces both loops share: parameter groups with and without weight decay, the
learning-rate schedule, and one optimizer step (clip, step, schedule, zero)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from kelm.errors import KelmError


def decays(name: str, param: nn.Parameter) -> bool:
    """Whether weight decay applies: not to biases, norms and other 1-d parameters."""
    return param.ndim >= 2 and "norm" not in name.lower()


def make_scheduler(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, schedule: str, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_steps``, then linear decay to 0 (``linear``), cosine decay
    (``cosine``) or a constant rate (``constant``) over ``total_steps``."""
    total = max(total_steps, 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if schedule == "constant":
            return 1.0
        progress = min((step - warmup_steps) / max(total - warmup_steps, 1), 1.0)
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(1.0 - progress, 0.0)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def optimizer_step(
    accelerator: Any,
    model: nn.Module,
    optimizer: Any,
    scheduler: Any,
    max_grad_norm: float | None,
    *,
    loss: float,
    step: int,
    nonfinite_loss: str = "stop",
) -> dict[str, float] | None:
    """Clip the gradients (``max_grad_norm``; ``None``: no clipping), step the optimizer and
    the schedule, clear the gradients; returns the learning rates this step used, by group.

    A step whose ``loss`` (the loss over every process, so that all of them decide alike) or,
    when clipping without a gradient scaler, whose gradient norm is NaN or infinite would
    write NaN into every weight it touches: ``nonfinite_loss`` ``stop`` raises, ``skip``
    drops the batch (clears the gradients; neither the optimizer nor the schedule steps) and
    returns ``None``. (An fp16 gradient scaler finds infinite gradient norms in its first
    steps by design and skips those steps itself.)

    Raises:
        KelmError: a non-finite loss or gradient norm under ``stop``, naming ``step`` (1-based).
    """
    problem = None if math.isfinite(loss) else f"the loss is {loss}"
    if problem is None and max_grad_norm:
        norm = float(accelerator.clip_grad_norm_(model.parameters(), max_grad_norm))
        if not math.isfinite(norm) and getattr(accelerator, "scaler", None) is None:
            problem = f"the gradient norm is {norm}"
    if problem is not None:
        if nonfinite_loss != "skip":
            raise KelmError(
                f"step {step}: {problem}; the run stops (checkpoints so far are kept): lower "
                "the learning rate, or set nonfinite_loss: skip to skip such steps"
            )
        optimizer.zero_grad(set_to_none=True)
        return None
    lrs = group_lrs(optimizer)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return lrs


def group_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The current learning rate of each parameter group, by the group's ``name``."""
    return {g.get("name", str(i)): float(g["lr"]) for i, g in enumerate(optimizer.param_groups)}


__all__ = ["decays", "group_lrs", "make_scheduler", "optimizer_step"]
