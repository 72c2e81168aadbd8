"""Batches of a loop: the seeded order of one epoch on each process, and moving a batch to the
device."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1
) -> list[list[int]]:
    """This process's batches of one epoch: a permutation of ``range(n)`` seeded by
    ``(seed, epoch)`` cut into global batches of ``batch_size * world``, of which rank ``r``
    takes the ``r``-th slice. With several processes the permutation is padded by wrapping
    around so that every process gets the same number of full batches.

    The order depends only on ``(seed, epoch, rank, world)``, so a resumed run sees exactly
    the batches an uninterrupted one would.
    """
    order = np.random.default_rng([seed, epoch]).permutation(n)
    if n == 0:
        return []
    step = batch_size * world
    steps = -(-n // step)
    if world > 1:
        total = steps * step
        order = np.resize(order, total)  # wrap-around padding
    out = []
    for s in range(steps):
        lo = s * step + rank * batch_size
        chunk = order[lo : lo + batch_size]
        if len(chunk):
            out.append([int(i) for i in chunk])
    return out


def move_to(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """The batch with every tensor (and the PyG ``Batch``) on ``device``."""
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


__all__ = ["epoch_batches", "move_to"]
