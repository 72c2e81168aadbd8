"""Multiple-choice QA evaluation of a trained run (``kelm evaluate``).

    metrics = evaluate_run("runs/csqa-qagnn", "dev.jsonl", "eval/csqa-qagnn-dev")

writes ``eval/.../metrics.json`` (``{"accuracy", "n", "n_labelled", "loss", "model", ...}``)
and ``predictions.jsonl`` (one line per question: ``id``, ``prediction``, ``answer``,
``correct``, ``scores`` by choice label). A file without answer keys gives predictions and no
``accuracy``; a file with some keys is scored on those (``n_labelled``).

The run's own pipeline scores the questions (:func:`kelm.training.runs.predict_run`); the
scoring and the predictions file are :mod:`kelm.engine.predict`'s, shared with the training
loop's held-out evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kelm._io import check_output_dir, make_output_dir, sha256_file, write_json
from kelm.engine.predict import score, write_predictions
from kelm.modeling.encoders import hf_progress_bars
from kelm.pipeline import read_items
from kelm.training.runs import predict_run


def evaluate_run(
    run_dir: str | Path,
    qa_file: str | Path,
    out_dir: str | Path,
    *,
    batch_size: int | None = None,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate a trained run on a QA file (``kelm evaluate``).

    Graph models ground and retrieve the file with the run's graph settings (cached) and
    refuse a graph other than the one they were trained on; ``ernie`` links its entities
    with the run's graph (refusing another one too).

    Args:
        run_dir: the run directory of ``kelm train``.
        qa_file: CommonsenseQA / OpenBookQA JSONL or COPA XML, with or without answer keys.
        out_dir: where ``metrics.json`` and ``predictions.jsonl`` go.
        batch_size: questions per forward pass (default: the run's ``eval_batch_size``).
        device: ``cpu``, ``cuda`` (default: CUDA when available).
        progress: progress bars.

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        KelmError: bad run directory, QA file, graph, or unreadable model.
    """
    with hf_progress_bars(progress):
        return _evaluate_run(
            run_dir, qa_file, out_dir, batch_size=batch_size, device=device, progress=progress
        )


def _evaluate_run(
    run_dir: str | Path,
    qa_file: str | Path,
    out_dir: str | Path,
    *,
    batch_size: int | None,
    device: str | None,
    progress: bool,
) -> dict[str, Any]:
    run_dir, out_dir = Path(run_dir), check_output_dir(out_dir)
    items = read_items(qa_file, need_answers=False)
    run = predict_run(run_dir, items, batch_size=batch_size, device=device, progress=progress)
    metrics = {
        **score(run.examples, run.logits),
        "model": run.model_type,
        "run": str(run_dir),
        "qa_file": str(qa_file),
        "qa_sha256": sha256_file(qa_file),
        "statements": run.counts["statements"],
        "empty_graphs": run.counts["empty_graphs"] + run.counts["missing_graphs"],
        "seconds": round(run.seconds, 3),
        "statements_per_second": round(run.counts["statements"] / max(run.seconds, 1e-9), 2),
    }
    make_output_dir(out_dir)
    write_predictions(out_dir / "predictions.jsonl", run.examples, run.logits)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


__all__ = ["evaluate_run"]
