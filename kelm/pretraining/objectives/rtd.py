"""``rtd``: ELECTRA's replaced-token detection (Clark et al. 2020).

Two transformers models train together (one wrapper module, :class:`ElectraRTD`, so that DDP
sees one forward):

* the **generator**, ``ElectraForMaskedLM``, a masked LM ``generator_fraction`` the
  discriminator's size: hidden size, FFN width and attention heads times the fraction, the same
  depth (Clark et al. 2020, Sec. 3.2 and Table 6 in Appendix A: 1/4 for ELECTRA-Small and
  -Large, 1/3 for -Base; generators between 1/4 and 1/2 of the discriminator work best, Fig. 3);
* the **discriminator**, ``ElectraForPreTraining``, which tells for every token whether the
  generator replaced it. It is the model kept (saved with ``save_pretrained``).

Both use the same embedding module (token, position and segment embeddings and their
LayerNorm: "we share the embeddings (both the token and positional embeddings)", Sec. 3.2), at
width ``embedding_size``; the generator projects it to its smaller hidden size and its output
layer is tied to the shared token embeddings.

A batch is masked per ``masking.*`` (ELECTRA replaces the selected 15% by ``[MASK]``: the
shipped config sets ``mask_ratio: 1.0``); the generator predicts the masked tokens (MLM loss);
at each masked position a token is **sampled** from the generator's softmax (no gradient flows
through the sample) and put in the input; the discriminator labels each real token ``replaced``
when it differs from the original (a sample equal to the original counts as original, as in the
paper). Loss: ``generator MLM loss + disc_weight * discriminator loss`` with ``disc_weight``
lambda = 50 (Sec. 2). The sampling uses uniform draws made by ``collate`` from the collate
generator (inverse-CDF sampling), so a resumed run and every evaluation draw the same samples.

Held out: replaced-token-detection accuracy over all real tokens (``rtd_accuracy``), the
discriminator's precision/recall of replaced tokens, and the generator's MLM accuracy and
perplexity.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from transformers.utils import ModelOutput

from kelm.config import bounded
from kelm.errors import KelmError
from kelm.modeling.backbones import IGNORE_INDEX
from kelm.pretraining.instances import Instance
from kelm.pretraining.objectives._common import (
    check_no_probe,
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
    text_inputs,
)
from kelm.pretraining.presets import get_preset

log = logging.getLogger(__name__)


@dataclass
class RTDOptions:
    """Options of ``rtd``.

    Args:
        preset: discriminator sizes (:mod:`kelm.pretraining.presets`, ``model.from_scratch``
            only; an ELECTRA preset also gives the generator fraction).
        generator_fraction: generator hidden size / FFN width / heads as a fraction of the
            discriminator's (``None``: the preset's, else 1/4).
        embedding_size: width of the shared embeddings (``None``: the preset's, else the
            discriminator's hidden size).
        disc_weight: lambda, the discriminator loss weight.
        generator: a generator checkpoint (``ElectraForMaskedLM``) to start from (``None``: a
            new generator).
    """

    preset: str | None = None
    generator_fraction: float | None = bounded(None, gt=0, le=1)
    embedding_size: int | None = bounded(None, ge=1)
    disc_weight: float = bounded(50.0, ge=0)
    generator: str | None = None


@dataclass
class RTDOutput(ModelOutput):
    """What :class:`ElectraRTD` returns (shapes: ``B`` instances, ``L`` positions, ``V``
    vocabulary).

    Attributes:
        loss: generator MLM loss + lambda * discriminator loss.
        generator_loss, discriminator_loss: the two parts.
        generator_logits: ``[B, L, V]``.
        discriminator_logits: ``[B, L]`` (positive: replaced).
        replaced: ``[B, L]`` the discriminator's labels (1: the token was replaced).
    """

    loss: Tensor | None = None
    generator_loss: Tensor | None = None
    discriminator_loss: Tensor | None = None
    generator_logits: Tensor | None = None
    discriminator_logits: Tensor | None = None
    replaced: Tensor | None = None


def generator_config(disc_config: Any, fraction: float) -> Any:
    """The generator's config: the discriminator's with hidden size, FFN width and heads
    scaled by ``fraction`` (heads at least 1, hidden a multiple of the heads), same depth,
    vocabulary, positions and embedding width."""
    config = disc_config.__class__.from_dict(disc_config.to_dict())
    heads = max(1, round(disc_config.num_attention_heads * fraction))
    head_dim = max(1, round(disc_config.hidden_size * fraction / heads))
    config.num_attention_heads = heads
    config.hidden_size = heads * head_dim
    config.intermediate_size = max(1, round(disc_config.intermediate_size * fraction))
    config.embedding_size = disc_config.embedding_size
    return config


def share_embeddings(generator: nn.Module, discriminator: nn.Module) -> None:
    """Make the generator use the discriminator's embedding module, and tie its output layer
    to the shared token embeddings (in place).

    Raises:
        KelmError: the two embedding widths or vocabularies differ.
    """
    d_emb = discriminator.electra.embeddings
    g_emb = generator.electra.embeddings
    if d_emb.word_embeddings.weight.shape != g_emb.word_embeddings.weight.shape:
        raise KelmError(
            "generator and discriminator embeddings differ "
            f"({tuple(g_emb.word_embeddings.weight.shape)} vs "
            f"{tuple(d_emb.word_embeddings.weight.shape)}): they must share one embedding"
        )
    generator.electra.embeddings = d_emb
    generator.generator_lm_head.weight = d_emb.word_embeddings.weight


def sample_from_logits(logits: Tensor, uniform: Tensor) -> Tensor:
    """One token per row of ``logits``, by inverse-CDF sampling with the given uniform draws.

    Shapes:
        logits: ``[N, V]``; uniform: ``[N]`` in [0, 1); returns ``[N]``.
    """
    cdf = torch.softmax(logits.float(), dim=-1).cumsum(-1)  # [N, V]
    u = uniform.to(cdf.dtype).unsqueeze(-1) * cdf[:, -1:]  # [N, 1], rounding-safe
    return torch.searchsorted(cdf, u).squeeze(-1).clamp_(max=logits.shape[-1] - 1)


class ElectraRTD(nn.Module):
    """Generator + discriminator with shared embeddings (see the module docstring).

    Args:
        generator: an ``ElectraForMaskedLM``.
        discriminator: an ``ElectraForPreTraining``.
        disc_weight: lambda.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, disc_weight: float) -> None:
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.disc_weight = float(disc_weight)
        share_embeddings(generator, discriminator)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor,
        labels: Tensor,
        sample_uniform: Tensor,
    ) -> RTDOutput:
        """Shapes: every argument ``[B, L]``; ``labels`` holds the original token at masked
        positions and :data:`IGNORE_INDEX` elsewhere; ``sample_uniform`` uniform draws."""
        gen = self.generator(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            labels=labels,
        )
        masked = labels != IGNORE_INDEX  # [B, L]
        original = torch.where(masked, labels, input_ids)  # [B, L]
        with torch.no_grad():  # the samples are discrete: no gradient reaches the generator
            sampled = sample_from_logits(gen.logits[masked].detach(), sample_uniform[masked])
        corrupted = input_ids.clone()
        corrupted[masked] = sampled
        replaced = (corrupted != original).long() * attention_mask  # [B, L]
        disc = self.discriminator(
            input_ids=corrupted,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            labels=replaced,
        )
        gen_loss = gen.loss if gen.loss is not None else disc.loss * 0.0
        return RTDOutput(
            loss=gen_loss + self.disc_weight * disc.loss,
            generator_loss=gen_loss,
            discriminator_loss=disc.loss,
            generator_logits=gen.logits,
            discriminator_logits=disc.logits,
            replaced=replaced,
        )


