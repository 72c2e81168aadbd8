"""Memory-mappable string columns: one UTF-8 blob plus int64 offsets, stored as two npy files.

pyarrow builds and exports columns; reading one (an index opened for training) needs numpy only,
so a machine without pyarrow can train on an index built elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa


class StringColumn(Sequence[str]):
    """An immutable sequence of strings backed by ``data`` (uint8) and ``offsets`` (int64).

    ``offsets`` has ``len + 1`` entries; string ``i`` is ``data[offsets[i]:offsets[i+1]]``.
    Both arrays may be memory-mapped, so opening a column costs nothing until it is read.
    """

    def __init__(self, data: np.ndarray, offsets: np.ndarray) -> None:
        self.data = data
        self.offsets = offsets

    @classmethod
    def from_arrow(cls, array: pa.Array | pa.ChunkedArray) -> StringColumn:
        """Build from an Arrow string array (nulls become empty strings)."""
        import pyarrow as pa

        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks() if array.num_chunks else pa.array([], pa.string())
        array = array.cast(pa.large_string()).fill_null("")
        if len(array) == 0:
            return cls(np.zeros(0, np.uint8), np.zeros(1, np.int64))
        _, offsets_buf, data_buf = array.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=np.int64)[
            array.offset : array.offset + len(array) + 1
        ]
        start = int(offsets[0])
        data = np.frombuffer(data_buf, dtype=np.uint8)[start : int(offsets[-1])].copy()
        return cls(data, (offsets - start).astype(np.int64))

    @classmethod
    def from_list(cls, strings: Sequence[str]) -> StringColumn:
        import pyarrow as pa

        return cls.from_arrow(pa.array(list(strings), pa.large_string()))

    def to_arrow(self) -> pa.LargeStringArray:
        import pyarrow as pa

        return pa.LargeStringArray.from_buffers(
            len(self),
            pa.py_buffer(np.ascontiguousarray(self.offsets)),
            pa.py_buffer(np.ascontiguousarray(self.data)),
        )

    def to_list(self) -> list[str]:
        try:
            import pyarrow  # noqa: F401 -- the fast path
        except ImportError:
            blob = self.data.tobytes()
            bounds = self.offsets.tolist()
            return [blob[a:b].decode("utf-8") for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        return self.to_arrow().to_pylist()

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return bytes(self.data[self.offsets[i] : self.offsets[i + 1]]).decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_list())
