"""``mlm``: BERT's masked language modelling, with next-sentence prediction by option.

The model is the backbone's own masked-LM class (``AutoModelForMaskedLM``; with ``nsp``,
``AutoModelForPreTraining``, i.e. ``BertForPreTraining``), loaded from ``model.encoder`` (a
checkpoint without MLM head, such as the bundled MiniLM, gets a new random head) or built from
its config (``model.from_scratch``). It is also the knowledge-free control of ERNIE: the same
backbone continued-pretrained on the same corpus without entities.

Masking: ``masking.*`` (15%, 80/10/10). NSP (Devlin et al. 2019): instances are segment pairs
``[CLS] A [SEP] B [SEP]``; for each pair, with probability 0.5 segment B is replaced by the B of
another instance of the batch (from another document when the batch has one), label 1
("random"), else label 0 ("is next"), as in ``BertForPreTraining``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from kelm.config import bounded
from kelm.pretraining.instances import Instance
from kelm.pretraining.objectives.base import (
    Objective,
    backbone_config,
    encoder_source,
    load_pretrained_quietly,
    mlm_metrics,
    mlm_sums,
    sentence_sums,
    text_inputs,
)


@dataclass
class MLMOptions:
    """Options of ``mlm``.

    Args:
        nsp: add next-sentence prediction (segment-pair instances, ``BertForPreTraining``).
        nsp_probability: fraction of pairs whose second segment is replaced.
        preset: model sizes of a model built from a config (``model.from_scratch``), e.g.
            ``bert-base``, ``bert-large``, ``bert-tiny`` (:mod:`kelm.pretraining.presets`;
            ``model.config_overrides`` win over it).
    """

    nsp: bool = False
    nsp_probability: float = bounded(0.5, ge=0, le=1)
    preset: str | None = None


def swap_segments(
    instances: Sequence[Instance], generator: torch.Generator, probability: float, max_length: int
) -> tuple[list[Instance], Tensor]:
    """NSP pairs: B replaced by another instance's B with ``probability``.

    Returns:
        The new instances and the labels ``[B]`` (0: B follows A, 1: B is random).
    """
    n = len(instances)
    draws = torch.rand(n, generator=generator)  # [B]
    partners = torch.randint(max(n - 1, 1), (n,), generator=generator)  # [B]
    out: list[Instance] = []
    labels = torch.zeros(n, dtype=torch.long)
    for i, x in enumerate(instances):
        others = [j for j in range(n) if j != i and instances[j].doc != x.doc] or [
            j for j in range(n) if j != i
        ]
        if x.sep < 0 or not others or float(draws[i]) >= probability:
            out.append(x)
            continue
        y = instances[others[int(partners[i]) % len(others)]]
        if y.sep < 0:
            out.append(x)
            continue
        a = slice(0, x.sep + 1)  # [CLS] A [SEP]
        b = slice(y.sep + 1, len(y))  # B [SEP]
        parts = [
            np.concatenate([v[a], w[b]])
            for v, w in (
                (x.input_ids, y.input_ids),
                (x.entity_ids, y.entity_ids),
                (x.word_starts, y.word_starts),
            )
        ]
        if len(parts[0]) > max_length:  # keep the final [SEP]
            parts = [np.concatenate([p[: max_length - 1], p[-1:]]) for p in parts]
        out.append(Instance(parts[0], parts[1], parts[2], x.sep, x.doc))
        labels[i] = 1
    return out, labels


class MLMObjective(Objective):
    """Masked LM (+ NSP by option); see the module docstring."""

    name = "mlm"
    Options = MLMOptions

    @property
    def segments(self) -> str:
        return "pair" if self.options.nsp else "single"

    def _auto_class(self) -> Any:
        from transformers import AutoModelForMaskedLM, AutoModelForPreTraining

        return AutoModelForPreTraining if self.options.nsp else AutoModelForMaskedLM

    def build_model(self, *, progress: bool = False) -> nn.Module:
        from kelm.pretraining.objectives._common import check_preset
        from kelm.pretraining.presets import apply_preset

        auto = self._auto_class()
        check_preset(self.cfg, self.options.preset)
        if self.cfg.model.from_scratch:
            config = backbone_config(self.cfg)
            apply_preset(config, self.options.preset, keep=self.cfg.model.config_overrides)
            return auto.from_config(config)
        return load_pretrained_quietly(auto, encoder_source(self.cfg))

    def load_kept_model(self, path: str | Path) -> nn.Module:
        return load_pretrained_quietly(self._auto_class(), str(path))

    def collate(self, instances: Sequence[Instance], generator: torch.Generator) -> dict[str, Any]:
        nsp_labels = None
        if self.options.nsp:
            instances, nsp_labels = swap_segments(
                instances, generator, self.options.nsp_probability, self.cfg.data.max_length
            )
        batch = self.masked_batch(instances, generator)
        if nsp_labels is not None:
            batch["next_sentence_label"] = nsp_labels
        return batch

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self.options.nsp:
            return text_inputs(batch, "labels", "next_sentence_label")
        return text_inputs(batch, "labels")

    def _logits(self, output: Any) -> Tensor:
        return output.prediction_logits if self.options.nsp else output.logits

    def eval_sums(self, output: Any, batch: dict[str, Any]) -> dict[str, Tensor]:
        sums = mlm_sums(self._logits(output), batch["labels"])
        if self.options.nsp:
            labels = batch["next_sentence_label"]
            sums.update(sentence_sums(output.seq_relationship_logits, labels, "nsp"))
        return sums

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        metrics = mlm_metrics(sums)
        if self.options.nsp and sums.get("nsp_pairs"):
            metrics["nsp_accuracy"] = sums["nsp_correct"] / sums["nsp_pairs"]
        return metrics

    def mlm_logits(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        return self._logits(model(**text_inputs(batch)))


OBJECTIVE = MLMObjective
