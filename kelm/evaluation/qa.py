"""Multiple-choice QA evaluation: predictions, accuracy, and ``kelm evaluate``.

    metrics = evaluate_run("runs/csqa-qagnn", "dev.jsonl", "eval/csqa-qagnn-dev")

writes ``eval/.../metrics.json`` (``{"accuracy", "n", "n_labelled", "loss", "model", ...}``)
and ``predictions.jsonl`` (one line per question: ``id``, ``prediction``, ``answer``,
``correct``, ``scores`` by choice label). A file without answer keys gives predictions and no
``accuracy``; a file with some keys is scored on those (``n_labelled``).

The functions :func:`predict_logits`, :func:`score` and :func:`write_predictions` are shared
with the training loop, which evaluates its held-out split with them after every epoch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from kelm._io import atomic_file, sha256_file, write_json
from kelm.errors import KelmError

if TYPE_CHECKING:
    from kelm.training.data import Collator, Example

log = logging.getLogger(__name__)

MODEL_TYPES = {
    "kelm_lm": "lm",
    "kelm_kagnet": "kagnet",
    "kelm_qagnn": "qagnn",
    "kelm_ernie": "ernie",
    "kelm_gpt": "gpt",
}
"""Hugging Face ``model_type`` -> kelm model family."""


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    examples: Sequence[Example],
    collator: Collator,
    model_type: str,
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
    from kelm.training.data import model_inputs, move_to

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
            logits = model(**model_inputs(batch, model_type)).logits  # [B, C]
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
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------- runs
def load_run_model(run_dir: str | Path) -> tuple[Any, Any, str]:
    """The saved model, its tokenizer and its family (``lm``, ``kagnet``, ``qagnn``,
    ``ernie``).

    Raises:
        KelmError: not a run directory, or the model cannot be read (corrupt, truncated).
    """
    from transformers import AutoModelForMultipleChoice, AutoTokenizer

    import kelm.modeling  # noqa: F401 -- registers the kelm models with the Auto classes

    model_dir = Path(run_dir) / "model"
    if not (model_dir / "config.json").is_file():
        raise KelmError(
            f"{run_dir}: not a finished kelm run (no model/config.json); train it with "
            "`kelm train` or pass the run directory"
        )
    try:
        model = AutoModelForMultipleChoice.from_pretrained(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except Exception as exc:  # corrupt weights surface as many exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise KelmError(
            f"{model_dir}: cannot load the model ({type(exc).__name__}: {first[:200]})"
        ) from None
    model_type = MODEL_TYPES.get(model.config.model_type)
    if model_type is None:
        raise KelmError(f"{model_dir}: not a kelm model (model_type {model.config.model_type!r})")
    return model, tokenizer, model_type


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
    from kelm.training.loop import hf_progress_bars

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
    from kelm.training.data import read_items

    run_dir, out_dir = Path(run_dir), Path(out_dir)
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
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / "predictions.jsonl", run.examples, run.logits)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


@dataclass
class RunPredictions:
    """A trained run's choice logits on some questions (:func:`predict_run`).

    Attributes:
        examples: the questions as the run's pipeline tokenised them (file order).
        logits: one ``[num_choices]`` array per example.
        counts: statements, empty and missing graphs (:func:`build_examples`).
        model_type: the run's family.
        seconds: time spent in the forward passes.
    """

    examples: list[Example]
    logits: list[np.ndarray]
    counts: dict[str, int]
    model_type: str
    seconds: float


def predict_run(
    run_dir: str | Path,
    items: Sequence[Any],
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> RunPredictions:
    """Score ``items`` (:class:`~kelm.data.qa.QAItem`) with a trained run, through the run's own
    pipeline: graph models ground and retrieve them with the run's graph settings (cached),
    ``ernie`` links their entities; the graph must be the one the run was trained on.

    Raises:
        KelmError: bad run directory, graph, or unreadable model.
    """
    from kelm.training.config import load_train_config
    from kelm.training.data import Collator, GraphResources, build_examples

    run_dir = Path(run_dir)
    config_file = run_dir / "config.resolved.yaml"
    if not config_file.is_file():
        raise KelmError(f"{run_dir}: not a kelm run directory (no config.resolved.yaml)")
    cfg = load_train_config(config_file)
    model, tokenizer, model_type = load_run_model(run_dir)
    items = list(items)
    store = None
    if model_type in ("kagnet", "qagnn"):
        graph = GraphResources.open(cfg.graph, progress=progress)
        model.check_graph(graph.index.checksum)
        store = graph.store_for(items, cfg.graph, progress=progress)
    mentions = None
    if model_type == "ernie":  # entity linking with the run's graph, no retrieval
        graph = GraphResources.open(cfg.graph, progress=progress)
        model.check_graph(graph.index.checksum)
        mentions = graph.link_entities(items, cfg.graph, progress=progress)
    examples, counts = build_examples(
        items,
        tokenizer,
        cfg.data.max_length,
        store=store,
        with_paths=model_type == "kagnet",
        mentions=mentions,
    )
    max_hops = int(getattr(model.config, "max_hops", cfg.graph.hops))
    collator = Collator(tokenizer.pad_token_id or 0, max_hops, cfg.model.max_paths)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(dev)
    start = time.perf_counter()
    logits = predict_logits(
        model,
        examples,
        collator,
        model_type,
        batch_size=batch_size or cfg.eval_batch_size,
        device=dev,
        progress=progress,
    )
    seconds = time.perf_counter() - start
    return RunPredictions(examples, logits, counts, model_type, seconds)


__all__ = [
    "MODEL_TYPES",
    "RunPredictions",
    "evaluate_run",
    "load_run_model",
    "predict_logits",
    "predict_run",
    "score",
    "write_predictions",
]
