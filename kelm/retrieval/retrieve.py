"""``retrieve``: grounded statements -> subgraphs and paths on disk (``kelm retrieve``).

Input: the grounded JSONL of ``kelm ground`` (one line per (question id, choice) with
``question``, ``answer``, ``question_concepts`` and ``answer_concepts`` as node ids of the
graph) and its sidecar ``<file>.manifest.json`` (its ``graph_checksum`` must be the graph's).

Output: a directory of shards (:mod:`kelm.retrieval.store`), built in a staging directory and
published whole. Its manifest carries a cache key over the graph checksum, the grounded file's
sha256 and every option (scorer and model identity, KG embedding checksums included): running
again with the same key reuses the directory, any change rebuilds it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kelm._io import (
    check_output_dir,
    publish_dir,
    remove_stale_staging,
    sha256_file,
    staging_dir,
)
from kelm.errors import InputError, KelmError
from kelm.graph.index import GraphIndex
from kelm.linking.grounded_file import check_complete, manifest_path
from kelm.retrieval import store
from kelm.retrieval.paths import PathSet, find_paths, kagnet_scores
from kelm.retrieval.scoring import SCORERS, RelevanceScorer, make_scorer
from kelm.retrieval.subgraph import Adjacency, Subgraph, extract_subgraph, normalize_concepts

log = logging.getLogger(__name__)

MAX_HOPS = 5
MAX_PATHS = 1_000_000
"""Paths kept per question-answer pair at most (numpy counts them in int64; no retrieval
keeps more than a few hundred)."""


@dataclass
class RetrieveOptions:
    """Everything a retrieval result depends on besides its inputs (all in the cache key)."""

    max_nodes: int = 200
    hops: int = 3
    paths: int = 100
    scorer: str = "cosine"
    model: str | None = None
    context: bool = False
    entity_emb: str | None = None
    relation_emb: str | None = None
    kge: str | None = None  # a `kelm embed-kg` directory (alternative to the two .npy files)
    shard_size: int = 1000

    def validate(self) -> None:
        if self.max_nodes < 1:
            raise KelmError(f"--max-nodes must be at least 1, not {self.max_nodes}")
        if not 0 <= self.hops <= MAX_HOPS:
            raise KelmError(f"--hops must be between 0 and {MAX_HOPS}, not {self.hops}")
        if not 0 <= self.paths <= MAX_PATHS:
            raise KelmError(f"--paths must be between 0 and {MAX_PATHS:,}, not {self.paths}")
        if self.scorer not in SCORERS:
            raise KelmError(f"unknown --scorer {self.scorer!r}; choose one of {', '.join(SCORERS)}")
        if self.shard_size < 1:
            raise KelmError(f"--shard-size must be at least 1, not {self.shard_size}")
        if (self.entity_emb is None) != (self.relation_emb is None):
            raise KelmError("KG path scoring needs both --entity-emb and --relation-emb")
        if self.kge is not None and self.entity_emb is not None:
            raise KelmError("give either --kge or --entity-emb/--relation-emb, not both")


@dataclass
class GroundedStatement:
    id: Any
    choice: Any
    statement: str
    question: np.ndarray
    answer: np.ndarray


@dataclass
class RetrieveReport:
    out: Path
    reused: bool
    cache_key: str
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class Retriever:
    """Subgraph + paths of one statement at a time, on a graph loaded once.

    Args:
        graph: a :class:`~kelm.graph.index.GraphIndex` or a prebuilt :class:`Adjacency`.
        max_nodes, hops, max_paths, context: see :func:`extract_subgraph` and
            :func:`find_paths`.
        scorer: relevance scorer for the subgraph cap (``None``: degree order).
        entity_emb, relation_emb: KG embeddings for KagNet path scores (optional).
    """

    def __init__(
        self,
        graph,
        *,
        max_nodes: int = 200,
        hops: int = 3,
        max_paths: int = 100,
        scorer: RelevanceScorer | None = None,
        context: bool = False,
        entity_emb: np.ndarray | None = None,
        relation_emb: np.ndarray | None = None,
    ) -> None:
        self.adj = graph if isinstance(graph, Adjacency) else Adjacency.from_index(graph)
        self.max_nodes = max_nodes
        self.hops = hops
        self.max_paths = max_paths
        self.scorer = scorer
        self.context = context
        self.entity_emb = entity_emb
        self.relation_emb = relation_emb

    def __call__(self, question, answer, statement: str = "") -> tuple[Subgraph, PathSet]:
        adj = self.adj
        q, a = normalize_concepts(question, answer)
        q_front = adj.extend(q[:, None])
        a_front = adj.extend(a[:, None])
        sub = extract_subgraph(
            adj,
            q,
            a,
            max_nodes=self.max_nodes,
            scorer=self.scorer,
            statement=statement,
            context=self.context,
            q_nbrs=q_front[0][:, 1],
            a_nbrs=a_front[0][:, 1],
        )
        paths = find_paths(
            adj,
            q,
            a,
            hops=self.hops,
            max_paths=self.max_paths,
            q_frontier=q_front,
            a_frontier=a_front,
        )
        if self.entity_emb is not None and self.relation_emb is not None:
            paths.score = kagnet_scores(
                paths, self.entity_emb, self.relation_emb, adj.num_relations
            )
        return sub, paths


# ---------------------------------------------------------------------- inputs
def check_grounded(grounded: Path, graph_checksum: str) -> bool:
    """The grounded file exists, is complete (:func:`~kelm.linking.grounded_file.check_complete`:
    what its sidecar manifest records, never a ``.partial``), and the sidecar names this graph.

    Returns:
        Whether the file has a sidecar (without one, which graph it was grounded on is unknown:
        :func:`warn_unchecked` says so once its lines have been read, so that a file that is
        not a grounded file at all gets only its error).
    """
    if not grounded.exists():
        raise InputError(f"{grounded}: no such file")
    if grounded.is_dir():
        raise InputError(f"{grounded}: is a directory, expected a grounded JSONL file")
    if grounded.stat().st_size == 0:
        raise InputError(f"{grounded}: file is empty (no statements)")
    meta = check_complete(grounded)
    if meta is None:
        return False
    theirs = meta.get("graph_checksum")
    if theirs is not None and theirs != graph_checksum:
        raise InputError(
            f"{grounded} was grounded on another graph (checksum "
            f"{str(theirs)[:12]}..., this graph has {graph_checksum[:12]}...); "
            "ground it again with `kelm ground`"
        )
    return True


def warn_unchecked(grounded: Path) -> None:
    log.warning(
        "%s: no sidecar manifest; cannot check which graph it was grounded on",
        manifest_path(grounded),
    )


def _concepts(value: Any, key: str, where: str, num_nodes: int) -> np.ndarray:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise InputError(f"{where}: field {key!r} must be a list of integer node ids")
    ids = np.asarray(value, dtype=np.int64)
    bad = (ids < 0) | (ids >= num_nodes)
    if bad.any():
        raise InputError(
            f"{where}: {key} has node id {int(ids[bad][0])}, outside this graph's "
            f"0..{num_nodes - 1}; was the file grounded on another graph?"
        )
    return ids


def read_grounded(path: Path, num_nodes: int) -> list[GroundedStatement]:
    """Parse and check the grounded JSONL (blank lines skipped)."""
    out = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise InputError(f"{where}: not UTF-8 text") from None
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{where}: not valid JSON ({exc.msg}; a truncated file?)"
                ) from None
            if not isinstance(rec, dict):
                raise InputError(f"{where}: expected a JSON object")
            for key in ("id", "question_concepts", "answer_concepts"):
                if key not in rec:
                    raise InputError(f"{where}: missing field {key!r}")
            question = rec.get("question") or ""
            answer = rec.get("answer") or ""
            if not isinstance(question, str) or not isinstance(answer, str):
                raise InputError(f"{where}: fields 'question' and 'answer' must be strings")
            out.append(
                GroundedStatement(
                    rec["id"],
                    rec.get("choice"),
                    f"{question} {answer}".strip(),
                    _concepts(rec["question_concepts"], "question_concepts", where, num_nodes),
                    _concepts(rec["answer_concepts"], "answer_concepts", where, num_nodes),
                )
            )
    if not out:
        raise InputError(f"{path}: no statements in the file")
    return out


def _load_embedding(path: str, what: str) -> np.ndarray:
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{file}: no such {what} embedding file")
    try:
        arr = np.load(file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # EOFError: an empty file
        raise InputError(f"{file}: not a .npy array ({exc or 'empty file'})") from None
    if arr.ndim != 2:
        raise InputError(f"{file}: {what} embeddings must be a 2-D array, not {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{file}: {what} embeddings must be floats, not {arr.dtype}")
    if not np.isfinite(arr).all():  # NaN path scores would rank every path alike
        raise InputError(f"{file}: {what} embeddings hold NaN or infinite values")
    return arr


# ---------------------------------------------------------------------- the library call
def retrieve(
    graph: str | Path | GraphIndex,
    grounded: str | Path,
    out: str | Path,
    options: RetrieveOptions | None = None,
    *,
    scorer: RelevanceScorer | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 128,
    device: str | None = "auto",
    force: bool = False,
    progress: bool = True,
) -> RetrieveReport:
    """Retrieve subgraphs and paths for every statement of ``grounded`` into ``out``.

    Args:
        graph: graph index directory, or an index already loaded (not loaded again).
        grounded: grounded JSONL file (see the module docstring).
        out: output directory (created, reused or replaced as a whole).
        options: see :class:`RetrieveOptions`.
        scorer: a relevance scorer object overriding ``options.scorer`` (its ``cache_key()``
            is part of the cache key; without one the result is never reused).
        cache_dir: where the cosine scorer caches node embeddings (default
            ``$KELM_CACHE/retrieval``).
        batch_size: scorer batch size.
        device: scorer device (``cpu``, ``cuda``, ``auto``).
        force: rebuild even when ``out`` holds results for the same key.
        progress: show progress bars.

    Raises:
        KelmError: missing or unknown-version graph, bad grounded file, bad options,
            ``out`` not a retrieval directory.
    """
    start = time.perf_counter()
    options = options or RetrieveOptions()
    options.validate()
    index = graph if isinstance(graph, GraphIndex) else GraphIndex.load(graph)
    graph, grounded, out = Path(index.path), Path(grounded), Path(out)
    has_sidecar = check_grounded(grounded, index.checksum)
    store.check_output_dir(out)
    entity = relation = None
    emb_key = None
    if options.kge is not None:
        from kelm.kge.store import load_embeddings

        # load_embeddings refuses embeddings trained on another graph (checksum).
        emb = load_embeddings(options.kge, index)
        entity, relation = emb.entity.numpy(), emb.relation.numpy()
        emb_key = {"kge": emb.manifest.get("files", {})}
    elif options.entity_emb is not None and options.relation_emb is not None:
        entity = _load_embedding(options.entity_emb, "entity")
        relation = _load_embedding(options.relation_emb, "relation")
        if entity.shape[0] != index.num_nodes:
            raise InputError(
                f"{options.entity_emb}: {entity.shape[0]} entity embeddings for "
                f"a graph of {index.num_nodes} nodes"
            )
        if relation.shape[0] not in (index.num_relations, 2 * index.num_relations):
            raise InputError(
                f"{options.relation_emb}: {relation.shape[0]} relation embeddings;"
                f" expected {index.num_relations} or {2 * index.num_relations}"
            )
        if entity.shape[1] != relation.shape[1]:
            raise InputError(
                "entity and relation embeddings differ in dimension "
                f"({entity.shape[1]} vs {relation.shape[1]})"
            )
        emb_key = {
            "entity": sha256_file(options.entity_emb),
            "relation": sha256_file(options.relation_emb),
        }
    if scorer is None:
        scorer = make_scorer(
            options.scorer,
            index,
            model=options.model,
            cache_dir=cache_dir,
            batch_size=batch_size,
            device=device,
            progress=progress,
        )
    scorer_key = scorer.cache_key() if hasattr(scorer, "cache_key") else None
    opts = asdict(options)
    opts.pop("model")
    opts.pop("entity_emb")
    opts.pop("relation_emb")
    opts.pop("kge")
    opts.pop("scorer")
    parts = {
        "graph_checksum": index.checksum,
        "grounded_sha256": sha256_file(grounded),
        "options": opts,
        "scorer": scorer_key,
        "kg_embeddings": emb_key,
    }
    key = store.cache_key(parts)
    if scorer_key is None:
        key = f"uncacheable-{time.time_ns()}"
    if not force and store.reusable(out, key):
        if not has_sidecar:
            warn_unchecked(grounded)
        manifest = store.read_manifest(out)
        return RetrieveReport(
            out, True, key, manifest.get("counts", {}), time.perf_counter() - start
        )

    check_output_dir(out)  # not reused: refuse an out kelm cannot write before the work
    statements = read_grounded(grounded, index.num_nodes)
    if not has_sidecar:
        warn_unchecked(grounded)
    if hasattr(scorer, "prepare"):
        scorer.prepare([s.statement for s in statements])
    retriever = Retriever(
        index,
        max_nodes=options.max_nodes,
        hops=options.hops,
        max_paths=options.paths,
        scorer=scorer,
        context=options.context,
        entity_emb=entity,
        relation_emb=relation,
    )
    remove_stale_staging(out)
    staged = staging_dir(out)
    try:
        writer = store.ShardWriter(staged, options.shard_size)
        _run(retriever, statements, writer, progress)
        writer.close()
        store.publish_manifest(
            staged,
            writer,
            {
                "cache_key": key,
                "key": parts,
                "graph": {"path": str(graph), "checksum": index.checksum},
                "grounded": {"path": str(grounded), "sha256": parts["grounded_sha256"]},
                "num_relations": index.num_relations,
                "edge_types": {
                    "forward": [0, index.num_relations],
                    "inverse": [index.num_relations, 2 * index.num_relations],
                    "context_to_question": 2 * index.num_relations,
                    "context_to_answer": 2 * index.num_relations + 1,
                },
                "node_types": {"question": 0, "answer": 1, "intermediate": 2, "context": 3},
            },
        )
        publish_dir(staged, out)
    except BaseException:
        store.discard(staged)
        raise
    return RetrieveReport(out, False, key, writer.counts, time.perf_counter() - start)


def _run(
    retriever: Retriever,
    statements: Sequence[GroundedStatement],
    writer: store.ShardWriter,
    progress: bool,
) -> None:
    from tqdm.auto import tqdm

    for s in tqdm(
        statements, desc="retrieving", unit="stmt", disable=not progress, mininterval=0.5
    ):
        sub, paths = retriever(s.question, s.answer, s.statement)
        writer.add(s.id, s.choice, sub, paths)


def summary(report: RetrieveReport) -> str:
    """The one-line summary the CLI prints."""
    c = report.counts
    n = max(c.get("statements", 0), 1)
    verb = "reused" if report.reused else "wrote"
    return (
        f"{verb} {report.out}: {c.get('statements', 0):,} statements, "
        f"{c.get('nodes', 0) / n:.1f} nodes, {c.get('edges', 0) / n:.1f} edges and "
        f"{c.get('paths', 0) / n:.1f} paths per statement; "
        f"{c.get('empty_subgraphs', 0):,} empty subgraphs, "
        f"{c.get('without_paths', 0):,} without paths ({report.seconds:.1f}s)"
    )
