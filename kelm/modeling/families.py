"""The model families of ``kelm train``: one record per family, the only place that lists them.

A record names the family's Hugging Face config and multiple-choice model classes, what its
examples need beyond the text (a retrieved subgraph, KagNet paths, linked entities), the batch
keys its ``forward`` takes, and how a new model is built from the run's model settings. The data
pipeline, the training loop, evaluation and the Auto-class registration all read these records,
so a new family is its ``configuration_*.py`` / ``modeling_*.py`` files plus one
:func:`register_family` call::

    register_family(ModelFamily(
        name="mygnn",
        config_class=MyGNNConfig,
        model_class=MyGNNForMultipleChoice,
        inputs=("input_ids", "attention_mask", "token_type_ids", "graphs"),
        needs=frozenset({"subgraph"}),
        build=build_mygnn,
    ))

``build(settings, context)`` receives the ``model`` section of the training config (read by
attribute: ``settings.pooling``, ``settings.gnn_dim`` ...) and a :class:`BuildContext` with what
the run resolved (encoder, tokenizer, graph, node-table initialisation); it returns the new
model. Settings a model class refuses raise ``ValueError`` / ``TypeError``, which the caller turns
into a one-line config error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kelm.errors import KelmError

if TYPE_CHECKING:
    from torch import nn

    from kelm.graph.index import GraphIndex
    from kelm.kge.store import KGEmbeddings

NEEDS = frozenset({"subgraph", "paths", "entities"})
"""What a family's examples may need: ``subgraph`` (ground -> retrieve, one PyG graph per
statement), ``paths`` (the retrieval's question-answer paths too) and ``entities`` (the
statement's mentions linked to graph nodes, aligned to wordpieces)."""


@dataclass
class BuildContext:
    """What a family's builder gets besides the model settings.

    Attributes:
        encoder: the pretrained text encoder (folder or hub name); causal-LM families read
            ``settings.encoder`` themselves (``None`` is their offline default).
        tokenizer: the run's tokenizer (as the family's ``load_tokenizer`` made it).
        max_length: tokens per statement.
        max_hops: the retrieval's longest path (KagNet's ``K``).
        graph: the graph index (families that need a graph).
        node_dim: width of the node table (from the KG embeddings, the encoder or the settings).
        kge: KG embeddings of the graph when the node table starts from them.
        init_nodes: fills a built model's node (entity) table per the run's ``node_init``:
            ``init_nodes(model, set_table)`` calls ``set_table(vectors, freeze=...)`` unless the
            table stays random.
    """

    encoder: str
    tokenizer: Any
    max_length: int
    max_hops: int
    graph: GraphIndex | None = None
    node_dim: int = 0
    kge: KGEmbeddings | None = None
    init_nodes: Callable[[nn.Module, Callable[..., None]], None] = field(
        default=lambda model, set_table: None
    )


@dataclass(frozen=True)
class ModelFamily:
    """One model family (see the module docstring).

    Attributes:
        name: the config's ``model.type``.
        config_class, model_class: the Hugging Face config and multiple-choice model classes
            (registered with ``AutoConfig`` / ``AutoModel`` / ``AutoModelForMultipleChoice``).
        inputs: the collated batch keys the model's ``forward`` takes (those present are passed).
        needs: a subset of :data:`NEEDS`.
        build: ``build(settings, context) -> model``.
        load_tokenizer: ``load_tokenizer(name_or_None) -> tokenizer`` (``model.tokenizer``, else
            ``model.encoder``; ``None``: the family's default).
        auto_classes: further ``(AutoClass, model class)`` registrations (e.g. pretraining
            heads).
        node_table: whether the model has a node (entity) table to initialise (families with
            a graph; GSC reads edge and node types only).
        default_node_init: how ``node_init: auto`` fills the table without ``kge_dir``:
            ``names`` (text embeddings of the node names) or ``graph`` (KG embeddings trained
            on the run's graph).
        description: one line for ``--help`` and the README.
    """

    name: str
    config_class: type
    model_class: type
    inputs: tuple[str, ...]
    build: Callable[[Any, BuildContext], nn.Module]
    load_tokenizer: Callable[[str | None], Any]
    needs: frozenset[str] = frozenset()
    auto_classes: tuple[tuple[Any, type], ...] = ()
    node_table: bool = True
    default_node_init: str = "names"
    description: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.needs) - NEEDS
        if unknown:
            raise ValueError(f"family {self.name!r}: unknown needs {sorted(unknown)}")
        if "paths" in self.needs and "subgraph" not in self.needs:
            raise ValueError(f"family {self.name!r}: 'paths' come with 'subgraph'")

    @property
    def model_type(self) -> str:
        """The Hugging Face ``model_type`` of the family's config."""
        return str(self.config_class.model_type)

    @property
    def uses_retrieval(self) -> bool:
        """Whether examples carry retrieved subgraphs (ground -> retrieve)."""
        return "subgraph" in self.needs

    @property
    def uses_entities(self) -> bool:
        """Whether examples carry linked entities."""
        return "entities" in self.needs

    @property
    def needs_graph(self) -> bool:
        """Whether the family needs a graph index at all."""
        return bool(self.needs)

    @property
    def frozen_input(self) -> str | None:
        """The ``forward`` input that takes what the frozen encoder computed (one of
        :data:`FROZEN_INPUTS` among ``inputs``; ``None``: the family recomputes it): while the
        encoder is frozen, it is computed once and reused (:mod:`kelm.engine.frozen`)."""
        return next((k for k in FROZEN_INPUTS if k in self.inputs), None)

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The part of a collated batch that this family's ``forward`` takes (the batch's
        ``frozen`` features under the family's :attr:`frozen_input`)."""
        inputs = {k: batch[k] for k in self.inputs if k in batch}
        if "frozen" in batch and self.frozen_input is not None:
            inputs[self.frozen_input] = batch["frozen"]
        return inputs


