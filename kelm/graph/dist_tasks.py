"""The tasks of a distributed graph build (:mod:`kelm.graph.distributed`), run on Dask workers.

Every task reads its inputs from, and writes its outputs to, the build's work directory (a
shared file system on a cluster) and returns a small summary; nothing large travels through
the scheduler. The stages and their files (``P`` input partitions, ``B`` node buckets: ranges
of the sorted node names, so bucket ``b`` holds node ids ``offsets[b] .. offsets[b+1]-1``):

1. :func:`parse_partition` -- ``p<P>/triples``, its metadata tables and ``p<P>/names`` (the
   partition's distinct node names, sorted);
2. :func:`bucket_vocabulary` -- ``vocab.b<B>``: the distinct names of a bucket over all
   partitions, sorted (the node vocabulary is their concatenation), and ``p<P>/ids.b<B>.npy``:
   the positions of each partition's names in it;
3. :func:`encode_partition` -- ``p<P>/edges.b<B>``: the partition's edges as ids, split by the
   head's bucket, with a sample of them (``edges.b<B>.sample``), and metadata split by the
   node's bucket;
4. :func:`kelm.graph.dist_csr.out_slice` -- one slice of a bucket's out-CSR (sorted by head,
   relation, tail, duplicates merged), and ``in/b<B>.s<S>.c<C>``: its edges split by the
   tail's bucket (slices bound what one worker sorts when a hub holds many edges);
5. :func:`kelm.graph.dist_csr.in_slice` -- one slice of a bucket's in-CSR;
6. :func:`meta_bucket` -- one bucket's node names, labels, texts, aliases and attributes;
7. :func:`assemble` -- one index file from its pieces, written into the staged index.

Each step is the single-process build's own rule applied to a range of nodes, so the arrays
are byte for byte those of :func:`kelm.graph.build.build_index`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

from kelm._io import sha256_file
from kelm.graph.sources._blocks import reading_range
from kelm.graph.sources.base import TRIPLE_SCHEMA, BuildOptions, LineIssues, concat_as
from kelm.graph.strings import StringColumn

SAMPLE = 256  # names per partition offered for choosing the bucket boundaries
SAMPLE_EVERY = 512  # one edge in this many is offered for choosing a bucket's slice boundaries
_STR = pa.large_string()


def _write(path: Path, table: pa.Table) -> None:
    feather.write_feather(table, str(path), compression="uncompressed")


def _read(path: Path) -> pa.Table:
    return feather.read_table(str(path), memory_map=True)


_META = {
    "labels": pa.schema(
        [("node", _STR), ("rank", pa.int8()), ("seq", pa.int64()), ("label", _STR)]
    ),
    "texts": pa.schema([("node", _STR), ("rank", pa.int8()), ("seq", pa.int64()), ("text", _STR)]),
    "aliases": pa.schema([("node", _STR), ("alias", _STR)]),
    "attributes": pa.schema([("node", _STR), ("key", _STR), ("value", _STR)]),
}


# ---------------------------------------------------------------------- 1. parse
def parse_partition(
    path: str, start: int, end: int, pidx: int, options: dict[str, Any], work: str
) -> dict[str, Any]:
    """Parse bytes ``[start, end)`` of ``path``; write its tables, return counts and issues."""
    from kelm.graph.build import get_source

    opts = BuildOptions(**options)
    issues = LineIssues(strict=False, keep=5)
    pdir = Path(work) / f"p{pidx:05d}"
    pdir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    whole = start == 0 and end == Path(path).stat().st_size  # e.g. a gzip file: read as usual
    with contextlib.nullcontext() if whole else reading_range(Path(path), start, end):
        if opts.format == "rdf":
            from kelm.graph.sources.ntriples import parse_ntriples

            part = parse_ntriples(Path(path), opts, issues, seq_base=pidx << 40, threads=1)
            tables = {
                "triples": part.edges,
                "labels": part.labels,
                "texts": part.texts,
                "aliases": part.aliases,
                "attributes": part.attributes,
            }
            nodes = part.nodes
            lines_read = part.lines_read
            predicates = sorted(part.predicates)
            summary.update(
                statements=part.statements,
                malformed=part.malformed,
                lead_malformed=part.lead_malformed,
                first_issue=part.first_issue,
            )
        else:
            out = get_source(opts.format)(Path(path), opts, issues)
            tables = {"triples": out.triples}
            nodes = out.nodes
            lines_read = out.lines_read
            summary["relation_order"] = out.relation_order
            predicates = []
    triples = concat_as(tables.pop("triples"), TRIPLE_SCHEMA)
    _write(pdir / "triples", triples)
    for name, parts in tables.items():
        if parts:
            _write(pdir / name, concat_as(parts, _META[name]))
    chunks = [c for col in (triples["head"], triples["tail"]) for c in col.chunks]
    chunks += [a.cast(pa.string()) for a in nodes]
    names = pc.unique(pa.chunked_array(chunks, type=pa.string()).combine_chunks())
    names = names.drop_null() if names.null_count else names
    names = names.take(pc.sort_indices(names))
    # one record batch, so a reader maps it without copying (feather cuts at 64K rows)
    feather.write_feather(
        pa.table({"name": names}),
        str(pdir / "names"),
        compression="uncompressed",
        chunksize=max(1, len(names)),
    )
    step = max(1, len(names) // SAMPLE)
    # The relation names go to a file, not into the summary: a worker keeps every summary
    # until the client gathers them all, so per-partition lists would grow with the input.
    relations = sorted(set(pc.unique(triples["relation"]).to_pylist()) - {None})
    (pdir / "relations.json").write_text(
        json.dumps({"relations": relations, "predicates": predicates})
    )
    summary.update(
        lines_read=lines_read,
        issues=issues.to_dict(),
        triples=triples.num_rows,
        has_nodes=bool(sum(len(a) for a in nodes)),
        names=len(names),
        sample=names[::step].to_pylist(),
    )
    return summary


def relation_vocabulary(work: str, partitions: int, rdf: bool, preferred: list[str]) -> list[str]:
    """The build's relations: ``preferred`` (a source's own order) first, then the rest in
    byte order, as the single-process build orders them; for N-Triples each predicate gets
    its short name. Written to ``relations.json`` (with the renaming) for the encoding tasks.
    """
    relations: set[str] = set()
    predicates: set[str] = set()
    for p in range(partitions):
        found = json.loads((Path(work) / f"p{p:05d}" / "relations.json").read_text())
        relations.update(found["relations"])
        predicates.update(found["predicates"])
    rename = None
    if rdf:
        from kelm.graph.sources.rdf_terms import _default_prefixes, _short_names

        rename = _short_names(predicates, _default_prefixes())
        relations = {rename[r] for r in relations}
    ordered = [r for r in preferred if r in relations]
    vocabulary = ordered + sorted(relations - set(ordered))
    text = json.dumps({"relations": vocabulary, "rename": rename})
    (Path(work) / "relations.json").write_text(text)
    return vocabulary


# ---------------------------------------------------------------------- 2. vocabulary
def _bisect(names: pa.Array, key: str | None, default: int) -> int:
    """First position in sorted ``names`` whose value is >= ``key`` (byte order)."""
    if key is None:
        return default
    lo, hi = 0, len(names)
    while lo < hi:
        mid = (lo + hi) // 2
        if names[mid].as_py() < key:  # str order is code point order: UTF-8 byte order
            lo = mid + 1
        else:
            hi = mid
    return lo


def _bucket_slice(names: pa.Array, bounds: list[str | None], b: int) -> pa.Array:
    lo = _bisect(names, bounds[b], 0)
    hi = _bisect(names, bounds[b + 1], len(names))
    return names[lo:hi]


def _names(work: Path, pidx: int) -> pa.Array:
    return _read(work / f"p{pidx:05d}" / "names")["name"].combine_chunks()


def bucket_vocabulary(work: str, b: int, bounds: list[str | None], partitions: int) -> int:
    """Write bucket ``b``'s sorted distinct names and, for every partition with names in the
    bucket, their positions in it (``p<P>/ids.b<B>.npy``); return how many names there are.

    One hash pass over the bucket's names finds both, so every name is looked up once: looking
    each partition's names up in every bucket's vocabulary instead costs partitions x nodes,
    which grows with the square of the input.
    """
    root = Path(work)
    # each partition's slice copied on its own, so no partition's whole name list stays held
    slices = [
        pa.concat_arrays([_bucket_slice(_names(root, p), bounds, b)]) for p in range(partitions)
    ]
    present = [s for s in slices if len(s)]
    if not present:
        _write(root / f"vocab.b{b:05d}", pa.table({"name": pa.array([], pa.string())}))
        return 0
    encoded = pc.dictionary_encode(pa.chunked_array(present, type=pa.string()).combine_chunks())
    first_seen = encoded.dictionary  # the distinct names, in order of first occurrence
    order = pc.sort_indices(first_seen).to_numpy()
    names = first_seen.take(pa.array(order))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)  # first-seen index -> sorted position
    local = rank[encoded.indices.to_numpy(zero_copy_only=False)]
    at = 0
    for p, part in enumerate(slices):
        if len(part):
            np.save(root / f"p{p:05d}" / f"ids.b{b:05d}.npy", local[at : at + len(part)])
            at += len(part)
    _write(root / f"vocab.b{b:05d}", pa.table({"name": names}))
    return len(names)


# ---------------------------------------------------------------------- 3. encode
def _bucket_of(ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return np.searchsorted(offsets, ids, side="right") - 1


def encode_partition(
    work: str,
    pidx: int,
    file_index: int,
    bounds: list[str | None],
    offsets: list[int],
    keep_self_loops: bool,
) -> dict[str, int]:
    """Map a partition's names and relations to ids and split its rows by node bucket."""
    root = Path(work)
    vocabulary = json.loads((root / "relations.json").read_text())
    relations, rename = vocabulary["relations"], vocabulary["rename"]
    pdir = root / f"p{pidx:05d}"
    starts = np.asarray(offsets, dtype=np.int64)
    names = _names(root, pidx)
    # the partition's names are sorted and the buckets are ranges of that order, so their
    # positions (written by bucket_vocabulary) concatenate in bucket order to the names' ids
    pieces = []
    for b in range(len(bounds) - 1):
        found = pdir / f"ids.b{b:05d}.npy"
        if found.exists():
            pieces.append(np.load(found, allow_pickle=False) + starts[b])
    ids = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
    if ids.shape[0] != len(names):
        raise RuntimeError(f"partition {pidx}: {ids.shape[0]} ids for {len(names)} names")

    def node_ids(column: pa.ChunkedArray) -> np.ndarray:
        found = pc.index_in(column, value_set=names)
        return ids[np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)]

    triples = _read(pdir / "triples")
    relation = triples["relation"]
    if rename is not None:
        relation = _rename(relation, rename)
    r = np.asarray(
        pc.index_in(relation, value_set=pa.array(relations, pa.string())).to_numpy(
            zero_copy_only=False
        ),
        dtype=np.int64,
    )
    h, t = node_ids(triples["head"]), node_ids(triples["tail"])
    w = triples["weight"].fill_null(1.0).to_numpy().astype(np.float32)
    raw = int(h.shape[0])
    if not keep_self_loops:
        keep = h != t
        h, r, t, w = h[keep], r[keep], t[keep], w[keep]
    edges = pa.table({"h": h, "r": r, "t": t, "w": w})
    edge_rows = _split_write(pdir, "edges", edges, h, starts, sampled=True)

    meta_rows = {name: [0] * len(starts) for name in ("aliases", "attributes")}
    for name in ("labels", "texts", "aliases", "attributes"):
        file = pdir / name
        if not file.exists():
            continue
        table = _read(file)
        found = pc.index_in(table["node"], value_set=names)
        table = table.filter(pc.is_valid(found))
        node = ids[np.asarray(pc.drop_null(found).to_numpy(), dtype=np.int64)]
        table = table.drop_columns(["node"]).add_column(0, "id", pa.array(node))
        if name in ("labels", "texts"):
            table = table.append_column("file", pa.array(np.full(len(node), file_index)))
        if name == "attributes" and rename is not None:
            table = table.set_column(
                table.schema.get_field_index("key"), "key", _rename(table["key"], rename)
            )
        table = _reduce_metadata(name, table)
        sampled = name in meta_rows  # sorted in slices (dist_csr.row_slice)
        rows = _split_write(pdir, name, table, table["id"].to_numpy(), starts, sampled)
        if sampled:
            meta_rows[name] = rows
    return {
        "raw": raw,
        "self_loops": raw - int(h.shape[0]),
        "bucket_rows": edge_rows,
        "meta_rows": meta_rows,
    }


