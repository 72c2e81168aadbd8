"""Model tests run on tiny tensors: one intra-op thread. On a small shared machine, the
thread-pool synchronisation of every op costs more than the op itself (0.1 s vs 0.1 ms)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
