"""The training config (``kelm train``): YAML with dotted ``--set key=value`` overrides.

    cfg = load_train_config("configs/csqa-qagnn.yaml", ["optim.lm_lr=2e-5", "seed=1"])

Sections: ``data`` (QA files, held-out split, tokenisation), ``graph`` (the graph index and the
ground -> retrieve pipeline), ``model`` (model family, text encoder, node embeddings, GNN
sizes), ``optim`` (AdamW with separate LM and GNN learning rates, schedule, LM freezing) and
``distill`` (soft targets from a fine-tuned teacher run); top-level keys are the run itself
(directory, seed, epochs, batch sizes). The sections shared with ``kelm pretrain`` (the run,
the graph source, the encoder, the optimizer constants) are defined once in :mod:`kelm.config`;
``${VAR}`` expansion is described there. The model families are those registered in
:mod:`kelm.modeling.families`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from kelm.config import (
    SEED_LIMIT,
    EncoderConfig,
    GraphSourceConfig,
    OptimConfig,
    RunConfig,
    bounded,
    check_bounds,
    load_run_config,
    raise_failed,
)
from kelm.errors import KelmError

if TYPE_CHECKING:
    from kelm.modeling.families import ModelFamily


@dataclass
class QADataConfig:
    """Which questions to train and evaluate on.

    Args:
        train: training QA file (CommonsenseQA either form, OpenBookQA JSONL, COPA XML).
        eval: evaluation QA file; ``None``: the held-out split of ``train``.
        holdout: fraction of the ``train`` questions held out for evaluation (when ``eval`` is
            not given); 0 trains on everything and evaluates nothing.
        split_seed: seed of the held-out split and of the ``max_train`` subset.
        max_train: train on at most this many questions (a random subset fixed by
            ``split_seed``); ``None``: all.
        max_eval: evaluate on at most this many questions (the first ones); ``None``: all.
        max_length: tokens per "question [SEP] choice" statement (longer ones are truncated).
    """

    train: str = ""
    eval: str | None = None
    holdout: float = bounded(0.1, ge=0, lt=1)
    split_seed: int = bounded(0, ge=0, lt=SEED_LIMIT)
    max_train: int | None = bounded(None, ge=1)
    max_eval: int | None = bounded(None, ge=1)
    max_length: int = bounded(64, ge=8)


@dataclass
class GraphConfig(GraphSourceConfig):
    """The knowledge graph (:class:`~kelm.config.GraphSourceConfig`: ``index``, ``source``,
    ``format``, ``pipeline``) and the ground -> retrieve pipeline of the subgraph families
    (entity families use the graph and ``pipeline`` to link entities, no retrieval).

    Args:
        max_nodes: nodes per statement subgraph.
        hops: longest question-answer path (also KagNet's ``max_hops``).
        paths: paths kept per question-answer pair by the retrieval.
        scorer: relevance scorer of the subgraph node cap (``cosine``, ``lm``, ``none``).
        context: add the context node in the retrieval (QA-GNN adds it itself otherwise).
        cache_dir: where grounded files, retrievals, built indices and node-name embeddings
            are cached (default ``$KELM_CACHE/training``, ``~/.cache/kelm/training``).
    """

    max_nodes: int = bounded(32, ge=1)
    hops: int = bounded(2, ge=1, le=5)
    paths: int = bounded(20, ge=0)
    scorer: str = "none"
    context: bool = False
    cache_dir: str | None = None


@dataclass
class ModelConfig(EncoderConfig):
    """The model family and its sizes.

    Args:
        type: a registered model family (:func:`kelm.modeling.families.family_names`):
            ``lm`` (text baseline), ``kagnet``, ``qagnn`` or ``ernie`` (ERNIE-style
            token-entity fusion inside the encoder; its statements are entity-linked with the
            graph's concept linker, no subgraph retrieval) or ``gpt`` (GPT-1-style: a causal
            LM reads ``<start> question <delim> choice <extract>``, a linear head on the extract
            token, the auxiliary LM loss weighted by ``lm_loss_weight``).
        encoder: Hugging Face name or folder of the text encoder (``None``: bundled MiniLM;
            ``gpt``: a causal LM, a folder or a ``.gguf`` file, ``None``: the offline
            SmolLM2-135M). Any ``AutoModel`` encoder works with ``lm`` (BERT, ALBERT, ELECTRA,
            DistilBERT, TinyBERT, a ``kelm pretrain`` run's ``model/`` folder); a folder with
            only a ``config.json`` is a family preset with random weights.
        tokenizer: tokenizer name or folder (``None``: the encoder's).
        pooling: statement vector, ``mean`` or ``cls``.
        classifier_dropout: dropout before the scoring head.
        kge_dir: KG embeddings directory (``kelm embed-kg``) to initialise the node table
            (and KagNet's relation table; ERNIE's entity table) from.
        node_init: ``auto`` (KG embeddings when ``kge_dir`` is given, else the family's
            default: ``graph`` for ernie, as the original ERNIE fuses TransE vectors, ``names``
            for the others), ``kge`` (``kge_dir``), ``graph`` (KG embeddings trained with
            ``kelm embed-kg`` on the run's graph: ``kge_model``, ``kge_dim``, ``kge_epochs``;
            cached under the graph cache, keyed on the graph checksum and these settings),
            ``names`` (text embeddings of the node names) or ``random``.
        kge_model, kge_dim, kge_epochs: the KG embeddings ``node_init: graph`` trains
            (``kge_epochs: null``: enough epochs for at least 2,000 steps of 1,000 triples, and
            30 at least: a small graph gets the updates a large one gets from its size; on the
            1-hop knowledge task, 30 epochs of its 3,000 triples left ERNIE at 0.74, 200 at
            0.88).
        node_dim: width of a random node table (the others take their width from the vectors).
        freeze_node_embeddings: keep the node table (ERNIE: the entity table) fixed in training.
        gnn_dim, gnn_layers, gnn_dropout: GNN width, depth (``None``: the family default,
            KagNet 2, QA-GNN 5) and dropout.
        gnn_heads, pool_heads: QA-GNN attention heads (GAT layers, pooling).
        fc_dim: hidden width of the scoring MLP.
        statement_features: qagnn: every node's attention also reads its statement vector
            (the question selects the edges from the first layer on; ``False``: the paper's
            layers, where only the context node carries the statement).
        statement_paths: kagnet: the path LSTM starts from a state computed from the statement
            (``False``: from zeros, as in the paper).
        schema_gcn: kagnet: the relational GCN over the statement's subgraph sets the path
            concepts' vectors (``False``: the projected node table alone).
        residual: kagnet, qagnn: residual scoring (the plain LM head plus a graph contribution
            that starts at zero; ``False``: one MLP over text and graph features).
        relation_dim: KagNet relation table width (``None``: the KG embeddings' width, else 100).
        path_dim: KagNet path LSTM width.
        max_paths: KagNet paths per statement fed to the model (the first ones; 0: none, every
            statement takes the learned "no path" vector: the ablation of the path module).
        knowledge_layers: ERNIE: top encoder layers turned into knowledgeable (K-Encoder)
            layers.
        entity_hidden_size: ERNIE: width of the K-Encoder entity stream (``None``: the entity
            table's width; otherwise the table is projected).
        entity_heads: ERNIE: heads of the entity self-attention (divides the stream width).
        entity_scoring: ERNIE: the choice score also reads the entity stream (an MLP of
            ``fc_dim`` over the statement vector and the mean entity state, starting at zero;
            ``False``: the paper's model, the entities reach the score through the tokens only).
        entities: ERNIE: link the statements' entities (``False``: none reaches the model, whose
            K-Encoder layers then read the text alone: the like-for-like text baseline of an
            ERNIE run, same trainable layers and head).
        lm_loss_weight: ``gpt``: weight of the auxiliary LM loss (GPT-1 used 0.5; 0: off).
    """

    type: str = "lm"
    pooling: Literal["mean", "cls"] = "mean"
    classifier_dropout: float = bounded(0.1, ge=0, lt=1)
    kge_dir: str | None = None
    node_init: Literal["auto", "kge", "graph", "names", "random"] = "auto"
    kge_model: Literal["transe", "distmult", "complex", "rotate"] = "transe"
    kge_dim: int = bounded(100, ge=1)
    kge_epochs: int | None = bounded(None, ge=1)
    node_dim: int = bounded(100, ge=1)
    freeze_node_embeddings: bool = True
    gnn_dim: int = bounded(100, ge=1)
    gnn_layers: int | None = bounded(None, ge=1)
    gnn_dropout: float = bounded(0.2, ge=0, lt=1)
    gnn_heads: int = bounded(2, ge=1)
    pool_heads: int = bounded(2, ge=1)
    fc_dim: int = bounded(200, ge=1)
    residual: bool = True
    statement_features: bool = True
    statement_paths: bool = True
    schema_gcn: bool = True
    relation_dim: int | None = bounded(None, ge=1)
    path_dim: int = bounded(64, ge=1)
    max_paths: int = bounded(32, ge=0)
    knowledge_layers: int = bounded(2, ge=1)
    entity_hidden_size: int | None = bounded(None, ge=1)
    entity_heads: int = bounded(4, ge=1)
    entity_scoring: bool = True
    entities: bool = True
    lm_loss_weight: float = bounded(0.5, ge=0)


OPTIMIZERS = ("adamw", "radam")
"""Values of ``optim.optimizer``."""


@dataclass
class TrainOptimConfig(OptimConfig):
    """AdamW or RAdam with two learning rates and optional LM freezing, on the shared
    constants and schedule of :class:`~kelm.config.OptimConfig`.

    Args:
        optimizer: ``adamw`` or ``radam`` (QA-GNN's choice; decoupled weight decay as AdamW).
        lm_lr: learning rate of the text encoder.
        gnn_lr: learning rate of everything else (GNN, node tables, scoring head).
        gnn_weight_decay: weight decay of everything else (``None``: ``weight_decay``, the
            encoder's): a graph module of a few thousand parameters may want more than the
            pretrained encoder does.
        unfreeze_epoch: keep the text encoder frozen for the first N epochs (QA-GNN: 4, MHGRN:
            3, GSC: 4): the randomly initialised graph module and head learn before the
            encoder moves. What the frozen part computes (statement vectors; ERNIE, whose
            K-Encoder layers keep training: the T-Encoder's token states) is computed once and
            reused (:mod:`kelm.engine.frozen`), so a frozen epoch costs a fraction of a
            fine-tuning epoch.
        freeze_lm_steps: the same in optimizer steps (the encoder is frozen while either holds;
            no gradients through it, no updates). The encoder then trains with ``lm_lr`` on the
            same schedule.
    """

    optimizer: str = "adamw"
    lm_lr: float = bounded(2e-5, gt=0)
    gnn_lr: float = bounded(1e-3, gt=0)
    gnn_weight_decay: float | None = bounded(None, ge=0, note="null: weight_decay")
    unfreeze_epoch: int = bounded(0, ge=0)
    freeze_lm_steps: int = bounded(0, ge=0)


@dataclass
class DistillConfig:
    """Prediction-layer (task) distillation from a fine-tuned teacher run: the student learns
    the teacher's choice distribution as well as (or instead of) the answer keys.

    The teacher is any finished ``kelm train`` run (any family: its own pipeline scores the
    training questions, once, before the first step). The loss is
    ``(1 - alpha) * CE(student, answer) + alpha * T^2 * KL(teacher_T || student_T)`` with both
    distributions over the question's choices at temperature ``T`` (Hinton et al. 2015).
    TinyBERT's prediction-layer stage is ``alpha: 1, temperature: 1`` (soft targets only);
    DistilBERT-style task distillation mixes both.

    Args:
        teacher: the teacher's run directory (``None``: no distillation).
        temperature: T of both distributions.
        alpha: weight of the soft-target loss (the answer-key loss gets ``1 - alpha``).
    """

    teacher: str | None = None
    temperature: float = bounded(1.0, gt=0)
    alpha: float = bounded(1.0, ge=0, le=1)


@dataclass
class TrainConfig(RunConfig):
    """A training run (see the module docstring); the shared run keys are those of
    :class:`~kelm.config.RunConfig`.

    Args:
        epochs: passes over the training questions.
        batch_size: questions per optimizer step, over all processes (the global batch;
            each of ``W`` processes takes ``batch_size / W``).
        eval_every_epoch: evaluate after every epoch (else only after the last).
        mixed_precision: ``no``, ``fp16`` or ``bf16`` (through accelerate).
    """

    command: ClassVar[str] = "kelm train"

    epochs: int = bounded(2, ge=1)
    batch_size: int = bounded(16, ge=1)
    eval_every_epoch: bool = True
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    data: QADataConfig = field(default_factory=QADataConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: TrainOptimConfig = field(default_factory=TrainOptimConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    @property
    def family(self) -> ModelFamily:
        """The registered family of ``model.type``.

        Raises:
            KelmError: unknown family.
        """
        from kelm.modeling.families import get_family

        return get_family(self.model.type)

    def validate(self) -> TrainConfig:
        """Check value ranges (declared with the fields: :func:`kelm.config.check_bounds`) and
        the settings that relate several keys; returns ``self``.

        Raises:
            KelmError: naming the key and the allowed range.
        """
        import kelm.modeling  # noqa: F401 -- registers kelm's model families
        from kelm.modeling.families import family_names

        if self.model.type not in family_names():
            raise KelmError(
                f"config: 'model.type' must be one of {list(family_names())}, "
                f"got {self.model.type!r}"
            )
        check_bounds(self)
        checks = [
            *self.optim.optim_checks(),
            (
                "optim.optimizer",
                self.optim.optimizer in OPTIMIZERS,
                f"one of {', '.join(OPTIMIZERS)}",
            ),
        ]
        raise_failed(checks)
        if not self.data.train:
            raise KelmError("config: 'data.train' (the training QA file) is required")
        if self.family.needs_graph and not self.graph.has_graph:
            raise KelmError(
                f"config: model.type {self.model.type!r} needs a graph: set 'graph.index' "
                "(an index directory) or 'graph.source' (KG files to build one from)"
            )
        if self.model.node_init == "kge" and not self.model.kge_dir:
            raise KelmError("config: model.node_init 'kge' needs 'model.kge_dir'")
        return self


def load_train_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> TrainConfig:
    """Load a :class:`TrainConfig` from YAML and ``key.sub=value`` overrides, expand
    environment variables and validate it.

    Raises:
        KelmError: unreadable file, unknown key (naming it and the valid keys), bad value.
    """
    return load_run_config(TrainConfig, path, overrides)


__all__ = [
    "DistillConfig",
    "GraphConfig",
    "ModelConfig",
    "QADataConfig",
    "TrainConfig",
    "TrainOptimConfig",
    "load_train_config",
]