def _reduce_metadata(name: str, table: pa.Table) -> pa.Table:
    """What of a partition's metadata rows the node buckets can use, by the rules of
    :func:`meta_bucket`: per node its first label or text (lowest rank, then line; one file per
    partition), and distinct aliases and attributes. A node whose statements fill many
    partitions (a hub) then costs its bucket one row per partition, not one per statement."""
    if name in ("aliases", "attributes"):
        return table.group_by(table.column_names, use_threads=False).aggregate([])
    table = table.sort_by([("id", "ascending"), ("rank", "ascending"), ("seq", "ascending")])
    ids = table["id"].to_numpy()
    first = np.ones(ids.shape[0], dtype=bool)
    first[1:] = ids[1:] != ids[:-1]
    return table.filter(pa.array(first))


def _rename(column: pa.ChunkedArray, rename: dict[str, str]) -> pa.Array:
    full = pa.array(sorted(rename), pa.string())
    short = pa.array([rename[k] for k in sorted(rename)], pa.string())
    return short.take(pc.index_in(column, value_set=full))


def _split_write(
    pdir: Path, name: str, table: pa.Table, ids: np.ndarray, starts: np.ndarray, sampled=False
) -> list[int]:
    """Write ``table``'s rows by the bucket of ``ids`` (``<name>.b<B>``), each bucket keeping
    the row order, and if ``sampled`` every ``SAMPLE_EVERY``-th row (``<name>.b<B>.sample``:
    what the bucket's slice boundaries are chosen from); return each bucket's row count."""
    bucket = _bucket_of(ids, starts)
    order = np.argsort(bucket, kind="stable")
    bounds = np.searchsorted(bucket[order], np.arange(len(starts) + 1))
    # every SAMPLE_EVERY-th row of the whole table, then by bucket: each bucket is sampled at
    # the same rate (every SAMPLE_EVERY-th row of each bucket would oversample small ones)
    picked = np.arange(0, ids.shape[0], SAMPLE_EVERY)
    picked = picked[np.argsort(bucket[picked], kind="stable")]
    picked_cut = np.searchsorted(bucket[picked], np.arange(len(starts) + 1))
    for b in range(len(starts)):
        lo, hi = int(bounds[b]), int(bounds[b + 1])
        if hi > lo:
            _write(pdir / f"{name}.b{b:05d}", table.take(pa.array(order[lo:hi])))
            if sampled:
                pick = picked[int(picked_cut[b]) : int(picked_cut[b + 1])]
                _write(pdir / f"{name}.b{b:05d}.sample", table.take(pa.array(pick)))
    return np.diff(bounds).tolist()


