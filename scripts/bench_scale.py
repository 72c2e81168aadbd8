#!/usr/bin/env python
"""Benchmark: graph index builds at growing sizes, single-process vs a Dask LocalCluster.

A Wikidata-like truthy N-Triples file is generated once per size (cached in ``--workdir``):
``<http://www.wikidata.org/entity/Q..> <http://www.wikidata.org/prop/direct/P..> <..Q..> .``
lines with Zipfian subjects, predicates and objects (a few hubs hold most edges, as in
Wikidata), plus English ``rdfs:label`` lines (5%) and external-id literals (15%).

For every size, each in a fresh subprocess (time and peak memory per process):

* single: ``build_index`` (today's in-memory build), for sizes up to ``--single-max``;
* distributed: ``build_index_distributed`` on a ``LocalCluster`` of ``--workers`` worker
  processes of one thread; the peak resident memory of every worker is sampled (psutil, every
  0.2 s) and the client's own peak is reported beside it;
* agreement: the two indices' checksums (equal when the builds agree file for file).

And the N-Triples parse rate of the fast reader on one thread, in triples per CPU second.
One JSON object is printed on stdout (machine, settings, per-size results); progress on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GENERATOR_VERSION = 1
CHUNK = 1_000_000
WD = "http://www.wikidata.org/entity/Q"
WDT = "http://www.wikidata.org/prop/direct/P"
LABEL = "http://www.w3.org/2000/01/rdf-schema#label"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--triples", default="1000000,3000000,10000000", help="comma-separated sizes (lines)"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kelm-bench-scale"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partition-mb", type=int, default=32)
    parser.add_argument(
        "--bucket-triples",
        type=int,
        default=2_000_000,
        help="triples per node bucket, and rows per slice of a bucket (bounds a worker's memory)",
    )
    parser.add_argument(
        "--single-max", type=int, default=None, help="largest size built single-process"
    )
    parser.add_argument("--keep", action="store_true", help="keep the indices")
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="also build each size on a 1-worker cluster: worker_scaling = its time / the "
        "--workers build's time",
    )
    parser.add_argument(
        "--link-questions",
        type=int,
        default=0,
        help="also ground this many generated 5-choice questions in CN-100K on 1 and 2 "
        "workers ($KELM_DATA/kg/conceptnet100k/train.txt)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------------- the input
def generate(path: Path, triples: int, seed: int) -> None:
    """Write ``triples`` truthy lines (see the module docstring), in chunks, atomically."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    entities = max(1000, triples // 4)
    perm = rng.permutation(entities)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        for start in range(0, triples, CHUNK):
            n = min(CHUNK, triples - start)
            subj = perm[(rng.zipf(1.3, n) - 1) % entities]
            obj = perm[(rng.zipf(1.2, n) - 1) % entities]
            pred = (rng.zipf(1.6, n) - 1) % 3000
            kind = rng.random(n)

            def s(values: np.ndarray) -> pa.Array:
                return pc.cast(pa.array(values), pa.string())

            edge = pc.binary_join_element_wise(
                f"<{WD}", s(subj), f"> <{WDT}", s(pred), f"> <{WD}", s(obj), "> .\n", ""
            )
            label = pc.binary_join_element_wise(
                f"<{WD}", s(subj), f'> <{LABEL}> "item ', s(obj), ' label"@en .\n', ""
            )
            ext = pc.binary_join_element_wise(
                f"<{WD}", s(subj), f"> <{WDT}", s(pred + 5000), '> "', s(obj * 7919), '" .\n', ""
            )
            lines = pc.if_else(
                pa.array(kind < 0.05), label, pc.if_else(pa.array(kind < 0.2), ext, edge)
            )
            lines = lines.cast(pa.large_string())
            offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[: n + 1]
            data = lines.buffers()[2]
            fh.write(memoryview(data)[int(offsets[0]) : int(offsets[-1])])
    os.replace(tmp, path)


def input_file(workdir: Path, triples: int, seed: int) -> Path:
    path = workdir / f"truthy-{triples}-s{seed}-v{GENERATOR_VERSION}.nt"
    if not path.exists():
        t0 = time.perf_counter()
        generate(path, triples, seed)
        size = path.stat().st_size / 1e6
        log(f"generated {path} ({size:.0f} MB) in {time.perf_counter() - t0:.0f}s")
    return path


# ---------------------------------------------------------------------- children
def child_single(spec: dict) -> dict:
    from kelm.graph.build import build_index
    from kelm.graph.sources.base import BuildOptions

    t0 = time.perf_counter()
    report = build_index([spec["input"]], spec["out"], BuildOptions(format="rdf"), progress=False)
    seconds = time.perf_counter() - t0
    manifest = json.loads((Path(spec["out"]) / "manifest.json").read_text())
    return {
        "seconds": round(seconds, 2),
        "peak_mb": round(_self_peak_mb(), 1),
        "checksum": manifest["checksum"],
        "edges": report.counts["edges"],
        "nodes": report.counts["nodes"],
    }


