"""``distill``: DistilBERT's knowledge distillation (Sanh et al. 2019).

* **Teacher**: any Hugging Face encoder (``teacher``, default ``model.encoder``, i.e. the bundled
  MiniLM), loaded with ``AutoModelForMaskedLM``, frozen, in evaluation mode, never saved (it is
  not a submodule of the trained module: :class:`~kelm.pretraining.objectives._common.WithTeacher`).
* **Student**: the teacher's architecture with ``student_layers`` layers (default half), its
  embeddings, MLM head and layer ``i`` copied from teacher layer ``teacher_layers[i]`` (default
  0, 2, 4, ...: "taking one layer out of two", Sec. 3); or a checkpoint (``student``). It is the
  model kept.
* **Loss** on masked inputs (``masking.*``): ``alpha_ce * soft-target cross-entropy`` (teacher
  and student MLM distributions at temperature T, times T^2, over every real token, or only the
  masked ones with ``restrict_ce_to_mask``) ``+ alpha_mlm * MLM loss + alpha_cos * cosine
  embedding loss`` (1 - cos between the student's and the teacher's last hidden states, real
  tokens). Defaults T = 2 and 5.0 / 2.0 / 1.0: the paper gives no numbers; these are the
  settings of the training command published with DistilBERT (the Hugging Face
  ``distillation`` research project: ``--temperature 2.0 --alpha_ce 5.0 --alpha_mlm 2.0
  --alpha_cos 1.0``).

**A teacher without MLM head** (the bundled MiniLM is a sentence encoder: its checkpoint has no
``cls.predictions`` weights) gives no soft targets: its head would be random. The run then
warns and sets ``alpha_ce`` to 0 (hidden-state cosine + hard MLM loss only). To distil with soft
targets, give the teacher a head first: ``kelm pretrain`` with ``objective: mlm`` on the
teacher (configs/pretrain-mlm.yaml), then ``teacher: runs/pretrain-mlm/model``.

Teacher and student must share the vocabulary: a student checkpoint or a run tokenizer with
another vocabulary is a one-line error.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from transformers.utils import ModelOutput

from kelm.config import bounded
from kelm.errors import KelmError
from kelm.modeling.backbones import IGNORE_INDEX
from kelm.pretraining.instances import Instance
from kelm.pretraining.objectives._common import (
    StudentObjective,
    WithTeacher,
    check_vocabularies,
    forward_with_sparse_head,
    load_with_info,
    soft_cross_entropy,
    takes_token_types,
    warn_once,
)
from kelm.pretraining.objectives.base import (
    mlm_metrics,
    mlm_sums,
    ratio,
    text_inputs,
)

log = logging.getLogger(__name__)

_LAYER = re.compile(r"(^|\.)layer\.(\d+)\.")


@dataclass
class DistillOptions:
    """Options of ``distill``.

    Args:
        teacher: the teacher checkpoint (``None``: ``model.encoder``).
        student: a student checkpoint (``None``: built from the teacher, see below).
        student_layers: layers of the student built from the teacher (``None``: half).
        teacher_layers: the teacher layer each student layer starts from (``None``: 0, 2, ...).
        temperature: T of the soft targets.
        alpha_ce, alpha_mlm, alpha_cos: loss weights.
        restrict_ce_to_mask: soft targets on the masked tokens only (default: every token).
    """

    teacher: str | None = None
    student: str | None = None
    student_layers: int | None = bounded(None, ge=1)
    teacher_layers: list[int] | None = bounded(None, ge=0)
    temperature: float = bounded(2.0, gt=0)
    alpha_ce: float = bounded(5.0, ge=0)
    alpha_mlm: float = bounded(2.0, ge=0)
    alpha_cos: float = bounded(1.0, ge=0)
    restrict_ce_to_mask: bool = False


@dataclass
class DistillOutput(ModelOutput):
    """What :class:`DistilModel` returns.

    Attributes:
        loss: the weighted sum; ce_loss, mlm_loss, cos_loss: its parts (unweighted).
        logits: the student's MLM logits ``[N, V]`` at the positions the losses read;
            teacher_logits: the teacher's there (``None`` in training without soft targets).
        labels: the MLM labels of those positions ``[N]`` (:data:`IGNORE_INDEX` where none).
    """

    loss: Tensor | None = None
    ce_loss: Tensor | None = None
    mlm_loss: Tensor | None = None
    cos_loss: Tensor | None = None
    logits: Tensor | None = None
    teacher_logits: Tensor | None = None
    labels: Tensor | None = None


def student_from_teacher(
    teacher: nn.Module, num_layers: int | None = None, teacher_layers: list[int] | None = None
) -> nn.Module:
    """A student of the teacher's class and config with fewer layers, initialised from the
    teacher: every weight outside the layers is copied, student layer ``i`` from teacher layer
    ``teacher_layers[i]``.

    Raises:
        KelmError: bad layer counts or indices.
    """
    n_teacher = int(teacher.config.num_hidden_layers)
    n = int(num_layers) if num_layers else max(1, n_teacher // 2)
    chosen = list(teacher_layers) if teacher_layers else [2 * i for i in range(n)]
    if len(chosen) != n or not all(0 <= i < n_teacher for i in chosen):
        raise KelmError(
            f"config: objective_options.teacher_layers {chosen} must list {n} layers of the "
            f"teacher's {n_teacher}"
        )
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = n
    student = type(teacher)(config)
    source = teacher.state_dict()
    state = {}
    for key in student.state_dict():
        match = _LAYER.search(key)
        if match:
            i = int(match.group(2))
            key_t = key[: match.start(2)] + str(chosen[i]) + key[match.end(2) :]
        else:
            key_t = key
        state[key] = source[key_t].clone()
    student.load_state_dict(state)
    return student


class DistilModel(WithTeacher):
    """The student trained against the frozen teacher (see the module docstring)."""

    def __init__(
        self, student: nn.Module, teacher: nn.Module, options: DistillOptions, use_ce: bool
    ) -> None:
        super().__init__(teacher)
        self.student = student
        self.options = options
        self.use_ce = use_ce
        self._token_types = takes_token_types(student) and takes_token_types(teacher)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor, labels: Tensor
    ) -> DistillOutput:
        """Shapes: every argument ``[B, L]``; the output logits ``[N, V]`` at the positions
        the losses read (``positions``, ``[B, L]`` bool): the real tokens when the soft targets
        cover every token, else the masked ones."""
        o = self.options
        kw: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self._token_types:
            kw["token_type_ids"] = token_type_ids
        real = attention_mask.bool()  # [B, L]
        masked = labels != IGNORE_INDEX  # [B, L]
        positions = real if self.use_ce and not o.restrict_ce_to_mask else masked  # [B, L]
        s = forward_with_sparse_head(self.student, kw, positions)
        # The teacher's head is needed for the soft targets, and in evaluation for its accuracy.
        teacher_positions = positions if self.use_ce or not self.training else None
        with torch.no_grad():
            t = forward_with_sparse_head(self.teacher, kw, teacher_positions)
        s_logits = s.logits  # [N, V]
        gold = labels[positions]  # [N]
        zero = s_logits.sum() * 0.0  # keeps the head in the graph (DDP)
        ce = zero
        if self.use_ce:
            every = torch.ones_like(gold, dtype=torch.bool)  # [N]
            ce = soft_cross_entropy(s_logits, t.logits, o.temperature, every)
        s_last, t_last = s.hidden_states[-1][real], t.hidden_states[-1][real]  # [R, H]
        cos = (1.0 - nn.functional.cosine_similarity(s_last.float(), t_last.float(), dim=-1)).mean()
        predicted = gold != IGNORE_INDEX  # [N]
        mlm = (
            nn.functional.cross_entropy(s_logits[predicted].float(), gold[predicted])
            if bool(predicted.any())
            else zero
        )
        loss = o.alpha_ce * ce + o.alpha_mlm * mlm + o.alpha_cos * cos
        return DistillOutput(
            loss=loss,
            ce_loss=ce,
            mlm_loss=mlm,
            cos_loss=cos,
            logits=s_logits,
            teacher_logits=t.logits,
            labels=gold,
        )


def load_teacher(source: str) -> tuple[nn.Module, bool]:
    """The teacher as ``AutoModelForMaskedLM`` and whether its checkpoint had an MLM head."""
    from transformers import AutoModelForMaskedLM

    teacher, missing = load_with_info(AutoModelForMaskedLM, source)
    return teacher, not missing


class DistillObjective(StudentObjective):
    """DistilBERT distillation; see the module docstring."""

    name = "distill"
    Options = DistillOptions

    def __init__(self, cfg: Any, options: Any, tokenizer: Any, knowledge: Any = None) -> None:
        super().__init__(cfg, options, tokenizer, knowledge)
        self.teacher_has_head: bool | None = None

    def build_model(self, *, progress: bool = False) -> nn.Module:
        from transformers import AutoModelForMaskedLM

        o = self.options
        source = self.teacher_source()
        teacher, has_head = load_teacher(source)
        self.teacher_has_head = has_head
        use_ce = o.alpha_ce > 0
        if use_ce and not has_head:
            warn_once(
                f"teacher {source!r} has no trained MLM head: no soft targets (alpha_ce 0), "
                "hidden-state cosine and MLM losses only; give it a head with an `mlm` run "
                "and set objective_options.teacher to that run's model/"
            )
            use_ce = False
        if o.student:
            student, _ = load_with_info(AutoModelForMaskedLM, o.student)
        else:
            student = student_from_teacher(teacher, o.student_layers, o.teacher_layers)
        check_vocabularies(teacher, int(student.config.vocab_size), self.tokenizer, source)
        if len(self.tokenizer) > int(student.config.vocab_size):
            raise KelmError(
                f"the run's tokenizer has {len(self.tokenizer)} tokens, the student's vocabulary "
                f"{student.config.vocab_size}"
            )
        if o.alpha_cos > 0 and student.config.hidden_size != teacher.config.hidden_size:
            raise KelmError(
                "the cosine loss compares hidden states: student width "
                f"{student.config.hidden_size} != teacher width {teacher.config.hidden_size} "
                "(set alpha_cos: 0)"
            )
        return DistilModel(student, teacher, o, use_ce)

    def collate(self, instances: Sequence[Instance], generator: torch.Generator) -> dict[str, Any]:
        return self.masked_batch(instances, generator)

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return text_inputs(batch, "labels")

    def losses(self, output: Any, batch: dict[str, Any]) -> dict[str, Tensor]:
        return {
            "loss": output.loss,
            "ce_loss": output.ce_loss,
            "mlm_loss": output.mlm_loss,
            "cos_loss": output.cos_loss,
        }

    def eval_sums(self, output: Any, batch: dict[str, Any]) -> dict[str, Tensor]:
        sums = mlm_sums(output.logits, output.labels)
        teacher = mlm_sums(output.teacher_logits, output.labels)
        sums["teacher_mlm_correct"] = teacher["mlm_correct"]
        sums["cos_loss_sum"] = output.cos_loss.double() * len(batch["input_ids"])
        sums["instances"] = torch.tensor(float(len(batch["input_ids"])), dtype=torch.float64)
        return sums

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        metrics = mlm_metrics(sums)
        n = sums.get("mlm_tokens", 0.0)
        metrics["teacher_mlm_accuracy"] = ratio(sums["teacher_mlm_correct"], n)
        metrics["cos_loss"] = ratio(sums["cos_loss_sum"], sums.get("instances", 0.0))
        return metrics

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "teacher": self.teacher_source(),
            "teacher_has_mlm_head": self.teacher_has_head,
        }


OBJECTIVE = DistillObjective

__all__ = [
    "DistilModel",
    "DistillObjective",
    "DistillOptions",
    "DistillOutput",
    "load_teacher",
    "student_from_teacher",
]