def _gather(root: Path, partitions: int, name: str, b: int) -> list[pa.Table]:
    files = [root / f"p{p:05d}" / f"{name}.b{b:05d}" for p in range(partitions)]
    return [_read(f) for f in files if f.exists()]


def _save(root: Path, name: str, b: int, array: np.ndarray) -> None:
    save_piece(root, name, f"b{b:05d}", array)


def save_piece(root: Path, name: str, key: str, array: np.ndarray) -> None:
    """Write piece ``key`` (``b<B>`` or ``b<B>.s<S>``) of index array ``name``."""
    np.save(root / "pieces" / f"{name}.{key}.npy", np.ascontiguousarray(array), allow_pickle=False)


# ---------------------------------------------------------------------- 6. node metadata
def meta_bucket(work: str, b: int, partitions: int, offsets: list[int]) -> None:
    """Bucket ``b``'s names, labels and texts (one per node: per file the lowest rank, then
    the first in the file; the first file's wins). Aliases and attributes are sorted in
    slices (:func:`kelm.graph.dist_csr.row_slice`)."""
    root = Path(work)
    lo, n = offsets[b], offsets[b + 1] - offsets[b]
    names = _read(root / f"vocab.b{b:05d}")["name"]
    _save_strings(root, "nodes.name", b, StringColumn.from_arrow(names))
    for name, field in (("labels", "label"), ("texts", "text")):
        tables = _gather(root, partitions, name, b)
        values = pa.nulls(n, _STR)
        if tables:
            table = pa.concat_tables(tables).sort_by(
                [
                    ("id", "ascending"),
                    ("file", "ascending"),
                    ("rank", "ascending"),
                    ("seq", "ascending"),
                ]
            )
            ids = table["id"].to_numpy() - lo
            first = np.ones(ids.shape[0], dtype=bool)
            first[1:] = ids[1:] != ids[:-1]
            index = np.full(n, -1, dtype=np.int64)
            index[ids[first]] = np.flatnonzero(first)
            values = table[field].take(pa.array(index, mask=index < 0))
        column = StringColumn.from_arrow(values.cast(_STR).fill_null(""))
        _save_strings(root, f"nodes.{field}", b, column)