def child_distributed(spec: dict) -> dict:
    import threading

    import psutil
    from distributed import Client, LocalCluster

    from kelm.graph.distributed import build_index_distributed
    from kelm.graph.sources.base import BuildOptions

    cluster = LocalCluster(
        n_workers=spec["workers"], threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    pids = list(client.run(os.getpid).values())
    procs = [psutil.Process(p) for p in pids]
    peaks = [p.memory_info().rss for p in procs]
    idle = list(peaks)
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for i, p in enumerate(procs):
                with contextlib.suppress(psutil.Error):
                    peaks[i] = max(peaks[i], p.memory_info().rss)
            stop.wait(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    report = build_index_distributed(
        [spec["input"]],
        spec["out"],
        BuildOptions(format="rdf"),
        client=client,
        partition_bytes=spec["partition_mb"] << 20,
        bucket_edges=spec["bucket_triples"],
    )
    seconds = time.perf_counter() - t0
    stop.set()
    watcher.join()
    client.close()
    cluster.close()
    manifest = json.loads((Path(spec["out"]) / "manifest.json").read_text())
    return {
        "seconds": round(seconds, 2),
        "worker_peak_mb": [round(p / 2**20, 1) for p in peaks],
        "worker_idle_mb": [round(p / 2**20, 1) for p in idle],
        "client_peak_mb": round(_self_peak_mb(), 1),
        "checksum": manifest["checksum"],
        "edges": report.counts["edges"],
        "nodes": report.counts["nodes"],
        "partitions": manifest["distributed"]["partitions"],
        "buckets": manifest["distributed"]["buckets"],
        "slices": manifest["distributed"]["slices"],
        "stage_seconds": manifest["distributed"]["seconds"],
    }


def child_link(spec: dict) -> dict:
    from distributed import Client, LocalCluster

    from kelm.linking.ground_dask import ground_file_distributed

    cluster = LocalCluster(
        n_workers=spec["workers"], threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    t0 = time.perf_counter()
    report = ground_file_distributed(
        spec["graph"],
        spec["qa"],
        spec["out"],
        client=client,
        partition_size=spec["partition_size"],
        progress=False,
        cache_dir=spec["cache"],
    )
    seconds = time.perf_counter() - t0
    client.close()
    cluster.close()
    return {
        "workers": spec["workers"],
        "statements": report.statements,
        "seconds": round(seconds, 2),
        "statements_per_s": round(report.statements / seconds, 1),
    }


def link_inputs(workdir: Path, questions: int, seed: int) -> tuple[Path, Path]:
    """CN-100K's index (built once) and a generated QA file: questions of 8-16 words drawn
    from node names and filler words, 5 choices of node names."""
    from kelm.graph.build import build_index
    from kelm.graph.index import GraphIndex
    from kelm.graph.sources.base import BuildOptions

    data = Path(os.environ.get("KELM_DATA", "/work/shared/data"))
    graph = workdir / "cn100k"
    if not (graph / "manifest.json").exists():
        train = data / "kg" / "conceptnet100k" / "train.txt"
        build_index([train], graph, BuildOptions(format="cn100k"), progress=False)
    names = GraphIndex.load(graph).names.to_list()
    rng = np.random.default_rng(seed)
    filler = [
        "the",
        "a",
        "of",
        "to",
        "is",
        "what",
        "where",
        "would",
        "you",
        "might",
        "can",
        "when",
        "people",
        "their",
    ]
    qa = workdir / f"questions-{questions}-s{seed}.jsonl"
    with open(qa, "w", encoding="utf-8") as fh:
        for i in range(questions):
            words = [
                names[rng.integers(len(names))]
                if rng.random() < 0.4
                else filler[rng.integers(len(filler))]
                for _ in range(int(rng.integers(8, 17)))
            ]
            choices = [
                {"label": "ABCDE"[k], "text": names[rng.integers(len(names))]} for k in range(5)
            ]
            item = {
                "id": f"q{i}",
                "question": {"stem": " ".join(words) + "?", "choices": choices},
                "answerKey": "A",
            }
            fh.write(json.dumps(item) + "\n")
    return graph, qa


def child_parse(spec: dict) -> dict:
    from kelm.graph.sources.base import BuildOptions, LineIssues
    from kelm.graph.sources.ntriples import parse_ntriples

    cpu0, t0 = time.process_time(), time.perf_counter()
    part = parse_ntriples(Path(spec["input"]), BuildOptions(format="rdf"), LineIssues(), threads=1)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    return {
        "triples": part.statements,
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "triples_per_cpu_s": round(part.statements / cpu),
        "triples_per_wall_s": round(part.statements / wall),
    }


def _self_peak_mb() -> float:
    """This process's peak resident memory. VmHWM belongs to the process's own memory map;
    ru_maxrss would carry the parent's peak over fork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # KiB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_child(kind: str, spec: dict) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [sys.executable, __file__, "--_child", json.dumps({"kind": kind, **spec})],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args._child:
        spec = json.loads(args._child)
        fn = {
            "single": child_single,
            "dist": child_distributed,
            "parse": child_parse,
            "link": child_link,
        }
        print(json.dumps(fn[spec["kind"]](spec)))
        return
    import shutil

    import psutil

    sizes = [int(float(x)) for x in args.triples.split(",") if x.strip()]
    single_max = args.single_max if args.single_max is not None else max(sizes)
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for triples in sizes:
        path = input_file(args.workdir, triples, args.seed)
        row: dict = {"triples": triples, "file_mb": round(path.stat().st_size / 1e6, 1)}
        outs = {k: args.workdir / f"index-{k}-{triples}" for k in ("single", "dist")}
        if triples <= single_max:
            log(f"{triples:,}: single-process build")
            row["single"] = run_child("single", {"input": str(path), "out": str(outs["single"])})
        log(f"{triples:,}: distributed build, {args.workers} workers")
        row["dist"] = run_child(
            "dist",
            {
                "input": str(path),
                "out": str(outs["dist"]),
                "workers": args.workers,
                "partition_mb": args.partition_mb,
                "bucket_triples": args.bucket_triples,
            },
        )
        row["index_mb"] = round(sum(f.stat().st_size for f in outs["dist"].iterdir()) / 1e6, 1)
        if args.scaling and args.workers > 1:
            log(f"{triples:,}: distributed build, 1 worker (the scaling baseline)")
            outs["dist1"] = args.workdir / f"index-dist1-{triples}"
            row["dist_1_worker"] = run_child(
                "dist",
                {
                    "input": str(path),
                    "out": str(outs["dist1"]),
                    "workers": 1,
                    "partition_mb": args.partition_mb,
                    "bucket_triples": args.bucket_triples,
                },
            )
            one, many = row["dist_1_worker"]["seconds"], row["dist"]["seconds"]
            row["worker_scaling"] = round(one / many, 2)  # the target: >= 1.6 on 2 workers
            row["agree_1_worker"] = row["dist_1_worker"]["checksum"] == row["dist"]["checksum"]
        if "single" in row:
            row["agree"] = row["single"]["checksum"] == row["dist"]["checksum"]
            row["dist_speedup"] = round(row["single"]["seconds"] / row["dist"]["seconds"], 2)
        if not args.keep:
            for out in outs.values():
                shutil.rmtree(out, ignore_errors=True)
        log(json.dumps(row))
        results.append(row)
    log("parse rate on one thread")
    parse = run_child("parse", {"input": str(input_file(args.workdir, min(sizes), args.seed))})
    link = None
    if args.link_questions:
        graph, qa = link_inputs(args.workdir, args.link_questions, args.seed)
        cache = args.workdir / "linker-cache"
        link = {}
        for workers in (1, 2):
            log(f"grounding {args.link_questions:,} questions on {workers} worker(s)")
            out = args.workdir / f"grounded-{workers}.jsonl"
            for leftover in (out, out.with_name(out.name + ".manifest.json")):
                leftover.unlink(missing_ok=True)
            link[f"workers_{workers}"] = run_child(
                "link",
                {
                    "graph": str(graph),
                    "qa": str(qa),
                    "out": str(out),
                    "cache": str(cache),
                    "workers": workers,
                    "partition_size": max(1, 5 * args.link_questions // 8),
                },
            )
        one, two = link["workers_1"], link["workers_2"]
        link["ratio"] = round(two["statements_per_s"] / one["statements_per_s"], 2)
        link["identical"] = (args.workdir / "grounded-1.jsonl").read_bytes() == (
            args.workdir / "grounded-2.jsonl"
        ).read_bytes()
    memory = psutil.virtual_memory().total
    print(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "memory_gb": round(memory / 2**30, 1),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "settings": {
                    "workers": args.workers,
                    "threads_per_worker": 1,
                    "partition_mb": args.partition_mb,
                    "bucket_triples": args.bucket_triples,
                    "single_max": single_max,
                    "seed": args.seed,
                },
                "sizes": results,
                "parse": parse,
                "link": link,
            }
        )
    )


if __name__ == "__main__":
    main()
