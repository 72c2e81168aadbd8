"""Row gathers whose backward pass is reproducible bit for bit.

``source[index]`` (advanced indexing) back-propagates through ``index_put_(accumulate=True)``.
On CPU, with more than one thread and at least 32768 gathered elements, PyTorch runs that
kernel in parallel with atomic float adds, so the gradient rows that several gathered rows share
are summed in a thread-timing-dependent order: the same batch gives gradients that differ in
the last bits from run to run, which AdamW then amplifies (a parameter whose true gradient is
zero, like a bias that shifts every choice score alike, walks by ~lr per step on that noise).

:func:`gather_rows` looks the rows up as an embedding instead. On CPU its backward gives each
thread a range of gradient rows and sums every row's contributions in index order, so the result
depends neither on timing nor on the thread count; PyTorch does not list it among its
nondeterministic operations on CUDA either (``index_select``, the other candidate, is listed
there). The forward values are those of ``source[index]``.
"""

from __future__ import annotations

from torch import Tensor, nn


def gather_rows(source: Tensor, index: Tensor) -> Tensor:
    """``source[index]`` along the first dimension, with a deterministic backward pass.

    Use it where ``index`` repeats rows (several edges of one type, several nodes of one
    statement) and ``source`` needs a gradient; gathers of distinct rows are reproducible as
    plain indexing.

    Args:
        source: the rows, ``[n, *feature]``.
        index: row positions in ``0 .. n - 1`` (int64; negative positions are not allowed).

    Shapes: ``source [n, *feature]``, ``index [*idx]`` -> ``[*idx, *feature]``
    """
    if source.dim() == 2:
        return nn.functional.embedding(index, source)
    rows = nn.functional.embedding(index, source.reshape(source.size(0), -1))  # [*idx, f]
    return rows.view(*index.shape, *source.shape[1:])


__all__ = ["gather_rows"]
