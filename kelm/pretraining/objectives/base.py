"""What a pretraining objective is: the contract between the loop and one objective module.

The loop (:mod:`kelm.pretraining.loop`) knows nothing about any objective. It asks the
objective's class for its ``Options`` dataclass (``objective_options`` in the config), whether
it ``needs_entities`` (then the corpus is linked and the graph, a
:class:`~kelm.pipeline.GraphResources`, is passed as ``knowledge``), and
asks an instance for:

* :attr:`Objective.segments` — ``single`` or ``pair`` instances
  (:mod:`~kelm.pretraining.instances`);
* :meth:`Objective.build_model` — the module trained; its ``forward(**inputs)`` returns an
  output with ``loss`` (a wrapper module when several models train together, so that DDP sees
  one forward);
* :meth:`Objective.collate` — instances -> a batch of tensors, every random draw (masking,
  pair swaps, entity noise) from the ``torch.Generator`` it is given (the loop checkpoints
  its state, so a resumed run draws the same);
* :meth:`Objective.model_inputs`, :meth:`Objective.losses` — the forward's keyword arguments,
  and the scalar losses to log (``loss`` first);
* :meth:`Objective.eval_sums` / :meth:`Objective.eval_metrics` — summable held-out counts
  (reduced over processes) and the metrics computed from them;
* :meth:`Objective.kept_model` — the ``PreTrainedModel`` saved with ``save_pretrained``;
  :meth:`Objective.mlm_logits` — masked-LM logits for the knowledge probe.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from kelm.errors import KelmError
from kelm.modeling.backbones import IGNORE_INDEX
from kelm.pretraining.masking import mask_tokens

if TYPE_CHECKING:
    from kelm.pipeline import GraphResources
    from kelm.pretraining.config import PretrainConfig
    from kelm.pretraining.instances import Instance

log = logging.getLogger(__name__)


@dataclass
class NoOptions:
    """An objective without options."""


def entity_vectors(
    graph: GraphResources, cfg: PretrainConfig, *, progress: bool = False
) -> torch.Tensor | None:
    """Initial entity vectors ``[num_nodes, d]`` of ``graph`` per ``knowledge.entity_init``
    (``None`` for ``random``).

    ``auto`` reads ``knowledge.kge_dir`` when given and otherwise trains small TransE
    embeddings on the graph (``kge_model``/``kge_dim``/``kge_epochs``), cached under
    ``<cache>/kge/`` per graph checksum and settings: ERNIE's entities are TransE vectors,
    and a few epochs over CN-100K take about a minute on a CPU.

    Raises:
        KelmError: embeddings of another graph (refused by :func:`kelm.kge.load_embeddings`).
    """
    k = cfg.knowledge
    init = k.entity_init
    if init == "auto":
        init = "kge" if k.kge_dir else "train"
    if init == "random":
        return None
    if init == "kge":
        from kelm.kge import load_embeddings

        return load_embeddings(k.kge_dir, graph.index).entity_features()  # type: ignore[arg-type]
    if init == "train":
        from kelm.kge import KGEConfig, embed_kg, load_embeddings

        kcfg = KGEConfig(model=k.kge_model, dim=k.kge_dim, epochs=k.kge_epochs, seed=0)
        out = (
            graph.cache
            / "kge"
            / f"{graph.index.checksum[:16]}-{k.kge_model}-d{k.kge_dim}-e{k.kge_epochs}"
        )
        if not (out / "manifest.json").is_file():
            log.info("training %s entity embeddings into %s", k.kge_model, out)
            embed_kg(graph.index, out, kcfg, progress=progress)
        return load_embeddings(out, graph.index).entity_features()
    from kelm.pipeline.node_embeddings import node_name_embeddings

    return node_name_embeddings(
        graph, None, load_tokenizer_for(cfg), encoder_source(cfg), progress=progress
    )


def open_knowledge(cfg: PretrainConfig, *, progress: bool = False) -> GraphResources:
    """Load ``knowledge.index`` or build it from ``knowledge.source`` (cached in the run's
    instance cache, as ``kelm train`` caches its graph)."""
    from kelm.pipeline import GraphResources
    from kelm.pretraining.instances import default_cache_dir

    cache = Path(cfg.data.cache_dir) if cfg.data.cache_dir else default_cache_dir()
    return GraphResources.open(cfg.knowledge, cache, progress=progress)


def encoder_source(cfg: PretrainConfig) -> str:
    """The backbone checkpoint (``model.encoder``, else the bundled MiniLM)."""
    from kelm.modeling import resolve_encoder

    return resolve_encoder(cfg.model.encoder)


def load_tokenizer_for(cfg: PretrainConfig) -> Any:
    from kelm.modeling import load_tokenizer

    return load_tokenizer(cfg.model.tokenizer or encoder_source(cfg))


def backbone_config(cfg: PretrainConfig) -> Any:
    """The backbone's config (with ``model.config_overrides`` applied)."""
    from transformers import AutoConfig

    source = encoder_source(cfg)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise KelmError(f"cannot load the config of {source!r}: {exc}") from None
    for key, value in cfg.model.config_overrides.items():
        if not hasattr(config, key):
            raise KelmError(f"config: model.config_overrides: {config.model_type} has no {key!r}")
        setattr(config, key, value)
    return config


