"""Distributed, out-of-core graph index builds on Dask (``kelm graph build --scheduler``).

The inputs are cut into byte-range partitions at line starts and parsed on the workers; node
names are dictionary-encoded globally by ranges of the sorted names (buckets: a sample of
every partition's names gives the boundaries, each bucket's distinct names are sorted on one
worker, and a node's id is its bucket's first id plus its rank in the bucket); edges are
shuffled by the bucket of their head into out-CSR pieces and by the bucket of their tail into
in-CSR pieces, each bucket sorted in slices of bounded size (a hub node's edges need not fit
one worker: :mod:`kelm.graph.dist_csr`); every piece is written to a work directory beside
the output, and each index file is assembled from its pieces on a worker. The client holds
only per-partition summaries.

The result equals the single-process build of the same inputs (:func:`build_index`): node ids
in byte order of the names, relation ids in the same order, the same edges, weights, metadata
and malformed-line report, hence the same files and the same checksum. The work directory
must be visible to every worker (the same path on a shared file system, as on a SLURM
cluster; always so for ``local``).

Formats: ``tsv``, ``cn100k``, ``conceptnet`` and N-Triples ``rdf``; gzip inputs are one
partition each (they cannot be read from the middle).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kelm._io import check_output_dir, publish_dir, remove_stale_staging, staging_dir
from kelm.errors import InputError, KelmError
from kelm.graph import dist_csr as csr
from kelm.graph import dist_tasks as tasks
from kelm.graph.build import (
    BuildReport,
    _check_input,
    _check_relation_map,
    write_manifest,
)
from kelm.graph.index import array_files
from kelm.graph.sources.base import BuildOptions, LineIssues, _Issue

log = logging.getLogger(__name__)

#: Node metadata kept as rows (name in a partition, index file prefix, string fields).
META_ROWS = (("aliases", "aliases", ["alias"]), ("attributes", "attrs", ["key", "value"]))
#: Sorting an alias or attribute row (a node id and strings) holds about as much memory as this
#: many edge rows, so their slices hold bucket_edges / ROW_WEIGHT rows.
ROW_WEIGHT = 4
DISTRIBUTED_FORMATS = ("conceptnet", "cn100k", "tsv", "rdf")
#: Input bytes per partition (a worker holds one partition's parse at a time).
PARTITION_BYTES = 64 << 20
#: Distinct node names per bucket, and edges per bucket, aimed at when choosing buckets.
NAMES_PER_BUCKET = 4_000_000
EDGES_PER_BUCKET = 25_000_000


def build_index_distributed(
    inputs: Sequence[str | Path],
    out: str | Path,
    options: BuildOptions | None = None,
    *,
    client: Any,
    partition_bytes: int = PARTITION_BYTES,
    buckets: int | None = None,
    bucket_edges: int = EDGES_PER_BUCKET,
) -> BuildReport:
    """Build a graph index on the Dask cluster of ``client`` (see the module docstring).

    Args:
        inputs: input files.
        out: index directory to create or replace.
        options: format and build options (as for :func:`~kelm.graph.build.build_index`).
        client: a ``distributed.Client``.
        partition_bytes: input bytes per partition.
        buckets: node buckets (default: from the number of names and edges).
        bucket_edges: input triples per bucket aimed at (with ``NAMES_PER_BUCKET`` names), and
            per slice of a bucket's edges: about what one worker sorts at a time, so it
            bounds a worker's memory whatever the degree of the largest hub.

    Raises:
        InputError: as the single-process build (missing, empty or malformed input).
        KelmError: a format the distributed build does not read.
    """
    options = dataclasses.replace(options or BuildOptions(), progress=False)
    out = check_output_dir(out)
    paths = check_inputs(inputs, options)
    start = time.perf_counter()
    remove_stale_staging(out)
    staged = staging_dir(out)
    work = staged / ".work"
    (work / "pieces").mkdir(parents=True)
    try:
        counts, extra = _run(
            client, paths, staged, work, options, partition_bytes, buckets, bucket_edges
        )
        shutil.rmtree(work)
        publish_dir(staged, out)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    report = BuildReport(out, counts, extra.pop("issues"), time.perf_counter() - start)
    return report


def check_inputs(inputs: Sequence[str | Path], options: BuildOptions) -> list[Path]:
    """The checks made before any work (and before a cluster is started for it)."""
    if options.format not in DISTRIBUTED_FORMATS:
        raise KelmError(
            f"--scheduler builds read {', '.join(DISTRIBUTED_FORMATS)}, not {options.format!r}; "
            "leave --scheduler out"
        )
    if not inputs:
        raise InputError("no input files given")
    paths = [Path(p) for p in inputs]
    _check_relation_map(options)
    for path in paths:
        _check_input(path, options.format)
        if options.format == "rdf":
            from kelm.graph.sources.rdf import rdf_syntax

            if rdf_syntax(path) != "nt":
                raise KelmError(
                    f"{path}: --scheduler builds read N-Triples only; convert it, or leave "
                    "--scheduler out"
                )
    return paths


def _run(
    client: Any,
    paths: list[Path],
    staged: Path,
    work: Path,
    options: BuildOptions,
    partition_bytes: int,
    buckets: int | None,
    bucket_edges: int,
) -> tuple[dict[str, int], dict[str, Any]]:
    from kelm.graph.sources import _blocks

    opts = tasks.options_dict(options)
    hashes = client.map(tasks.input_record, [str(p.resolve()) for p in paths], pure=False)
    parts: list[tuple[int, Path, int, int]] = []  # (file index, path, start, end)
    for i, path in enumerate(paths):
        full = path.resolve()
        parts += [(i, full, a, b) for a, b in _blocks.line_ranges(full, partition_bytes)]
    t0 = time.perf_counter()
    parsed = client.gather(
        [
            client.submit(tasks.parse_partition, str(p), a, b, k, opts, str(work), pure=False)
            for k, (_, p, a, b) in enumerate(parts)
        ]
    )
    seconds = {"parse": time.perf_counter() - t0}
    issues = _merge_issues(paths, parts, parsed, options)

    # Relation vocabulary: the single-process rule over every partition's relations, written
    # to the work directory for the encoding tasks (not sent with each of them).
    preferred: list[str] = []
    for s in parsed:
        preferred += [r for r in s.get("relation_order") or [] if r not in preferred]
    relations = client.submit(
        tasks.relation_vocabulary,
        str(work),
        len(parts),
        options.format == "rdf",
        preferred,
        pure=False,
    ).result()

    # Node buckets: boundaries from the partitions' name samples.
    total_names = sum(s["names"] for s in parsed)
    total_triples = sum(s["triples"] for s in parsed)
    n_buckets = buckets or max(
        1, -(-total_names // NAMES_PER_BUCKET), -(-total_triples // bucket_edges)
    )
    sample = sorted({name for s in parsed for name in s["sample"]})
    inner = sorted({sample[len(sample) * k // n_buckets] for k in range(1, n_buckets)} - {None})
    bounds: list[str | None] = [None, *inner, None]
    n_buckets = len(bounds) - 1
    t0 = time.perf_counter()
    sizes = client.gather(
        client.map(
            tasks.bucket_vocabulary,
            [str(work)] * n_buckets,
            range(n_buckets),
            [bounds] * n_buckets,
            [len(parts)] * n_buckets,
            pure=False,
        )
    )
    offsets = [0]
    for n in sizes:
        offsets.append(offsets[-1] + n)
    num_nodes = offsets[-1]
    if num_nodes >= 2**31:  # ids are stored as int32 (pointers and offsets are int64)
        raise KelmError(f"{num_nodes:,} nodes: more than an index holds (2**31 - 1)")
    encoded = client.gather(
        [
            client.submit(
                tasks.encode_partition,
                str(work),
                k,
                parts[k][0],
                bounds,
                offsets,
                options.keep_self_loops,
                pure=False,
            )
            for k in range(len(parts))
        ]
    )
    seconds["encode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # Each bucket's edges in slices of about bucket_edges (see kelm.graph.dist_csr).
    bucket_rows = [sum(e["bucket_rows"][b] for e in encoded) for b in range(n_buckets)]
    out_slices = [csr.slice_count(n, bucket_edges) for n in bucket_rows]
    out_keys = [(b, s) for b in range(n_buckets) for s in range(out_slices[b])]
    out_stats = client.gather(
        [
            client.submit(
                csr.out_slice,
                str(work),
                b,
                s,
                out_slices[b],
                len(parts),
                offsets,
                len(relations),
                options.keep_duplicates,
                pure=False,
            )
            for b, s in out_keys
        ]
    )
    sources = []  # every out-slice's key and first edge id, in edge order
    edge_offsets = [0]
    for (b, s), stats in zip(out_keys, out_stats, strict=True):
        sources.append((csr.slice_key(b, s), edge_offsets[-1]))
        edge_offsets.append(edge_offsets[-1] + stats["edges"])
    tail_rows = [sum(st["tail_rows"][c] for st in out_stats) for c in range(n_buckets)]
    in_slices = [csr.slice_count(n, bucket_edges) for n in tail_rows]
    in_done = [
        client.submit(
            csr.in_slice,
            str(work),
            c,
            s,
            in_slices[c],
            sources,
            offsets,
            len(relations),
            pure=False,
        )
        for c in range(n_buckets)
        for s in range(in_slices[c])
    ]
    # Aliases and attributes, sorted in slices as the edges are (a hub may have many).
    row_slices: dict[str, list[int]] = {}
    row_tasks: dict[str, list[Any]] = {}
    for name, prefix, fields in META_ROWS:
        rows = [sum(e["meta_rows"][name][b] for e in encoded) for b in range(n_buckets)]
        row_slices[prefix] = [csr.slice_count(n, bucket_edges // ROW_WEIGHT) for n in rows]
        row_tasks[name] = [
            client.submit(
                csr.row_slice,
                str(work),
                name,
                prefix,
                fields,
                b,
                s,
                row_slices[prefix][b],
                len(parts),
                pure=False,
            )
            for b in range(n_buckets)
            for s in range(row_slices[prefix][b])
        ]
    client.gather(
        [
            client.submit(tasks.meta_bucket, str(work), b, len(parts), offsets, pure=False)
            for b in range(n_buckets)
        ]
    )
    row_counts = {name: sum(client.gather(futures)) for name, futures in row_tasks.items()}
    client.gather(in_done)
    seconds["csr"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    names = array_files()
    slice_groups = {
        "out": [[csr.slice_key(b, s) for s in range(out_slices[b])] for b in range(n_buckets)],
        "in": [[csr.slice_key(c, s) for s in range(in_slices[c])] for c in range(n_buckets)],
    }
    for prefix, counts in row_slices.items():
        slice_groups[prefix] = [
            [csr.slice_key(b, s) for s in range(k)] for b, k in enumerate(counts)
        ]
    bucket_groups = [[f"b{b:05d}"] for b in range(n_buckets)]
    digests = client.gather(
        [
            client.submit(
                tasks.assemble,
                str(work),
                str(staged),
                name,
                slice_groups.get(name.split(".")[0], bucket_groups),
                pure=False,
            )
            for name in names
        ]
    )
    seconds["assemble"] = time.perf_counter() - t0
    files = dict(zip(names, digests, strict=True))
    rel_counts = np.sum([s["rel_counts"] for s in out_stats], axis=0).tolist()
    raw = sum(e["raw"] for e in encoded)
    counts = {
        "nodes": num_nodes,
        "edges": edge_offsets[-1],
        "relations": len(relations),
        "lines_read": sum(s["lines_read"] for s in parsed),
        "triples_read": raw,
        "self_loops_dropped": sum(e["self_loops"] for e in encoded),
        "duplicates_merged": sum(s["duplicates"] for s in out_stats),
        "malformed_lines": issues.total,
        "aliases": row_counts["aliases"],
        "attributes": row_counts["attributes"],
    }
    build = {
        "distributed": {
            "partitions": len(parts),
            "buckets": n_buckets,
            "slices": {
                "out": len(out_keys),
                "in": sum(in_slices),
                **{prefix: sum(counts) for prefix, counts in row_slices.items()},
            },
            "workers": len(client.scheduler_info().get("workers", {})),
            "seconds": {k: round(v, 3) for k, v in seconds.items()},
        }
    }
    records = [{**r, "path": str(p)} for r, p in zip(client.gather(hashes), paths, strict=True)]
    write_manifest(staged, files, relations, rel_counts, counts, options, issues, records, build)
    return counts, {"issues": issues}


def _merge_issues(
    paths: list[Path],
    parts: list[tuple[int, Path, int, int]],
    parsed: list[dict[str, Any]],
    options: BuildOptions,
) -> LineIssues:
    """The partitions' malformed lines in file order, numbered as file lines (``strict``:
    the first one raises), and the per-file checks of the single-process build."""
    from kelm.graph.sources import rdf_terms as rdf

    issues = LineIssues(strict=options.strict)
    for i, path in enumerate(paths):
        mine = [s for (f, *_), s in zip(parts, parsed, strict=True) if f == i]
        offset = 0
        lead, seen_statement, first_issue = 0, False, ""
        for s in mine:
            local = LineIssues(strict=False, keep=5)
            # Workers read the absolute path; issues name the input as the user gave it.
            local.counts = {str(path): n for n in s["issues"]["per_file"].values()}
            local.first = [_Issue(str(path), x["line"], x["reason"]) for x in s["issues"]["first"]]
            if options.format == "rdf":
                if not first_issue and s["first_issue"]:
                    line, reason = s["first_issue"].split(": ", 1)
                    first_issue = f"line {int(line.split()[1]) + offset}: {reason}"
                if not seen_statement:
                    lead += s["lead_malformed"]
                    seen_statement = s["statements"] > 0
                if not seen_statement and lead >= rdf.GIVE_UP_AFTER:
                    raise InputError(rdf._no_statements(path, rdf.GIVE_UP_AFTER, first_issue, True))
            issues.merge(local, line_offset=offset)
            offset += s["lines_read"]
        if options.format == "rdf":
            malformed = sum(s["malformed"] for s in mine)
            if malformed and not any(s["statements"] for s in mine):
                raise InputError(rdf._no_statements(path, malformed, first_issue, early=False))
        if not any(s["triples"] or s["has_nodes"] for s in mine):
            raise InputError(f"{path}: no usable {options.format} data found in the file")
    return issues
