"""The stages of a distributed graph build (:mod:`kelm.graph.distributed`) that sort rows in
slices of bounded size: the out- and in-CSR, and the aliases and attributes; run on Dask
workers.

A node bucket is a range of node ids, but edges are not spread evenly over nodes: in a
Wikidata-like graph one hub can be the head (or tail) of a fixed share of all edges, so the
bucket that holds it grows with the input, and so would the memory of the worker sorting it.
So each bucket's rows are cut once more, into *slices*: contiguous ranges of the bucket's
final order, (head, relation, tail) for the out-CSR, (tail, relation, head) for the in-CSR,
(node, value...) for aliases and attributes. A slice's boundaries are rows of a systematic
sample (every ``SAMPLE_EVERY``-th row of each partition), at the quantiles that give each
slice about the same number of input rows, so one hub's rows can fall into several slices.
A slice sorted on its own is a block of the bucket's sorted rows (equal rows share a key, so
duplicates never straddle two slices), and the slices of a bucket, concatenated in order,
are the bucket's rows: the output does not depend on where the boundaries fall.

Per slice ``b<B>.s<S>`` the CSR pieces are ``count`` (edges per node of the bucket, summed
over its slices into ``indptr`` when the file is assembled), ``indices``, ``type``,
``weight`` and (in-CSR) ``edge``; the row pieces are ``<prefix>.node`` and a string column
per field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kelm.graph.dist_tasks import (
    _read,
    _split_write,
    save_piece,
)
from kelm.graph.sources.base import concat_as
from kelm.graph.strings import StringColumn

_OUT = ["h", "r", "t"]  # an out-slice's sort key, most significant first
_IN = ["t", "r", "h"]


def slice_key(b: int, s: int) -> str:
    return f"b{b:05d}.s{s:05d}"


def slice_count(rows: int, slice_edges: int) -> int:
    """Slices for a bucket of ``rows`` edges, each of at most about ``slice_edges``."""
    return max(1, -(-rows // max(1, slice_edges)))


def _boundaries(samples: list[Path], columns: list[str], slices: int) -> list[tuple]:
    """``slices - 1`` boundary keys (values of ``columns``), the sample's quantiles in the
    sort order; none when the bucket is one slice (its samples are then not read)."""
    if slices == 1:
        return []
    found = [_read(f).select(columns) for f in samples if f.exists()]
    if not found:
        return []
    sample = pa.concat_tables(found).sort_by([(c, "ascending") for c in columns])
    picks = [sample.num_rows * j // slices for j in range(1, slices)]
    return [tuple(sample[c][i].as_py() for c in columns) for i in picks]


def _rows_below(table: pa.Table, columns: list[str], key: tuple) -> pa.Array:
    """Rows whose values of ``columns`` come before ``key`` in the sort order (byte order
    for strings; a null, which sorts last, is never before)."""
    below = None
    for column, value in reversed(list(zip(columns, key, strict=True))):
        less = pc.fill_null(pc.less(table[column], value), False)
        if below is not None:
            same = pc.fill_null(pc.equal(table[column], value), False)
            less = pc.or_(less, pc.and_(same, below))
        below = less
    return below


def _select(table: pa.Table, columns: list[str], bounds: list[tuple], s: int) -> pa.Table:
    """The rows of ``table`` in slice ``s`` of ``bounds`` (all of them when there is one)."""
    if not bounds:
        return table
    keep = pa.array(np.ones(table.num_rows, dtype=bool))
    if s > 0:
        keep = pc.and_(keep, pc.invert(_rows_below(table, columns, bounds[s - 1])))
    if s < len(bounds):
        keep = pc.and_(keep, _rows_below(table, columns, bounds[s]))
    return table.filter(keep)


def _counts(local_ids: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(local_ids, minlength=n).astype(np.int64)


_EDGES = pa.schema([("h", pa.int64()), ("r", pa.int64()), ("t", pa.int64()), ("w", pa.float32())])
_IN_EDGES = pa.schema(
    [
        ("t", pa.int64()),
        ("r", pa.int64()),
        ("h", pa.int64()),
        ("w", pa.float32()),
        ("e", pa.int64()),
    ]
)


# ---------------------------------------------------------------------- 4. out-CSR
def out_slice(
    work: str,
    b: int,
    s: int,
    slices: int,
    partitions: int,
    offsets: list[int],
    num_rel: int,
    keep_duplicates: bool,
) -> dict[str, Any]:
    """Slice ``s`` of bucket ``b``'s out-CSR: its edges sorted by (head, relation, tail),
    duplicates merged (largest weight), and ``in/b<B>.s<S>.to.b<C>``: the same edges split by
    the tail's bucket (with a sample of each, for the in-CSR's slices)."""
    root = Path(work)
    starts = np.asarray(offsets[:-1], dtype=np.int64)
    lo, n = offsets[b], offsets[b + 1] - offsets[b]
    files = [root / f"p{p:05d}" / f"edges.b{b:05d}" for p in range(partitions)]
    bounds = _boundaries([f.with_name(f.name + ".sample") for f in files], _OUT, slices)
    # One partition's file at a time: the worker holds the slice, never the whole bucket.
    edges = concat_as([_select(_read(f), _OUT, bounds, s) for f in files if f.exists()], _EDGES)
    h = edges["h"].to_numpy() - lo
    r, t, w = edges["r"].to_numpy(), edges["t"].to_numpy(), edges["w"].to_numpy()
    del edges
    order = np.lexsort((t, r, h))  # stable: duplicates keep their input order
    h, r, t, w = h[order], r[order], t[order], w[order]
    del order
    duplicates = 0
    if not keep_duplicates and h.size:
        first = np.ones(h.shape[0], dtype=bool)
        first[1:] = (h[1:] != h[:-1]) | (r[1:] != r[:-1]) | (t[1:] != t[:-1])
        keep = np.flatnonzero(first)
        w = np.maximum.reduceat(w, keep)
        duplicates = int(h.shape[0] - keep.shape[0])
        h, r, t = h[keep], r[keep], t[keep]
    key = slice_key(b, s)
    save_piece(root, "out.count", key, _counts(h, n))
    save_piece(root, "out.indices", key, t.astype(np.int32))
    save_piece(root, "out.type", key, r.astype(np.int32))
    save_piece(root, "out.weight", key, w.astype(np.float32))
    in_dir = root / "in"
    in_dir.mkdir(exist_ok=True)
    h += lo
    # e: the edge's place in the slice (its id, once the slice's first id is known)
    table = pa.table({"t": t, "r": r, "h": h, "w": w, "e": np.arange(h.shape[0])})
    tail_rows = _split_write(in_dir, f"{key}.to", table, t, starts, sampled=True)
    return {
        "edges": int(h.shape[0]),
        "duplicates": duplicates,
        # an array, not a list: it pickles compactly, and results wait on the worker
        "rel_counts": np.bincount(r, minlength=num_rel).astype(np.int64),
        "tail_rows": tail_rows,
    }


# ---------------------------------------------------------------------- 5. in-CSR
def in_slice(
    work: str,
    c: int,
    s: int,
    slices: int,
    sources: list[tuple[str, int]],
    offsets: list[int],
    num_rel: int,
) -> int:
    """Slice ``s`` of bucket ``c``'s in-CSR: its edges by (tail, relation), heads ascending in
    each group. ``sources``: every out-slice's key and first edge id, in edge order."""
    root = Path(work) / "in"
    lo, n = offsets[c], offsets[c + 1] - offsets[c]
    files = [(root / f"{key}.to.b{c:05d}", first) for key, first in sources]
    bounds = _boundaries([f.with_name(f.name + ".sample") for f, _ in files], _IN, slices)
    parts = []
    for file, first in files:
        if file.exists():
            table = _select(_read(file), _IN, bounds, s)
            e = pa.array(table["e"].to_numpy() + first)
            parts.append(table.set_column(table.schema.get_field_index("e"), "e", e))
    table = concat_as(parts, _IN_EDGES)
    t = table["t"].to_numpy() - lo
    r = table["r"].to_numpy()
    order = np.argsort(t * num_rel + r, kind="stable")  # the edges come in out order
    key = slice_key(c, s)
    save_piece(root.parent, "in.count", key, _counts(t, n))
    save_piece(root.parent, "in.indices", key, table["h"].to_numpy()[order].astype(np.int32))
    save_piece(root.parent, "in.type", key, r[order].astype(np.int32))
    save_piece(root.parent, "in.weight", key, table["w"].to_numpy()[order].astype(np.float32))
    save_piece(root.parent, "in.edge", key, table["e"].to_numpy()[order].astype(np.int64))
    return int(order.shape[0])


