#!/usr/bin/env python
"""Benchmark: build a graph from a ConceptNet 5 assertions file, kelm vs the reference approach.

A synthetic assertions file in the exact official format (5 tab-separated columns: edge URI,
relation URI, head URI, tail URI, JSON info with ``weight``) is generated once and cached. It has
the proportions of ConceptNet 5.7 scaled down: ``--edges`` English-English lines (3.4M by
default, as in the real dump) among about 3.5 times as many lines in all, the rest being
other-language, mixed-language and ``/r/ExternalURL`` lines. Node degrees are Zipfian.

Then, each in a fresh subprocess (so that time and peak memory are per process):

* kelm: ``build_index([file], out, BuildOptions(format="conceptnet"))``;
* baseline: the approach of the commonsense-QA repositories (MHGRN / QA-GNN preprocessing),
  written the straightforward way: read the CSV line by line, keep English edges of the merged
  relations, add each edge and its reverse to a ``networkx.MultiDiGraph``, ``pickle.dump`` it;
* loading each result: ``GraphIndex.load`` (checksums verified) vs ``pickle.load``;
* floor: reading the file's bytes once, in 4 MiB chunks.

One JSON object is printed on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GENERATOR_VERSION = 1
DEFAULT_EDGES = 3_400_000
# ConceptNet 5.7 has about 34M lines of which 3.4M English-English. The benchmark keeps the
# English part at full size and scales the rest down to 12M lines in all.
LINES_PER_EN_EDGE = 12_000_000 / 3_400_000
CHUNK_LINES = 400_000

# The 17 merged relation groups of the commonsense-QA preprocessing (Feng et al. 2020, MHGRN),
# as those repositories hard-code them; "*" reverses the edge. kelm ships the same mapping as
# kelm/resources/conceptnet_relations.yaml (the parent process checks that they agree).
MERGED_RELATIONS = [
    "atlocation/locatednear",
    "capableof",
    "causes/causesdesire/*motivatedbygoal",
    "createdby",
    "desires",
    "antonym/distinctfrom",
    "hascontext",
    "hasproperty",
    "hassubevent/hasfirstsubevent/haslastsubevent/hasprerequisite/entails/mannerof",
    "isa/instanceof/definedas",
    "madeof",
    "notcapableof",
    "notdesires",
    "partof/*hasa",
    "relatedto/similarto/synonym",
    "usedfor",
    "receivesaction",
]


# ------------------------------------------------------------------------------ generation
# English-English relation mix, roughly that of ConceptNet 5.7 (relations outside the merged
# groups included: they are read and dropped by both builds).
EN_RELATIONS = {
    "RelatedTo": 0.48,
    "FormOf": 0.11,
    "DerivedFrom": 0.09,
    "HasContext": 0.07,
    "IsA": 0.07,
    "Synonym": 0.06,
    "EtymologicallyRelatedTo": 0.01,
    "UsedFor": 0.012,
    "AtLocation": 0.008,
    "SimilarTo": 0.008,
    "HasSubevent": 0.008,
    "CapableOf": 0.007,
    "HasPrerequisite": 0.007,
    "Antonym": 0.006,
    "Causes": 0.005,
    "PartOf": 0.004,
    "MannerOf": 0.003,
    "MotivatedByGoal": 0.003,
    "HasProperty": 0.003,
    "HasA": 0.002,
    "ReceivesAction": 0.002,
    "DistinctFrom": 0.002,
    "HasFirstSubevent": 0.001,
    "HasLastSubevent": 0.001,
    "CausesDesire": 0.001,
    "Desires": 0.001,
    "NotDesires": 0.0008,
    "Entails": 0.0004,
    "MadeOf": 0.0003,
    "CreatedBy": 0.0002,
    "NotCapableOf": 0.0002,
    "LocatedNear": 0.0002,
    "InstanceOf": 0.0002,
    "DefinedAs": 0.0002,
    "SymbolOf": 0.0002,
    "ObstructedBy": 0.0002,
    "NotHasProperty": 0.0002,
    "dbpedia/genre": 0.001,
    "dbpedia/occupation": 0.0005,
    "dbpedia/capital": 0.0003,
}
OTHER_RELATIONS = {
    "Synonym": 0.35,
    "RelatedTo": 0.25,
    "FormOf": 0.15,
    "DerivedFrom": 0.08,
    "EtymologicallyRelatedTo": 0.07,
    "IsA": 0.04,
    "Antonym": 0.03,
    "HasContext": 0.03,
}
LANGUAGES = {
    "fr": 0.16,
    "de": 0.10,
    "ja": 0.09,
    "it": 0.08,
    "es": 0.07,
    "ru": 0.07,
    "zh": 0.06,
    "pt": 0.05,
    "fi": 0.05,
    "nl": 0.04,
    "la": 0.04,
    "ms": 0.03,
    "sv": 0.03,
    "pl": 0.03,
    "tr": 0.03,
    "cs": 0.02,
    "ar": 0.02,
    "ca": 0.01,
    "hu": 0.01,
    "eo": 0.01,
}
# Part-of-speech and sense suffixes after the term, as in /c/en/dog/n/wn/animal.
SUFFIXES = {
    "": 0.52,
    "/n": 0.2,
    "/v": 0.08,
    "/a": 0.05,
    "/r": 0.01,
    "/n/wn/food": 0.03,
    "/n/wn/artifact": 0.03,
    "/v/wn/motion": 0.02,
    "/n/wikt/en_1": 0.03,
    "/a/wikt/en_2": 0.02,
    "/n/wp/band": 0.01,
}
INFOS = [
    '{"dataset": "/d/conceptnet/4/en", "license": "cc:by/4.0", "sources": [{"activity": '
    '"/s/activity/omcs/omcs1_possibly_free_text", "contributor": "/s/contributor/omcs/dev"}], '
    '"surfaceEnd": "it", "surfaceStart": "something", "surfaceText": "[[something]] is '
    'related to [[it]]", "weight": ',
    '{"dataset": "/d/wiktionary/en", "license": "cc:by-sa/4.0", "sources": [{"contributor": '
    '"/s/resource/wiktionary/en", "process": "/s/process/wikiparsec/2"}], "weight": ',
    '{"dataset": "/d/wiktionary/fr", "license": "cc:by-sa/4.0", "sources": [{"contributor": '
    '"/s/resource/wiktionary/fr", "process": "/s/process/wikiparsec/2"}], "weight": ',
    '{"dataset": "/d/wordnet/3.1", "license": "cc:by/4.0", "sources": [{"contributor": '
    '"/s/resource/wordnet/rdf/3.1"}], "weight": ',
    '{"dataset": "/d/verbosity", "license": "cc:by/4.0", "sources": [{"contributor": '
    '"/s/resource/verbosity"}], "surfaceEnd": "thing", "surfaceStart": "word", "surfaceText": '
    '"[[word]] is a kind of [[thing]]", "weight": ',
    '{"dataset": "/d/conceptnet/4/en", "license": "cc:by/4.0", "sources": [{"activity": '
    '"/s/activity/omcs/vote", "contributor": "/s/contributor/omcs/anonymous"}, {"activity": '
    '"/s/activity/omcs/omcs1_possibly_free_text", "contributor": "/s/contributor/omcs/bedume"}'
    '], "weight": ',
]
EXTERNAL_INFO = (
    '{"dataset": "/d/dbpedia/en", "license": "cc:by-sa/4.0", "sources": '
    '[{"contributor": "/s/resource/dbpedia/2015/en"}], "weight": '
)
WEIGHTS = {
    "1.0": 0.6,
    "2.0": 0.15,
    "0.5": 0.05,
    "0.1": 0.03,
    "0.25": 0.02,
    "1.5": 0.03,
    "2.8280000000000003": 0.05,
    "3.464": 0.03,
    "4.0": 0.02,
    "6.633": 0.02,
}
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"][:64]
FOREIGN_SYLLABLES = SYLLABLES[:56] + ["é", "ü", "ß", "ñ", "水", "日本", "кот", "ø"]


def _pick(rng: np.random.Generator, table: dict[str, float], n: int) -> np.ndarray:
    p = np.asarray(list(table.values()), dtype=np.float64)
    return rng.choice(len(p), size=n, p=p / p.sum())


def _zipf_cdf(vocabulary: int) -> np.ndarray:
    """Cumulative Zipfian frequencies of ``vocabulary`` node ids (id 0 the most frequent)."""
    cdf = np.cumsum(1.0 / (np.arange(vocabulary, dtype=np.float64) + 2.7))
    return cdf / cdf[-1]


def _zipf(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, rng.random(n)), cdf.shape[0] - 1)


def _terms(count: int, syllables: list[str], salt: int):
    """``count`` distinct terms made of syllables; about 30% are multiword (``ice_cream``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    base = len(syllables)
    ids = np.arange(count, dtype=np.int64)
    # Terms of 2 syllables first, then 3, then 4 ...: a bijection, so the terms are distinct.
    length = np.full(count, 2)
    rank = ids.copy()
    for extra in range(3):
        span = base ** (2 + extra)
        more = rank >= span
        rank = np.where(more, rank - span, rank)
        length = length + more
    syl = pa.array(syllables)
    pieces = []
    multi = ((ids * 2654435761 + salt) % 10) < 3
    for pos in range(int(length.max())):
        digit = (rank // base**pos) % base
        piece = pc.take(syl, pa.array(digit))
        if pos == 1:
            piece = pc.if_else(pa.array(multi), pc.binary_join_element_wise("_", piece, ""), piece)
        pieces.append(pc.if_else(pa.array(pos < length), piece, pa.scalar(None, pa.string())))
    return pc.binary_join_element_wise(*pieces, "", null_handling="skip")


def _take(values, idx: np.ndarray):
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.take(values, pa.array(idx))


def generate(path: Path, edges: int, seed: int) -> dict:
    """Write the synthetic assertions file to ``path`` (atomically); return its line counts."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    total = max(int(round(edges * LINES_PER_EN_EDGE)), edges)
    en_terms = _terms(max(50, int(edges * 0.24)), SYLLABLES, 0)
    xx_terms = _terms(max(50, int((total - edges) * 0.3)), FOREIGN_SYLLABLES, 7)
    en_cdf, xx_cdf = _zipf_cdf(len(en_terms)), _zipf_cdf(len(xx_terms))
    en_rel = list(EN_RELATIONS)
    other_rel = list(OTHER_RELATIONS)
    rel_uri = pa.array([f"/r/{r}" for r in en_rel + other_rel + ["ExternalURL"]])
    suffixes = pa.array(list(SUFFIXES))
    infos = pa.array(INFOS + [EXTERNAL_INFO])
    weights = pa.array([w + "}\n" for w in WEIGHTS])
    # Which lines are English-English: exactly `edges` of them, spread over the file.
    kinds = np.zeros(total, dtype=np.int8)  # 0 en-en, 1 other-other, 2 mixed, 3 ExternalURL
    other = total - edges
    kinds[edges:] = rng.choice([1, 2, 3], size=other, p=[0.55, 0.25, 0.20])
    rng.shuffle(kinds)

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        for start in range(0, total, CHUNK_LINES):
            kind = kinds[start : start + CHUNK_LINES]
            n = kind.shape[0]
            en_en, mixed, external = kind == 0, kind == 2, kind == 3
            rel = np.where(
                en_en, _pick(rng, EN_RELATIONS, n), len(en_rel) + _pick(rng, OTHER_RELATIONS, n)
            )
            rel = np.where(external, len(en_rel) + len(other_rel), rel)
            # Head and tail: language, term and suffix.
            head_en = en_en | (mixed & (rng.random(n) < 0.5)) | (external & (rng.random(n) < 0.4))
            tail_en = en_en | (mixed & ~head_en)
            ends = []
            for is_en in (head_en, tail_en):
                lang = np.where(is_en, 0, 1 + _pick(rng, LANGUAGES, n))
                lang_str = _take(pa.array(["en"] + list(LANGUAGES)), lang)
                en_term = _take(en_terms, _zipf(rng, en_cdf, n))
                xx_term = _take(xx_terms, _zipf(rng, xx_cdf, n))
                term = pc.if_else(pa.array(is_en), en_term, xx_term)
                suffix = _take(suffixes, _pick(rng, SUFFIXES, n))
                ends.append((lang_str, term, suffix))
            heads = pc.binary_join_element_wise("/c/", ends[0][0], "/", ends[0][1], ends[0][2], "")
            tails = pc.binary_join_element_wise("/c/", ends[1][0], "/", ends[1][1], ends[1][2], "")
            url = pc.binary_join_element_wise("http://dbpedia.org/resource/", ends[1][1], "")
            tails = pc.if_else(pa.array(external), url, tails)
            rels = _take(rel_uri, rel)
            edge = pc.binary_join_element_wise("/a/[", rels, "/,", heads, "/,", tails, "/]", "")
            info_idx = np.where(external, len(INFOS), rng.integers(0, len(INFOS), n))
            info = pc.binary_join_element_wise(
                _take(infos, info_idx), _take(weights, _pick(rng, WEIGHTS, n)), ""
            )
            lines = pc.binary_join_element_wise(edge, rels, heads, tails, info, "\t")
            lines = lines.cast(pa.large_string())
            _, offsets, data = lines.buffers()
            ends_at = np.frombuffer(offsets, dtype=np.int64)
            out.write(memoryview(data)[int(ends_at[0]) : int(ends_at[n])])
    os.replace(tmp, path)
    return {"lines": total, "en_en_lines": edges}


def cached_input(workdir: Path, edges: int, seed: int) -> Path:
    """The generated file for these parameters, generated now if it is not cached yet."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"conceptnet-assertions-synth-v{GENERATOR_VERSION}-e{edges}-s{seed}.csv"
    if not path.exists():
        log(f"generating {path} ...")
        start = time.perf_counter()
        counts = generate(path, edges, seed)
        log(
            f"  {counts['lines']:,} lines, {path.stat().st_size / 2**20:,.0f} MiB "
            f"in {time.perf_counter() - start:.1f}s"
        )
    else:
        log(f"reusing {path}")
    return path


# ------------------------------------------------------------------------------ the builds
def peak_mb() -> float:
    """This process's peak resident memory in MiB.

    VmHWM (Linux) is the peak of this program alone. ru_maxrss is only the fallback: it also
    counts the parent's pages that the forked child held before exec.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def names_digest(names) -> str:
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()


def child_kelm_build(source: Path, out: Path) -> dict:
    from kelm.graph.build import build_index
    from kelm.graph.sources.base import BuildOptions

    start, cpu = time.perf_counter(), time.process_time()
    report = build_index([source], out, BuildOptions(format="conceptnet"), progress=False)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "cpu_s": time.process_time() - cpu,
        "peak_mb": peak_mb(),
        "nodes": report.counts["nodes"],
        "edges": report.counts["edges"],
        "malformed": report.counts["malformed_lines"],
    }


def child_kelm_load(out: Path) -> dict:
    from kelm.graph.index import GraphIndex

    start = time.perf_counter()
    index = GraphIndex.load(out)  # verify=True: every array file is checked against its sha256
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "nodes": index.num_nodes,
        "edges": index.num_edges,
        "names_sha256": names_digest(index.names.to_list()),
    }


def baseline_build(source: Path, pickle_path: Path, vocab_path: Path) -> tuple[int, int]:
    """The reference approach (MHGRN / QA-GNN preprocessing), straightforwardly.

    Like those repositories it drops self loops and keeps the first of repeated
    (head, relation, tail) edges; kelm merges repeats too but keeps the largest weight, so the
    edge and node counts agree and only repeated edges' weights may differ.
    """
    import networkx as nx

    relation_mapping = {}
    for group in MERGED_RELATIONS:
        members = group.split("/")
        for member in members:
            if member.startswith("*"):
                relation_mapping[member[1:]] = "*" + members[0]
            else:
                relation_mapping[member] = members[0]
    relation2id = {group.split("/")[0]: i for i, group in enumerate(MERGED_RELATIONS)}

    concept2id: dict[str, int] = {}
    seen: set[tuple[int, int, int]] = set()
    graph = nx.MultiDiGraph()
    with open(source, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    with opener(source, "rt", encoding="utf-8") as fin:
        for line in fin:
            ls = line.rstrip("\n").split("\t")
            if len(ls) != 5:
                continue
            if not (ls[2].startswith("/c/en/") and ls[3].startswith("/c/en/")):
                continue
            rel = ls[1][3:].lower()
            if rel not in relation_mapping:
                continue
            rel = relation_mapping[rel]
            head = ls[2].split("/")[3].replace("_", " ").lower()
            tail = ls[3].split("/")[3].replace("_", " ").lower()
            if rel.startswith("*"):
                head, tail, rel = tail, head, rel[1:]
            weight = json.loads(ls[4])["weight"]
            h = concept2id.setdefault(head, len(concept2id))
            t = concept2id.setdefault(tail, len(concept2id))
            if h == t:  # delete loops
                continue
            r = relation2id[rel]
            if (h, r, t) in seen:
                continue
            seen.add((h, r, t))
            graph.add_edge(h, t, rel=r, weight=weight)
            graph.add_edge(t, h, rel=r + len(relation2id), weight=weight)
    with open(pickle_path, "wb") as fout:
        pickle.dump(graph, fout, protocol=pickle.HIGHEST_PROTOCOL)
    with open(vocab_path, "w", encoding="utf-8") as fout:
        fout.write("\n".join(concept2id) + "\n")
    return len(concept2id), len(seen)


def child_baseline_build(source: Path, pickle_path: Path, vocab_path: Path) -> dict:
    start, cpu = time.perf_counter(), time.process_time()
    nodes, edges = baseline_build(source, pickle_path, vocab_path)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    names = vocab_path.read_text(encoding="utf-8").splitlines()
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "peak_mb": peak_mb(),
        "nodes": nodes,
        "edges": edges,
        "names_sha256": names_digest(names),
    }


def child_baseline_load(pickle_path: Path) -> dict:
    # Only the benchmark's own, just-written file is unpickled, to time the reference
    # approach's loading; kelm itself never unpickles anything (its index is npy + JSON).
    start = time.perf_counter()
    with open(pickle_path, "rb") as fh:
        graph = pickle.load(fh)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "edges": graph.number_of_edges() // 2}


def child_floor(source: Path) -> dict:
    start = time.perf_counter()
    with open(source, "rb") as fh:
        while fh.read(1 << 22):
            pass
    return {"seconds": time.perf_counter() - start}


CHILDREN = {
    "kelm-build": child_kelm_build,
    "kelm-load": child_kelm_load,
    "baseline-build": child_baseline_build,
    "baseline-load": child_baseline_load,
    "floor": child_floor,
}


def run_child(name: str, *paths: Path) -> dict:
    """Run one measurement in a fresh interpreter and return the JSON it prints."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, *map(str, paths)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{name} failed (exit status {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check_mapping() -> None:
    """The baseline's hard-coded groups must be kelm's default mapping, or the race is unfair."""
    from kelm.graph.sources.conceptnet import default_relation_map

    groups = default_relation_map().groups
    ours = {g.split("/")[0]: g.split("/")[1:] for g in MERGED_RELATIONS}
    theirs = {
        name: [("*" if rev else "") + m for m, rev in members if m != name or rev]
        for name, members in groups.items()
    }
    if {k: sorted(v) for k, v in ours.items()} != {k: sorted(v) for k, v in theirs.items()}:
        raise SystemExit("the benchmark's MERGED_RELATIONS differ from kelm's default mapping")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark building a graph from a ConceptNet 5 assertions file: kelm's "
        "build_index against the networkx + pickle approach of the commonsense-QA repositories. "
        "Generates (and caches) a synthetic assertions file, times each build and each load in "
        "its own subprocess, and prints one JSON object."
    )
    parser.add_argument(
        "--edges",
        type=int,
        default=DEFAULT_EDGES,
        help="English-English lines in the generated file; other-language lines "
        f"scale with it (default {DEFAULT_EDGES:,}, about 12M lines in all, "
        "like ConceptNet 5.7's English part)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the generated file is cached and the builds are written "
        "(default: $KELM_CACHE/bench or ~/.cache/kelm/bench)",
    )
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument(
        "--skip-baseline",
        action="store_true",
        help="time kelm only (the baseline holds a networkx graph: over 1 KB of memory per "
        "edge, several GB at the default size)",
    )
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        result = CHILDREN[args.child](*map(Path, args.paths))
        print(json.dumps(result))
        return 0
    if args.edges < 1:
        parser.error("--edges must be positive")

    root = os.environ.get("KELM_CACHE") or Path.home() / ".cache" / "kelm"
    workdir = args.workdir or Path(root) / "bench"
    source = cached_input(workdir, args.edges, args.seed)
    check_mapping()
    scratch = Path(tempfile.mkdtemp(prefix="bench-graph-", dir=workdir))
    try:
        out = scratch / "kelm-index"
        floor = run_child("floor", source)
        log("kelm build ...")
        kelm = run_child("kelm-build", source, out)
        kelm_load = run_child("kelm-load", out)
        result = {
            "edges": kelm["edges"],
            "kelm_s": round(kelm["seconds"], 3),
            "baseline_s": None,
            "speedup": None,
            "kelm_peak_mb": round(kelm["peak_mb"], 1),
            "baseline_peak_mb": None,
            "memory_ratio": None,
            "kelm_load_s": round(kelm_load["seconds"], 3),
            "baseline_load_s": None,
            "load_speedup": None,
            "floor_s": round(floor["seconds"], 3),
            "kelm_nodes": kelm["nodes"],
            "kelm_malformed_lines": kelm["malformed"],
            # CPU seconds of the build process (all threads): steadier than wall time on a
            # machine shared with other work.
            "kelm_cpu_s": round(kelm["cpu_s"], 3),
        }
        if not args.skip_baseline:
            log("baseline build ...")
            pickled, vocab = scratch / "graph.pickle", scratch / "concepts.txt"
            base = run_child("baseline-build", source, pickled, vocab)
            base_load = run_child("baseline-load", pickled)
            result.update(
                {
                    "baseline_s": round(base["seconds"], 3),
                    "speedup": round(base["seconds"] / kelm["seconds"], 2),
                    "baseline_peak_mb": round(base["peak_mb"], 1),
                    "memory_ratio": round(base["peak_mb"] / kelm["peak_mb"], 2),
                    "baseline_load_s": round(base_load["seconds"], 3),
                    "load_speedup": round(base_load["seconds"] / kelm_load["seconds"], 2),
                    "baseline_nodes": base["nodes"],
                    "baseline_edges": base["edges"],
                    "baseline_cpu_s": round(base["cpu_s"], 3),
                    "nodes_match": base["names_sha256"] == kelm_load["names_sha256"],
                }
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
