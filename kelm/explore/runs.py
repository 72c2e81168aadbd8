"""A trained run held in memory for the explorer: its model, tokenizer, family and graph, loaded
once, and what it says about one question: its score per choice and what it attended to.

The question goes through the run's own pipeline (:func:`~kelm.pipeline.prepare_examples` with
the run's settings, as ``kelm evaluate`` does), so the graph a model is shown is the one it
would see in an evaluation: QA-GNN's pooling attention is over the nodes of that subgraph and
KagNet's path attention over its paths (``output_attentions=True``); ERNIE's entities are the
nodes its tokens were linked to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kelm.data.qa import QAItem
from kelm.engine.batching import move_to
from kelm.errors import KelmError
from kelm.pipeline import Collator, prepare_examples
from kelm.training.config import load_train_config
from kelm.training.run_data import open_graph, retrieve_options
from kelm.training.runs import load_run_model

#: Families whose forward takes ``output_attentions`` (what the explorer shows of each).
ATTENTION_FAMILIES = ("qagnn", "kagnet")


@dataclass
class ChoiceExplanation:
    """What one run did with one choice.

    Attributes:
        score: the choice's logit.
        probability: its softmax over the question's choices.
        nodes: ``(node name, weight)`` of the run's subgraph, heaviest first (QA-GNN: pooling
            attention; other graph families: weight ``None``).
        paths: ``(path text, weight)`` (KagNet: path attention, heaviest first).
        entities: the node names ERNIE's tokens were linked to (ERNIE), in token order.
        loglik: the zero-shot LM's log-likelihoods of the choice (``sum``, ``mean``, ``pmi``)
            and its token count (``tokens``); empty for trained runs.
    """

    score: float
    probability: float
    nodes: list[tuple[str, float | None]] = field(default_factory=list)
    paths: list[tuple[str, float]] = field(default_factory=list)
    entities: list[str] = field(default_factory=list)
    loglik: dict[str, float] = field(default_factory=dict)


@dataclass
class RunExplanation:
    """A run's answer to one question: ``prediction`` is the index of its best choice."""

    run: str
    model: str
    choices: list[ChoiceExplanation]
    prediction: int


class ExplainedRun:
    """A finished ``kelm train`` run, loaded once (:meth:`open`).

    Raises:
        KelmError: not a run directory, unreadable model, or a graph other than the run's.
    """

    def __init__(self, run_dir: Path, device: str | None = None) -> None:
        run_dir = Path(run_dir)
        config_file = run_dir / "config.resolved.yaml"
        if not run_dir.is_dir():
            raise KelmError(f"{run_dir}: no such run directory")
        if not config_file.is_file():
            raise KelmError(f"{run_dir}: not a kelm run directory (no config.resolved.yaml)")
        self.run_dir = run_dir
        self.cfg = load_train_config(config_file)
        self.model, self.tokenizer, self.family = load_run_model(run_dir)
        self.graph = open_graph(self.cfg)
        if self.graph is not None:  # refuse a graph other than the one it was trained on
            self.model.check_graph(self.graph.index.checksum)
        self.device = torch.device(device or "cpu")
        self.model.to(self.device).eval()
        max_hops = int(getattr(self.model.config, "max_hops", self.cfg.graph.hops))
        self.collator = Collator(
            self.tokenizer.pad_token_id or 0, max_hops, self.cfg.model.max_paths
        )

    @property
    def name(self) -> str:
        """``family (run directory name)``: how the page labels the run."""
        return f"{self.family.name} ({self.run_dir.name})"

    @torch.inference_mode()  # no autograd bookkeeping at all (no_grad still versions tensors)
    def explain(self, item: QAItem, *, top: int = 10) -> RunExplanation:
        """Score ``item``'s choices and collect what the model attended to (at most ``top``
        nodes and paths per choice)."""
        examples, _ = prepare_examples(
            [item],
            self.family,
            self.tokenizer,
            max_length=self.cfg.data.max_length,
            graph=self.graph,
            retrieve_options=retrieve_options(self.cfg.graph)
            if self.family.uses_retrieval
            else None,
            pipeline=self.cfg.graph.pipeline,
            link_entities=self.cfg.model.entities,
        )
        example = examples[0]
        batch = move_to(self.collator([example]), self.device)
        inputs = self.family.model_inputs(batch)
        if self.family.name in ATTENTION_FAMILIES:
            inputs["output_attentions"] = True
        out = self.model(**inputs)
        logits = out.logits[0, : example.num_choices].float().cpu()
        probs = torch.softmax(logits, -1)
        names = self.graph.index.names if self.graph is not None else None
        relations = self.graph.index.relations if self.graph is not None else []
        node_weights = getattr(out, "node_attention", None)
        path_weights = getattr(out, "path_attention", None)
        choices = []
        offset = 0
        for c in range(example.num_choices):
            explained = ChoiceExplanation(float(logits[c]), float(probs[c]))
            if example.graphs is not None and names is not None:
                data = example.graphs[c]
                n = int(data.num_nodes)
                ids = data.node_ids.tolist()
                weights = (
                    node_weights[offset : offset + n].tolist()
                    if node_weights is not None
                    else [None] * n
                )
                offset += n
                nodes = [
                    (names[i], w) for i, w in zip(ids, weights, strict=True) if i >= 0
                ]  # the context node (-1) is no graph node
                if node_weights is not None:
                    nodes.sort(key=lambda p: -(p[1] or 0.0))
                explained.nodes = nodes[:top]
            if example.paths is not None and path_weights is not None and names is not None:
                explained.paths = _weighted_paths(
                    example.paths[c], path_weights[c].tolist(), names, relations, top=top
                )
            if example.entity_ids is not None and names is not None:
                seen: dict[int, None] = {}
                for node in example.entity_ids[c]:
                    if node >= 0:
                        seen.setdefault(node)
                explained.entities = [names[n] for n in seen]
            choices.append(explained)
        best = int(torch.argmax(logits)) if logits.numel() else 0
        return RunExplanation(str(self.run_dir), self.family.name, choices, best)


def _weighted_paths(
    paths: list[tuple[list[int], list[Any]]],
    weights: list[float],
    names: Any,
    relations: list[str],
    *,
    top: int,
) -> list[tuple[str, float]]:
    """The paths the collator kept (those with a hop, the first ``max_paths``: the padded slots
    of :func:`~kelm.modeling.pad_paths`) with their attention, heaviest first."""
    kept = [(nodes, rels) for nodes, rels in paths if len(rels)][: len(weights)]
    out = [
        (path_text(nodes, rels, names, relations), w)
        for (nodes, rels), w in zip(kept, weights, strict=False)
        if not math.isnan(w)
    ]
    out.sort(key=lambda p: -p[1])
    return out[:top]


def path_text(nodes: list[int], rels: list[Any], names: Any, relations: list[str]) -> str:
    """``dog --isa--> animal --atlocation--> zoo`` (inverse relations as ``~name``; a hop with
    several relations shows them joined by ``|``)."""
    parts = [names[int(nodes[0])]]
    for hop, node in zip(rels, nodes[1:], strict=False):
        hop_rels = hop if isinstance(hop, (list, tuple)) else [hop]
        label = "|".join(relations[int(r)] if int(r) < len(relations) else "?" for r in hop_rels)
        parts.append(f"--{label}--> {names[int(node)]}")
    return " ".join(parts)


__all__ = ["ChoiceExplanation", "ExplainedRun", "RunExplanation", "path_text"]
