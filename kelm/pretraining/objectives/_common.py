"""Helpers shared by the plain-family objectives (``clm``, ``sop``, ``rtd``, ``distill``,
``tinybert``): model configs of another family built from the backbone's sizes, teachers that
train nothing and are never saved, soft-target losses and the vocabulary check.

A private module (its name starts with ``_``), so the objective registry skips it.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from kelm.errors import KelmError
from kelm.pretraining.objectives.base import Objective, backbone_config, encoder_source
from kelm.pretraining.presets import apply_preset, get_preset

# the backbone config keys carried over to a config of another family
_SIZE_KEYS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "layer_norm_eps",
    "initializer_range",
)


def check_preset(cfg: Any, preset: str | None) -> None:
    """A preset sets sizes of a model built from a config: refuse it with a checkpoint.

    Raises:
        KelmError: ``preset`` without ``model.from_scratch``.
    """
    if preset and not cfg.model.from_scratch:
        raise KelmError(
            "config: objective_options.preset sets the sizes of a model built from a config: "
            "it needs 'model.from_scratch: true'"
        )


def check_no_probe(cfg: Any, why: str) -> None:
    """Objectives that keep no masked LM refuse the cloze probe.

    Raises:
        KelmError: ``probe.enabled``; ``why`` says what the objective keeps instead.
    """
    if cfg.probe.enabled:
        raise KelmError(f"config: probe.enabled: {why} (set probe.enabled: false)")


def family_config(
    cfg: Any, tokenizer: Any, config_cls: Any, preset: str | None, **extra: Any
) -> Any:
    """A ``config_cls`` config (ALBERT, ELECTRA, GPT-2...) for a model built from scratch.

    The sizes are the backbone's (``model.encoder``'s config with ``model.config_overrides``;
    used as they are when it is already of ``config_cls``'s family), then the preset's (the
    overrides win), then ``extra``; the vocabulary is the tokenizer's.
    """
    base = backbone_config(cfg)
    if base.model_type == config_cls.model_type:
        config = base
    else:
        sizes = {k: getattr(base, k) for k in _SIZE_KEYS if hasattr(base, k)}
        config = config_cls()
        for key, value in sizes.items():
            if key == "intermediate_size" and config.model_type in ("gpt2", "openai-gpt"):
                if config.model_type == "gpt2":
                    config.n_inner = value
                continue
            if key == "type_vocab_size" and not hasattr(config, key):
                continue
            setattr(config, key, value)
    apply_preset(config, preset, keep=cfg.model.config_overrides)
    for key, value in extra.items():
        setattr(config, key, value)
    config.vocab_size = len(tokenizer)
    if tokenizer.pad_token_id is not None and hasattr(config, "pad_token_id"):
        config.pad_token_id = int(tokenizer.pad_token_id)
    heads = config.num_attention_heads
    if config.hidden_size % heads:
        raise KelmError(
            f"config: hidden size {config.hidden_size} is not a multiple of the "
            f"{heads} attention heads"
        )
    return config


def load_with_info(auto_cls: Any, source: str, **kwargs: Any) -> tuple[nn.Module, list[str]]:
    """``auto_cls.from_pretrained(source)`` quietly, and the weights it had to start randomly.

    Raises:
        KelmError: the checkpoint cannot be loaded.
    """
    from kelm.modeling.encoders import quiet_transformers

    try:
        with quiet_transformers():
            model, info = auto_cls.from_pretrained(source, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: mismatched sizes
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KelmError(f"cannot load {source!r}: {first}") from None
    return model, sorted(info.get("missing_keys") or [])


def load_family_checkpoint(
    cls: Any, source: str, model_type: str, loads: str
) -> tuple[nn.Module, list[str]]:
    """:func:`load_with_info` of ``source``, which must be a ``model_type`` checkpoint.

    Raises:
        KelmError: another family; ``loads`` says what the objective loads.
    """
    from transformers import AutoConfig

    try:  # the family first: another one's weights do not fit (transformers raises on them)
        found = AutoConfig.from_pretrained(source).model_type
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KelmError(f"cannot load {source!r}: {first}") from None
    if found != model_type:
        raise KelmError(
            f"{source!r} is a {found} checkpoint: {loads} (or set model.from_scratch: true)"
        )
    return load_with_info(cls, source)


def preset_sets(preset: str | None, key: str) -> bool:
    """Whether the named preset sets config ``key`` (then the objective's own default for it
    gives way)."""
    return bool(preset) and key in get_preset(preset)  # type: ignore[arg-type]


def freeze(model: nn.Module) -> nn.Module:
    """No gradients, evaluation mode (no dropout)."""
    model.requires_grad_(False)
    return model.eval()


class WithTeacher(nn.Module):
    """A trained module beside a frozen teacher that is *not* one of its submodules.

    The teacher is kept out of ``state_dict`` (checkpoints hold the trained side only), out of
    ``parameters()`` (DDP and the optimizer never see it) and out of ``train()`` (it stays in
    evaluation mode), but device and dtype moves (``.to()``) reach it.
    """

    def __init__(self, teacher: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "_teacher", freeze(teacher))

    @property
    def teacher(self) -> nn.Module:
        return self._teacher  # type: ignore[no-any-return]

    def _apply(self, fn: Any, recurse: bool = True) -> WithTeacher:  # noqa: FBT001, FBT002
        super()._apply(fn, recurse)
        self._teacher._apply(fn, recurse)
        return self


class StudentObjective(Objective):
    """What the distillation objectives (``distill``, ``tinybert``) share: the teacher is
    ``objective_options.teacher`` (else ``model.encoder``) and the trained student, a masked
    LM, is the model kept."""

    def teacher_source(self) -> str:
        return self.options.teacher or encoder_source(self.cfg)  # type: ignore[no-any-return]

    def kept_model(self, module: nn.Module) -> nn.Module:
        return module.student  # type: ignore[no-any-return]

    def load_kept_model(self, path: Any) -> nn.Module:
        from transformers import AutoModelForMaskedLM

        return load_with_info(AutoModelForMaskedLM, str(path))[0]

    def mlm_logits(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        kw = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if takes_token_types(model):
            kw["token_type_ids"] = batch["token_type_ids"]
        return model(**kw).logits


def takes_token_types(model: nn.Module) -> bool:
    """Whether the model's forward has ``token_type_ids`` (GPT-style and DistilBERT have not)."""
    return "token_type_ids" in inspect.signature(model.forward).parameters


