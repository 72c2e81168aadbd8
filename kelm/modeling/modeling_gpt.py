"""GPT-1-style multiple choice (Radford et al. 2018) on any causal LM backbone.

Each (question, choice) statement is one sequence in the GPT-1 transfer format::

    <|start|> question <|delim|> choice <|extract|>

The backbone (``AutoModelForCausalLM``: OpenAI GPT, GPT-2, Llama-family such as SmolLM2 ...)
reads it left to right; a linear head on the final state of the extract token (the last real
token, so it has seen the whole statement) scores the choice, and a softmax over the choices
gives the answer. In training the LM loss on the statement tokens is added with weight
``config.lm_loss_weight`` (GPT-1's auxiliary objective, ``L3 = L2 + lambda * L1``, lambda 0.5).

The three special tokens are new: :func:`add_gpt1_special_tokens` adds them to the tokenizer
(and a padding token where the tokenizer has none: its end-of-text token) and
:meth:`KelmGPTForMultipleChoice.from_causal_lm` grows the backbone's embeddings to match. A
tokenizer that carries them is recognised by :func:`transfer_token_ids`, which is how
:func:`kelm.pipeline.examples.build_examples` knows to write the transfer format (also for a saved
run's tokenizer in ``kelm evaluate``).

Padding: sequences may be padded on either side. Position ids are counted over the real tokens
only (so left padding does not shift them) and the extract state is taken at the last real
token, so a statement gets the same score alone or in any padded batch.

Module contents: :data:`TRANSFER_TOKENS`, :func:`add_gpt1_special_tokens`,
:func:`transfer_token_ids`, :func:`encode_transfer`, :func:`load_gpt_tokenizer`,
:func:`load_causal_lm_backbone`, :class:`KelmGPTMultipleChoiceOutput`,
:class:`KelmGPTForMultipleChoice`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from transformers import AutoModelForCausalLM, PreTrainedModel
from transformers.utils import ModelOutput, can_return_tuple

from kelm.errors import KelmError
from kelm.modeling.backbones import KelmPreTrainedModel
from kelm.modeling.causal_lm import resolve_lm
from kelm.modeling.configuration_gpt import KelmGPTConfig
from kelm.modeling.encoders import has_weights, quiet_transformers

TRANSFER_TOKENS: dict[str, str] = {
    "start": "<|start|>",
    "delimiter": "<|delim|>",
    "extract": "<|extract|>",
}
"""The GPT-1 transfer-format special tokens (role -> token text)."""


# ---------------------------------------------------------------------- tokenizer
def transfer_token_ids(tokenizer: Any) -> dict[str, int] | None:
    """The ids of the transfer tokens in ``tokenizer`` (role -> id), or ``None`` when it does
    not carry all three (a tokenizer not prepared by :func:`add_gpt1_special_tokens`)."""
    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is not None and hasattr(backend, "token_to_id"):
        # A fast tokenizer answers per token; get_vocab() copies the whole vocabulary into a
        # dict (36 ms for BERT's 30k), and every prepare_examples call asks.
        found = {role: backend.token_to_id(token) for role, token in TRANSFER_TOKENS.items()}
        return None if None in found.values() else {k: int(v) for k, v in found.items()}
    vocab = tokenizer.get_vocab()
    if not all(token in vocab for token in TRANSFER_TOKENS.values()):
        return None
    return {role: int(vocab[token]) for role, token in TRANSFER_TOKENS.items()}


def add_gpt1_special_tokens(tokenizer: Any, *, pad_token: bool = True) -> dict[str, int]:
    """Add the start, delimiter and extract tokens to ``tokenizer`` (in place, as special tokens
    that are never split; a no-op when they are there already), and make its end-of-text token
    the padding token when it has none (padding is masked, so no new embedding is needed for
    it).

    Resize a model's embeddings to ``len(tokenizer)`` afterwards when tokens were added. The
    ``clm`` pretraining objective adds the same tokens, so a pretrained causal LM's vocabulary
    (and the tokenizer saved with it) already carries them.

    Args:
        tokenizer: a Hugging Face tokenizer.
        pad_token: also set the padding token; off for ``clm`` pretraining, whose instances and
            config keep the tokenizer's own padding id.

    Returns:
        role -> token id (``start``, ``delimiter``, ``extract``).

    Raises:
        KelmError: the tokenizer has no token to pad with.
    """
    tokens = list(TRANSFER_TOKENS.values())
    vocab = tokenizer.get_vocab()
    missing = [t for t in tokens if t not in vocab or t not in tokenizer.all_special_tokens]
    if missing:
        tokenizer.add_special_tokens(
            {"extra_special_tokens": tokens}, replace_extra_special_tokens=False
        )
    if pad_token and tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise KelmError(
                f"{type(tokenizer).__name__} has no padding, end-of-text or unknown token to pad "
                "with; give the tokenizer a pad_token"
            )
        tokenizer.pad_token = fallback
    ids = tokenizer.convert_tokens_to_ids(tokens)
    return {role: int(i) for role, i in zip(TRANSFER_TOKENS, ids, strict=True)}


def encode_transfer(
    question: Sequence[int], choice: Sequence[int], ids: dict[str, int], max_length: int
) -> list[int]:
    """One statement in the transfer format, cut to ``max_length`` tokens.

    The three special tokens are always kept; when the texts are too long the longer of the
    two loses tokens from its end first (Hugging Face's ``longest_first`` rule), so the
    sequence always ends with the extract token.

    Args:
        question, choice: the texts' token ids, without special tokens.
        ids: :func:`transfer_token_ids` of the tokenizer.
        max_length: tokens per statement (at least 5).
    """
    budget = max_length - 3
    if budget < 2:
        raise ValueError(f"max_length must be at least 5 for the transfer format, not {max_length}")
    q, c = len(question), len(choice)
    while q + c > budget:
        if q > c:  # ties cut the choice, as Hugging Face's longest_first
            q -= 1
        else:
            c -= 1
    return [
        ids["start"],
        *question[:q],
        ids["delimiter"],
        *choice[:c],
        ids["extract"],
    ]


def _resolve_source(name_or_path: str | Path | None) -> tuple[str, str | None]:
    """``(folder or hub id, GGUF file name or None)``; ``None``: the offline SmolLM2-135M
    (:func:`kelm.modeling.causal_lm.resolve_lm` rules: a ``.gguf`` path is split)."""
    return resolve_lm(None if name_or_path in (None, "") else str(name_or_path), None)


def load_gpt_tokenizer(name_or_path: str | Path | None = None) -> Any:
    """The tokenizer of a causal LM checkpoint (a hub id, a folder, a ``.gguf`` file;
    ``None``: the offline SmolLM2-135M) with the transfer tokens added
    (:func:`add_gpt1_special_tokens`).

    Raises:
        KelmError: the tokenizer cannot be found or read.
    """
    from transformers import AutoTokenizer

    source, gguf = _resolve_source(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **({"gguf_file": gguf} if gguf else {}))
    except Exception as exc:  # missing files and unreadable GGUF surface as many types
        where = f"{source}/{gguf}" if gguf else source
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise KelmError(
            f"cannot load tokenizer {where!r} ({type(exc).__name__}: {first})"
        ) from None
    add_gpt1_special_tokens(tokenizer)
    return tokenizer


def load_causal_lm_backbone(name_or_path: str | Path | None = None) -> PreTrainedModel:
    """A causal LM (``AutoModelForCausalLM``) in eval mode.

    Args:
        name_or_path: a hub id, a model folder (a folder with only a ``config.json`` gives a
            randomly initialised model of that architecture, with a warning), a ``.gguf`` file
            (de-quantised to float32), or ``None`` for the offline SmolLM2-135M.

    Raises:
        KelmError: the checkpoint cannot be found or read, or is not a causal LM.
    """
    from transformers import AutoConfig

    source, gguf = _resolve_source(name_or_path)
    where = f"{source}/{gguf}" if gguf else source
    try:
        with quiet_transformers():
            if gguf is None and Path(source).is_dir() and not has_weights(source):
                warnings.warn(
                    f"{source}: no weights, only a config; the causal LM starts from random "
                    "weights",
                    stacklevel=2,
                )
                model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source))
            else:
                model = AutoModelForCausalLM.from_pretrained(
                    source, **({"gguf_file": gguf} if gguf else {})
                )
    except Exception as exc:  # missing / corrupt files, unsupported architectures
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise KelmError(
            f"cannot load a causal LM from {where!r} ({type(exc).__name__}: {first})"
        ) from None
    return model.eval()


# ---------------------------------------------------------------------- model
@dataclass
class KelmGPTMultipleChoiceOutput(ModelOutput):
    """Output of :class:`KelmGPTForMultipleChoice`.

    Attributes:
        loss: ``mc_loss + aux_loss`` when ``labels`` are given.
        logits: ``[B, C]`` choice scores.
        mc_loss: cross-entropy over the choices (with ``labels``).
        lm_loss: the (unweighted) LM loss on the statement tokens, when computed.
        aux_loss: ``lm_loss_weight * lm_loss``, what a training loop adds to its own choice
            loss (``None`` when not computed).
    """

    loss: Tensor | None = None
    logits: Tensor | None = None
    mc_loss: Tensor | None = None
    lm_loss: Tensor | None = None
    aux_loss: Tensor | None = None


class KelmGPTForMultipleChoice(KelmPreTrainedModel):
    """A causal LM reads ``<start> question <delim> choice <extract>``; dropout + a linear head
    on the extract token's final state -> the choice score; softmax over the choices. In
    training mode the auxiliary LM loss is computed too (``aux_loss``).

    The backbone, with its LM head, is ``self.text_encoder`` (the name every kelm model uses:
    the training loop gives it the LM learning rate and may freeze it).

    Args:
        config: a :class:`KelmGPTConfig`.
    """

    config_class = KelmGPTConfig
    config: KelmGPTConfig

    def __init__(self, config: KelmGPTConfig) -> None:
        super().__init__(config)
        self.text_encoder = AutoModelForCausalLM.from_config(config.encoder_config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(self.statement_dim, 1)
        self.post_init()

    def _build_text_encoder(self) -> None:  # the backbone is a causal LM, built in __init__
        raise NotImplementedError

    @property
    def statement_dim(self) -> int:
        """Width of the extract state (the backbone's hidden size)."""
        return int(self.config.encoder_config.hidden_size)

    @property
    def max_positions(self) -> int | None:
        """The backbone's context window in tokens (``None``: unknown)."""
        cfg = self.config.encoder_config
        for key in ("n_positions", "max_position_embeddings", "n_ctx"):
            value = getattr(cfg, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    @can_return_tuple
    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        choice_mask: Tensor | None = None,
        compute_lm_loss: bool | None = None,
        **kwargs: Any,
    ) -> KelmGPTMultipleChoiceOutput:
        """Score every choice (and, in training, the auxiliary LM loss).

        Args:
            input_ids: transfer-format statements (:func:`encode_transfer`), padded on either
                side.
            attention_mask: 1 for real tokens, 0 for padding (``None``: no padding).
            labels: index of the right choice (optional).
            choice_mask: False for padding choices of a batch; they are left out of the LM
                loss (their logits are for the caller to mask).
            compute_lm_loss: compute the LM loss (default: in training mode when
                ``lm_loss_weight > 0``).
            kwargs: ``token_type_ids`` and the graph inputs of a shared collator are accepted
                and ignored.

        Shapes:
            - input_ids, attention_mask: ``[B, C, L]``
            - labels: ``[B]``; choice_mask: ``[B, C]``
            - output: ``logits [B, C]``; the losses are scalars
        """
        unknown = set(kwargs) - {"token_type_ids", "graphs", "path_nodes", "path_rels", "path_mask"}
        if unknown:
            raise TypeError(f"unexpected inputs: {', '.join(sorted(unknown))}")
        if input_ids.dim() != 3:
            raise ValueError(
                f"input_ids must be [batch, choices, length], got {list(input_ids.shape)}"
            )
        b, c, length = input_ids.shape
        ids = input_ids.reshape(-1, length)  # [N, L], N = B*C
        if attention_mask is None:
            mask = torch.ones_like(ids)
        else:
            mask = attention_mask.reshape(-1, length).to(ids.dtype)  # [N, L]
        # Positions count real tokens only: left padding does not shift the statement.
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)  # [N, L]
        hidden = self.text_encoder.base_model(
            input_ids=ids, attention_mask=mask, position_ids=position_ids, return_dict=True
        ).last_hidden_state  # [N, L, H]
        steps = torch.arange(length, device=ids.device)
        last = (mask * (steps + 1)).argmax(-1)  # [N]: the last real token (the extract token)
        extract = hidden[torch.arange(ids.shape[0], device=ids.device), last]  # [N, H]
        logits = self.classifier(self.dropout(extract)).view(b, c)  # [B, C]

        weight = float(self.config.lm_loss_weight)
        if compute_lm_loss is None:
            compute_lm_loss = self.training and weight > 0
        lm_loss = aux_loss = None
        if compute_lm_loss:
            lm_loss = self._lm_loss(hidden, ids, mask, choice_mask)
            aux_loss = weight * lm_loss
        mc_loss = loss = None
        if labels is not None:
            mc_loss = nn.functional.cross_entropy(logits, labels)
            loss = mc_loss if aux_loss is None else mc_loss + aux_loss
        return KelmGPTMultipleChoiceOutput(
            loss=loss, logits=logits, mc_loss=mc_loss, lm_loss=lm_loss, aux_loss=aux_loss
        )

    def _lm_loss(
        self, hidden: Tensor, ids: Tensor, mask: Tensor, choice_mask: Tensor | None
    ) -> Tensor:
        """Next-token cross-entropy on the statement text: targets are the real tokens after
        a real token, except the transfer tokens (format, not language) and the tokens of
        padding choices. The LM head runs on those positions only.

        Shapes:
            - hidden: ``[N, L, H]``; ids, mask: ``[N, L]``; choice_mask: ``[B, C]``
            - output: ``[]``
        """
        targets = ids[:, 1:]  # [N, L-1]
        valid = (mask[:, 1:] > 0) & (mask[:, :-1] > 0)  # [N, L-1]
        for special in self.config.special_token_ids:
            if special >= 0:
                valid &= targets != special
        if choice_mask is not None:
            valid &= choice_mask.reshape(-1, 1).to(torch.bool)
        if not bool(valid.any()):
            return hidden.sum() * 0.0  # keeps the graph (and DDP) intact
        states = hidden[:, :-1][valid]  # [T, H]
        head = self.text_encoder.get_output_embeddings()
        scores = head(states).float()  # [T, V]
        return nn.functional.cross_entropy(scores, targets[valid])

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_causal_lm(
        cls,
        name_or_path: str | Path | None = None,
        *,
        tokenizer: Any = None,
        config: KelmGPTConfig | None = None,
        **config_kwargs: Any,
    ) -> KelmGPTForMultipleChoice:
        """A new model on pretrained causal LM weights (the head random), its embeddings grown
        to the tokenizer's transfer tokens.

        Args:
            name_or_path: hub id, folder or ``.gguf`` file (``None``: the offline SmolLM2-135M;
                see :func:`load_causal_lm_backbone`).
            tokenizer: the tokenizer the model will read (transfer tokens are added when
                missing); ``None``: the checkpoint's (:func:`load_gpt_tokenizer`).
            config: a config of this family (its backbone fields are replaced); ``None``
                builds one from ``config_kwargs``.
            config_kwargs: config fields (``lm_loss_weight=...``, ``classifier_dropout=...``).
        """
        if tokenizer is None:
            tokenizer = load_gpt_tokenizer(name_or_path)
        ids = add_gpt1_special_tokens(tokenizer)
        lm = load_causal_lm_backbone(name_or_path)
        if lm.get_input_embeddings().num_embeddings < len(tokenizer):
            lm.resize_token_embeddings(len(tokenizer))  # new rows: the mean embedding
        source, gguf = _resolve_source(name_or_path)
        fields = {
            "encoder_config": lm.config,
            "encoder_name_or_path": f"{source}/{gguf}" if gguf else source,
            "start_token_id": ids["start"],
            "delimiter_token_id": ids["delimiter"],
            "extract_token_id": ids["extract"],
        }
        if config is None:
            config = cls.config_class(**fields, **config_kwargs)
        else:
            for key, value in {**fields, **config_kwargs}.items():
                setattr(config, key, value)
        model = cls(config)
        model.text_encoder.load_state_dict(lm.state_dict())
        return model

    @classmethod
    def from_text_encoder(
        cls,
        encoder_name_or_path: str | Path | None = None,
        config: Any = None,
        **config_kwargs: Any,
    ) -> KelmGPTForMultipleChoice:
        """:meth:`from_causal_lm` under the name the other kelm families use."""
        tokenizer = config_kwargs.pop("tokenizer", None)
        return cls.from_causal_lm(
            encoder_name_or_path, tokenizer=tokenizer, config=config, **config_kwargs
        )


__all__ = [
    "TRANSFER_TOKENS",
    "KelmGPTForMultipleChoice",
    "KelmGPTMultipleChoiceOutput",
    "add_gpt1_special_tokens",
    "encode_transfer",
    "load_causal_lm_backbone",
    "load_gpt_tokenizer",
    "transfer_token_ids",
]
