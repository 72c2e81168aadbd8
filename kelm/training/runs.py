"""Finished training runs: their saved model, and their predictions on any questions through the
run's own pipeline (used by ``kelm evaluate`` and by a distillation teacher)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from kelm.engine.predict import predict_logits
from kelm.errors import KelmError
from kelm.modeling.model_files import verify_model_files
from kelm.pipeline import Collator, Example, prepare_examples
from kelm.training.config import load_train_config
from kelm.training.run_data import open_graph, retrieve_options

if TYPE_CHECKING:
    from kelm.modeling.families import ModelFamily


def load_run_model(run_dir: str | Path) -> tuple[Any, Any, ModelFamily]:
    """The saved model, its tokenizer and its family (:mod:`kelm.modeling.families`).

    Raises:
        KelmError: not a run directory, a file of the model that is not the one saved (its
            manifest's sha256), or the model cannot be read (corrupt, truncated).
    """
    from transformers import AutoModelForMultipleChoice, AutoTokenizer

    from kelm.modeling import family_of  # importing kelm.modeling registers the families

    model_dir = Path(run_dir) / "model"
    if not (model_dir / "config.json").is_file():
        raise KelmError(
            f"{run_dir}: not a finished kelm run (no model/config.json); train it with "
            "`kelm train` or pass the run directory"
        )
    verify_model_files(model_dir)
    try:
        model = AutoModelForMultipleChoice.from_pretrained(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except Exception as exc:  # corrupt weights surface as many exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise KelmError(
            f"{model_dir}: cannot load the model ({type(exc).__name__}: {first[:200]})"
        ) from None
    family = family_of(model.config.model_type)
    if family is None:
        raise KelmError(f"{model_dir}: not a kelm model (model_type {model.config.model_type!r})")
    return model, tokenizer, family


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
    run_dir = Path(run_dir)
    config_file = run_dir / "config.resolved.yaml"
    if not config_file.is_file():
        raise KelmError(f"{run_dir}: not a kelm run directory (no config.resolved.yaml)")
    cfg = load_train_config(config_file)
    model, tokenizer, family = load_run_model(run_dir)
    items = list(items)
    graph = open_graph(cfg, progress=progress)
    if graph is not None:  # the graph must be the one the run was trained on
        model.check_graph(graph.index.checksum)
    examples, counts = prepare_examples(
        items,
        family,
        tokenizer,
        max_length=cfg.data.max_length,
        graph=graph,
        retrieve_options=retrieve_options(cfg.graph) if family.uses_retrieval else None,
        pipeline=cfg.graph.pipeline,
        link_entities=cfg.model.entities,
        progress=progress,
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
        family,
        batch_size=batch_size or cfg.eval_batch_size,
        device=dev,
        progress=progress,
    )
    seconds = time.perf_counter() - start
    return RunPredictions(examples, logits, counts, family.name, seconds)


__all__ = ["RunPredictions", "load_run_model", "predict_run"]
