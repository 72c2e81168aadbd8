"""The global batch and each process's share of it: the order depends on ``(seed, epoch)``
only, the shares tile every global batch, and the loss weights make the averaged gradient the
global batch's."""

from __future__ import annotations

import pytest
import torch

from kelm.engine.batching import (
    check_global_batch,
    global_batches,
    rank_slice,
    share_scale,
    slice_batch,
)
from kelm.errors import KelmError


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shares_tile_every_global_batch(world: int) -> None:
    batches = global_batches(11, 4, seed=5, epoch=2)
    assert [len(b) for b in batches] == [4, 4, 3]
    for batch in batches:
        shares = [batch[slice(*rank_slice(len(batch), r, world))] for r in range(world)]
        joined = [i for share in shares for i in share]
        assert joined == batch  # contiguous, in rank order, nothing repeated or padded
        sizes = [len(share) for share in shares]
        assert max(sizes) - min(sizes) <= 1


def test_global_batches_cover_the_epoch_in_an_order_seeded_by_seed_and_epoch() -> None:
    one = global_batches(10, 3, seed=1, epoch=0)
    assert sorted(i for b in one for i in b) == list(range(10)) and len(one) == 4
    assert [len(b) for b in one] == [3, 3, 3, 1]
    assert one == global_batches(10, 3, seed=1, epoch=0)
    assert one != global_batches(10, 3, seed=1, epoch=1)
    assert one != global_batches(10, 3, seed=2, epoch=0)
    # batch_size is global: 2 processes share each global batch of 4 (the last holds 2)
    sizes = [
        [len(range(*rank_slice(len(b), r, 2))) for b in global_batches(10, 4, 1, 0)]
        for r in range(2)
    ]
    assert sizes == [[2, 2, 1], [2, 2, 1]]


def test_a_share_may_be_empty_on_a_short_last_batch() -> None:
    assert [rank_slice(1, r, 2) for r in range(2)] == [(0, 1), (1, 1)]
    assert [rank_slice(5, r, 3) for r in range(3)] == [(0, 2), (2, 4), (4, 5)]


def test_the_global_batch_must_split_evenly() -> None:
    assert check_global_batch(8, 2) == 4 and check_global_batch(3, 1) == 3
    with pytest.raises(KelmError, match="batch_size 6 is the global batch.*multiple of the 4"):
        check_global_batch(6, 4)


def test_weighted_shares_average_to_the_global_gradient() -> None:
    """DDP averages the processes' gradients: with each mean loss weighted by its share, the
    average is the gradient of the global batch's mean."""
    torch.manual_seed(0)
    w = torch.randn(3, requires_grad=True)
    x, y = torch.randn(7, 3), torch.randn(7)

    def grad(rows: slice, scale: float) -> torch.Tensor:
        w.grad = None
        (((x[rows] @ w - y[rows]) ** 2).mean() * scale).backward()
        return w.grad.clone()

    whole = grad(slice(0, 7), 1.0)
    world = 3
    parts = []
    for r in range(world):
        lo, hi = rank_slice(7, r, world)
        parts.append(grad(slice(lo, hi), share_scale(hi - lo, 7, world)))
    torch.testing.assert_close(sum(parts) / world, whole)
    assert share_scale(0, 7, 2) == 0.0 and share_scale(3, 0, 2) == 0.0


def test_slice_batch_cuts_rows_only() -> None:
    batch = {"ids": torch.arange(12).view(4, 3), "names": list("abcd"), "n": 4, "vocab": [1, 2]}
    part = slice_batch(batch, 4, 1, 3)
    assert part["ids"].tolist() == [[3, 4, 5], [6, 7, 8]] and part["names"] == ["b", "c"]
    assert part["n"] == 4 and part["vocab"] == [1, 2]