def soft_cross_entropy(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float, keep: Tensor
) -> Tensor:
    """Cross-entropy of the student's tempered distribution against the teacher's (the
    teacher's entropy subtracted, i.e. the KL divergence, whose gradient is the same), times
    ``T**2`` so that its gradient keeps its scale across temperatures (Hinton et al. 2015),
    averaged over the kept positions.

    Shapes:
        student_logits, teacher_logits: ``[B, L, V]``; keep: ``[B, L]`` bool.
    """
    s = student_logits[keep].float() / temperature  # [N, V]
    t = teacher_logits[keep].float() / temperature  # [N, V]
    if s.shape[0] == 0:
        return student_logits.sum() * 0.0
    kl = nn.functional.kl_div(
        nn.functional.log_softmax(s, -1),
        nn.functional.log_softmax(t, -1),
        log_target=True,
        reduction="batchmean",
    )
    return kl * temperature**2


@dataclass
class SparseHeadOutput:
    """What :func:`forward_with_sparse_head` returns.

    Attributes:
        hidden_states: the embedding output and every layer's, each ``[B, L, H]``.
        attentions: every layer's attention probabilities ``[B, heads, L, L]`` (when asked).
        logits: the vocabulary logits at the selected positions ``[N, V]`` (``None``: none
            selected).
    """

    hidden_states: tuple[Tensor, ...]
    attentions: tuple[Tensor, ...] | None
    logits: Tensor | None


