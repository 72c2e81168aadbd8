"""QA items for a run: read and checked (ids unique and at least 2 choices, by the QA reader;
answers present when training), and the seeded held-out split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kelm.errors import InputError, KelmError

if TYPE_CHECKING:
    from kelm.data.qa import QAItem


def read_items(path: str | Path, *, need_answers: bool) -> list[QAItem]:
    """Read a QA file and check it for training or evaluation.

    Args:
        path: CommonsenseQA (either form) / OpenBookQA JSONL or COPA XML.
        need_answers: every item must have an answer key (training).

    Raises:
        InputError: missing, empty or malformed file, a repeated id, or (``need_answers``) an
            item without answer key.
    """
    from kelm.data.qa import read_qa

    items = read_qa(path)  # refuses repeated ids and questions with fewer than 2 choices
    for n, item in enumerate(items, start=1):
        if need_answers and item.answer_index is None:
            raise InputError(
                f"{path}: item {item.id!r} (item {n}) has no answer key; training needs one "
                "for every question"
            )
    return items


def split_items(
    items: Sequence[QAItem], holdout: float, split_seed: int, max_train: int | None = None
) -> tuple[list[QAItem], list[QAItem]]:
    """Hold out ``round(holdout * n)`` questions, chosen by a permutation seeded with
    ``split_seed``; ``max_train`` keeps a seeded subset of the rest.

    Returns:
        ``(train, held_out)``, each in file order.
    """
    n = len(items)
    order = np.random.default_rng(split_seed).permutation(n)
    n_eval = int(round(holdout * n))
    if holdout > 0 and n_eval == 0 and n > 1:
        n_eval = 1
    if n_eval >= n:
        raise KelmError(f"data.holdout={holdout} leaves no training questions out of {n}")
    eval_idx = np.sort(order[:n_eval])
    train_idx = order[n_eval:]
    if max_train is not None:
        train_idx = train_idx[:max_train]
    train_idx = np.sort(train_idx)
    return [items[i] for i in train_idx], [items[i] for i in eval_idx]


__all__ = ["read_items", "split_items"]
