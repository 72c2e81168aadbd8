"""``ernie``: knowledge-enhanced pretraining of ERNIE (Zhang et al. 2019): masked LM + dEA.

The model is :class:`kelm.modeling.KelmErnieForPreTraining`: the backbone (``model.encoder``)
with its top ``num_knowledge_layers`` layers turned into knowledgeable (K-Encoder) layers, an
entity table of the linked graph's size initialised per ``knowledge.entity_init`` (TransE by
default, see :func:`kelm.pretraining.objectives.base.entity_vectors`), an MLM head
and the dEA head.

Instances carry the node id of each linked mention on its first wordpiece. A batch is masked
as for ``mlm`` (``masking.*``) and its alignments are noised by
:func:`kelm.pretraining.masking.dea_noise` (5% replaced by a random entity, 15% removed,
the rest kept); every aligned position is a dEA target (its true entity among the batch's
entities); with ``unlink_masked`` a mention masked for MLM also loses its input entity. Both
draws come from the collate generator. Entity ids outside the table (a cache
of another graph cannot reach here: the graph checksum is part of the instance key) are
removed, and counted in ``entity_ids_dropped``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from kelm.config import bounded
from kelm.errors import KelmError
from kelm.modeling.backbones import IGNORE_INDEX
from kelm.pretraining.instances import Instance
from kelm.pretraining.masking import dea_noise
from kelm.pretraining.objectives.base import (
    Objective,
    backbone_config,
    encoder_source,
    entity_vectors,
    mlm_metrics,
    mlm_sums,
    ratio,
    text_inputs,
)

log = logging.getLogger(__name__)

BACKBONE_PREFIXES = ("text_encoder.", "mlm_head.")
"""Parameter name prefixes of the backbone and its MLM head in
:class:`~kelm.modeling.KelmErnieForPreTraining` (the rest is what ERNIE adds)."""


@dataclass
class ErnieOptions:
    """Options of ``ernie``.

    Args:
        num_knowledge_layers: top backbone layers that become K-Encoder layers.
        entity_hidden_size: width of the K-Encoder's entity stream (``None``: the entity
            vectors' width).
        entity_attention_heads: heads of the entity self-attention.
        entity_dropout: dropout of the entity stream.
        entity_dim: entity table width when ``knowledge.entity_init`` is ``random``.
        freeze_entity_embeddings: keep the entity table fixed (ERNIE does).
        dea_replace_prob, dea_mask_prob: dEA noise: alignments replaced by a random entity /
            removed.
        knowledge_lr: learning rate of the parameters ERNIE adds to the backbone (entity
            table and projection, the K-Encoder's entity attention and fusion weights, the dEA
            head); ``None``: ``optim.lr``. The fusion weights start at zero and must grow before
            any entity reaches the text, which at the backbone's rate takes more steps than a
            short run has (fine-tuning trains them at ``optim.gnn_lr`` for the same reason).
        unlink_masked: a mention whose first wordpiece is masked for MLM loses its entity in
            the input (its dEA target stays), so no masked word can be read off its own entity.
            Off by default: on the knowledge probe (``scripts/bench_ernie_probe.py``) keeping
            the links did better (hits@10 0.84 vs 0.67, seed 0): decoding words from entity
            vectors is what lets a head's TransE vector (near ``tail - relation``) name its
            tail. On the CN-100K cloze (1,000 steps, seed 0) unlinking did better (hits@10
            0.306 vs 0.230; the MLM control 0.324), as there the masked tail has no entity.
    """

    num_knowledge_layers: int = bounded(2, ge=1)
    entity_hidden_size: int | None = bounded(None, ge=1)
    entity_attention_heads: int = bounded(4, ge=1)
    entity_dropout: float = bounded(0.1, ge=0, lt=1)
    entity_dim: int = bounded(100, ge=1)
    freeze_entity_embeddings: bool = True
    dea_replace_prob: float = bounded(0.05, ge=0, le=1)
    dea_mask_prob: float = bounded(0.15, ge=0, le=1)
    knowledge_lr: float | None = bounded(None, gt=0)
    unlink_masked: bool = False


class ErnieObjective(Objective):
    """Masked LM + denoising entity auto-encoder; see the module docstring."""

    name = "ernie"
    Options = ErnieOptions
    needs_entities = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        if o.dea_replace_prob + o.dea_mask_prob > 1:  # each one's range is declared
            raise KelmError(
                "config: objective_options.dea_replace_prob + dea_mask_prob must be at most 1"
            )
        self.entity_ids_dropped = 0

    @property
    def num_entities(self) -> int:
        if self.knowledge is None:
            raise KelmError("the ernie objective needs a graph (knowledge.index)")
        return int(self.knowledge.index.num_nodes)

    def build_model(self, *, progress: bool = False) -> nn.Module:
        from huggingface_hub.errors import StrictDataclassError

        from kelm.modeling import KelmErnieConfig, KelmErnieForPreTraining

        o = self.options
        vectors = entity_vectors(self.knowledge, self.cfg, progress=progress)  # type: ignore[arg-type]
        entity_dim = int(vectors.shape[1]) if vectors is not None else o.entity_dim
        kwargs: dict[str, Any] = {
            "num_knowledge_layers": o.num_knowledge_layers,
            "num_entities": self.num_entities,
            "entity_dim": entity_dim,
            "entity_hidden_size": o.entity_hidden_size,
            "entity_attention_heads": o.entity_attention_heads,
            "entity_dropout": o.entity_dropout,
            "freeze_entity_embeddings": o.freeze_entity_embeddings,
            "graph_checksum": self.knowledge.index.checksum,  # type: ignore[union-attr]
        }
        try:
            if self.cfg.model.from_scratch:
                model = KelmErnieForPreTraining(
                    KelmErnieConfig(encoder_config=backbone_config(self.cfg), **kwargs)
                )
            else:
                model = KelmErnieForPreTraining.from_text_encoder(
                    encoder_source(self.cfg), **kwargs
                )
        except (ValueError, TypeError, StrictDataclassError) as exc:
            # a strict config's validation error runs over several lines: the last one says it
            detail = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else ""
            raise KelmError(f"config: bad ernie settings ({detail})") from None
        if vectors is not None:
            model.init_entity_embeddings(vectors, freeze=o.freeze_entity_embeddings)
        return model

    def load_kept_model(self, path: str | Path) -> nn.Module:
        from kelm.modeling import KelmErnieForPreTraining

        return KelmErnieForPreTraining.from_pretrained(str(path))

    def param_groups(self, module: nn.Module) -> list[dict[str, Any]]:
        """The base groups, with the knowledge parameters (everything outside the backbone and
        its MLM head) in groups of their own at ``knowledge_lr`` when it is set."""
        groups = super().param_groups(module)
        lr = self.options.knowledge_lr
        if lr is None:
            return groups
        knowledge = {
            id(p) for name, p in module.named_parameters() if not name.startswith(BACKBONE_PREFIXES)
        }
        split: list[dict[str, Any]] = []
        for group in groups:
            backbone = [p for p in group["params"] if id(p) not in knowledge]
            added = [p for p in group["params"] if id(p) in knowledge]
            split.append({**group, "params": backbone})
            split.append({**group, "params": added, "lr": lr, "name": group["name"] + "_knowledge"})
        return [g for g in split if g["params"]]

    def _valid_entities(self, entity_ids: Tensor) -> Tensor:
        bad = (entity_ids < -1) | (entity_ids >= self.num_entities)
        if bool(bad.any()):
            if not self.entity_ids_dropped:
                log.warning("entity ids outside the table [0, %d) removed", self.num_entities)
            self.entity_ids_dropped += int(bad.sum())
            entity_ids = entity_ids.masked_fill(bad, -1)
        return entity_ids

    def collate(self, instances: Sequence[Instance], generator: torch.Generator) -> dict[str, Any]:
        batch = self.masked_batch(instances, generator)
        clean = self._valid_entities(batch["entity_ids"])
        batch["entity_ids"], batch["entity_labels"] = dea_noise(
            clean,
            generator,
            self.num_entities,
            replace_prob=self.options.dea_replace_prob,
            mask_prob=self.options.dea_mask_prob,
        )
        if self.options.unlink_masked:  # no entity may give away the word it is masked from
            masked = batch["labels"] != IGNORE_INDEX  # [B, L]
            batch["entity_ids"] = batch["entity_ids"].masked_fill(masked, -1)
        return batch

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return text_inputs(batch, "entity_ids", "labels", "entity_labels")

    def losses(self, output: Any, batch: dict[str, Any]) -> dict[str, Tensor]:
        zero = output.loss.new_zeros(())
        return {
            "loss": output.loss,
            "mlm_loss": output.mlm_loss if output.mlm_loss is not None else zero,
            "dea_loss": output.dea_loss if output.dea_loss is not None else zero,
        }

    def eval_sums(self, output: Any, batch: dict[str, Any]) -> dict[str, Tensor]:
        sums = mlm_sums(output.mlm_logits, batch["labels"])
        sums["dea_correct"] = output.dea_correct.double()
        sums["dea_targets"] = output.dea_count.double()
        return sums

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        metrics = mlm_metrics(sums)
        metrics["dea_accuracy"] = ratio(sums["dea_correct"], sums.get("dea_targets", 0.0))
        return metrics

    def mlm_logits(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        return model(**text_inputs(batch, "entity_ids")).mlm_logits


OBJECTIVE = ErnieObjective