FROZEN_INPUTS = ("statement_vectors", "t_encoder_states")
"""Model inputs that carry a frozen encoder's output: pooled statement vectors (models that
read the text through one vector per statement) or ERNIE's T-Encoder token states."""

_FAMILIES: dict[str, ModelFamily] = {}


def register_family(family: ModelFamily) -> ModelFamily:
    """Add ``family`` to the registry and register its classes with the Auto classes.

    Raises:
        ValueError: another family of that name or Hugging Face ``model_type``.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForMultipleChoice

    old = _FAMILIES.get(family.name)
    if old is not None and old != family:
        raise ValueError(f"model family {family.name!r} is registered already")
    for other in _FAMILIES.values():
        if other.name != family.name and other.model_type == family.model_type:
            raise ValueError(f"model_type {family.model_type!r} belongs to {other.name!r}")
    AutoConfig.register(family.model_type, family.config_class, exist_ok=True)
    AutoModelForMultipleChoice.register(family.config_class, family.model_class, exist_ok=True)
    if not any(auto is AutoModel for auto, _ in family.auto_classes):
        AutoModel.register(family.config_class, family.model_class, exist_ok=True)
    for auto, cls in family.auto_classes:
        auto.register(family.config_class, cls, exist_ok=True)
    _FAMILIES[family.name] = family
    return family


def family_names() -> tuple[str, ...]:
    """The registered family names, in registration order."""
    return tuple(_FAMILIES)


def get_family(name: str) -> ModelFamily:
    """The family called ``name``.

    Raises:
        KelmError: unknown family (listing the known ones).
    """
    try:
        return _FAMILIES[name]
    except KeyError:
        known = ", ".join(_FAMILIES)
        raise KelmError(f"unknown model family {name!r} (known: {known})") from None


def family_of(model_type: str) -> ModelFamily | None:
    """The family whose config has Hugging Face ``model_type`` (``None``: not a kelm model)."""
    for family in _FAMILIES.values():
        if family.model_type == model_type:
            return family
    return None


__all__ = [
    "NEEDS",
    "BuildContext",
    "ModelFamily",
    "family_names",
    "family_of",
    "get_family",
    "register_family",
]
