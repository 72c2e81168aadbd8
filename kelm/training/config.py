"""The training config: dataclasses loaded from YAML with dotted ``--set key=value`` overrides.

    cfg = load_train_config("configs/csqa-qagnn.yaml", ["optim.lm_lr=2e-5", "seed=1"])

Sections: ``data`` (QA files, held-out split, tokenisation), ``graph`` (the graph index and the
ground -> retrieve pipeline), ``model`` (model family, text encoder, node embeddings, GNN
sizes), ``optim`` (AdamW with separate LM and GNN learning rates, schedule, LM freezing) and
``distill`` (soft targets from a fine-tuned teacher run); top-level keys are the run itself
(directory, seed, epochs, batch sizes).

String values may use ``${VAR}`` (or ``${VAR:-default}``) environment-variable expansion.
``${KELM_DATA}`` falls back to the default data directory of :func:`kelm.paths.data_dir` when
the variable is not set. Expansion happens when
the config is loaded; ``config.resolved.yaml`` holds the expanded values.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kelm.config import load_config
from kelm.errors import KelmError

ModelType = Literal["lm", "kagnet", "qagnn", "ernie", "gpt"]
MODEL_TYPES: tuple[str, ...] = ("lm", "kagnet", "qagnn", "ernie", "gpt")
GRAPH_MODELS: tuple[str, ...] = ("kagnet", "qagnn")
"""Model types that run the ground -> retrieve pipeline."""
ENTITY_MODELS: tuple[str, ...] = ("ernie",)
"""Model types that need the graph index (entity linking, KG embeddings) but no retrieval."""

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class DataConfig:
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
    holdout: float = 0.1
    split_seed: int = 0
    max_train: int | None = None
    max_eval: int | None = None
    max_length: int = 64


@dataclass
class GraphConfig:
    """The knowledge graph and the ground -> retrieve pipeline (graph models; ``ernie`` uses
    ``index``/``source``, ``pipeline`` and ``cache_dir`` to link entities, no retrieval).

    Args:
        index: a graph index directory (``kelm graph build``).
        source: KG file or files to build the index from when ``index`` is not given (built
            once into the cache, keyed on the files' checksums and ``format``).
        format: format of ``source`` (``cn100k``, ``conceptnet``, ``tsv``, ``rdf``,
            ``wordnet``).
        max_nodes: nodes per statement subgraph.
        hops: longest question-answer path (also KagNet's ``max_hops``).
        paths: paths kept per question-answer pair by the retrieval.
        scorer: relevance scorer of the subgraph node cap (``cosine``, ``lm``, ``none``).
        context: add the context node in the retrieval (QA-GNN adds it itself otherwise).
        pipeline: installed spaCy pipeline for grounding (default blank English).
        cache_dir: where grounded files, retrievals, built indices and node-name embeddings
            are cached (default ``$KELM_CACHE/training``, ``~/.cache/kelm/training``).
    """

    index: str | None = None
    source: str | list[str] | None = None
    format: str = "cn100k"
    max_nodes: int = 32
    hops: int = 2
    paths: int = 20
    scorer: str = "none"
    context: bool = False
    pipeline: str | None = None
    cache_dir: str | None = None


@dataclass
class ModelConfig:
    """The model family and its sizes.

    Args:
        type: ``lm`` (text baseline), ``kagnet``, ``qagnn`` or ``ernie`` (ERNIE-style
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
        node_init: ``auto`` (KG embeddings when ``kge_dir`` is given, else node-name text
            embeddings), ``kge``, ``names`` or ``random``.
        node_dim: width of a random node table (the others take their width from the vectors).
        freeze_node_embeddings: keep the node table (ERNIE: the entity table) fixed in training.
        gnn_dim, gnn_layers, gnn_dropout: GNN width, depth (``None``: the family default,
            KagNet 2, QA-GNN 5) and dropout.
        gnn_heads, pool_heads: QA-GNN attention heads (GAT layers, pooling).
        fc_dim: hidden width of the scoring MLP.
        relation_dim: KagNet relation table width (``None``: the KG embeddings' width, else 100).
        path_dim: KagNet path LSTM width.
        max_paths: KagNet paths per statement fed to the model (the first ones).
        knowledge_layers: ERNIE: top encoder layers turned into knowledgeable (K-Encoder)
            layers.
        entity_hidden_size: ERNIE: width of the K-Encoder entity stream (``None``: the entity
            table's width; otherwise the table is projected).
        entity_heads: ERNIE: heads of the entity self-attention (divides the stream width).
        lm_loss_weight: ``gpt``: weight of the auxiliary LM loss (GPT-1 used 0.5; 0: off).
    """

    type: ModelType = "lm"
    encoder: str | None = None
    tokenizer: str | None = None
    pooling: Literal["mean", "cls"] = "mean"
    classifier_dropout: float = 0.1
    kge_dir: str | None = None
    node_init: Literal["auto", "kge", "names", "random"] = "auto"
    node_dim: int = 100
    freeze_node_embeddings: bool = True
    gnn_dim: int = 100
    gnn_layers: int | None = None
    gnn_dropout: float = 0.2
    gnn_heads: int = 2
    pool_heads: int = 2
    fc_dim: int = 200
    relation_dim: int | None = None
    path_dim: int = 64
    max_paths: int = 32
    knowledge_layers: int = 2
    entity_hidden_size: int | None = None
    entity_heads: int = 4
    lm_loss_weight: float = 0.5


@dataclass
class OptimConfig:
    """AdamW with two learning rates, a schedule and optional LM freezing.

    Args:
        lm_lr: learning rate of the text encoder.
        gnn_lr: learning rate of everything else (GNN, node tables, scoring head).
        weight_decay: AdamW weight decay (not applied to biases and LayerNorm weights).
        betas, eps: AdamW constants.
        schedule: ``linear`` (warm-up then linear decay to 0), ``cosine`` or ``constant``
            (after warm-up).
        warmup_steps: warm-up optimizer steps.
        max_grad_norm: gradient clipping (``None``: off).
        freeze_lm_steps: keep the text encoder frozen for the first N optimizer steps (no
            gradients through it, no updates; its dropout stays active). The GNN and heads
            learn meanwhile; the encoder then trains with ``lm_lr`` on the same schedule.
    """

    lm_lr: float = 2e-5
    gnn_lr: float = 1e-3
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0
    freeze_lm_steps: int = 0


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
    temperature: float = 1.0
    alpha: float = 1.0


@dataclass
class TrainConfig:
    """A training run (see the module docstring).

    Args:
        run_dir: the run directory (config, model, checkpoints, logs, metrics).
        seed: seed of model init, dropout and the batch order.
        epochs: passes over the training questions.
        batch_size: questions per optimizer step on each process.
        eval_batch_size: questions per forward pass in evaluation.
        eval_every_epoch: evaluate after every epoch (else only after the last).
        keep_checkpoints: epoch checkpoints kept (the newest ones; at least 1).
        log_every: optimizer steps between progress lines and TensorBoard points.
        threads: torch CPU threads per process (``None``: torch's default).
        mixed_precision: ``no``, ``fp16`` or ``bf16`` (through accelerate).
        cpu: run on the CPU even when an accelerator is present.
    """

    run_dir: str = "runs/run"
    seed: int = 0
    epochs: int = 2
    batch_size: int = 16
    eval_batch_size: int = 32
    eval_every_epoch: bool = True
    keep_checkpoints: int = 2
    log_every: int = 10
    threads: int | None = None
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    cpu: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    @property
    def uses_graph(self) -> bool:
        """Whether the model needs the graph pipeline."""
        return self.model.type in GRAPH_MODELS

    @property
    def needs_graph(self) -> bool:
        """Whether the model needs a graph index (graph and entity models)."""
        return self.model.type in GRAPH_MODELS + ENTITY_MODELS

    def validate(self) -> TrainConfig:
        """Check value ranges; returns ``self``.

        Raises:
            KelmError: naming the key and the allowed range.
        """
        checks: list[tuple[str, bool, str]] = [
            ("epochs", self.epochs >= 1, "at least 1"),
            ("batch_size", self.batch_size >= 1, "at least 1"),
            ("eval_batch_size", self.eval_batch_size >= 1, "at least 1"),
            ("keep_checkpoints", self.keep_checkpoints >= 1, "at least 1"),
            ("log_every", self.log_every >= 1, "at least 1"),
            ("threads", self.threads is None or self.threads >= 1, "at least 1"),
            ("data.holdout", 0.0 <= self.data.holdout < 1.0, "in [0, 1)"),
            ("data.max_length", self.data.max_length >= 8, "at least 8"),
            ("data.max_train", self.data.max_train is None or self.data.max_train >= 1, ">= 1"),
            ("data.max_eval", self.data.max_eval is None or self.data.max_eval >= 1, ">= 1"),
            ("graph.max_nodes", self.graph.max_nodes >= 1, "at least 1"),
            ("graph.hops", 1 <= self.graph.hops <= 5, "between 1 and 5"),
            ("graph.paths", self.graph.paths >= 0, "0 or more"),
            ("model.max_paths", self.model.max_paths >= 1, "at least 1"),
            ("model.node_dim", self.model.node_dim >= 1, "at least 1"),
            ("model.gnn_dim", self.model.gnn_dim >= 1, "at least 1"),
            ("model.knowledge_layers", self.model.knowledge_layers >= 1, "at least 1"),
            ("model.entity_heads", self.model.entity_heads >= 1, "at least 1"),
            (
                "model.entity_hidden_size",
                self.model.entity_hidden_size is None or self.model.entity_hidden_size >= 1,
                "at least 1",
            ),
            ("model.lm_loss_weight", self.model.lm_loss_weight >= 0, "0 or more"),
            ("optim.lm_lr", self.optim.lm_lr >= 0, "0 or more"),
            ("optim.gnn_lr", self.optim.gnn_lr >= 0, "0 or more"),
            ("optim.warmup_steps", self.optim.warmup_steps >= 0, "0 or more"),
            ("optim.freeze_lm_steps", self.optim.freeze_lm_steps >= 0, "0 or more"),
            ("optim.betas", len(self.optim.betas) == 2, "a list of two numbers"),
            ("distill.temperature", self.distill.temperature > 0, "above 0"),
            ("distill.alpha", 0.0 <= self.distill.alpha <= 1.0, "in [0, 1]"),
        ]
        for key, ok, what in checks:
            if not ok:
                raise KelmError(f"config: {key!r} must be {what}")
        if not self.data.train:
            raise KelmError("config: 'data.train' (the training QA file) is required")
        if self.needs_graph and not (self.graph.index or self.graph.source):
            raise KelmError(
                f"config: model.type {self.model.type!r} needs a graph: set 'graph.index' "
                "(an index directory) or 'graph.source' (KG files to build one from)"
            )
        if self.model.node_init == "kge" and not self.model.kge_dir:
            raise KelmError("config: model.node_init 'kge' needs 'model.kge_dir'")
        return self


def expand_env(value: str, where: str = "config") -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in a string.

    Raises:
        KelmError: a variable without default is not set (``KELM_DATA`` falls back to
            :func:`kelm.paths.data_dir`).
    """

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if os.environ.get(name):
            return os.environ[name]
        if default is not None:
            return default
        if name == "KELM_DATA":
            from kelm.paths import data_dir

            return str(data_dir(must_exist=False).resolve())
        raise KelmError(f"{where}: environment variable {name} is not set (used as ${{{name}}})")

    return _ENV.sub(repl, value)


def _expand_all(obj: Any, where: str) -> None:
    """Expand environment variables in every string field of a dataclass tree, in place."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _expand_all(value, where)
        elif isinstance(value, str) and "${" in value:
            setattr(obj, f.name, expand_env(value, where))
        elif isinstance(value, Path) and "${" in str(value):
            setattr(obj, f.name, Path(expand_env(str(value), where)))
        elif isinstance(value, list):
            setattr(
                obj,
                f.name,
                [expand_env(v, where) if isinstance(v, str) else v for v in value],
            )


def load_train_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> TrainConfig:
    """Load a :class:`TrainConfig` from YAML and ``key.sub=value`` overrides, expand
    environment variables and validate it.

    Raises:
        KelmError: unreadable file, unknown key (naming it and the valid keys), bad value.
    """
    cfg = load_config(TrainConfig, path, overrides)
    _expand_all(cfg, str(path) if path else "config")
    return cfg.validate()


__all__ = [
    "ENTITY_MODELS",
    "GRAPH_MODELS",
    "MODEL_TYPES",
    "DataConfig",
    "DistillConfig",
    "GraphConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "expand_env",
    "load_train_config",
]
