"""``tinybert``: TinyBERT's two-stage layer-wise distillation (Jiao et al. 2020).

* **Teacher**: any BERT-family checkpoint (``teacher``, default ``model.encoder``) loaded with
  ``AutoModelForMaskedLM``, frozen, in evaluation mode, never saved.
* **Student**: the teacher's config with ``preset`` sizes (e.g. ``tinybert-4``: L4 / H312 / 12
  heads / FFN 1200) and ``student_overrides`` (default: half the layers, the same width), random
  weights; or a checkpoint (``student``: the general-stage result for the task stage). The
  student (``AutoModelForMaskedLM`` of the teacher's class) is the model kept; the projections
  are training-only.
* **Layer mapping** (Sec. 3.1, "uniform strategy"): student layer ``m`` (1..L_s) learns from
  teacher layer ``g(m) = m * L_t / L_s`` (floored when L_s does not divide L_t), the embedding
  output (layer 0) from the teacher's embedding output.
* **Losses** (Eq. 7-11): embedding MSE ``MSE(E_s W_e, E_t)``; hidden-state MSE
  ``MSE(H_s^m W_h, H_t^g(m))`` with one learned projection ``W_h`` shared by the layers (and
  ``W_e`` for the embeddings; both identity when the widths agree); attention MSE between the
  student's and the mapped teacher layer's attention matrices, per head when the head counts
  agree, else of the head-averaged matrices. Padding rows and columns are excluded. As in the
  paper (``attention: scores``, the default), the matrices are the unnormalised scores
  ``Q K^T / sqrt(d)``: transformers returns only the softmax probabilities, so the scores are
  recomputed from each layer's input and its own query/key projections
  (:func:`attention_scores`, BERT-family layouts; another layout falls back to the
  probabilities with a warning). ``attention: probabilities`` compares the probabilities.
* **Stages** (``stage``): ``general`` — the three intermediate losses on the plain (unmasked)
  corpus; ``task`` — prediction-layer distillation, the soft cross-entropy between the student's
  and the teacher's masked-LM distributions at ``temperature`` (TinyBERT uses T = 1), plus the
  intermediate losses when ``task_intermediate``, on masked text. The task stage needs a teacher
  with a trained MLM head (else a one-line error) and usually starts from the general-stage
  student (``student: runs/pretrain-tinybert/model``).

**Task-specific distillation for multiple-choice QA** comes in two parts. Here, the
intermediate layers on in-domain text: the task stage runs on the QA *statements* —
:func:`write_qa_statements` writes every training question with its correct answer as a
sentence into a text corpus (``corpus.kind: text``). Then the prediction layer on the task
itself: ``kelm train`` with ``distill.teacher`` (a fine-tuned teacher run) trains the student on
the teacher's choice distribution (:mod:`kelm.training.distillation`,
``configs/csqa-tinybert.yaml``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
    masked_mse,
    soft_cross_entropy,
    takes_token_types,
    warn_once,
)
from kelm.pretraining.objectives.base import (
    mlm_metrics,
    mlm_sums,
    pad_instances,
    ratio,
    text_inputs,
)
from kelm.pretraining.presets import apply_preset

log = logging.getLogger(__name__)

_LOSSES = ("embedding_loss", "hidden_loss", "attention_loss", "prediction_loss")


@dataclass
class TinyBertOptions:
    """Options of ``tinybert``.

    Args:
        stage: ``general`` (intermediate layers, plain text) or ``task`` (prediction layer,
            plus the intermediate layers with ``task_intermediate``, masked text).
        teacher: the teacher checkpoint (``None``: ``model.encoder``).
        student: a student checkpoint (``None``: a new student from the teacher's config).
        preset: student sizes (:mod:`kelm.pretraining.presets`).
        student_overrides: student config keys to set (after the preset), e.g.
            ``{num_hidden_layers: 4, hidden_size: 312}``.
        temperature: T of the prediction-layer soft targets.
        task_intermediate: add the intermediate losses in the task stage.
        attention: what the attention loss compares: ``scores`` (unnormalised, the paper's)
            or ``probabilities`` (after the softmax).
        embedding_weight, hidden_weight, attention_weight, prediction_weight: loss weights.
    """

    stage: Literal["general", "task"] = "general"
    teacher: str | None = None
    student: str | None = None
    preset: str | None = None
    student_overrides: dict[str, Any] | None = None
    temperature: float = bounded(1.0, gt=0)
    task_intermediate: bool = True
    attention: Literal["scores", "probabilities"] = "scores"
    embedding_weight: float = bounded(1.0, ge=0)
    hidden_weight: float = bounded(1.0, ge=0)
    attention_weight: float = bounded(1.0, ge=0)
    prediction_weight: float = bounded(1.0, ge=0)


@dataclass
class TinyBertOutput(ModelOutput):
    """What :class:`TinyBertDistiller` returns: the weighted ``loss``, its (unweighted) parts,
    the student's and teacher's MLM logits ``[N, V]`` at the positions read (every real token
    in the task stage, else the masked ones; the teacher's ``None`` when not needed) and the
    MLM ``labels`` ``[N]`` there."""

    loss: Tensor | None = None
    embedding_loss: Tensor | None = None
    hidden_loss: Tensor | None = None
    attention_loss: Tensor | None = None
    prediction_loss: Tensor | None = None
    logits: Tensor | None = None
    teacher_logits: Tensor | None = None
    labels: Tensor | None = None


def layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """``g(m) = floor(m * L_t / L_s)`` for ``m = 0..L_s`` (0: the embedding output).

    Raises:
        KelmError: a student deeper than its teacher.
    """
    if student_layers > teacher_layers:
        raise KelmError(
            f"a {student_layers}-layer student cannot map onto a {teacher_layers}-layer teacher"
        )
    return [m * teacher_layers // student_layers for m in range(student_layers + 1)]


def attention_mse(s_attn: Tensor, t_attn: Tensor, attention_mask: Tensor) -> Tensor:
    """MSE of two attention maps over real query rows and key columns.

    Shapes:
        s_attn: ``[B, Hs, L, L]``; t_attn: ``[B, Ht, L, L]`` (head-averaged when Hs != Ht);
        attention_mask: ``[B, L]``.
    """
    if s_attn.shape[1] != t_attn.shape[1]:
        s_attn, t_attn = s_attn.mean(1, keepdim=True), t_attn.mean(1, keepdim=True)
    real = attention_mask.bool()
    keep = (real[:, None, :, None] & real[:, None, None, :]).expand_as(s_attn)  # [B, H, L, L]
    diff = (s_attn.float() - t_attn.float())[keep]
    return diff.pow(2).mean() if diff.numel() else s_attn.sum() * 0.0


def self_attentions(model: nn.Module) -> list[nn.Module] | None:
    """Each layer's self-attention module with ``query``/``key`` projections (BERT, RoBERTa,
    ELECTRA, MiniLM layouts: ``encoder.layer[i].attention.self``), or ``None``."""
    encoder = getattr(model.base_model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, nn.ModuleList):
        return None
    found = []
    for layer in layers:
        attn = getattr(getattr(layer, "attention", None), "self", None)
        if not all(isinstance(getattr(attn, n, None), nn.Linear) for n in ("query", "key")):
            return None
        found.append(attn)
    return found


def attention_scores(attention: nn.Module, hidden: Tensor) -> Tensor:
    """The unnormalised attention scores ``Q K^T / sqrt(d)`` of one self-attention module on
    its layer's input (before the mask and the softmax).

    Shapes:
        hidden: ``[B, L, H]``; output: ``[B, heads, L, L]``.
    """
    b, n, _ = hidden.shape
    heads = int(attention.num_attention_heads)
    q = attention.query(hidden).view(b, n, heads, -1).transpose(1, 2)  # [B, heads, L, d]
    k = attention.key(hidden).view(b, n, heads, -1).transpose(1, 2)  # [B, heads, L, d]
    return torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # [B, heads, L, L]


class TinyBertDistiller(WithTeacher):
    """Student, frozen teacher and the projections (see the module docstring).

    Attributes:
        student: the model kept.
        embedding_projection, hidden_projection: ``W_e``, ``W_h`` (``nn.Linear(Hs, Ht)``, or
            ``nn.Identity`` when the widths agree).
        mapping: :func:`layer_map`.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, options: TinyBertOptions) -> None:
        super().__init__(teacher)
        self.student = student
        self.options = options
        hs, ht = int(student.config.hidden_size), int(teacher.config.hidden_size)
        self.embedding_projection: nn.Module = nn.Linear(hs, ht) if hs != ht else nn.Identity()
        self.hidden_projection: nn.Module = nn.Linear(hs, ht) if hs != ht else nn.Identity()
        self.mapping = layer_map(
            int(student.config.num_hidden_layers), int(teacher.config.num_hidden_layers)
        )
        self._token_types = all(takes_token_types(m) for m in (student, teacher))
        self._scores = None
        if options.attention == "scores":
            pair = self_attentions(student), self_attentions(teacher)
            if pair[0] is None or pair[1] is None:
                warn_once(
                    f"tinybert: no query/key projections found in {type(student).__name__}: "
                    "the attention loss compares probabilities, not scores"
                )
            else:
                self._scores = pair

    def _attention_maps(self, out: Any, which: int, layer: int) -> Tensor:
        """Layer ``layer``'s (1-based) attention matrices of the student (``which`` 0) or the
        teacher (1): the scores recomputed from the layer input, else the probabilities."""
        if self._scores is None:
            return out.attentions[layer - 1]  # type: ignore[no-any-return]
        return attention_scores(self._scores[which][layer - 1], out.hidden_states[layer - 1])

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor, labels: Tensor
    ) -> TinyBertOutput:
        """Shapes: every argument ``[B, L]``."""
        o = self.options
        kw: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "output_hidden_states": True,
            "output_attentions": self._scores is None,
        }
        if self._token_types:
            kw["token_type_ids"] = token_type_ids
        real = attention_mask.bool()  # [B, L]
        task = o.stage == "task"
        # Vocabulary logits only where read: every real token for the prediction layer (task
        # stage), the masked ones for the held-out MLM accuracy; the student's always (a few
        # positions), which keeps its head in the graph for DDP.
        positions = real if task else labels != IGNORE_INDEX  # [B, L]
        s = forward_with_sparse_head(self.student, kw, positions)
        with torch.no_grad():
            t = forward_with_sparse_head(
                self.teacher, kw, positions if task or not self.training else None
            )
        zero = s.logits.sum() * 0.0
        emb = hid = att = pred = zero
        if not task or o.task_intermediate:
            with torch.no_grad():
                t_maps = {g: self._attention_maps(t, 1, g) for g in self.mapping[1:]}
            emb = masked_mse(
                self.embedding_projection(s.hidden_states[0]), t.hidden_states[0], real
            )
            hid = torch.stack(
                [
                    masked_mse(self.hidden_projection(s.hidden_states[m]), t.hidden_states[g], real)
                    for m, g in enumerate(self.mapping)
                    if m > 0
                ]
            ).mean()
            att = torch.stack(
                [
                    attention_mse(self._attention_maps(s, 0, m), t_maps[g], attention_mask)
                    for m, g in enumerate(self.mapping)
                    if m > 0
                ]
            ).mean()
        if task:
            every = torch.ones(s.logits.shape[0], dtype=torch.bool, device=s.logits.device)
            pred = soft_cross_entropy(s.logits, t.logits, o.temperature, every)
        loss = (
            o.embedding_weight * emb
            + o.hidden_weight * hid
            + o.attention_weight * att
            + o.prediction_weight * pred
        )
        return TinyBertOutput(
            loss=loss,
            embedding_loss=emb,
            hidden_loss=hid,
            attention_loss=att,
            prediction_loss=pred,
            logits=s.logits,
            teacher_logits=t.logits,
            labels=labels[positions],
        )


