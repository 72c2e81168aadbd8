"""The sources' shared helpers."""

from __future__ import annotations

import pyarrow as pa

from kelm.graph.sources.base import concat_as


def test_concat_as_selects_casts_and_skips_empty_tables():
    schema = pa.schema([("a", pa.int64()), ("b", pa.large_string())])
    first = pa.table({"b": ["x", "y"], "a": pa.array([1, 2], pa.int32()), "extra": [0, 0]})
    empty = pa.table({"a": pa.array([], pa.int32()), "b": pa.array([], pa.string())})
    second = pa.table({"a": pa.array([3], pa.int8()), "b": ["z"]})
    out = concat_as([first, empty, second], schema)
    assert out.schema == schema
    assert out.to_pydict() == {"a": [1, 2, 3], "b": ["x", "y", "z"]}
    assert out["a"].num_chunks == 2  # the empty table added no chunk
    nothing = concat_as([empty], schema)
    assert nothing.schema == schema and nothing.num_rows == 0
