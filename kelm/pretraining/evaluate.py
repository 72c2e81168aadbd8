"""Held-out evaluation of a pretraining objective: masked-LM accuracy and perplexity, dEA
accuracy (ERNIE), NSP accuracy... whatever the objective's :meth:`eval_sums` counts.

The held-out masks are drawn from a generator seeded with a fixed value at every evaluation,
so successive evaluations of a run (and runs of different objectives on the same instances)
score the same masked positions, and evaluating never disturbs the training random streams.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from kelm.errors import KelmError
from kelm.pretraining.instances import InstanceStore

EVAL_SEED = 20190517
"""Seed of the held-out masks (fixed: the same masks at every evaluation)."""


@torch.no_grad()
def evaluate_objective(
    objective: Any,
    model: nn.Module,
    store: InstanceStore,
    indices: Sequence[int],
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[str, float]:
    """Held-out metrics of ``model`` on the instances ``indices`` of ``store``.

    Args:
        objective: the run's objective (collates, counts, turns counts into metrics).
        model: the trained module (unwrapped).
        store: the prepared instances.
        indices: the held-out instance indices.
        batch_size: instances per forward pass.
        device: where to run.
        progress: a tqdm bar.

    Returns:
        The objective's metrics plus ``instances`` (how many were scored).
    """
    from tqdm.auto import tqdm

    from kelm.engine.batching import move_to

    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(EVAL_SEED)
    sums: dict[str, float] = {}
    chunks = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    for chunk in tqdm(chunks, desc="evaluating", unit="batch", disable=not progress):
        batch = objective.collate([store[int(i)] for i in chunk], generator)
        batch = move_to(batch, device)
        output = model(**objective.model_inputs(batch))
        for key, value in objective.eval_sums(output, batch).items():
            sums[key] = sums.get(key, 0.0) + float(value)
    model.train(was_training)
    diverged = [key for key, value in sums.items() if not math.isfinite(value)]
    if diverged:  # else NaN sums would read as metrics
        raise KelmError(
            f"held-out evaluation: {diverged[0]} is not finite (the model's weights diverged); "
            "lower the learning rate"
        )
    metrics = objective.eval_metrics(sums) if sums else {}
    return {**metrics, "instances": len(indices)}


__all__ = ["EVAL_SEED", "evaluate_objective"]