def load_pretrained_quietly(auto_cls: Any, source: str) -> nn.Module:
    """``auto_cls.from_pretrained(source)``; heads the checkpoint lacks (a bare encoder has no
    MLM head) are initialised randomly with one warning instead of the library's report."""
    from kelm.modeling.encoders import quiet_transformers

    try:
        with quiet_transformers():
            model, info = auto_cls.from_pretrained(source, output_loading_info=True)
    except OSError as exc:
        raise KelmError(f"cannot load {source!r}: {exc}") from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        warnings.warn(
            f"{source!r}: {len(missing)} weights not in the checkpoint start random "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})",
            stacklevel=2,
        )
    return model


# ---------------------------------------------------------------------------------- batches
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
"""The text inputs of an encoder's forward, as :func:`pad_instances` names them."""


def text_inputs(batch: dict[str, Any], *extra: str) -> dict[str, Any]:
    """The :data:`TEXT_INPUTS` of a batch, then the ``extra`` keys: forward keyword arguments."""
    return {k: batch[k] for k in (*TEXT_INPUTS, *extra)}


def pad_instances(
    instances: Sequence[Instance], pad_token_id: int, special_ids: Sequence[int] = ()
) -> dict[str, Tensor]:
    """Right-pad instances into tensors.

    Returns (``B`` instances, ``L`` the longest):
        ``input_ids``, ``attention_mask``, ``token_type_ids`` (1 after a pair's middle
        ``[SEP]``), ``special_tokens_mask`` (special tokens and padding), ``entity_ids`` (-1
        where none), ``word_starts``: all ``[B, L]``; ``seps`` ``[B]``.
    """
    b = len(instances)
    length = max(len(x) for x in instances)
    input_ids = torch.full((b, length), int(pad_token_id), dtype=torch.long)
    attention_mask = torch.zeros(b, length, dtype=torch.long)
    token_type_ids = torch.zeros(b, length, dtype=torch.long)
    entity_ids = torch.full((b, length), -1, dtype=torch.long)
    word_starts = torch.ones(b, length, dtype=torch.long)
    seps = torch.full((b,), -1, dtype=torch.long)
    for i, x in enumerate(instances):
        n = len(x)
        input_ids[i, :n] = torch.from_numpy(x.input_ids.astype(np.int64))
        attention_mask[i, :n] = 1
        entity_ids[i, :n] = torch.from_numpy(x.entity_ids.astype(np.int64))
        word_starts[i, :n] = torch.from_numpy(x.word_starts.astype(np.int64))
        if x.sep >= 0:
            token_type_ids[i, x.sep + 1 : n] = 1
            seps[i] = x.sep
    special = attention_mask == 0
    for sid in special_ids:
        special |= input_ids == int(sid)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
        "special_tokens_mask": special,
        "entity_ids": entity_ids,
        "word_starts": word_starts,
        "seps": seps,
    }