def build_student(
    teacher: nn.Module, preset: str | None, overrides: dict[str, Any] | None
) -> nn.Module:
    """A random student of the teacher's class: the teacher's config with half the layers,
    then the preset's sizes, then ``overrides``.

    Raises:
        KelmError: an unknown config key, or a width that the heads do not divide.
    """
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = max(1, int(config.num_hidden_layers) // 2)
    apply_preset(config, preset)
    for key, value in (overrides or {}).items():
        if not hasattr(config, key):
            raise KelmError(
                f"config: objective_options.student_overrides: {config.model_type} has no {key!r}"
            )
        setattr(config, key, value)
    if config.hidden_size % config.num_attention_heads:
        raise KelmError(
            f"config: student hidden size {config.hidden_size} is not a multiple of its "
            f"{config.num_attention_heads} heads"
        )
    config._attn_implementation = "eager"  # attention maps are returned by eager attention
    return type(teacher)(config)


def write_qa_statements(
    qa_path: str | Path, out_dir: str | Path, *, per_file: int = 200
) -> dict[str, int]:
    """Write the questions of a QA file with their correct answers as a text corpus for the
    ``task`` stage: one line ``"<question> <answer>"`` per answered item, ``per_file`` lines
    per file (files are the corpus's documents, which the held-out split draws).

    Returns:
        ``{"statements": n, "files": n, "unanswered": n}``.
    """
    from kelm._io import atomic_file
    from kelm.data.qa import read_qa

    items = read_qa(qa_path)
    lines, unanswered = [], 0
    for item in items:
        k = item.answer_index
        if k is None:
            unanswered += 1
            continue
        lines.append(" ".join(f"{item.question} {item.choices[k].text}".split()))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = 0
    for start in range(0, len(lines), per_file):
        with atomic_file(out / f"statements-{files:05d}.txt", encoding="utf-8") as f:
            f.write("\n".join(lines[start : start + per_file]) + "\n")
        files += 1
    return {"statements": len(lines), "files": files, "unanswered": unanswered}


class TinyBertObjective(StudentObjective):
    """TinyBERT distillation; see the module docstring."""

    name = "tinybert"
    Options = TinyBertOptions

    def __init__(self, cfg: Any, options: Any, tokenizer: Any, knowledge: Any = None) -> None:
        if options.stage not in ("general", "task"):
            raise KelmError(
                f"config: objective_options.stage: {options.stage!r} is not one of general, task"
            )
        if options.attention not in ("scores", "probabilities"):
            raise KelmError(
                f"config: objective_options.attention: {options.attention!r} is not one of "
                "scores, probabilities"
            )
        super().__init__(cfg, options, tokenizer, knowledge)
        # instance attribute: the loop reports it as eval_accuracy
        self.main_metric = "mlm_accuracy" if options.stage == "task" else "hidden_loss"

    def build_model(self, *, progress: bool = False) -> nn.Module:
        from transformers import AutoModelForMaskedLM

        o = self.options
        source = self.teacher_source()
        teacher, missing = load_with_info(AutoModelForMaskedLM, source, attn_implementation="eager")
        if o.stage == "task" and o.prediction_weight > 0 and missing:
            raise KelmError(
                f"teacher {source!r} has no trained MLM head for the task stage's prediction-layer "
                "distillation: give it one with an `mlm` run first"
            )
        if o.student:
            student, _ = load_with_info(
                AutoModelForMaskedLM, o.student, attn_implementation="eager"
            )
        else:
            student = build_student(teacher, o.preset, o.student_overrides)
        check_vocabularies(teacher, int(student.config.vocab_size), self.tokenizer, source)
        return TinyBertDistiller(student, teacher, o)

    def collate(self, instances: Sequence[Instance], generator: torch.Generator) -> dict[str, Any]:
        batch = pad_instances(instances, self.pad_token_id, self.special_ids)
        if self.options.stage == "task":
            batch["input_ids"], batch["labels"] = self.mask(batch, generator)
        else:  # general distillation reads plain text
            batch["labels"] = torch.full_like(batch["input_ids"], IGNORE_INDEX)
        return batch

    def model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return text_inputs(batch, "labels")

    def losses(self, output: Any, batch: dict[str, Any]) -> dict[str, Tensor]:
        return {"loss": output.loss, **{k: getattr(output, k) for k in _LOSSES}}

    def eval_sums(self, output: Any, batch: dict[str, Any]) -> dict[str, Tensor]:
        sums = mlm_sums(output.logits, output.labels)
        n = len(batch["input_ids"])
        for k in _LOSSES:
            sums[f"{k}_sum"] = getattr(output, k).double() * n
        sums["eval_instances"] = torch.tensor(float(n), dtype=torch.float64)
        return sums

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        b = sums.get("eval_instances", 0.0)
        metrics = {k: ratio(sums[f"{k}_sum"], b) for k in _LOSSES}
        if self.options.stage == "task":
            metrics.update(mlm_metrics(sums))
        return metrics


OBJECTIVE = TinyBertObjective

__all__ = [
    "TinyBertDistiller",
    "TinyBertObjective",
    "TinyBertOptions",
    "TinyBertOutput",
    "attention_mse",
    "attention_scores",
    "build_student",
    "layer_map",
    "self_attentions",
    "write_qa_statements",
]
