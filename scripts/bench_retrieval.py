#!/usr/bin/env python
"""Benchmark: per-statement retrieval (subgraph + paths), kelm against a networkx reference.

For each statement: the 2-hop subgraph (question concepts, answer concepts, intermediate nodes
on 2-hop question-answer paths, capped at ``--max-nodes`` in degree order, every index edge
among the kept nodes) and the question-answer paths (up to ``--hops`` hops, at most
``--paths`` per pair, with their relation sequences). Relevance scoring is left out of the
timing (``scorer=None``): both sides rank the intermediates by degree, then id.

* kelm: :class:`kelm.retrieval.Retriever` on the numpy adjacency (built once, timed apart);
* baseline: :func:`kelm.retrieval.subgraph.reference_subgraph` and
  :func:`kelm.retrieval.paths.reference_paths` on a ``networkx.Graph``: 2-hop nodes of every
  question-answer pair through ``neighbors``, ``has_edge`` for every pair of kept nodes,
  ``nx.all_simple_paths`` (all paths, sorted canonically, the first P of each pair).

Graphs:

* CN-100K (``--graph``, default built from ``$KELM_DATA/kg/conceptnet100k/train.txt``), with
  statements grounded from CommonsenseQA (``--csqa``) by exact matching of 1- to 3-word
  phrases of the question stem (stop words dropped) and of the answer text (whole, else its
  words) against node names; one statement per (question, choice).
* the synthetic ConceptNet-size graph of ``scripts/bench_graph_build.py`` (its generator,
  ``--synthetic-edges`` English edges, built with ``format=conceptnet``); its statements copy
  the CN-100K statements' concept counts and the degree-rank quantiles of their concepts
  (a concept of CN-100K at degree rank quantile u becomes the synthetic node at quantile u),
  so they look like grounded text rather than random nodes. The networkx reference runs on
  ``--synthetic-baseline-statements`` of them.

Agreement: the share of reference statements where kelm gives exactly the reference's node
list (order included), edge set, candidate count and paths (node lists and relation lists in
canonical order, after the per-pair cut to P: both sides cut the same canonical order).
``speedup`` = baseline median / kelm median over the same statements.

One JSON object is printed on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

_STOP = (
    "a an the of to in on at for is are was were be been being it its this that these those "
    "what where which who whom why how do does did can could would should will shall may "
    "might must if not no nor with as by from or and but you your yours he she they them his "
    "her their theirs we our ours i my me mine have has had there than then so some any "
    "into onto out up down over under about"
)
STOP_WORDS = set(_STOP.split())


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_workdir() -> Path:
    root = os.environ.get("KELM_CACHE") or Path.home() / ".cache" / "kelm"
    return Path(root) / "bench"


# ------------------------------------------------------------------------------ statements
def ground_csqa(index, csqa: Path, limit: int) -> list[tuple[list[int], list[int]]]:
    """(question concepts, answer concepts) by exact phrase matching, one per choice."""
    name_to_id = {n: i for i, n in enumerate(index.names.to_list())}
    out = []
    with open(csqa, encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            words = re.findall(r"[a-z0-9']+", rec["question"]["stem"].lower())
            question = set()
            for n in (1, 2, 3):
                for i in range(len(words) - n + 1):
                    phrase = " ".join(words[i : i + n])
                    if (n > 1 or phrase not in STOP_WORDS) and phrase in name_to_id:
                        question.add(name_to_id[phrase])
            for choice in rec["question"]["choices"]:
                text = choice["text"].lower().strip()
                if text in name_to_id:
                    answer = {name_to_id[text]}
                else:
                    answer = {
                        name_to_id[w]
                        for w in re.findall(r"[a-z0-9']+", text)
                        if w not in STOP_WORDS and w in name_to_id
                    }
                out.append((sorted(question), sorted(answer)))
                if len(out) >= limit:
                    return out
    return out


def transfer_statements(
    source_degree: np.ndarray, statements, target_degree: np.ndarray, seed: int
) -> list[tuple[list[int], list[int]]]:
    """Statements on another graph with the same concept counts and degree-rank quantiles."""
    rng = np.random.default_rng(seed)

    def ranks(deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.lexsort((rng.random(deg.shape[0]), -deg))  # rank 0 = highest degree
        quantile = np.empty(deg.shape[0])
        quantile[order] = (np.arange(deg.shape[0]) + 0.5) / deg.shape[0]
        return order, quantile

    _, src_q = ranks(source_degree)
    tgt_order, _ = ranks(target_degree)
    n = target_degree.shape[0]
    out = []
    for q, a in statements:
        new = []
        for group in (q, a):
            u = src_q[np.asarray(group, dtype=np.int64)] if group else np.zeros(0)
            pos = np.clip(
                (u * n + rng.normal(0, 0.5, u.shape[0]) * np.sqrt(u * n + 1)).astype(np.int64),
                0,
                n - 1,
            )
            new.append(sorted(set(tgt_order[pos].tolist())))
        new[0] = sorted(set(new[0]) - set(new[1]))
        out.append((new[0], new[1]))
    return out


# ------------------------------------------------------------------------------ graphs
def cn100k_index(graph: Path | None, workdir: Path):
    from kelm.graph import GraphIndex, build_index
    from kelm.graph.sources.base import BuildOptions
    from kelm.paths import data_file

    if graph is not None:
        return GraphIndex.load(graph)
    out = workdir / "retrieval-cn100k-index"
    build_index(
        [data_file("kg/conceptnet100k/train.txt")],
        out,
        BuildOptions(format="cn100k"),
        progress=False,
    )
    return GraphIndex.load(out)


def synthetic_index(edges: int, seed: int, workdir: Path):
    """The ConceptNet-size graph: bench_graph_build's generator when importable, else a
    Zipfian TSV of about ``edges * 0.24`` nodes generated here. Built once and cached."""
    from kelm.graph import GraphIndex, build_index
    from kelm.graph.sources.base import BuildOptions

    workdir.mkdir(parents=True, exist_ok=True)
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_graph_build as bgb

        source, fmt = bgb.cached_input(workdir, edges, seed), "conceptnet"
    except (ImportError, AttributeError) as exc:
        log(f"bench_graph_build generator unavailable ({exc}); generating a Zipfian TSV")
        source, fmt = zipf_tsv(workdir, edges, seed), "tsv"
    out = workdir / f"retrieval-synth-index-{fmt}-e{edges}-s{seed}"
    try:
        index = GraphIndex.load(out, verify=False)
        inputs = index.manifest.get("inputs", [{}])
        if inputs and inputs[0].get("bytes") == source.stat().st_size:
            return index
    except Exception:  # noqa: BLE001 - any problem: rebuild
        pass
    log(f"building {out} from {source} ...")
    start = time.perf_counter()
    build_index([source], out, BuildOptions(format=fmt), progress=False)
    log(f"  built in {time.perf_counter() - start:.0f}s")
    return GraphIndex.load(out, verify=False)


def zipf_tsv(workdir: Path, edges: int, seed: int) -> Path:
    path = workdir / f"retrieval-zipf-e{edges}-s{seed}.tsv"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    nodes = max(50, int(edges * 0.24))
    p = 1.0 / (np.arange(nodes, dtype=np.float64) + 2.7)
    cdf = np.cumsum(p) / p.sum()
    rel_p = np.array([12, 11, 10, 8, 7, 6, 5, 4, 3, 3, 3, 2, 2, 1, 1, 1, 1], dtype=float)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for start in range(0, edges, 500_000):
            n = min(500_000, edges - start)
            h = np.searchsorted(cdf, rng.random(n))
            t = np.searchsorted(cdf, rng.random(n))
            r = rng.choice(len(rel_p), size=n, p=rel_p / rel_p.sum())
            fh.writelines(f"n{a}\tr{b}\tn{c}\n" for a, b, c in zip(h, r, t, strict=True))
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------ timing
def run_kelm(retriever, statements, keep: int) -> tuple[np.ndarray, list, np.ndarray]:
    """Times per statement (ms), the results of the first ``keep`` statements, and the
    (nodes, paths) counts of all."""
    for q, a in statements[:20]:  # warm-up
        retriever(q, a)
    times, results, counts = [], [], []
    for i, (q, a) in enumerate(statements):
        start = time.perf_counter()
        sub, paths = retriever(q, a)
        times.append(time.perf_counter() - start)
        counts.append((sub.num_nodes, len(paths)))
        if i < keep:
            results.append((sub, paths))
    return np.asarray(times) * 1000, results, np.asarray(counts)


def run_baseline(
    graph, degree, statements, max_nodes, hops, max_paths, num_relations, budget_s: float
):
    """The reference on ``statements`` in order, stopping once ``budget_s`` is spent (after
    at least one statement)."""
    from kelm.retrieval.paths import reference_paths
    from kelm.retrieval.subgraph import reference_subgraph

    times, results = [], []
    for i, (q, a) in enumerate(statements):
        if times and sum(times) > budget_s:
            log(f"  baseline budget of {budget_s:.0f}s spent after {i} statements")
            break
        start = time.perf_counter()
        nodes, edges, candidates = reference_subgraph(graph, q, a, degree, max_nodes)
        paths = reference_paths(graph, q, a, hops, max_paths, num_relations)
        times.append(time.perf_counter() - start)
        results.append((nodes, edges, candidates, paths))
        if (i + 1) % 10 == 0 or times[-1] > 10:
            log(
                f"  baseline {i + 1}/{len(statements)}, median so far "
                f"{np.median(times) * 1000:.0f} ms"
            )
    return np.asarray(times) * 1000, results


def agrees(kelm_result, reference) -> bool:
    sub, paths = kelm_result
    nodes, edges, candidates, ref_paths = reference
    ids = sub.node_ids
    mine = {
        (int(ids[s]), int(ids[d]), int(r))
        for s, d, r in zip(*sub.edge_index.tolist(), sub.edge_type.tolist(), strict=True)
    }
    return (
        ids.tolist() == nodes
        and mine == edges
        and sub.num_candidates == candidates
        and paths.to_list() == ref_paths
    )


def bench_graph(name, index, statements, n_baseline, budget_s, args) -> dict:
    from kelm.retrieval.retrieve import Retriever
    from kelm.retrieval.subgraph import Adjacency, networkx_graph

    log(
        f"[{name}] {index.num_nodes:,} nodes, {index.num_edges:,} edges, "
        f"{len(statements):,} statements"
    )
    start = time.perf_counter()
    adj = Adjacency.from_index(index)
    setup = time.perf_counter() - start
    retriever = Retriever(adj, max_nodes=args.max_nodes, hops=args.hops, max_paths=args.paths)
    kelm_ms, kelm_results, counts = run_kelm(retriever, statements, n_baseline)
    log(
        f"[{name}] kelm: median {np.median(kelm_ms):.3f} ms, p95 "
        f"{np.percentile(kelm_ms, 95):.3f} ms (adjacency {setup:.1f}s)"
    )
    result = {
        "graph_nodes": index.num_nodes,
        "graph_edges": index.num_edges,
        "statements": len(statements),
        "kelm_ms_median": round(float(np.median(kelm_ms)), 3),
        "kelm_ms_p95": round(float(np.percentile(kelm_ms, 95)), 3),
        "kelm_ms_max": round(float(kelm_ms.max()), 3),
        "kelm_setup_s": round(setup, 2),
        "mean_concepts": round(float(np.mean([len(q) + len(a) for q, a in statements])), 2),
        "mean_nodes": round(float(counts[:, 0].mean()), 1),
        "mean_paths": round(float(counts[:, 1].mean()), 1),
    }
    n_baseline = min(n_baseline, len(statements))
    if n_baseline > 0:
        log(f"[{name}] networkx graph ...")
        start = time.perf_counter()
        graph = networkx_graph(index)
        result["baseline_setup_s"] = round(time.perf_counter() - start, 2)
        base_ms, base_results = run_baseline(
            graph,
            adj.degree,
            statements[:n_baseline],
            args.max_nodes,
            args.hops,
            args.paths,
            index.num_relations,
            budget_s,
        )
        del graph
        n_baseline = len(base_results)
        same = [agrees(k, b) for k, b in zip(kelm_results, base_results, strict=False)]
        kelm_same = float(np.median(kelm_ms[:n_baseline]))
        result.update(
            {
                "baseline_statements": n_baseline,
                "baseline_ms_median": round(float(np.median(base_ms)), 3),
                "baseline_ms_p95": round(float(np.percentile(base_ms, 95)), 3),
                "kelm_ms_median_same_statements": round(kelm_same, 3),
                "speedup": round(float(np.median(base_ms)) / kelm_same, 1),
                "agreement": round(float(np.mean(same)), 4),
            }
        )
        log(
            f"[{name}] baseline: median {result['baseline_ms_median']:.1f} ms, speedup "
            f"{result['speedup']}x, agreement {result['agreement']}"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark per-statement retrieval (subgraph + paths): kelm against a "
        "networkx reference, on CN-100K and on a synthetic ConceptNet-size graph. Prints one "
        "JSON object."
    )
    parser.add_argument(
        "--statements", type=int, default=1000, help="statements timed per graph (default 1000)"
    )
    parser.add_argument(
        "--baseline-statements",
        type=int,
        default=100,
        help="statements the networkx reference runs on, CN-100K (default 100)",
    )
    parser.add_argument(
        "--synthetic-edges",
        type=int,
        default=3_400_000,
        help="English edges of the synthetic graph (default 3,400,000, "
        "ConceptNet size); 0 skips it",
    )
    parser.add_argument(
        "--synthetic-baseline-statements",
        type=int,
        default=20,
        help="statements the reference runs on, synthetic graph (default 20)",
    )
    parser.add_argument(
        "--baseline-budget-s",
        type=float,
        default=600,
        help="stop the networkx reference of a graph after this many seconds "
        "(default 600; its hub-to-hub path enumeration takes minutes per "
        "statement at ConceptNet size)",
    )
    parser.add_argument("--max-nodes", type=int, default=200)
    parser.add_argument("--hops", type=int, default=3)
    parser.add_argument("--paths", type=int, default=100)
    parser.add_argument(
        "--graph",
        type=Path,
        default=None,
        help="CN-100K index directory (default: built from $KELM_DATA)",
    )
    parser.add_argument(
        "--csqa",
        type=Path,
        default=None,
        help="CommonsenseQA JSONL (default: $KELM_DATA/qa/csqa/train_rand_split_v1.0.jsonl)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="cache for generated graphs (default $KELM_CACHE/bench)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.statements < 1:
        parser.error("--statements must be positive")

    from kelm.paths import data_file

    workdir = args.workdir or default_workdir()
    workdir.mkdir(parents=True, exist_ok=True)
    csqa = args.csqa or data_file("qa/csqa/train_rand_split_v1.0.jsonl")
    cn = cn100k_index(args.graph, workdir)
    statements = ground_csqa(cn, csqa, args.statements)
    out = {
        "settings": {
            "max_nodes": args.max_nodes,
            "hops": args.hops,
            "paths": args.paths,
            "scorer": "none (degree order)",
            "statements": args.statements,
        }
    }
    out["cn100k"] = bench_graph(
        "cn100k", cn, statements, args.baseline_statements, args.baseline_budget_s, args
    )
    if args.synthetic_edges > 0:
        synth = synthetic_index(args.synthetic_edges, args.seed, workdir)
        synth_statements = transfer_statements(cn.degree(), statements, synth.degree(), args.seed)
        out["synthetic"] = bench_graph(
            "synthetic",
            synth,
            synth_statements,
            args.synthetic_baseline_statements,
            args.baseline_budget_s,
            args,
        )
    targets = {"cn100k_median_le_3ms": out["cn100k"]["kelm_ms_median"] <= 3.0}
    if "speedup" in out["cn100k"]:
        targets["cn100k_speedup_ge_100"] = out["cn100k"]["speedup"] >= 100
        targets["cn100k_agreement_1"] = out["cn100k"]["agreement"] == 1.0
    if "synthetic" in out:
        targets["synthetic_median_lt_20ms"] = out["synthetic"]["kelm_ms_median"] < 20.0
        if "agreement" in out["synthetic"]:
            targets["synthetic_agreement_1"] = out["synthetic"]["agreement"] == 1.0
    out["targets_met"] = targets
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
