"""Batches of a loop: the seeded order of one epoch, each process's share of a global batch,
and moving a batch to the device.

A run's ``batch_size`` is the **global** batch: the examples of one optimizer step summed over
every process. The order of an epoch is a permutation seeded by ``(seed, epoch)`` alone, cut
into global batches; process ``r`` of ``W`` takes the ``r``-th of ``W`` nearly equal,
contiguous slices of each. Gradients are averaged over processes with every process's loss
weighted by its share (:func:`share_scale`), so one optimizer step of ``W`` processes is the
step of one process on the same global batch (up to the order of the float sums), and a run
may stop on ``W`` processes and resume on another number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from kelm.errors import KelmError


def global_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The global batches of one epoch: a permutation of ``range(n)`` seeded by
    ``(seed, epoch)`` cut into batches of ``batch_size`` (the last one may be smaller)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [[int(i) for i in order[lo : lo + batch_size]] for lo in range(0, n, batch_size)]


def rank_slice(size: int, rank: int, world: int) -> tuple[int, int]:
    """``[lo, hi)``: process ``rank``'s contiguous share of a global batch of ``size``; the
    shares differ by at most one, earlier ranks take the larger ones, and a share may be
    empty when ``size < world`` (the last batch of an epoch)."""
    base, extra = divmod(size, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def check_global_batch(batch_size: int, world: int, name: str = "batch_size") -> int:
    """The per-process batch of a global ``batch_size`` over ``world`` processes.

    Raises:
        KelmError: ``batch_size`` is not a multiple of ``world``.
    """
    if batch_size % world:
        raise KelmError(
            f"config: {name} {batch_size} is the global batch and must be a multiple of the "
            f"{world} processes (each takes {name} / {world})"
        )
    return batch_size // world


def share_scale(part: float, whole: float, world: int) -> float:
    """The factor on a process's mean loss over ``part`` of the global batch's ``whole``
    (examples, or predicted tokens) that makes the average of the processes' gradients the
    gradient of the global batch's mean: ``part * world / whole`` (0 for an empty share)."""
    return part * world / whole if whole else 0.0


def slice_batch(batch: dict[str, Any], size: int, lo: int, hi: int) -> dict[str, Any]:
    """Rows ``[lo, hi)`` of a collated batch of ``size`` examples: tensors and lists whose
    first dimension is ``size`` are sliced, everything else is kept whole."""
    out: dict[str, Any] = {}
    for key, value in batch.items():
        rows = torch.is_tensor(value) and value.dim() >= 1 and value.shape[0] == size
        rows = rows or (isinstance(value, list) and len(value) == size)
        out[key] = value[lo:hi] if rows else value
    return out


def move_to(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """The batch with every tensor (and the PyG ``Batch``) on ``device``."""
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


__all__ = [
    "check_global_batch",
    "global_batches",
    "move_to",
    "rank_slice",
    "share_scale",
    "slice_batch",
]
