"""Build a graph index from input files: read (per format) -> vocabularies -> CSR -> publish.

The build writes into a hidden staging directory beside ``out`` and renames it into place only
once every array and the manifest are on disk, so an interrupted build never leaves anything
that loads as an index, and an existing index is replaced only by a complete one.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as _dt
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import kelm
from kelm._io import (
    check_output_dir,
    publish_dir,
    remove_stale_staging,
    sha256_file,
    staging_dir,
    write_json,
)
from kelm.errors import InputError, KelmError
from kelm.graph.index import FORMAT_VERSION, INVERSE_PREFIX, MANIFEST, content_checksum
from kelm.graph.sources import _blocks
from kelm.graph.sources.base import BuildOptions, LineIssues, SourceOutput, concat_as
from kelm.graph.strings import StringColumn

log = logging.getLogger(__name__)

FORMATS = ("conceptnet", "cn100k", "tsv", "rdf", "wordnet")


def get_source(fmt: str) -> Callable[..., SourceOutput]:
    """The reader function of a format (imported lazily: rdflib is slow to import)."""
    if fmt == "conceptnet":
        from kelm.graph.sources.conceptnet import read_conceptnet as reader
    elif fmt == "cn100k":
        from kelm.graph.sources.tabular import read_cn100k as reader
    elif fmt == "tsv":
        from kelm.graph.sources.tabular import read_tsv as reader
    elif fmt == "rdf":
        from kelm.graph.sources.rdf import read_rdf as reader
    elif fmt == "wordnet":
        from kelm.graph.sources.wordnet import read_wordnet as reader
    else:
        raise KelmError(f"unknown graph format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return reader


@dataclass
class BuildReport:
    """What a build did: the published directory, counts, skipped lines and timings."""

    out: Path
    counts: dict[str, int]
    issues: LineIssues
    seconds: float


def build_index(
    inputs: Sequence[str | Path],
    out: str | Path,
    options: BuildOptions | None = None,
    *,
    progress: bool = True,
) -> BuildReport:
    """Build a graph index from ``inputs`` into the directory ``out``.

    Args:
        inputs: input files (or, for ``wordnet``, a WordNet database directory).
        out: index directory to create or replace.
        options: format and build options (see :class:`BuildOptions`).
        progress: show progress bars.

    Raises:
        InputError: an input is missing, empty, truncated or of the wrong format, or
            (``strict``) a line is malformed.
    """
    options = dataclasses.replace(options or BuildOptions(), progress=progress)
    out = check_output_dir(out)  # before the parse, which may take minutes
    if not inputs:
        raise InputError("no input files given")
    paths = [Path(p) for p in inputs]
    _check_relation_map(options)
    for path in paths:
        _check_input(path, options.format)
    reader = get_source(options.format)
    issues = LineIssues(strict=options.strict)
    start = time.perf_counter()

    # Input checksums: plain files read by the block reader are hashed as their bytes stream
    # by (no second read); other inputs (gzip, directories, rdflib-parsed files) are hashed on
    # a worker thread meanwhile. hashlib and Arrow release the GIL, so both overlap the parse.
    inline = {p: _blocks.InlineHash(p) for p in paths if _blocks.InlineHash.applies(p)}
    others = [p for p in paths if p not in inline]
    with (
        concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool,
        _blocks.hashing(inline.values()),
    ):
        hashes = pool.submit(lambda: {p: _input_record(p) for p in others})
        source = SourceOutput()
        for path in paths:
            part = reader(path, options, issues)
            if not part.triples and not part.nodes:
                raise InputError(f"{path}: no usable {options.format} data found in the file")
            source.extend(part)
        records = hashes.result()
    for path, hasher in inline.items():
        records[path] = hasher.record() or _input_record(path)  # None: not read by _blocks
    input_records = [records[p] for p in paths]

    remove_stale_staging(out)
    staged = staging_dir(out)
    try:
        counts = _write_index(staged, source, options, issues, input_records)
        publish_dir(staged, out)
    except BaseException:
        import shutil

        shutil.rmtree(staged, ignore_errors=True)
        raise
    return BuildReport(out, counts, issues, time.perf_counter() - start)


def _check_relation_map(options: BuildOptions) -> None:
    """A relation mapping is read and checked whatever the format (an invalid one is an error
    naming the file and the bad entry, never ignored), and refused where it would change
    nothing: it merges ConceptNet relations, and only when relations are merged."""
    if not options.relation_map:
        return
    from kelm.graph.sources.conceptnet import load_relation_map

    load_relation_map(options.relation_map)
    if options.format != "conceptnet":
        raise InputError(
            f"{options.relation_map}: a relation mapping applies to --format conceptnet only, "
            f"not {options.format} (whose relations are kept as they are); leave "
            "--relation-map out"
        )
    if not options.merge_relations:
        raise InputError(
            f"{options.relation_map}: a relation mapping merges relations, which "
            "--no-merge-relations turns off; leave one of them out"
        )


def _check_input(path: Path, fmt: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if fmt == "wordnet":
        return
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a {fmt} file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")


def _input_record(path: Path) -> dict:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        digest = content_checksum({str(p.relative_to(path)): sha256_file(p) for p in files})
        return {"path": str(path), "sha256": digest, "bytes": sum(p.stat().st_size for p in files)}
    return {"path": str(path), "sha256": sha256_file(path), "bytes": path.stat().st_size}


# ---------------------------------------------------------------------- assembling the arrays
def _write_index(
    staged: Path,
    source: SourceOutput,
    options: BuildOptions,
    issues: LineIssues,
    input_records: list[dict],
) -> dict[str, int]:
    from kelm.graph.sources.base import TRIPLE_SCHEMA

    triples = concat_as(source.triples, TRIPLE_SCHEMA)
    heads, rels, tails = triples["head"], triples["relation"], triples["tail"]
    weights = triples["weight"].fill_null(1.0)

    # Node vocabulary: every name used, sorted (byte order) so ids do not depend on input order.
    # One hash pass (dictionary_encode) yields both the distinct names and every row's code;
    # sorting the distinct names then gives a code -> id permutation.
    name_parts = [heads, tails] + [pa.chunked_array([a]) for a in source.nodes]
    # Chunked encoding shares one dictionary across chunks: no concatenated copy of the names.
    chunks = [
        c if c.type == pa.string() else c.cast(pa.string())
        for part in name_parts
        for c in part.chunks
        if len(c)
    ]
    n_heads, n_tails = len(heads), len(tails)
    encoded = pc.dictionary_encode(pa.chunked_array(chunks, type=pa.string()))
    dictionary = encoded.chunks[-1].dictionary if encoded.num_chunks else pa.array([], pa.string())
    codes = (
        np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in encoded.chunks])
        if encoded.num_chunks
        else np.zeros(0, np.int64)
    )
    del encoded, chunks, name_parts
    order = pc.sort_indices(dictionary).to_numpy()  # nulls (if any) sort last
    if dictionary.null_count:  # nodes lists may hold nulls: never a node
        order = order[: len(dictionary) - dictionary.null_count]
    rank = np.full(len(dictionary), -1, dtype=np.int64)
    rank[order] = np.arange(order.shape[0], dtype=np.int64)
    names = dictionary.take(pa.array(order))
    num_nodes = len(names)
    h = rank[codes[:n_heads]]
    t = rank[codes[n_heads : n_heads + n_tails]]
    del codes

    relation_names = _relation_vocabulary(rels, source.relation_order)
    num_rel = len(relation_names)
    r = _index_of(rels, pa.array(relation_names, pa.large_string()))
    w = weights.to_numpy().astype(np.float32)
    # The string columns are no longer needed: let them go before the sorts (peak memory).
    del triples, heads, tails, rels, weights
    source.triples.clear()
    raw_edges = int(h.shape[0])

    if not options.keep_self_loops:
        keep = h != t
        h, r, t, w = h[keep], r[keep], t[keep], w[keep]
    self_loops = raw_edges - int(h.shape[0])

    # Sort edges by (head, relation, tail): that order *is* the out-CSR. Duplicates become
    # neighbours in it and are merged keeping the largest weight.
    key = (h * num_rel + r) * max(num_nodes, 1) + t
    order = np.argsort(key, kind="stable")
    key, h, r, t, w = key[order], h[order], r[order], t[order], w[order]
    duplicates = 0
    if not options.keep_duplicates and key.size:
        first = np.ones(key.shape[0], dtype=bool)
        first[1:] = key[1:] != key[:-1]
        starts = np.flatnonzero(first)
        w = np.maximum.reduceat(w, starts) if starts.size else w
        duplicates = int(key.shape[0] - starts.shape[0])
        h, r, t = h[starts], r[starts], t[starts]
    del key

    out_indptr = _indptr(h, num_nodes)
    # In-CSR order (tail, relation, head): the edges are sorted by head already, so a stable
    # sort on (tail, relation) alone keeps heads ascending inside each group.
    in_order = np.argsort(t * num_rel + r, kind="stable")
    in_indptr = _indptr(t[in_order], num_nodes)

    arrays: dict[str, np.ndarray] = {
        "out.indptr": out_indptr,
        "out.indices": t.astype(np.int32),
        "out.type": r.astype(np.int32),
        "out.weight": w.astype(np.float32),
        "in.indptr": in_indptr,
        "in.indices": h[in_order].astype(np.int32),
        "in.type": r[in_order].astype(np.int32),
        "in.weight": w[in_order].astype(np.float32),
        "in.edge": in_order.astype(np.int64),
    }
    strings: dict[str, StringColumn] = {"nodes.name": StringColumn.from_arrow(names)}
    strings["nodes.label"] = _node_column(source.labels, names, "label")
    strings["nodes.text"] = _node_column(source.texts, names, "text")

    alias_node, alias_text = _node_pairs(source.aliases, names, ["alias"])
    arrays["aliases.node"] = alias_node
    strings["aliases.alias"] = alias_text[0]
    attr_node, attr_cols = _node_pairs(source.attributes, names, ["key", "value"])
    arrays["attrs.node"] = attr_node
    strings["attrs.key"], strings["attrs.value"] = attr_cols

    files: dict[str, str] = {}
    for name, col in strings.items():
        arrays[f"{name}.data"] = col.data
        arrays[f"{name}.offsets"] = col.offsets
    for name, arr in arrays.items():
        file = staged / f"{name}.npy"
        np.save(file, np.ascontiguousarray(arr), allow_pickle=False)
        files[file.name] = sha256_file(file)

    rel_counts = np.bincount(r, minlength=num_rel)
    counts = {
        "nodes": num_nodes,
        "edges": int(t.shape[0]),
        "relations": num_rel,
        "lines_read": source.lines_read,
        "triples_read": raw_edges,
        "self_loops_dropped": self_loops,
        "duplicates_merged": duplicates,
        "malformed_lines": issues.total,
        "aliases": int(alias_node.shape[0]),
        "attributes": int(attr_node.shape[0]),
    }
    write_manifest(
        staged, files, relation_names, rel_counts.tolist(), counts, options, issues, input_records
    )
    return counts


def write_manifest(
    staged: Path,
    files: dict[str, str],
    relation_names: list[str],
    rel_counts: list[int],
    counts: dict[str, int],
    options: BuildOptions,
    issues: LineIssues,
    input_records: list[dict],
    extra: dict | None = None,
) -> None:
    """Write ``relations.json`` and, last, the manifest (a directory without it never loads);
    ``files`` (name -> sha256 of every array) gains ``relations.json``."""
    num_rel = len(relation_names)
    relations = [
        {"id": i, "name": n, "inverse": False, "edges": int(rel_counts[i])}
        for i, n in enumerate(relation_names)
    ]
    relations += [
        {
            "id": num_rel + i,
            "name": INVERSE_PREFIX + n,
            "inverse": True,
            "inverse_of": i,
            "edges": int(rel_counts[i]),
        }
        for i, n in enumerate(relation_names)
    ]
    (staged / "relations.json").write_text(json.dumps(relations, indent=1) + "\n")
    files["relations.json"] = sha256_file(staged / "relations.json")
    manifest = {
        "kind": "kelm-graph-index",
        "format_version": FORMAT_VERSION,
        "kelm_version": kelm.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "inputs": input_records,
        "options": options.to_dict(),
        "counts": counts,
        "malformed": issues.to_dict(),
        "files": files,
        "checksum": content_checksum(files),
        **(extra or {}),
    }
    write_json(staged / MANIFEST, manifest)


def _relation_vocabulary(rels: pa.ChunkedArray, preferred: list[str] | None) -> list[str]:
    present = set(pc.unique(rels).to_pylist()) - {None}
    ordered = [r for r in (preferred or []) if r in present]
    return ordered + sorted(present - set(ordered))


def _index_of(values: pa.ChunkedArray | pa.Array, vocabulary: pa.Array) -> np.ndarray:
    vocabulary = vocabulary.cast(pa.large_string())
    if isinstance(values, pa.ChunkedArray):
        values = pa.chunked_array(
            [c.cast(pa.large_string()) for c in values.chunks], type=pa.large_string()
        )
    else:
        values = values.cast(pa.large_string())
    found = pc.index_in(values, value_set=vocabulary)
    if found.null_count:
        raise AssertionError("value missing from its own vocabulary")
    return (
        found.to_numpy().astype(np.int64)
        if isinstance(found, pa.Array)
        else np.asarray(found.to_numpy(), dtype=np.int64)
    )


def _indptr(sorted_ids: np.ndarray, n: int) -> np.ndarray:
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(sorted_ids, minlength=n), out=indptr[1:])
    return indptr


def _node_column(tables: list[pa.Table], names: pa.Array, field: str) -> StringColumn:
    """A per-node string column (label or text); the first value given for a node wins."""
    values = np.full(len(names), "", dtype=object)
    if tables:
        table = pa.concat_tables(
            [
                t.select(["node", field]).cast(
                    pa.schema([("node", pa.large_string()), (field, pa.large_string())])
                )
                for t in tables
            ]
        )
        ids = pc.index_in(table["node"], value_set=names).to_numpy(zero_copy_only=False)
        texts = table[field].to_pylist()
        for i in range(len(texts) - 1, -1, -1):  # reversed so the first occurrence wins
            node = ids[i]
            if node == node and texts[i]:  # skip NaN (unknown node) and empty
                values[int(node)] = texts[i]
    return StringColumn.from_list(values.tolist())


def _node_pairs(
    tables: list[pa.Table], names: pa.Array, fields: list[str]
) -> tuple[np.ndarray, list[StringColumn]]:
    """Rows of (node, field...) for known nodes, deduplicated, sorted by node."""
    if not tables:
        return np.zeros(0, np.int64), [StringColumn.from_list([]) for _ in fields]
    schema = pa.schema([("node", pa.large_string())] + [(f, pa.large_string()) for f in fields])
    table = pa.concat_tables([t.select(schema.names).cast(schema) for t in tables])
    table = table.group_by(schema.names, use_threads=False).aggregate([])
    node = pc.index_in(table["node"], value_set=names)
    table = table.append_column("id", node).filter(pc.invert(pc.is_null(node)))
    table = table.sort_by([("id", "ascending")] + [(f, "ascending") for f in fields])
    ids = table["id"].to_numpy().astype(np.int64)
    return ids, [StringColumn.from_arrow(table[f]) for f in fields]
