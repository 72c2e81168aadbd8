"""Masked-LM corruption (BERT, Devlin et al. 2019) drawn from a seeded ``torch.Generator``.

Of the non-special tokens, a fraction ``probability`` (15%) is selected for prediction; of
those, ``mask_ratio`` (80%) become ``[MASK]``, ``random_ratio`` (10%) a token drawn uniformly
from the vocabulary, and the rest (10%) stay as they are. Labels are the original ids at the
selected positions and :data:`IGNORE_INDEX` elsewhere. With ``whole_word`` the selection is per
word (every wordpiece of a selected word is selected), the 80/10/10 split still per token.

With ``max_ngram`` N > 1 the selection is of n-grams (ALBERT, Lan et al. 2020, Sec. 4.1): a
span of n consecutive words (whole words when ``word_starts`` is given, else tokens) starts at
a word with probability ``probability / E[n]`` and its length follows ``p(n) ∝ 1/n`` for
n = 1..N (ALBERT used N = 3), so that about ``probability`` of the tokens are still selected
(a little less where spans overlap).

Every random number comes from the ``generator`` argument, so a batch's masks depend only on
the generator's state: checkpointing that state makes a resumed run mask exactly as an
uninterrupted one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kelm.modeling.backbones import IGNORE_INDEX


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


def ngram_lengths(max_ngram: int) -> Tensor:
    """ALBERT's n-gram length distribution ``p(n) = (1/n) / sum_k (1/k)``, n = 1..max_ngram.

    Shapes:
        output: ``[max_ngram]`` (index ``n - 1``).
    """
    weights = 1.0 / torch.arange(1, max_ngram + 1, dtype=torch.float64)
    return weights / weights.sum()


def _ngram_selection(
    rand: Tensor,
    lengths_rand: Tensor,
    starts: Tensor,
    candidates: Tensor,
    probability: float,
    max_ngram: int,
) -> Tensor:
    """Select spans of 1..``max_ngram`` words; see the module docstring.

    Args:
        rand: the draw deciding whether a span starts at each word (read at word starts).
        lengths_rand: the draw giving each span's length (read at word starts).
        starts: ``True`` at the first token of each word (special tokens and padding are
            words of their own, never selected).

    Shapes:
        every argument and the output: ``[B, L]``.
    """
    p = ngram_lengths(max_ngram)
    expected = float((p * torch.arange(1, max_ngram + 1, dtype=torch.float64)).sum())
    span_start = (rand < probability / expected) & starts & candidates  # [B, L]
    cumulative = p.cumsum(0).to(lengths_rand.dtype)  # [N]
    n = torch.searchsorted(cumulative, lengths_rand.contiguous(), right=True) + 1  # [B, L]
    n = n.clamp(max=max_ngram)
    word_id = starts.long().cumsum(1) - 1  # [B, L] the word of each token
    # per word (indexed by word id): the length of the span that starts there, 0 when none
    span_of_word = torch.zeros_like(word_id).scatter_add_(1, word_id, n * span_start)
    covered = torch.zeros_like(starts)
    for back in range(max_ngram):  # a span from ``back`` words before reaches this word?
        source = word_id - back  # [B, L]
        reach = span_of_word.gather(1, source.clamp(min=0))  # [B, L]
        covered |= (source >= 0) & (reach > back)
    return covered & candidates


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
    max_ngram: int = 1,
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
        max_ngram: select spans of up to this many words (ALBERT's n-gram masking; 1: off).
        at_least_one: when nothing at all was selected in the batch, select one candidate
            (a batch without any label has no defined loss).

    Shapes:
        input_ids, special_tokens_mask, word_starts: ``[B, L]``; returns ``(inputs [B, L],
        labels [B, L])``.
    """
    candidates = ~special_tokens_mask.bool()  # [B, L]
    rand = torch.rand(input_ids.shape, generator=generator)  # [B, L]
    if max_ngram > 1:
        lengths_rand = torch.rand(input_ids.shape, generator=generator)  # [B, L]
        starts = (
            word_starts.bool() | ~candidates
            if word_starts is not None
            else torch.ones_like(candidates)
        )
        selected = _ngram_selection(rand, lengths_rand, starts, candidates, probability, max_ngram)
    elif whole_word and word_starts is not None:
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


__all__ = ["mask_tokens", "ngram_lengths"]
