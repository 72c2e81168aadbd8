"""The questions of a training run: read, split, and prepared for the run's model family
(:func:`kelm.pipeline.prepare_examples`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kelm.data.qa import QAItem
from kelm.pipeline import Example, GraphResources, prepare_examples, read_items, split_items
from kelm.training.config import GraphConfig, TrainConfig


@dataclass
class RunData:
    """The tokenised (and graph-attached) training and evaluation questions.

    Attributes:
        train, eval: the examples.
        counts: questions, statements, empty and missing graphs, entities (per split).
        graph: the run's graph (families that need one).
        train_items: the training questions (what a teacher run scores).
    """

    train: list[Example]
    eval: list[Example]
    counts: dict[str, int]
    graph: GraphResources | None
    train_items: list[QAItem]


def retrieve_options(graph: GraphConfig) -> Any:
    """The retrieval settings of the ``graph`` section."""
    from kelm.retrieval.retrieve import RetrieveOptions

    return RetrieveOptions(
        max_nodes=graph.max_nodes,
        hops=graph.hops,
        paths=graph.paths,
        scorer=graph.scorer,
        context=graph.context,
    )


def prepare_items(
    cfg: TrainConfig,
    items: list[QAItem],
    tokenizer: Any,
    graph: GraphResources | None,
    *,
    progress: bool = False,
) -> tuple[list[Example], dict[str, int]]:
    """``items`` as the run's family reads them (:func:`~kelm.pipeline.prepare_examples` with
    the run's settings)."""
    return prepare_examples(
        items,
        cfg.family,
        tokenizer,
        max_length=cfg.data.max_length,
        graph=graph,
        retrieve_options=retrieve_options(cfg.graph) if cfg.family.uses_retrieval else None,
        pipeline=cfg.graph.pipeline,
        link_entities=cfg.model.entities,
        progress=progress,
    )


def open_graph(cfg: TrainConfig, *, progress: bool = False) -> GraphResources | None:
    """The run's graph (``None`` for families without one)."""
    if not cfg.family.needs_graph:
        return None
    return GraphResources.open(cfg.graph, cfg.graph.cache_dir, progress=progress)


def run_items(cfg: TrainConfig) -> tuple[list[QAItem], list[QAItem]]:
    """The run's training and evaluation questions: ``data.eval`` when given, else the
    ``data.holdout`` share of ``data.train`` (``max_train`` / ``max_eval`` applied)."""
    d = cfg.data
    items = read_items(d.train, need_answers=True)
    if d.eval:
        train_items, _ = split_items(items, 0.0, d.split_seed, d.max_train)
        eval_items = read_items(d.eval, need_answers=False)
    else:
        train_items, eval_items = split_items(items, d.holdout, d.split_seed, d.max_train)
    if d.max_eval is not None:
        eval_items = eval_items[: d.max_eval]
    return train_items, eval_items


def load_data(
    cfg: TrainConfig, tokenizer: Any, accelerator: Any, *, progress: bool = False
) -> RunData:
    """Read, split and prepare the run's questions (families with a graph: the main process
    first, so that the others find the caches)."""
    train_items, eval_items = run_items(cfg)
    with accelerator.main_process_first():  # the main process fills the caches
        graph = open_graph(cfg, progress=progress)
        train, c1 = prepare_items(cfg, train_items, tokenizer, graph, progress=progress)
        evaluation, c2 = prepare_items(cfg, eval_items, tokenizer, graph, progress=progress)
    counts = {
        "train_questions": len(train),
        "eval_questions": len(evaluation),
        **{f"train_{k}": v for k, v in c1.items()},
        **{f"eval_{k}": v for k, v in c2.items()},
    }
    return RunData(train, evaluation, counts, graph, train_items)


__all__ = ["RunData", "load_data", "open_graph", "prepare_items", "retrieve_options"]
