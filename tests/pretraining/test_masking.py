"""BERT masking: proportions, special tokens, determinism from the generator, whole words;
ERNIE's dEA entity noise: proportions, determinism."""

from __future__ import annotations

import pytest
import torch

from kelm.modeling.backbones import IGNORE_INDEX
from kelm.pretraining.masking import dea_noise, mask_tokens, ngram_lengths

MASK, VOCAB = 4, 1000


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(10, VOCAB, (64, 256), generator=torch.Generator().manual_seed(0))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True  # [CLS] ... [SEP]
    special[:, 200:] = True  # padding
    return ids, special


def test_proportions_80_10_10() -> None:
    ids, special = _batch()
    inputs, labels = mask_tokens(
        ids,
        special,
        generator=torch.Generator().manual_seed(1),
        mask_token_id=MASK,
        vocab_size=VOCAB,
    )
    selected = labels != IGNORE_INDEX
    candidates = ~special
    assert not (selected & special).any()  # special tokens and padding are never selected
    assert torch.equal(labels[selected], ids[selected])
    rate = selected.sum().item() / candidates.sum().item()
    assert abs(rate - 0.15) < 0.01
    n = selected.sum().item()
    masked = (inputs == MASK) & selected
    kept = (inputs == ids) & selected
    changed = selected & ~masked & ~kept
    assert abs(masked.sum().item() / n - 0.8) < 0.02
    # a random replacement may draw the original token (1/VOCAB): counted as kept
    assert abs(changed.sum().item() / n - 0.1) < 0.015
    assert abs(kept.sum().item() / n - 0.1) < 0.015
    assert torch.equal(inputs[~selected], ids[~selected])


def test_configurable_rate_and_same_generator_same_masks() -> None:
    ids, special = _batch()

    def run(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return mask_tokens(
            ids,
            special,
            generator=torch.Generator().manual_seed(seed),
            mask_token_id=MASK,
            vocab_size=VOCAB,
            probability=0.4,
            mask_ratio=1.0,
            random_ratio=0.0,
        )

    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    selected = a[1] != IGNORE_INDEX
    assert abs(selected.sum().item() / (~special).sum().item() - 0.4) < 0.015
    assert bool((a[0][selected] == MASK).all())


def test_whole_word_masking_takes_every_piece() -> None:
    ids, special = _batch()
    starts = torch.zeros_like(ids)
    starts[:, ::3] = 1  # words of three pieces
    _, labels = mask_tokens(
        ids,
        special,
        generator=torch.Generator().manual_seed(2),
        mask_token_id=MASK,
        vocab_size=VOCAB,
        word_starts=starts,
        whole_word=True,
    )
    selected = labels != IGNORE_INDEX
    words = selected[:, 3:198].reshape(64, -1, 3)  # whole words, away from the specials
    assert bool((words.all(-1) | ~words.any(-1)).all())  # all pieces of a word or none
    assert 0.1 < selected.sum().item() / (~special).sum().item() < 0.2


def test_a_batch_never_ends_without_a_label() -> None:
    ids = torch.tensor([[2, 11, 3]])
    special = torch.tensor([[True, False, True]])
    _, labels = mask_tokens(
        ids,
        special,
        generator=torch.Generator().manual_seed(0),
        mask_token_id=MASK,
        vocab_size=VOCAB,
        probability=0.01,
    )
    assert labels.tolist() == [[IGNORE_INDEX, 11, IGNORE_INDEX]]


def _runs(row: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a 1-D bool tensor."""
    lengths, current = [], 0
    for value in row.tolist():
        if value:
            current += 1
        elif current:
            lengths.append(current)
            current = 0
    return lengths + ([current] if current else [])


def test_ngram_masking_selects_spans_of_whole_words_at_the_same_rate() -> None:
    """ALBERT's n-gram masking: p(n) ∝ 1/n, spans of whole words, still ~15% of the tokens."""
    assert ngram_lengths(3).tolist() == pytest.approx([6 / 11, 3 / 11, 2 / 11])
    ids, special = _batch()
    kwargs = {"mask_token_id": MASK, "vocab_size": VOCAB, "max_ngram": 3}
    _, labels = mask_tokens(ids, special, generator=torch.Generator().manual_seed(5), **kwargs)
    selected = labels != IGNORE_INDEX
    assert not bool(selected[special].any())
    rate = selected.sum().item() / (~special).sum().item()
    assert 0.12 < rate < 0.16
    runs = [n for row in selected for n in _runs(row)]
    # single tokens are the most common span, and longer ones occur (spans may abut)
    assert runs.count(1) > runs.count(2) > 0 and runs.count(3) > 0
    mean = sum(runs) / len(runs)
    assert 1.4 < mean < 2.2  # E[n] = 18/11 = 1.64 before spans abut
    # whole words: with two-piece words, spans cover both pieces of each word they touch
    starts = torch.zeros_like(ids)
    starts[:, 1::2] = 1
    _, labels = mask_tokens(
        ids, special, generator=torch.Generator().manual_seed(6), word_starts=starts, **kwargs
    )
    words = (labels != IGNORE_INDEX)[:, 1:199].reshape(64, -1, 2)
    assert bool((words.all(-1) | ~words.any(-1)).all())
    # the same generator state gives the same spans
    again = mask_tokens(ids, special, generator=torch.Generator().manual_seed(5), **kwargs)[1]
    assert torch.equal(
        again,
        mask_tokens(ids, special, generator=torch.Generator().manual_seed(5), **kwargs)[1],
    )


def test_dea_noise_proportions() -> None:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 1000, (400, 500), generator=g)
    ids[torch.rand(400, 500, generator=g) < 0.5] = -1
    aligned = ids >= 0
    noised, labels = dea_noise(ids, torch.Generator().manual_seed(7), 1000)
    assert torch.equal(labels, torch.where(aligned, ids, -1))
    assert torch.equal(noised[~aligned], ids[~aligned])  # unaligned positions stay -1
    n = aligned.sum().item()
    masked = (aligned & (noised == -1)).sum().item() / n
    changed = (aligned & (noised >= 0) & (noised != ids)).sum().item() / n
    unchanged = (aligned & (noised == ids)).sum().item() / n
    assert masked == pytest.approx(0.15, abs=0.005)
    assert changed == pytest.approx(0.05 * 999 / 1000, abs=0.003)  # a draw may hit the truth
    assert unchanged == pytest.approx(0.80, abs=0.006)
    assert noised.max() < 1000
    again, _ = dea_noise(ids, torch.Generator().manual_seed(7), 1000)
    assert torch.equal(again, noised)  # seeded: reproducible
    with pytest.raises(ValueError, match="sum of at most 1"):
        dea_noise(ids, None, 1000, replace_prob=0.6, mask_prob=0.6)
