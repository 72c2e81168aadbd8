"""Task (prediction-layer) distillation in ``kelm train``: soft targets from a teacher run.

The teacher is a finished ``kelm train`` run of any family. Before the first step its own
pipeline scores the student's training questions once (evaluation mode, so the targets are
deterministic and a resumed run gets the same ones); each step then adds the tempered KL
divergence between the teacher's and the student's choice distributions
(:func:`choice_distillation_loss`). Scoring once instead of running the teacher inside the loop
costs one pass over the training set and lets a graph-model teacher (QA-GNN, KagNet, ERNIE)
teach a text-only student without the student's run loading the graph.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

_PADDED_CHOICE = -1e4
"""Logit of an absent choice (batches pad to the most choices): its probability is exactly 0
at any temperature, and unlike ``-inf`` it keeps the KL terms finite (0 * finite = 0)."""


def teacher_choice_logits(
    teacher_run: str,
    items: Sequence[Any],
    *,
    device: torch.device | str,
    batch_size: int,
    progress: bool = False,
) -> list[np.ndarray]:
    """The teacher run's choice logits for each training question, in ``items`` order (the
    student's examples are built from the same items in the same order).

    Raises:
        KelmError: not a run, an unreadable model, a graph teacher whose graph is gone.
    """
    from kelm.training.runs import predict_run

    log.info("scoring %d training questions with the teacher %s", len(items), teacher_run)
    run = predict_run(teacher_run, items, batch_size=batch_size, device=device, progress=progress)
    return [np.asarray(logits, dtype=np.float32) for logits in run.logits]


def teacher_batch(
    teacher_logits: Sequence[np.ndarray], idx: Sequence[int], num_choices: int, device: Any
) -> Tensor:
    """The teacher logits of a batch, absent choices padded.

    Shapes:
        output: ``[B, num_choices]``.
    """
    out = np.full((len(idx), num_choices), _PADDED_CHOICE, dtype=np.float32)
    for row, i in enumerate(idx):
        logits = teacher_logits[i]
        out[row, : len(logits)] = logits
    return torch.from_numpy(out).to(device)


def choice_distillation_loss(
    student_logits: Tensor, teacher_logits: Tensor, choice_mask: Tensor, temperature: float
) -> Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))`` over the present choices,
    averaged over questions (the ``T^2`` keeps the gradient's scale across temperatures).

    Shapes:
        student_logits, teacher_logits: ``[B, C]``; choice_mask: ``[B, C]`` bool;
        output: ``[]``.
    """
    s = student_logits.float().masked_fill(~choice_mask, _PADDED_CHOICE) / temperature
    t = teacher_logits.float().masked_fill(~choice_mask, _PADDED_CHOICE) / temperature
    kl = nn.functional.kl_div(
        nn.functional.log_softmax(s, -1),  # [B, C]
        nn.functional.log_softmax(t, -1),  # [B, C]
        log_target=True,
        reduction="batchmean",
    )
    return kl * temperature**2


__all__ = ["choice_distillation_loss", "teacher_batch", "teacher_choice_logits"]