def mlm_sums(logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """Summable masked-LM counts: summed token cross-entropy, correct predictions, tokens.

    Shapes:
        logits: ``[B, L, V]``; labels: ``[B, L]`` (:data:`IGNORE_INDEX` where not predicted).
    """
    keep = labels != IGNORE_INDEX  # [B, L]
    return token_sums(logits[keep].float(), labels[keep], keep, "mlm")


def mlm_metrics(sums: dict[str, float]) -> dict[str, float]:
    """``mlm_loss`` (mean token cross-entropy), ``mlm_accuracy`` and ``perplexity``."""
    loss, accuracy, perplexity = token_metrics(sums, "mlm")
    return {"mlm_loss": loss, "mlm_accuracy": accuracy, "perplexity": perplexity}


def token_sums(picked: Tensor, gold: Tensor, keep: Tensor, prefix: str) -> dict[str, Tensor]:
    """Summable counts of predicted tokens: ``<prefix>_loss_sum`` (summed cross-entropy),
    ``<prefix>_correct``, ``<prefix>_tokens``.

    Shapes:
        picked: ``[N, V]`` logits of the predicted positions; gold: ``[N]``; keep: the mask
        that picked them (any shape, ``N`` true).
    """
    zero = torch.zeros((), dtype=torch.float64, device=picked.device)
    loss = nn.functional.cross_entropy(picked, gold, reduction="sum") if len(gold) else zero
    return {
        f"{prefix}_loss_sum": loss.double(),
        f"{prefix}_correct": (picked.argmax(-1) == gold).sum().double(),
        f"{prefix}_tokens": keep.sum().double(),
    }


def token_metrics(sums: dict[str, float], prefix: str) -> tuple[float, float, float]:
    """``(mean loss, accuracy, perplexity)`` from the summed :func:`token_sums` (NaNs without
    tokens)."""
    n = sums.get(f"{prefix}_tokens", 0.0)
    if not n:
        return float("nan"), float("nan"), float("nan")
    loss = sums[f"{prefix}_loss_sum"] / n
    return loss, sums[f"{prefix}_correct"] / n, math.exp(min(loss, 700.0))


def sentence_sums(logits: Tensor, labels: Tensor, prefix: str) -> dict[str, Tensor]:
    """Summable counts of a sentence-level head (NSP, SOP): ``<prefix>_correct``,
    ``<prefix>_pairs``.

    Shapes:
        logits: ``[B, 2]``; labels: ``[B]``.
    """
    pred = logits.argmax(-1)  # [B]
    return {
        f"{prefix}_correct": (pred == labels).sum().double(),
        f"{prefix}_pairs": torch.tensor(float(len(pred)), dtype=torch.float64),
    }


def ratio(part: float, whole: float) -> float:
    """``part / whole``; NaN when ``whole`` is 0 (nothing was counted)."""
    return part / whole if whole else float("nan")


# ---------------------------------------------------------------------------------- base class
class Objective:
    """Base class of pretraining objectives (see the module docstring).

    Args:
        cfg: the run's config.
        options: ``cfg.objective_options`` as :attr:`Options`.
        tokenizer: the backbone's (fast) tokenizer.
        knowledge: the linked graph (objectives with :attr:`needs_entities`).
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    needs_entities: ClassVar[bool] = False
    main_metric: ClassVar[str] = "mlm_accuracy"
    """The held-out metric reported first (``eval_accuracy`` in the curves)."""

    def __init__(
        self,
        cfg: PretrainConfig,
        options: Any,
        tokenizer: Any,
        knowledge: GraphResources | None = None,
    ) -> None:
        self.cfg = cfg
        self.options = options
        self.tokenizer = tokenizer
        self.knowledge = knowledge
        self.special_ids = sorted(set(tokenizer.all_special_ids))
        self.pad_token_id = int(tokenizer.pad_token_id or 0)

    # ---- data
    @property
    def segments(self) -> str:
        """``single`` or ``pair`` instances."""
        return "single"

    def collate(self, instances: Sequence[Instance], generator: torch.Generator) -> dict[str, Any]:
        """Instances -> a training (or evaluation) batch, random draws from ``generator``."""
        raise NotImplementedError

    def masked_batch(
        self, instances: Sequence[Instance], generator: torch.Generator
    ) -> dict[str, Any]:
        """:func:`pad_instances` with BERT masking (:meth:`mask`): ``input_ids`` masked,
        ``labels`` the original tokens where masked."""
        batch = pad_instances(instances, self.pad_token_id, self.special_ids)
        batch["input_ids"], batch["labels"] = self.mask(batch, generator)
        return batch

    def mask(self, batch: dict[str, Tensor], generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """BERT masking of ``batch["input_ids"]`` per ``cfg.masking``: ``(inputs, labels)``."""
        m = self.cfg.masking
        if self.tokenizer.mask_token_id is None:
            raise KelmError(f"{type(self.tokenizer).__name__} has no mask token; MLM needs one")
        return mask_tokens(
            batch["input_ids"],
            batch["special_tokens_mask"],
            generator=generator,
            mask_token_id=int(self.tokenizer.mask_token_id),
            vocab_size=len(self.tokenizer),
            probability=m.probability,
            mask_ratio=m.mask_ratio,
            random_ratio=m.random_ratio,
            word_starts=batch["word_starts"],
            whole_word=m.whole_word,
            max_ngram=m.max_ngram,
        )

    # ---- model
    def build_model(self, *, progress: bool = False) -> nn.Module:
        """The module trained (its ``forward(**model_inputs(batch))`` returns ``loss``)."""
        raise NotImplementedError

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The forward's keyword arguments from a batch."""
        raise NotImplementedError

    def losses(self, output: Any, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Scalar losses to log, ``loss`` (the one optimised) first."""
        return {"loss": output.loss}

    def loss_weight(self, batch: dict[str, Any]) -> float:
        """What the optimised loss of a (collated) batch is a mean over: its predicted tokens
        (``labels`` not :data:`IGNORE_INDEX`), or its rows without ``labels``.

        Several processes weight their share of a global batch's loss by their share of this
        count, so that the averaged gradient is the global batch's: exact for a loss that is
        one mean over it; a loss adding terms over other counts (ernie's entity loss, the
        sentence heads) is weighted by this count, close to the one-process step.
        """
        labels = batch.get("labels")
        if torch.is_tensor(labels) and labels.dim() == 2:
            return float((labels != IGNORE_INDEX).sum())
        return float(len(batch["input_ids"]))

    def eval_sums(self, output: Any, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Summable held-out counts of one batch (reduced over processes)."""
        raise NotImplementedError

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """Held-out metrics from the summed counts."""
        raise NotImplementedError

    def param_groups(self, module: nn.Module) -> list[dict[str, Any]]:
        """AdamW groups: trained parameters with / without weight decay (biases, norms)."""
        o = self.cfg.optim
        decay, no_decay = [], []
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
        groups = [
            {"params": decay, "weight_decay": o.weight_decay, "name": "decay"},
            {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
        ]
        return [g for g in groups if g["params"]]

    def kept_model(self, module: nn.Module) -> nn.Module:
        """The model saved with ``save_pretrained`` at the end (default: ``module``)."""
        return module

    def load_kept_model(self, path: str | Path) -> nn.Module:
        """Load what :meth:`kept_model` saved (for the probe)."""
        raise NotImplementedError

    def mlm_logits(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        """Masked-LM logits ``[B, L, V]`` of the kept model for a probe batch (keys of
        :func:`pad_instances`)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The objective and its resolved options (written into metrics.json)."""
        return {"name": self.name, "options": dataclasses.asdict(self.options)}


__all__ = [
    "TEXT_INPUTS",
    "entity_vectors",
    "NoOptions",
    "Objective",
    "backbone_config",
    "encoder_source",
    "load_pretrained_quietly",
    "load_tokenizer_for",
    "mlm_metrics",
    "mlm_sums",
    "open_knowledge",
    "pad_instances",
    "ratio",
    "sentence_sums",
    "text_inputs",
    "token_metrics",
    "token_sums",
]