class RTDObjective(Objective):
    """ELECTRA's replaced-token detection; see the module docstring."""

    name = "rtd"
    Options = RTDOptions
    main_metric = "rtd_accuracy"

    def __init__(self, cfg: Any, options: Any, tokenizer: Any, knowledge: Any = None) -> None:
        check_preset(cfg, options.preset)
        check_no_probe(
            cfg,
            "the rtd objective keeps the ELECTRA discriminator, which has no masked-LM head for "
            "the cloze probe",
        )
        super().__init__(cfg, options, tokenizer, knowledge)

    def _fraction(self) -> float:
        o = self.options
        if o.generator_fraction is not None:
            return float(o.generator_fraction)
        if o.preset:
            return float(get_preset(o.preset).get("generator_fraction", 0.25))
        return 0.25

    def build_model(self, *, progress: bool = False) -> nn.Module:
        from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

        o = self.options
        if self.cfg.model.from_scratch:
            config = family_config(self.cfg, self.tokenizer, ElectraConfig, o.preset)
            if o.embedding_size is not None:
                config.embedding_size = int(o.embedding_size)
            elif not preset_sets(o.preset, "embedding_size"):
                config.embedding_size = config.hidden_size
            discriminator = ElectraForPreTraining(config)
        else:
            source = encoder_source(self.cfg)
            discriminator, _ = load_family_checkpoint(
                ElectraForPreTraining, source, "electra", "rtd loads ELECTRA discriminators"
            )
            if discriminator.get_input_embeddings().num_embeddings < len(self.tokenizer):
                discriminator.resize_token_embeddings(len(self.tokenizer))
        if o.generator:
            generator, _ = load_with_info(ElectraForMaskedLM, o.generator)
        else:
            generator = ElectraForMaskedLM(generator_config(discriminator.config, self._fraction()))
        return ElectraRTD(generator, discriminator, o.disc_weight)

    def kept_model(self, module: nn.Module) -> nn.Module:
        return module.discriminator  # type: ignore[no-any-return]

    def load_kept_model(self, path: str | Path) -> nn.Module:
        from transformers import ElectraForPreTraining

        return load_with_info(ElectraForPreTraining, str(path))[0]

    def collate(self, instances: Sequence[Instance], generator: torch.Generator) -> dict[str, Any]:
        batch = self.masked_batch(instances, generator)
        batch["sample_uniform"] = torch.rand(batch["input_ids"].shape, generator=generator)
        return batch

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return text_inputs(batch, "labels", "sample_uniform")

    def losses(self, output: Any, batch: dict[str, Any]) -> dict[str, Tensor]:
        return {
            "loss": output.loss,
            "generator_loss": output.generator_loss,
            "discriminator_loss": output.discriminator_loss,
        }

    def eval_sums(self, output: Any, batch: dict[str, Any]) -> dict[str, Tensor]:
        sums = mlm_sums(output.generator_logits, batch["labels"])
        real = batch["attention_mask"].bool()  # [B, L]
        pred = (output.discriminator_logits > 0).long()  # [B, L]
        gold = output.replaced
        sums["rtd_correct"] = ((pred == gold) & real).sum().double()
        sums["rtd_tokens"] = real.sum().double()
        sums["rtd_true_positive"] = ((pred == 1) & (gold == 1) & real).sum().double()
        sums["rtd_predicted"] = ((pred == 1) & real).sum().double()
        sums["rtd_replaced"] = ((gold == 1) & real).sum().double()
        return sums

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        m = mlm_metrics(sums)
        metrics = {
            "generator_mlm_loss": m["mlm_loss"],
            "generator_mlm_accuracy": m["mlm_accuracy"],
            "generator_perplexity": m["perplexity"],
        }
        n = sums.get("rtd_tokens", 0.0)
        metrics["rtd_accuracy"] = ratio(sums["rtd_correct"], n)
        p, r = sums.get("rtd_predicted", 0.0), sums.get("rtd_replaced", 0.0)
        metrics["rtd_precision"] = ratio(sums["rtd_true_positive"], p)
        metrics["rtd_recall"] = ratio(sums["rtd_true_positive"], r)
        metrics["replaced_fraction"] = ratio(r, n)
        return metrics

    def mlm_logits(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        raise KelmError(
            "the rtd objective keeps a discriminator: the cloze probe needs a masked LM"
        )


OBJECTIVE = RTDObjective

__all__ = [
    "ElectraRTD",
    "RTDObjective",
    "RTDOptions",
    "RTDOutput",
    "generator_config",
    "sample_from_logits",
    "share_embeddings",
]