def mlm_head(model: nn.Module) -> Any:
    """The vocabulary head of a Hugging Face masked LM as a callable ``[..., H] -> [..., V]``,
    or ``None`` for a layout this does not know (the caller then runs the whole model)."""
    for name in ("cls", "lm_head", "predictions"):  # BERT, RoBERTa family, ALBERT
        head = getattr(model, name, None)
        if isinstance(head, nn.Module):
            return head
    transform = getattr(model, "generator_predictions", None)  # ELECTRA's generator
    projection = getattr(model, "generator_lm_head", None)
    if isinstance(transform, nn.Module) and isinstance(projection, nn.Module):
        return lambda h: projection(transform(h))
    return None


def forward_with_sparse_head(
    model: nn.Module, inputs: dict[str, Any], select: Tensor | None
) -> SparseHeadOutput:
    """Run a masked LM with its vocabulary head at the ``select`` positions only.

    The head is the costly part of a small model (``V`` = 30,522 outputs per position against
    a few ``H x H`` layers), and the distillation objectives need its logits at the masked
    positions (or the real ones), never at padding: projecting only those is several times
    faster and far smaller in memory than the full ``[B, L, V]`` logits, with the same values.

    Args:
        model: a ``*ForMaskedLM`` model; ``model.base_model`` is its encoder.
        inputs: the model's keyword inputs (``output_hidden_states`` is forced on).
        select: ``[B, L]`` bool, the positions to project; ``None``: no logits.

    Shapes:
        logits: ``[N, V]`` with ``N = select.sum()``.
    """
    head = mlm_head(model)
    kw = {**inputs, "output_hidden_states": True}
    if head is None:  # an unknown head layout: the full logits, then the selection
        out = model(**kw)
        logits = out.logits[select] if select is not None else None
        return SparseHeadOutput(out.hidden_states, getattr(out, "attentions", None), logits)
    out = model.base_model(**kw)
    logits = head(out.last_hidden_state[select]) if select is not None else None  # [N, V]
    return SparseHeadOutput(out.hidden_states, getattr(out, "attentions", None), logits)


def check_vocabularies(
    teacher: Any, student_vocab: int, tokenizer: Any, teacher_source: str
) -> None:
    """Teacher and student must share the vocabulary (soft targets are per token id).

    Raises:
        KelmError: the sizes differ, or the run's tokenizer is not the teacher's.
    """
    t = int(teacher.config.vocab_size)
    if t != int(student_vocab):
        raise KelmError(
            f"teacher {teacher_source!r} has a vocabulary of {t} tokens, the student "
            f"{student_vocab}: distillation needs one vocabulary"
        )
    try:
        from kelm.modeling import load_tokenizer

        teacher_tok = load_tokenizer(teacher_source)
    except Exception:  # noqa: BLE001 - a teacher folder without tokenizer: sizes were checked
        return
    if teacher_tok.get_vocab() != tokenizer.get_vocab():
        raise KelmError(
            f"the run's tokenizer is not the vocabulary of teacher {teacher_source!r}: "
            "distillation needs one vocabulary (set model.tokenizer to the teacher's)"
        )


def warn_once(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def masked_mse(a: Tensor, b: Tensor, keep: Tensor) -> Tensor:
    """Mean squared error over the kept rows.

    Shapes:
        a, b: ``[B, L, H]``; keep: ``[B, L]`` bool.
    """
    diff = (a.float() - b.float())[keep]  # [N, H]
    if diff.shape[0] == 0:
        return a.sum() * 0.0
    return diff.pow(2).mean()


def rand_like_from(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Uniform draws from the collate generator (CPU)."""
    return torch.rand(shape, generator=generator)


__all__ = [
    "SparseHeadOutput",
    "StudentObjective",
    "WithTeacher",
    "check_no_probe",
    "check_preset",
    "check_vocabularies",
    "family_config",
    "forward_with_sparse_head",
    "freeze",
    "load_family_checkpoint",
    "load_with_info",
    "masked_mse",
    "mlm_head",
    "preset_sets",
    "soft_cross_entropy",
    "takes_token_types",
]