def _save_strings(root: Path, name: str, b: int, column: StringColumn) -> None:
    _save(root, f"{name}.data", b, column.data)
    _save(root, f"{name}.offsets", b, column.offsets)


# ---------------------------------------------------------------------- 7. assemble
def assemble(work: str, staged: str, name: str, groups: list[list[str]]) -> str:
    """Write index file ``name`` (e.g. ``out.indptr.npy``) from its pieces; return its sha256.

    ``groups``: per node bucket, in order, the keys of its pieces (``b<B>``, or ``b<B>.s<S>``
    for its slices). Pieces are concatenated; string ``offsets`` are rebased piece by piece,
    and an ``indptr`` is the running sum of its ``count`` pieces (a bucket's slices summed).

    The file is streamed piece by piece (the header ``np.save`` would write, then each piece's
    bytes), so a worker holds one piece at a time whatever the index's size; a memory map of
    the whole output would count every written page in the worker's resident memory.
    """
    from numpy.lib import format as npy

    stem = name[: -len(".npy")]
    pieces = Path(work) / "pieces"
    counted = stem.endswith("indptr")
    if counted:
        stem = stem[: -len("indptr")] + "count"

    def path(key: str) -> Path:
        return pieces / f"{stem}.{key}.npy"

    def load(key: str) -> np.ndarray:
        return np.load(path(key), allow_pickle=False)

    def length(key: str) -> int:
        return int(np.load(path(key), mmap_mode="r", allow_pickle=False).shape[0])

    pointer = stem.endswith("offsets")
    dtype = np.load(path(groups[0][0]), mmap_mode="r", allow_pickle=False).dtype
    if counted:  # one count per node of each bucket (its slices' counts are summed)
        total = sum(length(g[0]) for g in groups) + 1
    elif pointer:  # each piece's offsets end with its length
        total = sum(length(k) - 1 for g in groups for k in g) + 1
    else:
        total = sum(length(k) for g in groups for k in g)
    target = Path(staged) / name
    header = {"descr": npy.dtype_to_descr(dtype), "fortran_order": False, "shape": (total,)}
    with open(target, "wb") as fh:
        npy.write_array_header_1_0(fh, header)
        base = 0
        for group in groups:
            if counted:  # edges per node of the bucket, summed over its slices
                counts = load(group[0])
                for key in group[1:]:
                    counts += load(key)
                ends = np.cumsum(counts) + base
                fh.write(np.ascontiguousarray(ends - counts, dtype=dtype).tobytes())
                base = int(ends[-1]) if ends.size else base
                continue
            for key in group:  # one slice at a time
                piece = load(key)
                if pointer:
                    fh.write(np.ascontiguousarray(piece[:-1] + base, dtype=dtype).tobytes())
                    base += int(piece[-1])
                else:
                    fh.write(np.ascontiguousarray(piece, dtype=dtype).tobytes())
                del piece
        if counted or pointer:
            fh.write(np.asarray([base], dtype=dtype).tobytes())
    return sha256_file(target)


def input_record(path: str) -> dict[str, Any]:
    from kelm.graph.build import _input_record

    return _input_record(Path(path))


def options_dict(options: BuildOptions) -> dict[str, Any]:
    return dataclasses.asdict(options)
