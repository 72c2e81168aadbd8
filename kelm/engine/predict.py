"""A model's choice logits over examples, their accuracy and loss, and the predictions file:
shared by the training loop's held-out evaluation, ``kelm evaluate`` and distillation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from kelm._io import atomic_file, json_line
from kelm.engine.batching import move_to
from kelm.errors import KelmError

if TYPE_CHECKING:
    from kelm.modeling.families import ModelFamily
    from kelm.pipeline import Collator, Example


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    examples: Sequence[Example],
    collator: Collator,
    family: ModelFamily,
    *,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    accelerator: Any = None,
    progress: bool = False,
) -> list[np.ndarray]:
    """The logits of every example (one ``[num_choices]`` array each, in order).

    With an ``accelerate.Accelerator`` of several processes, process ``r`` scores examples
    ``r, r + world, ...`` and the results are gathered on every process.
    """
    was_training = model.training
    model.eval()
    rank, world = 0, 1
    if accelerator is not None:
        rank, world = accelerator.process_index, accelerator.num_processes
    mine = list(range(rank, len(examples), world))
    results: list[tuple[int, list[float]]] = []
    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(mine), desc="evaluating", unit="q", disable=not progress)
        for start in range(0, len(mine), batch_size):
            idx = mine[start : start + batch_size]
            batch = move_to(collator([examples[i] for i in idx]), device)
            logits = model(**family.model_inputs(batch)).logits  # [B, C]
            logits = logits.float().cpu().numpy()
            for row, i in enumerate(idx):
                results.append((i, logits[row, : examples[i].num_choices].tolist()))
            bar.update(len(idx))
        bar.close()
    finally:
        model.train(was_training)
    if world > 1:
        from accelerate.utils import gather_object

        results = gather_object(results)
    by_index = dict(results)
    return [np.asarray(by_index[i], dtype=np.float64) for i in range(len(examples))]


def check_finite(logits: Sequence[np.ndarray], when: str) -> None:
    """Refuse scores that are NaN or infinite: a model whose weights diverged scores every
    choice alike (``argmax`` of NaN is the first choice), which would read as an accuracy.

    Raises:
        KelmError: naming ``when`` (``epoch 2``) and how many questions.
    """
    bad = sum(not np.isfinite(z).all() for z in logits)
    if bad:
        raise KelmError(
            f"{when}: the model's scores of {bad} of {len(logits)} held-out questions are not "
            "finite (its weights diverged); lower the learning rate"
        )


def score(examples: Sequence[Example], logits: Sequence[np.ndarray]) -> dict[str, Any]:
    """Accuracy and mean cross-entropy over the labelled examples.

    Returns:
        ``{"n", "n_labelled"}`` plus ``"accuracy"`` and ``"loss"`` when any example has a
        label.
    """
    correct, losses = 0, []
    for e, z in zip(examples, logits, strict=True):
        if e.label < 0:
            continue
        log_probs = z - np.logaddexp.reduce(z)
        losses.append(-float(log_probs[e.label]))
        correct += int(int(np.argmax(z)) == e.label)
    out: dict[str, Any] = {"n": len(examples), "n_labelled": len(losses)}
    if losses:
        out["accuracy"] = correct / len(losses)
        out["loss"] = float(np.mean(losses))
    return out


def write_predictions(
    path: str | Path, examples: Sequence[Example], logits: Sequence[np.ndarray]
) -> None:
    """One JSON line per question (atomically): ``id``, ``prediction`` (label), ``answer``
    (label or null), ``correct`` (bool or null) and ``scores`` (logit by choice label)."""
    with atomic_file(path, "w", encoding="utf-8") as fh:
        for e, z in zip(examples, logits, strict=True):
            pred = int(np.argmax(z))
            answer = e.labels[e.label] if e.label >= 0 else None
            row = {
                "id": e.id,
                "prediction": e.labels[pred],
                "answer": answer,
                "correct": (pred == e.label) if answer is not None else None,
                "scores": {label: round(float(v), 6) for label, v in zip(e.labels, z, strict=True)},
            }
            fh.write(json_line(row) + "\n")


__all__ = ["check_finite", "predict_logits", "score", "write_predictions"]
