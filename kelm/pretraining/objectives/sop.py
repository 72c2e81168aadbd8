"""``sop``: ALBERT (Lan et al. 2020): masked LM + sentence-order prediction, with a factorised
embedding and cross-layer parameter sharing.

The model is ``AlbertForPreTraining``, built from a config (``model.from_scratch``: the
backbone's sizes, then ``preset``, e.g. ``albert-base``; the vocabulary is the run's tokenizer)
or loaded from an ALBERT checkpoint (``model.encoder``).

* **Factorised embedding** (Sec. 3.1): tokens are embedded in ``embedding_size`` E dimensions
  and projected to the hidden size H, ``V x E + E x H`` parameters instead of ``V x H``.
* **Cross-layer sharing** (Sec. 3.1, Table 4): ``all`` is transformers' ALBERT as it is (one
  layer group used L times); ``attention`` / ``ffn`` share only the attention block (query,
  key, value, output dense and its LayerNorm) or only the feed-forward block (both dense layers
  and the LayerNorm after them): the model is built with one layer group per layer
  (``num_hidden_groups = L``) and the chosen submodules of every group are *the same modules*
  as group 0's (:func:`tie_albert_layers`); ``none`` keeps L separate layers.
  ``save_pretrained`` cannot write a tensor under several names that the class does not
  declare tied, so the kept model of ``attention``/``ffn`` is written untied (every group a
  copy, a plain ALBERT checkpoint any transformers ALBERT class loads) with
  ``kelm_layer_sharing`` in its config: :func:`load_albert` ties it again.
* **Sentence-order prediction** (Sec. 4.1): instances are two consecutive segments of one
  document ``[CLS] A [SEP] B [SEP]``; with probability ``sop_probability`` (0.5) they are
  swapped to ``[CLS] B [SEP] A [SEP]`` (label 1), else kept (label 0), drawn from the collate
  generator. Masking: ``masking.*`` (ALBERT's n-gram masking is not reproduced).

:func:`albert_vs_bert_parameters` counts the parameters of the ALBERT and of the BERT of the same
L and H (the benchmark's ratio).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from kelm.config import bounded
from kelm.errors import KelmError
from kelm.pretraining.instances import Instance
from kelm.pretraining.objectives._common import (
    check_preset,
    family_config,
    load_family_checkpoint,
    load_with_info,
    preset_sets,
)
from kelm.pretraining.objectives.base import (
    Objective,
    encoder_source,
    mlm_metrics,
    mlm_sums,
    ratio,
    sentence_sums,
    text_inputs,
)
from kelm.pretraining.presets import count_parameters

log = logging.getLogger(__name__)

SHARING_MODES = ("all", "attention", "ffn", "none")


@dataclass
class SOPOptions:
    """Options of ``sop``.

    Args:
        preset: model sizes (:mod:`kelm.pretraining.presets`, ``model.from_scratch`` only).
        embedding_size: E (``None``: the preset's, else ``min(128, H)``).
        sharing: cross-layer parameter sharing: ``all``, ``attention``, ``ffn`` or ``none``.
        sop_probability: fraction of pairs whose segments are swapped.
    """

    preset: str | None = None
    embedding_size: int | None = bounded(None, ge=1)
    sharing: Literal["all", "attention", "ffn", "none"] = "all"
    sop_probability: float = bounded(0.5, ge=0, le=1)


# ---------------------------------------------------------------------------------- sharing
def _layers(model: nn.Module) -> list[nn.Module]:
    base = getattr(model, "albert", model)
    return [group.albert_layers[0] for group in base.encoder.albert_layer_groups]


def tie_albert_layers(model: nn.Module, sharing: str) -> nn.Module:
    """Make the ``sharing`` submodules of every layer group those of group 0 (in place).

    Args:
        model: an ``AlbertModel`` or a model with an ``albert`` attribute, built with one
            layer group per layer (``num_hidden_groups == num_hidden_layers``, one layer each).
        sharing: ``attention``, ``ffn`` (``all``/``none``: nothing to tie here).

    Raises:
        KelmError: an unknown mode, or a model whose groups hold several layers.
    """
    if sharing not in SHARING_MODES:
        raise KelmError(f"unknown sharing {sharing!r}; valid: {', '.join(SHARING_MODES)}")
    if sharing in ("all", "none"):
        return model
    base = getattr(model, "albert", model)
    if base.config.inner_group_num != 1:
        raise KelmError("attention/ffn sharing needs ALBERT layer groups of one layer each")
    layers = _layers(model)
    first = layers[0]
    names = (
        ("attention",) if sharing == "attention" else ("ffn", "ffn_output", "full_layer_layer_norm")
    )
    for layer in layers[1:]:
        for name in names:
            setattr(layer, name, getattr(first, name))
    return model


def albert_config(base: Any, embedding_size: int | None, sharing: str) -> Any:
    """Set ALBERT's E and layer grouping for ``sharing`` on an ``AlbertConfig`` (in place)."""
    if embedding_size is not None:
        base.embedding_size = int(embedding_size)
    base.inner_group_num = 1
    base.num_hidden_groups = 1 if sharing == "all" else base.num_hidden_layers
    base.kelm_layer_sharing = sharing
    return base


def build_albert(config: Any, sharing: str, cls: Any = None) -> nn.Module:
    """``cls(config)`` (default ``AlbertForPreTraining``) with ``sharing`` applied."""
    from transformers import AlbertForPreTraining

    model = (cls or AlbertForPreTraining)(config)
    return tie_albert_layers(model, sharing)


def load_albert(path: str | Path, cls: Any = None) -> nn.Module:
    """Load a kept ALBERT and tie its layers again per ``config.kelm_layer_sharing``."""
    from transformers import AlbertForPreTraining

    model, _ = load_with_info(cls or AlbertForPreTraining, str(path))
    return tie_albert_layers(model, getattr(model.config, "kelm_layer_sharing", "all"))


def albert_vs_bert_parameters(
    num_hidden_layers: int = 12,
    hidden_size: int = 768,
    num_attention_heads: int = 12,
    intermediate_size: int | None = None,
    vocab_size: int = 30000,
    embedding_size: int = 128,
    sharing: str = "all",
    max_position_embeddings: int = 512,
) -> dict[str, Any]:
    """Parameters of the ALBERT encoder (``AlbertModel``) vs the BERT encoder (``BertModel``)
    of the same L, H, heads, FFN width and vocabulary (both with their pooler, no heads).
    Built on the meta device: no memory is used.

    Returns:
        ``{"albert": n, "bert": n, "ratio": albert / bert, "settings": {...}}``.
    """
    from transformers import AlbertConfig, AlbertModel, BertConfig, BertModel

    ffn = intermediate_size or 4 * hidden_size
    sizes = {
        "num_hidden_layers": num_hidden_layers,
        "hidden_size": hidden_size,
        "num_attention_heads": num_attention_heads,
        "intermediate_size": ffn,
        "vocab_size": vocab_size,
        "max_position_embeddings": max_position_embeddings,
    }
    with torch.device("meta"):
        albert = build_albert(
            albert_config(AlbertConfig(**sizes), embedding_size, sharing), sharing, AlbertModel
        )
        bert = BertModel(BertConfig(**sizes))
    a, b = count_parameters(albert), count_parameters(bert)
    return {
        "albert": a,
        "bert": b,
        "ratio": a / b,
        "settings": {**sizes, "embedding_size": embedding_size, "sharing": sharing},
    }


# ---------------------------------------------------------------------------------- order
def swap_order(
    instances: Sequence[Instance], generator: torch.Generator, probability: float
) -> tuple[list[Instance], Tensor]:
    """Sentence-order pairs: ``[CLS] A [SEP] B [SEP]`` becomes ``[CLS] B [SEP] A [SEP]`` with
    ``probability``.

    Returns:
        The instances and the labels ``[B]`` (0: in order, 1: swapped).
    """
    draws = torch.rand(len(instances), generator=generator)  # [B]
    out: list[Instance] = []
    labels = torch.zeros(len(instances), dtype=torch.long)
    for i, x in enumerate(instances):
        n = len(x)
        if x.sep < 1 or x.sep >= n - 1 or float(draws[i]) >= probability:
            out.append(x)
            continue
        # [CLS] A [SEP] B [SEP] -> [CLS] B [SEP] A [SEP]
        order = np.concatenate(
            [[0], np.arange(x.sep + 1, n - 1), [x.sep], np.arange(1, x.sep), [n - 1]]
        )
        new_sep = n - 1 - x.sep
        out.append(
            Instance(x.input_ids[order], x.entity_ids[order], x.word_starts[order], new_sep, x.doc)
        )
        labels[i] = 1
    return out, labels


class SOPObjective(Objective):
    """ALBERT's masked LM + sentence-order prediction; see the module docstring."""

    name = "sop"
    Options = SOPOptions

    def __init__(self, cfg: Any, options: Any, tokenizer: Any, knowledge: Any = None) -> None:
        check_preset(cfg, options.preset)
        if options.sharing not in SHARING_MODES:
            raise KelmError(
                f"config: objective_options.sharing: {options.sharing!r} is not one of "
                f"{', '.join(SHARING_MODES)}"
            )
        if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
            raise KelmError(
                f"{type(tokenizer).__name__} has no [CLS]/[SEP]: sentence order needs them"
            )
        super().__init__(cfg, options, tokenizer, knowledge)

    @property
    def segments(self) -> str:
        return "pair"

    def build_model(self, *, progress: bool = False) -> nn.Module:
        from transformers import AlbertConfig, AlbertForPreTraining

        o = self.options
        if self.cfg.model.from_scratch:
            config = family_config(self.cfg, self.tokenizer, AlbertConfig, o.preset)
            e = o.embedding_size
            if e is None and not preset_sets(o.preset, "embedding_size"):
                e = min(128, config.hidden_size)
            return build_albert(albert_config(config, e, o.sharing), o.sharing)
        source = encoder_source(self.cfg)
        model, missing = load_family_checkpoint(
            AlbertForPreTraining, source, "albert", "sop loads ALBERT checkpoints"
        )
        if missing:
            log.warning("%s: %d weights start random (%s...)", source, len(missing), missing[0])
        sharing = getattr(model.config, "kelm_layer_sharing", None)
        if sharing is None:
            sharing = "all" if model.config.num_hidden_groups == 1 else "none"
        if sharing != o.sharing:
            log.warning(
                "%s shares %s layers; objective_options.sharing %r is ignored",
                source,
                sharing,
                o.sharing,
            )
        return tie_albert_layers(model, sharing)

    def kept_model(self, module: nn.Module) -> nn.Module:
        sharing = getattr(module.config, "kelm_layer_sharing", "all")
        if sharing not in ("attention", "ffn"):
            return module
        # an untied copy: save_pretrained refuses undeclared shared tensors
        from transformers import AlbertForPreTraining

        copy = AlbertForPreTraining(module.config)
        copy.load_state_dict(module.state_dict())
        return copy

    def load_kept_model(self, path: str | Path) -> nn.Module:
        return load_albert(path)

    def collate(self, instances: Sequence[Instance], generator: torch.Generator) -> dict[str, Any]:
        instances, order = swap_order(instances, generator, self.options.sop_probability)
        batch = self.masked_batch(instances, generator)
        batch["sentence_order_label"] = order
        return batch

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return text_inputs(batch, "labels", "sentence_order_label")

    def eval_sums(self, output: Any, batch: dict[str, Any]) -> dict[str, Tensor]:
        sums = mlm_sums(output.prediction_logits, batch["labels"])
        sums.update(sentence_sums(output.sop_logits, batch["sentence_order_label"], "sop"))
        return sums

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        metrics = mlm_metrics(sums)
        metrics["sop_accuracy"] = ratio(sums["sop_correct"], sums.get("sop_pairs", 0.0))
        return metrics

    def mlm_logits(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        return model(**text_inputs(batch)).prediction_logits


OBJECTIVE = SOPObjective

__all__ = [
    "SHARING_MODES",
    "SOPObjective",
    "SOPOptions",
    "albert_config",
    "albert_vs_bert_parameters",
    "build_albert",
    "load_albert",
    "swap_order",
    "tie_albert_layers",
]
