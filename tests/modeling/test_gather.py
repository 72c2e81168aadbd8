"""gather_rows: the values of plain indexing, a backward pass reproducible bit for bit with several
CPU threads (plain indexing's is not: it sums shared rows with atomic adds)."""

from __future__ import annotations

import torch

from kelm.modeling.gather import gather_rows


def test_gather_rows_gives_the_rows_of_plain_indexing() -> None:
    source = torch.randn(5, 3, 2)
    index = torch.tensor([[4, 0, 0], [2, 2, 1]])
    assert torch.equal(gather_rows(source, index), source[index])  # [2, 3, 3, 2]
    assert torch.equal(gather_rows(source[:, :, 0], index), source[index, :, 0])
    assert gather_rows(source, torch.zeros(0, dtype=torch.long)).shape == (0, 3, 2)


def test_gather_rows_gradient_sums_in_index_order_on_any_run_and_thread_count() -> None:
    # 4 rows shared by 5000 gathers of 64 values: far above PyTorch's parallel threshold
    # (32768 elements), where indexing's backward races on the shared rows.
    gen = torch.Generator().manual_seed(0)
    source = torch.randn(4, 64, generator=gen, requires_grad=True)
    index = torch.randint(0, 4, (5000,), generator=gen)
    upstream = torch.randn(5000, 64, generator=gen)

    def gradient(threads: int) -> torch.Tensor:
        torch.set_num_threads(threads)
        source.grad = None
        gather_rows(source, index).backward(upstream)
        assert source.grad is not None
        return source.grad.clone()

    first = gradient(2)
    for _ in range(5):
        assert torch.equal(gradient(2), first)
    assert torch.equal(gradient(1), first)
    in_index_order = torch.zeros(4, 64)
    for i, row in enumerate(index.tolist()):
        in_index_order[row] += upstream[i]
    assert torch.equal(first, in_index_order)