# ---------------------------------------------------------------------- 6. aliases, attributes
def row_slice(
    work: str,
    name: str,
    prefix: str,
    fields: list[str],
    b: int,
    s: int,
    slices: int,
    partitions: int,
) -> int:
    """Slice ``s`` of bucket ``b``'s ``name`` rows (aliases or attributes): distinct rows
    sorted by node, then ``fields``, written as ``<prefix>.node`` and one string column per
    field. Return the slice's row count."""
    root = Path(work)
    columns = ["id", *fields]
    files = [root / f"p{p:05d}" / f"{name}.b{b:05d}" for p in range(partitions)]
    bounds = _boundaries([f.with_name(f.name + ".sample") for f in files], columns, slices)
    # one partition's rows at a time, as for the edges
    parts = [_select(_read(f).select(columns), columns, bounds, s) for f in files if f.exists()]
    schema = pa.schema([("id", pa.int64())] + [(f, pa.large_string()) for f in fields])
    table = concat_as(parts, schema)
    table = table.group_by(columns, use_threads=False).aggregate([])
    table = table.sort_by([(c, "ascending") for c in columns])
    key = slice_key(b, s)
    save_piece(root, f"{prefix}.node", key, table["id"].to_numpy().astype(np.int64))
    for field in fields:
        column = StringColumn.from_arrow(table[field])
        save_piece(root, f"{prefix}.{field}.data", key, column.data)
        save_piece(root, f"{prefix}.{field}.offsets", key, column.offsets)
    return table.num_rows
