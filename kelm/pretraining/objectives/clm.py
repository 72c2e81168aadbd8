"""``clm``: GPT-style causal language modelling (Radford et al. 2018, 2019; Brown et al. 2020).

The model is ``GPT2LMHeadModel`` (``architecture: gpt2``) or ``OpenAIGPTLMHeadModel``
(``architecture: openai-gpt``, GPT-1) built from a config (``model.from_scratch``: the
backbone's sizes, then ``preset``, e.g. ``gpt-tiny``, ``gpt1``, ``gpt2-small``; the vocabulary
is the run's tokenizer), or any ``AutoModelForCausalLM`` checkpoint in ``model.encoder``.

Instances are contiguous token blocks: consecutive units of one document packed up to
``data.max_length`` tokens (:mod:`~kelm.pretraining.instances`, ``single`` format, wrapped in the
tokenizer's ``[CLS]``/``[SEP]`` or BOS/EOS). Every position predicts the next token (padding
excluded); held out: mean token loss, perplexity and next-token accuracy.

GPT-1's transfer format (Radford et al. 2018, Sec. 3.3) frames a multiple-choice item as
``<start> question <delim> choice <extract>`` and classifies from the extract token's state. The
three tokens are added to the tokenizer here (``gpt1_special_tokens``, on by default) so that
the pretrained model's vocabulary, and the tokenizer saved with it, already carry them; both
sides add them with :func:`kelm.modeling.modeling_gpt.add_gpt1_special_tokens`, so the
fine-tuning head finds exactly these tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from kelm.errors import KelmError
from kelm.modeling.backbones import IGNORE_INDEX
from kelm.pretraining.instances import Instance
from kelm.pretraining.objectives._common import (
    check_no_probe,
    check_preset,
    family_config,
    load_with_info,
)
from kelm.pretraining.objectives.base import (
    Objective,
    encoder_source,
    pad_instances,
    token_metrics,
    token_sums,
)

log = logging.getLogger(__name__)

# checkpoints of bidirectional encoders: loaded as causal LMs only with is_decoder set
_ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "electra", "camembert", "ernie"}


@dataclass
class CLMOptions:
    """Options of ``clm``.

    Args:
        architecture: the model class built with ``model.from_scratch``: ``gpt2``
            (``GPT2LMHeadModel``) or ``openai-gpt`` (GPT-1, ``OpenAIGPTLMHeadModel``).
        preset: model sizes (:mod:`kelm.pretraining.presets`, ``model.from_scratch`` only).
        gpt1_special_tokens: add GPT-1's start / delimiter / extract tokens to the vocabulary.
    """

    architecture: Literal["gpt2", "openai-gpt"] = "gpt2"
    preset: str | None = None
    gpt1_special_tokens: bool = True


def next_token_sums(logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """Summable next-token counts: summed cross-entropy, correct predictions, tokens.

    Shapes:
        logits: ``[B, L, V]``; labels: ``[B, L]`` (:data:`IGNORE_INDEX` at padding); position
        ``i`` predicts label ``i + 1``.
    """
    pred = logits[:, :-1].float()  # [B, L-1, V]
    target = labels[:, 1:]  # [B, L-1]
    keep = target != IGNORE_INDEX
    return token_sums(pred[keep], target[keep], keep, "lm")


class CLMObjective(Objective):
    """Causal LM; see the module docstring."""

    name = "clm"
    Options = CLMOptions
    main_metric = "lm_accuracy"

    def __init__(self, cfg: Any, options: Any, tokenizer: Any, knowledge: Any = None) -> None:
        from kelm.modeling.modeling_gpt import add_gpt1_special_tokens

        check_preset(cfg, options.preset)
        check_no_probe(cfg, "the cloze probe needs a masked LM; clm trains a causal LM")
        # the tokenizer's own padding is kept: the instances and the config carry its id
        self.gpt1_ids = (
            add_gpt1_special_tokens(tokenizer, pad_token=False)
            if options.gpt1_special_tokens
            else {}
        )
        super().__init__(cfg, options, tokenizer, knowledge)

    def build_model(self, *, progress: bool = False) -> nn.Module:
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            GPT2Config,
            GPT2LMHeadModel,
            OpenAIGPTConfig,
            OpenAIGPTLMHeadModel,
        )

        o = self.options
        if self.cfg.model.from_scratch:
            if o.architecture == "gpt2":
                config = family_config(self.cfg, self.tokenizer, GPT2Config, o.preset)
                config.bos_token_id = config.eos_token_id = None
                model: nn.Module = GPT2LMHeadModel(config)
            else:
                config = family_config(self.cfg, self.tokenizer, OpenAIGPTConfig, o.preset)
                model = OpenAIGPTLMHeadModel(config)
        else:
            source = encoder_source(self.cfg)
            try:
                config = AutoConfig.from_pretrained(source)
            except (OSError, ValueError) as exc:
                raise KelmError(f"cannot load the config of {source!r}: {exc}") from None
            kwargs: dict[str, Any] = {}
            if config.model_type in _ENCODER_TYPES:
                # a bidirectional encoder continued as a causal LM (its *LMHeadModel class)
                log.warning(
                    "%s is a %s encoder: trained causally (is_decoder=True)",
                    source,
                    config.model_type,
                )
                config.is_decoder = True
                kwargs["config"] = config
            model, _ = load_with_info(AutoModelForCausalLM, source, **kwargs)
            if model.get_input_embeddings().num_embeddings < len(self.tokenizer):
                model.resize_token_embeddings(len(self.tokenizer))
        positions = getattr(model.config, "max_position_embeddings", None)
        if positions is not None and self.cfg.data.max_length > positions:
            raise KelmError(
                f"config: data.max_length {self.cfg.data.max_length} exceeds the model's "
                f"{positions} positions"
            )
        return model

    def load_kept_model(self, path: str | Path) -> nn.Module:
        from transformers import AutoModelForCausalLM

        return load_with_info(AutoModelForCausalLM, str(path))[0]

    def collate(self, instances: Sequence[Instance], generator: torch.Generator) -> dict[str, Any]:
        batch = pad_instances(instances, self.pad_token_id, self.special_ids)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)
        batch["labels"] = labels
        return batch

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        # no token_type_ids: GPT-2 would look them up in its token embeddings
        return {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}

    def loss_weight(self, batch: dict[str, Any]) -> float:
        # the causal LM's loss predicts token t + 1 from token t: the first has no target
        return float((batch["labels"][:, 1:] != IGNORE_INDEX).sum())

    def eval_sums(self, output: Any, batch: dict[str, Any]) -> dict[str, Tensor]:
        return next_token_sums(output.logits, batch["labels"])

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        loss, accuracy, perplexity = token_metrics(sums, "lm")
        return {"loss": loss, "perplexity": perplexity, "lm_accuracy": accuracy}

    def mlm_logits(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        raise KelmError("the clm objective keeps a causal LM: the cloze probe needs a masked LM")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "gpt1_special_tokens": self.gpt1_ids}


OBJECTIVE = CLMObjective

__all__ = ["CLMObjective", "CLMOptions"]
