"""Masked-LM corruption (BERT, Devlin et al. 2019) drawn from a seeded ``torch.Generator``.

Of the non-special tokens, a fraction ``probability`` (15%) is selected for prediction; of
those, ``mask_ratio`` (80%) become ``[MASK]``, ``random_ratio`` (10%) a token drawn uniformly
from the vocabulary, and the rest (10%) stay as they are. Labels are the original ids at the
selected positions and :data:`IGNORE_INDEX` elsewhere. With ``whole_word`` the selection is per
word (every wordpiece of a selected word is selected), the 80/10/10 split still per token.

Every random number comes from the ``generator`` argument, so a batch's masks depend only on
the generator's state: checkpointing that state makes a resumed run mask exactly as an
uninterrupted one.
"""

from __future__ import annotations

import torch
from torch import Tensor

IGNORE_INDEX = -100


def _whole_word_selection(
    rand: Tensor, word_starts: Tensor, candidates: Tensor, probability: float
) -> Tensor:
    """Per-word selection: a word is selected when the draw at its first piece is below
    ``probability``; its continuation pieces follow it.

    Shapes:
        rand, word_starts, candidates: ``[B, L]``; returns ``[B, L]`` bool.
    """
    b, length = rand.shape
    starts = word_starts.bool() | ~candidates  # specials and padding start their own "word"
    positions = torch.arange(length).expand(b, length)
    start_of = torch.where(starts, positions, torch.zeros_like(positions))
    start_of = torch.cummax(start_of, dim=1).values  # [B, L] index of each token's word start
    chosen_start = (rand < probability) & starts
    return chosen_start.gather(1, start_of) & candidates


def mask_tokens(
    input_ids: Tensor,
    special_tokens_mask: Tensor,
    *,
    generator: torch.Generator,
    mask_token_id: int,
    vocab_size: int,
    probability: float = 0.15,
    mask_ratio: float = 0.8,
    random_ratio: float = 0.1,
    word_starts: Tensor | None = None,
    whole_word: bool = False,
    at_least_one: bool = True,
) -> tuple[Tensor, Tensor]:
    """Corrupt a batch for masked-LM training.

    Args:
        input_ids: token ids.
        special_tokens_mask: 1 (True) at special tokens and padding, never selected.
        generator: the source of every random draw.
        mask_token_id: id of ``[MASK]``.
        vocab_size: random replacements are drawn from ``[0, vocab_size)``.
        probability: fraction of the candidate tokens selected.
        mask_ratio, random_ratio: of the selected tokens, the fraction masked / replaced.
        word_starts: 1 at the first wordpiece of each word (needed by ``whole_word``).
        whole_word: select whole words.
        at_least_one: when nothing at all was selected in the batch, select one candidate
            (a batch without any label has no defined loss).

    Shapes:
        input_ids, special_tokens_mask, word_starts: ``[B, L]``; returns ``(inputs [B, L],
        labels [B, L])``.
    """
    candidates = ~special_tokens_mask.bool()  # [B, L]
    rand = torch.rand(input_ids.shape, generator=generator)  # [B, L]
    if whole_word and word_starts is not None:
        selected = _whole_word_selection(rand, word_starts, candidates, probability)
    else:
        selected = (rand < probability) & candidates  # [B, L]
    if at_least_one and not bool(selected.any()) and bool(candidates.any()):
        flat = torch.nonzero(candidates.flatten()).squeeze(1)
        pick = flat[torch.randint(len(flat), (1,), generator=generator)]
        selected.view(-1)[pick] = True
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    how = torch.rand(input_ids.shape, generator=generator)  # [B, L] 80/10/10 draw
    to_mask = selected & (how < mask_ratio)
    to_random = selected & (how >= mask_ratio) & (how < mask_ratio + random_ratio)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)  # [B, L]
    inputs = input_ids.clone()
    inputs[to_mask] = mask_token_id
    inputs[to_random] = random_ids[to_random]
    return inputs, labels


__all__ = ["IGNORE_INDEX", "mask_tokens"]
