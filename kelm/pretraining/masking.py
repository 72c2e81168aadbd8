"""Pretraining corruption drawn from a seeded ``torch.Generator``: masked LM (BERT, Devlin et
al. 2019) and ERNIE's entity noise.

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

ERNIE's denoising entity auto-encoder (dEA, Zhang et al. 2019) corrupts a batch's
token-entity alignments instead (:func:`dea_noise`): of the aligned positions, a few get a
random entity, some lose theirs, the rest stay, and every one is a target.

Every random number comes from the ``generator`` argument (``dea_noise`` also accepts
``None``: torch's global generator), so a batch's masks depend only on the generator's state:
checkpointing that state makes a resumed run mask exactly as an uninterrupted one.
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


def dea_noise(
    entity_ids: Tensor,
    generator: torch.Generator | None,
    num_entities: int,
    replace_prob: float = 0.05,
    mask_prob: float = 0.15,
) -> tuple[Tensor, Tensor]:
    """Corrupt token-entity alignments for the denoising entity auto-encoder (ERNIE's dEA).

    Of the aligned positions (``entity_ids >= 0``), a fraction ``replace_prob`` gets a random
    entity (uniform over the table, possibly the true one), a fraction ``mask_prob`` loses its
    entity (``-1``), the rest is unchanged. Every aligned position is a dEA target.

    Args:
        entity_ids: aligned entity ids, ``-1`` where none.
        generator: random generator (on ``entity_ids``' device); ``None``: torch's global one.
        num_entities: size of the entity table (range of the random replacements).
        replace_prob: fraction of alignments replaced by a random entity.
        mask_prob: fraction of alignments removed.

    Returns:
        ``(noised_entity_ids, entity_labels)``: the corrupted ids for the model input and the
        true ids at aligned positions (``-1`` elsewhere), both like ``entity_ids``.

    Shapes:
        - entity_ids: ``[*]`` (int64); outputs: ``[*]``
    """
    if min(replace_prob, mask_prob) < 0.0 or replace_prob + mask_prob > 1.0:
        raise ValueError(
            f"replace_prob ({replace_prob}) and mask_prob ({mask_prob}) must be >= 0 with a "
            "sum of at most 1"
        )
    aligned = entity_ids >= 0
    labels = torch.where(aligned, entity_ids, torch.full_like(entity_ids, -1))
    draw = torch.rand(entity_ids.shape, generator=generator, device=entity_ids.device)
    random_ids = torch.randint(
        0, num_entities, entity_ids.shape, generator=generator, device=entity_ids.device
    )
    replace = aligned & (draw < replace_prob)
    drop = aligned & (draw >= replace_prob) & (draw < replace_prob + mask_prob)
    noised = torch.where(replace, random_ids, labels)
    noised = noised.masked_fill(drop, -1)
    return noised, labels


__all__ = ["dea_noise", "mask_tokens", "ngram_lengths"]
