"""QA items -> the examples a model family reads: the one data path of ``kelm train``,
``kelm evaluate`` and distillation.

    graph = GraphResources.open(cfg.graph, cfg.graph.cache_dir)      # once per process
    examples, counts = prepare_examples(items, family, tokenizer, max_length=64, graph=graph,
                                        retrieve_options=RetrieveOptions(max_nodes=32))

What a family needs (:attr:`~kelm.modeling.families.ModelFamily.needs`) decides the steps:
``subgraph`` families ground and retrieve the statements (cached on disk, keyed on the graph,
the items' content and the options) and get one PyG subgraph per statement (``paths``: its
question-answer paths too); ``entities`` families get each statement's mentions linked to graph
nodes and aligned to wordpieces; text families only tokenise. Everything stays in memory; only
the caches go to disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kelm.pipeline.examples import Example, build_examples

if TYPE_CHECKING:
    from kelm.data.qa import QAItem
    from kelm.modeling.families import ModelFamily
    from kelm.pipeline.graph import GraphResources
    from kelm.retrieval.retrieve import RetrieveOptions


def prepare_examples(
    items: Sequence[QAItem],
    family: ModelFamily,
    tokenizer: Any,
    *,
    max_length: int,
    graph: GraphResources | None = None,
    retrieve_options: RetrieveOptions | None = None,
    pipeline: str | None = None,
    link_entities: bool = True,
    progress: bool = False,
) -> tuple[list[Example], dict[str, int]]:
    """Tokenise ``items`` for ``family``, with the graph inputs it needs.

    Args:
        items: the questions.
        family: the model family (its ``needs`` decide the steps).
        tokenizer: the run's tokenizer.
        max_length: tokens per statement.
        graph: the run's graph (families that need one).
        retrieve_options: retrieval settings (``subgraph`` families).
        pipeline: installed spaCy pipeline for grounding and linking (default blank English).
        link_entities: ``entities`` families: link the statements (``False``: no statement
            carries an entity; the ablation of ERNIE's knowledge).
        progress: progress bars.

    Returns:
        ``(examples, counts)`` as :func:`~kelm.pipeline.examples.build_examples` returns them.

    Raises:
        ValueError: a family that needs a graph without one (or without retrieval options).
    """
    store = mentions = None
    if not items:  # nothing to ground or link
        return build_examples(items, tokenizer, max_length)
    if family.needs_graph and graph is None:
        raise ValueError(f"the {family.name!r} family needs a graph")
    if family.uses_retrieval:
        if retrieve_options is None:
            raise ValueError(f"the {family.name!r} family needs retrieval options")
        assert graph is not None
        store = graph.retrieve(items, retrieve_options, pipeline=pipeline, progress=progress)
    if family.uses_entities and link_entities:
        assert graph is not None
        mentions = graph.link_entities(items, pipeline=pipeline, progress=progress)
    examples, counts = build_examples(
        items,
        tokenizer,
        max_length,
        store=store,
        with_paths="paths" in family.needs,
        mentions=mentions,
    )
    if family.uses_entities and not link_entities:  # said, so a report shows the ablation
        counts.update(entities=0, statements_without_entities=counts["statements"])
    return examples, counts


__all__ = ["prepare_examples"]
