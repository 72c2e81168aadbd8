"""The pretraining config: dataclasses loaded from YAML with dotted ``--set key=value`` overrides.

    cfg = load_pretrain_config("configs/pretrain-ernie.yaml", ["max_steps=200", "seed=1"])

Top-level keys are the run (directory, seed, steps, batch sizes, checkpoints) and the
``objective`` (a name from :mod:`kelm.pretraining.objectives`) with its ``objective_options``
(checked against that objective's own options dataclass). Sections: ``corpus`` (what text),
``data`` (instances: length, held-out split, cache), ``knowledge`` (the graph that text is linked
to and the entity vectors, for objectives that use entities), ``model`` (the backbone),
``masking`` (MLM corruption), ``optim`` (AdamW and schedule) and ``probe`` (the cloze knowledge
probe run at the end).

The sections shared with ``kelm train`` (the run, the graph source, the encoder, the optimizer
constants) are defined once in :mod:`kelm.config`; ``${VAR}`` expansion is described there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from kelm.config import (
    SEED_LIMIT,
    EncoderConfig,
    GraphSourceConfig,
    OptimConfig,
    RunConfig,
    bounded,
    check_bounds,
    flat_dict,
    from_dict,
    load_run_config,
    raise_failed,
)
from kelm.errors import KelmError


@dataclass
class CorpusConfig:
    """The text to pretrain on.

    Args:
        kind: ``text`` (the files in ``paths``) or ``wordnet`` (the glosses and example
            sentences of the WordNet 3.0 database in ``wordnet``).
        paths: text files or directories (every ``*.txt`` below them, in name order). Each
            file is one document, UTF-8; see :mod:`kelm.pretraining.corpus` for the layout.
        units: ``line``: every non-blank line is one unit (a sentence, or a paragraph written
            on one line); ``paragraph``: the lines of a blank-line separated block are joined
            into one unit. Instances are packed from consecutive units of one document.
        wordnet: WordNet database directory (NLTK layout or a plain ``dict`` folder).
        wordnet_examples: also use the example sentences of each synset.
        wordnet_label_prefix: write a gloss as ``"<first lemma>: <gloss>"`` so that the
            defined word is in the text (and can be linked).
        max_documents: use the first N documents only (``None``: all).
    """

    kind: Literal["text", "wordnet"] = "text"
    paths: list[str] = field(default_factory=list)
    units: Literal["line", "paragraph"] = "line"
    wordnet: str | None = "${KELM_DATA}/kg/wordnet_nltk"
    wordnet_examples: bool = True
    wordnet_label_prefix: bool = True
    max_documents: int | None = bounded(None, ge=1)


@dataclass
class InstanceConfig:
    """Instances: packing, held-out split and cache.

    Args:
        max_length: wordpieces per instance, special tokens included (units longer than the
            room left are truncated, and counted).
        holdout: fraction of the documents held out for evaluation.
        split_seed: seed of the held-out split.
        max_eval_instances: evaluate on at most this many held-out instances (the first ones).
        cache_dir: where prepared instances are cached (default ``$KELM_CACHE/pretraining``).
        shard_documents: documents per preparation shard; an interrupted preparation resumes
            at the first unfinished shard.
        link_batch_size: texts per spaCy ``nlp.pipe`` batch when linking.
    """

    max_length: int = bounded(128, ge=8)
    holdout: float = bounded(0.05, ge=0, lt=1)
    split_seed: int = bounded(0, ge=0, lt=SEED_LIMIT)
    max_eval_instances: int | None = bounded(1000, ge=1)
    cache_dir: str | None = None
    shard_documents: int = bounded(5000, ge=1)
    link_batch_size: int = bounded(256, ge=1)


@dataclass
class KnowledgeConfig(GraphSourceConfig):
    """The graph the text is linked to (:class:`~kelm.config.GraphSourceConfig`: ``index``,
    ``source``, ``format``, ``pipeline``; built once into the cache as ``kelm train`` does),
    and the entity vectors (objectives with entities).

    Args:
        linker_mode: ``concept`` (lemma n-grams, ConceptNet-style) or ``entity`` (alias table).
        kge_dir: ``kelm embed-kg`` output for this graph (refused when built from another).
        entity_init: ``auto`` (``kge`` when ``kge_dir`` is set, else ``train``), ``kge``,
            ``train`` (train TransE on the graph with ``kge_*`` settings, cached per graph
            checksum and settings), ``names`` (text embeddings of the node names by the
            backbone, cached) or ``random``.
        kge_model, kge_dim, kge_epochs: the embeddings ``train`` trains.
    """

    linker_mode: Literal["concept", "entity"] = "concept"
    kge_dir: str | None = None
    entity_init: Literal["auto", "kge", "train", "names", "random"] = "auto"
    kge_model: str = "transe"
    kge_dim: int = bounded(100, ge=1)
    kge_epochs: int = bounded(5, ge=0)


@dataclass
class BackboneConfig(EncoderConfig):
    """The backbone: a BERT-family checkpoint (:class:`~kelm.config.EncoderConfig`:
    ``encoder``, ``tokenizer``), pretrained or from scratch.

    Args:
        from_scratch: random weights from the encoder's config (plus ``config_overrides``)
            instead of its pretrained weights.
        config_overrides: backbone config keys to change (``from_scratch`` only), e.g.
            ``{num_hidden_layers: 4}``.
        head_warmup_steps: a new masked-LM head starts as the identity transform and is fitted
            for this many steps to the frozen encoder's states (cached,
            :mod:`kelm.pretraining.head_warmup`) before the first step; 0: a random head.
            Ignored with ``from_scratch`` and on ``--resume``.
    """

    from_scratch: bool = False
    config_overrides: dict[str, Any] = field(default_factory=dict)
    head_warmup_steps: int = bounded(300, ge=0)


@dataclass
class MaskingConfig:
    """Masked-LM corruption (BERT): of the selected tokens, ``mask_ratio`` become ``[MASK]``,
    ``random_ratio`` a random token, the rest stay.

    Args:
        probability: fraction of the (non-special) tokens selected for prediction.
        mask_ratio, random_ratio: split of the selected tokens (80/10/10 by default).
        whole_word: select whole words (all wordpieces of a word together).
        max_ngram: select spans of 1..N whole words, ``p(n) ∝ 1/n`` (ALBERT's n-gram masking,
            N = 3 in the paper); 1: single tokens (or words with ``whole_word``).
    """

    probability: float = bounded(0.15, gt=0, lt=1)
    mask_ratio: float = bounded(0.8, ge=0, le=1)
    random_ratio: float = bounded(0.1, ge=0, le=1)
    whole_word: bool = False
    max_ngram: int = bounded(1, ge=1, le=10)


@dataclass
class PretrainOptimConfig(OptimConfig):
    """AdamW with one learning rate, on the shared constants and schedule of
    :class:`~kelm.config.OptimConfig`.

    Args:
        lr: learning rate of every trained parameter.
    """

    lr: float = bounded(5e-5, gt=0)


@dataclass
class ProbeConfig:
    """The cloze knowledge probe (:mod:`kelm.pretraining.probe`) run after training.

    Args:
        enabled: run it at the end of the run (results in ``metrics.json`` and ``probe.json``).
        files: CN-100K-format triple files (``relation<TAB>head<TAB>tail``).
        templates: YAML of one cloze template per relation (default: kelm's resource).
        max_triples: probe at most this many triples (the first kept ones).
        batch_size: sentences per forward pass.
    """

    enabled: bool = False
    files: list[str] = field(
        default_factory=lambda: [
            "${KELM_DATA}/kg/conceptnet100k/test.txt",
            "${KELM_DATA}/kg/conceptnet100k/valid.txt",
        ]
    )
    templates: str | None = None
    max_triples: int | None = bounded(None, ge=1)
    batch_size: int = bounded(64, ge=1)


OPTIONS_PREFIX = "objective_options."


@dataclass
class PretrainConfig(RunConfig):
    """A pretraining run (see the module docstring); the shared run keys are those of
    :class:`~kelm.config.RunConfig`.

    Args:
        objective: the objective's name (:func:`kelm.pretraining.objectives.objective_names`).
        objective_options: the objective's own options (its ``Options`` dataclass).
        max_steps: optimizer steps.
        batch_size: instances per micro-batch, over all processes (the global micro-batch;
            each of ``W`` processes takes ``batch_size / W``).
        grad_accum_steps: micro-batches per optimizer step.
        eval_every: evaluate every N optimizer steps (``None``: at the end only).
        save_every: checkpoint every N optimizer steps (``None``: at the end only).
        mixed_precision: ``auto`` (bf16 on a GPU that has it, else fp16 on a GPU, else no),
            ``no``, ``fp16`` or ``bf16``.
    """

    command: ClassVar[str] = "kelm pretrain"

    run_dir: str = "runs/pretrain"
    eval_batch_size: int = bounded(64, ge=1)
    objective: str = "mlm"
    objective_options: dict[str, Any] = field(default_factory=dict)
    max_steps: int = bounded(1000, ge=1)
    batch_size: int = bounded(32, ge=1)
    grad_accum_steps: int = bounded(1, ge=1)
    eval_every: int | None = bounded(None, ge=1)
    save_every: int | None = bounded(None, ge=1)
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    data: InstanceConfig = field(default_factory=InstanceConfig)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    model: BackboneConfig = field(default_factory=BackboneConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    optim: PretrainOptimConfig = field(default_factory=PretrainOptimConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)

    def objective_class(self) -> type:
        """The objective class named by ``objective``.

        Raises:
            KelmError: unknown objective (listing the valid ones).
        """
        from kelm.pretraining.objectives import get_objective

        return get_objective(self.objective)

    def options(self) -> Any:
        """``objective_options`` as the objective's ``Options`` dataclass.

        Raises:
            KelmError: an unknown option (naming the valid ones) or a bad value.
        """
        cls = self.objective_class()
        options = from_dict(cls.Options, dict(self.objective_options), "config", OPTIONS_PREFIX)
        check_bounds(options, OPTIONS_PREFIX)
        return options

    def validate(self) -> PretrainConfig:
        """Check value ranges (declared with the fields: :func:`kelm.config.check_bounds`),
        the settings that relate several keys and the objective's options; returns ``self``.

        Raises:
            KelmError: naming the key and the allowed range.
        """
        check_bounds(self)
        m = self.masking
        checks = [
            (
                "masking.mask_ratio + masking.random_ratio",
                m.mask_ratio + m.random_ratio <= 1.0 + 1e-9,
                "at most 1",
            ),
            *self.optim.optim_checks(),
        ]
        raise_failed(checks)
        if self.corpus.kind == "text" and not self.corpus.paths:
            raise KelmError("config: 'corpus.paths' (text files or folders) is required")
        if self.corpus.kind == "wordnet" and not self.corpus.wordnet:
            raise KelmError("config: 'corpus.wordnet' (the WordNet directory) is required")
        cls = self.objective_class()
        self.options()  # unknown or mistyped options fail here, before any work
        if cls.needs_entities and not self.knowledge.has_graph:
            raise KelmError(
                f"config: objective {self.objective!r} needs a graph: set 'knowledge.index' "
                "(an index directory) or 'knowledge.source' (KG files to build one from)"
            )
        if self.knowledge.entity_init == "kge" and not self.knowledge.kge_dir:
            raise KelmError("config: knowledge.entity_init 'kge' needs 'knowledge.kge_dir'")
        if self.model.config_overrides and not self.model.from_scratch:
            raise KelmError(
                "config: 'model.config_overrides' change the architecture: they need "
                "'model.from_scratch: true'"
            )
        return self


RESUMABLE_CHANGES = frozenset(
    {
        "run_dir",
        "eval_batch_size",
        "log_every",
        "threads",
        "keep_checkpoints",
        "data.cache_dir",
        "nonfinite_loss",
    }
)
"""Config keys that may differ between a run and its ``--resume`` (they change no number;
``nonfinite_loss`` only changes a run that would otherwise stop)."""


def load_pretrain_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> PretrainConfig:
    """Load a :class:`PretrainConfig` from YAML and ``key.sub=value`` overrides, expand
    environment variables and validate it.

    Raises:
        KelmError: unreadable file, unknown key (naming it and the valid keys), bad value,
            unknown objective (listing the valid ones).
    """
    return load_run_config(PretrainConfig, path, overrides)


FREE_FORM = frozenset({"objective_options", "config_overrides"})
"""Option mappings compared as one value when a resumed run's config is checked."""


def flat_pretrain_config(cfg: PretrainConfig) -> dict[str, Any]:
    """The config as ``{"a.b": value}`` (``objective_options`` included as one value)."""
    return flat_dict(cfg, FREE_FORM)


__all__ = [
    "RESUMABLE_CHANGES",
    "BackboneConfig",
    "CorpusConfig",
    "InstanceConfig",
    "KnowledgeConfig",
    "MaskingConfig",
    "PretrainConfig",
    "PretrainOptimConfig",
    "ProbeConfig",
    "flat_pretrain_config",
    "load_pretrain_config",
]
