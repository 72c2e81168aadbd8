"""On-disk retrieval results: safetensors shards plus a JSON manifest, and the cache check.

Directory layout (format version 1)::

    manifest.json        kind, format version, cache key and the inputs and options it hashes,
                         counts, every file with its size and sha256, and ``checksum``:
                         the digest of those fields (written last)
    statements.json      [[id, choice], ...] in file order; statement i is row
                         i - shard_start of shard i // shard_size
    shard-00000.safetensors ...

A shard holds ``n`` statements as concatenated arrays with offsets (ids stored as int32,
widened to int64 on load; no pickle anywhere):

    node_ptr [n+1]   node_ids, node_type (int8), node_score (float32)
    edge_ptr [n+1]   edge_index [2, E] (local positions), edge_type
    num_candidates [n]
    path_ptr [n+1]   path_node_ptr [P+1], path_nodes        nodes of each path
                     hop_ptr [H+1], hop_rels                 relations of each hop
                     path_score [P] (float32, NaN without KG embeddings)

Path ``p``'s hops are numbered ``path_node_ptr[p] - p`` up to ``path_node_ptr[p+1] - p - 1``.

Results are written into a staging directory and published whole
(:func:`kelm._io.publish_dir`). The manifest records the checksum of its own fields; a
directory is reused only when that checksum holds, its cache key is the same and every file it
lists has its recorded size and sha256. A reader checks the same, each shard the first time
this process reads it (:func:`kelm._io.sha256_once`: at most one hash per file and process).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kelm._io import check_manifest_checksum, fields_checksum, sha256_file, verify_file, write_json
from kelm._io import read_manifest as _read_manifest
from kelm.errors import KelmError

if TYPE_CHECKING:
    from torch_geometric.data import Data

    from kelm.retrieval.paths import PathSet
    from kelm.retrieval.subgraph import Subgraph

KIND = "kelm-retrieval"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STATEMENTS = "statements.json"
log = logging.getLogger(__name__)
HINT = "run `kelm retrieve` again"
#: The manifest fields its ``checksum`` covers (:func:`kelm._io.fields_checksum`): everything
#: that says what the results are and how to read them.
IDENTITY = ("kind", "format_version", "cache_key", "key", "graph", "grounded", "num_relations")
IDENTITY += ("edge_types", "node_types", "shard_size", "shards", "counts", "files")


class RetrievalFormatError(KelmError):
    """A retrieval directory is missing, incomplete, corrupt or of an unknown version."""


def cache_key(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything a retrieval result depends on."""
    text = json.dumps(
        {"format_version": FORMAT_VERSION, **parts},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.safetensors"


# ---------------------------------------------------------------------- writing
class ShardWriter:
    """Collects per-statement results and writes a shard every ``shard_size`` statements."""

    def __init__(self, directory: Path, shard_size: int = 1000) -> None:
        if shard_size < 1:
            raise ValueError("shard_size must be at least 1")
        self.directory = Path(directory)
        self.shard_size = shard_size
        self.statements: list[list[Any]] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.counts = {
            "statements": 0,
            "nodes": 0,
            "edges": 0,
            "paths": 0,
            "empty_subgraphs": 0,
            "without_paths": 0,
        }
        self._pending: list[tuple[Subgraph, PathSet]] = []
        self._shards = 0

    def add(self, statement_id: Any, choice: Any, subgraph: Subgraph, paths: PathSet) -> None:
        self.statements.append([statement_id, choice])
        self._pending.append((subgraph, paths))
        c = self.counts
        c["statements"] += 1
        c["nodes"] += subgraph.num_nodes
        c["edges"] += int(subgraph.edge_type.shape[0])
        c["paths"] += len(paths)
        c["empty_subgraphs"] += int(subgraph.num_candidates == 0)
        c["without_paths"] += int(len(paths) == 0)
        if len(self._pending) >= self.shard_size:
            self._flush()

    def close(self) -> None:
        if self._pending:
            self._flush()
        path = self.directory / STATEMENTS
        path.write_text(json.dumps(self.statements, ensure_ascii=False) + "\n", encoding="utf-8")
        self._record(path)

    def _record(self, path: Path) -> None:
        self.files[path.name] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}

    def _flush(self) -> None:
        from safetensors.numpy import save_file

        arrays = pack_shard(self._pending)
        path = self.directory / shard_name(self._shards)
        save_file(arrays, str(path), metadata={"kind": KIND, "format_version": str(FORMAT_VERSION)})
        self._record(path)
        self._shards += 1
        self._pending = []


def _ptr(lengths) -> np.ndarray:
    """Offsets ``[0, l0, l0 + l1, ...]`` of consecutive lengths (list or arrays)."""
    if isinstance(lengths, list) and lengths and isinstance(lengths[0], np.ndarray):
        lengths = np.concatenate(lengths)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    ptr = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    return ptr


def _cat(parts: list[np.ndarray], dtype, shape_tail: tuple[int, ...] = ()) -> np.ndarray:
    if not parts:
        return np.zeros((0, *shape_tail), dtype=dtype)
    return np.ascontiguousarray(np.concatenate(parts).astype(dtype, copy=False))


def pack_shard(items: list[tuple[Subgraph, PathSet]]) -> dict[str, np.ndarray]:
    """The shard arrays of a list of ``(subgraph, paths)``."""
    subs = [s for s, _ in items]
    paths = [p for _, p in items]
    flat = [p.flat_nodes() for p in paths]
    path_node_lengths = [np.diff(ptr) for ptr, _ in flat]
    scores = [
        p.score if p.score is not None else np.full(len(p), np.nan, np.float32) for p in paths
    ]
    return {
        "node_ptr": _ptr([s.num_nodes for s in subs]),
        "node_ids": _cat([s.node_ids for s in subs], np.int32),
        "node_type": _cat([s.node_type for s in subs], np.int8),
        "node_score": _cat([s.node_score for s in subs], np.float32),
        "num_candidates": np.asarray([s.num_candidates for s in subs], dtype=np.int64),
        "edge_ptr": _ptr([int(s.edge_type.shape[0]) for s in subs]),
        "edge_index": np.ascontiguousarray(_cat([s.edge_index.T for s in subs], np.int32, (2,)).T),
        "edge_type": _cat([s.edge_type for s in subs], np.int32),
        "path_ptr": _ptr([len(p) for p in paths]),
        "path_node_ptr": _ptr(path_node_lengths),
        "path_nodes": _cat([nodes for _, nodes in flat], np.int32),
        "hop_ptr": _ptr([np.diff(p.hop_ptr) for p in paths]),
        "hop_rels": _cat([p.rels for p in paths], np.int32),
        "path_score": _cat(scores, np.float32),
    }


def publish_manifest(staged: Path, writer: ShardWriter, manifest: dict[str, Any]) -> None:
    """Write the manifest (last) into the staging directory."""
    manifest = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        **manifest,
        "shard_size": writer.shard_size,
        "shards": writer._shards,
        "counts": writer.counts,
        "files": writer.files,
    }
    manifest = json.loads(json.dumps(manifest, default=str))  # the checksum is of what is read
    manifest["checksum"] = fields_checksum(manifest, IDENTITY)
    write_json(staged / MANIFEST, manifest)


# ---------------------------------------------------------------------- reading
def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a retrieval directory, checked for kind, format version, its own
    checksum (an edited manifest is refused) and the fields a reader relies on."""
    path = Path(path)
    manifest = _read_manifest(
        path,
        kind=KIND,
        version=FORMAT_VERSION,
        what="retrieval",
        error=RetrievalFormatError,
        hint="; run `kelm retrieve` again",
    )
    file = path / MANIFEST
    check_manifest_checksum(
        manifest,
        fields_checksum(manifest, IDENTITY),
        file,
        what="retrieval",
        error=RetrievalFormatError,
    )
    files, size, shards = manifest.get("files"), manifest.get("shard_size"), manifest.get("shards")
    if (
        not isinstance(files, dict)
        or not all(isinstance(v, dict) for v in files.values())
        or STATEMENTS not in files
        or not isinstance(size, int)
        or size < 1
        or not isinstance(shards, int)
        or not all(shard_name(i) in files for i in range(shards))
    ):
        raise RetrievalFormatError(f"{file}: incomplete manifest; run `kelm retrieve` again")
    return manifest


def verify_all(path: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists is present with its recorded size and sha256 (each file
    hashed once per process: :func:`kelm._io.sha256_once`).

    Raises:
        RetrievalFormatError: a file is missing, truncated or not what was written.
    """
    for name, info in manifest["files"].items():
        file = path / name
        if not file.is_file() or file.stat().st_size != info.get("bytes"):
            raise RetrievalFormatError(f"{file}: missing or truncated (incomplete results)")
        verify_file(
            file, info.get("sha256"), what="retrieval", error=RetrievalFormatError, hint=HINT
        )


def reusable(path: Path, key: str) -> bool:
    """Whether ``path`` holds complete, intact results for cache key ``key``."""
    try:
        manifest = read_manifest(path)
    except RetrievalFormatError:
        return False
    if manifest.get("cache_key") != key:
        return False
    try:
        verify_all(path, manifest)
    except RetrievalFormatError as exc:
        log.warning("%s; computing the results again", exc)
        return False
    return True


def check_output_dir(path: Path) -> None:
    """Refuse to replace a non-empty directory that is not a retrieval result."""
    if path.exists() and not path.is_dir():
        raise KelmError(f"{path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not (path / MANIFEST).is_file():
        raise KelmError(
            f"{path}: exists and is not a kelm retrieval directory; "
            "choose another --out or remove it"
        )
    if (path / MANIFEST).is_file():
        try:
            kind = json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("kind")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            kind = None
        if kind != KIND:
            raise KelmError(
                f"{path}: holds a manifest.json that is not a kelm retrieval "
                "manifest; choose another --out"
            )


def discard(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class RetrievedPath:
    """One path: node ids, the relation ids of each hop, KagNet score (``None`` if unscored)."""

    nodes: list[int]
    relations: list[list[int]]
    score: float | None = None


@dataclass
class Retrieved:
    """The retrieval result of one statement."""

    id: Any
    choice: Any
    subgraph: Data
    paths: list[RetrievedPath] = field(default_factory=list)


class RetrievalStore:
    """Read access to a retrieval directory written by :func:`kelm.retrieval.retrieve`.

    ``store[i]`` is a :class:`Retrieved`; :meth:`subgraph` gives the PyG ``Data`` alone and
    :meth:`paths` the paths alone. Shards are read on demand (the last few stay in memory).
    """

    def __init__(self, path: str | Path, *, verify: bool = True, cached_shards: int = 2) -> None:
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.verify = verify
        files = self.manifest["files"]
        for name, info in files.items():
            file = self.path / name
            if not file.is_file() or file.stat().st_size != info.get("bytes"):
                raise RetrievalFormatError(f"{file}: missing or truncated (incomplete results)")
        statements = self.path / STATEMENTS
        if verify:  # read whole now: checked now; shards are checked when first read
            verify_file(
                statements,
                files[STATEMENTS].get("sha256"),
                what="retrieval",
                error=RetrievalFormatError,
                hint=HINT,
            )
        try:
            self.keys: list[list[Any]] = json.loads(statements.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RetrievalFormatError(f"{statements}: unreadable ({exc})") from None
        self.shard_size = int(self.manifest["shard_size"])
        if (
            not isinstance(self.keys, list)
            or not all(isinstance(k, list) and len(k) == 2 for k in self.keys)
            or -(-len(self.keys) // self.shard_size) != self.manifest["shards"]
        ):
            raise RetrievalFormatError(
                f"{statements}: does not match the manifest's shards; run `kelm retrieve` again"
            )
        self.num_relations = int(self.manifest.get("num_relations", 0))
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._cached_shards = max(cached_shards, 1)
        self._positions: dict[tuple[str, str], int] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def index_of(self, statement_id: Any, choice: Any) -> int:
        """Position of the statement ``(id, choice)``; ``KeyError`` if absent."""
        if self._positions is None:
            self._positions = {(str(i), str(c)): n for n, (i, c) in enumerate(self.keys)}
        return self._positions[(str(statement_id), str(choice))]

    def _shard(self, i: int) -> tuple[dict[str, np.ndarray], int]:
        if not 0 <= i < len(self):
            raise IndexError(f"statement {i} out of range 0..{len(self) - 1}")
        s = i // self.shard_size
        arrays = self._cache.get(s)
        if arrays is None:
            from safetensors import SafetensorError
            from safetensors.numpy import load_file

            file = self.path / shard_name(s)
            if self.verify:  # hashed the first time this process reads it (then remembered)
                info = self.manifest["files"][file.name]
                verify_file(
                    file,
                    info.get("sha256"),
                    what="retrieval",
                    error=RetrievalFormatError,
                    hint=HINT,
                )
            try:
                arrays = load_file(str(file))
            except (SafetensorError, OSError) as exc:
                raise RetrievalFormatError(f"{file}: unreadable shard ({exc})") from None
            self._cache[s] = arrays
            while len(self._cache) > self._cached_shards:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(s)
        return arrays, i - s * self.shard_size

    def arrays(self, i: int) -> dict[str, np.ndarray]:
        """The raw numpy arrays of statement ``i`` (subgraph fields)."""
        a, row = self._shard(i)
        n0, n1 = a["node_ptr"][row : row + 2]
        e0, e1 = a["edge_ptr"][row : row + 2]
        return {
            "node_ids": a["node_ids"][n0:n1].astype(np.int64),
            "node_type": a["node_type"][n0:n1].astype(np.int64),
            "node_score": a["node_score"][n0:n1],
            "edge_index": a["edge_index"][:, e0:e1].astype(np.int64),
            "edge_type": a["edge_type"][e0:e1].astype(np.int64),
            "num_candidates": int(a["num_candidates"][row]),
        }

    def subgraph(self, i: int, with_inverse: bool = False) -> Data:
        """Statement ``i``'s subgraph as a PyG ``Data`` (``node_ids``, ``edge_index``,
        ``edge_type``, ``node_type``, ``node_score``); ``with_inverse`` adds reversed edges."""
        from kelm.retrieval.subgraph import to_data

        x = self.arrays(i)
        return to_data(
            x["node_ids"],
            x["node_type"],
            x["node_score"],
            x["edge_index"],
            x["edge_type"],
            self.num_relations,
            with_inverse,
        )

    def paths(self, i: int) -> list[RetrievedPath]:
        """Statement ``i``'s paths in canonical order."""
        a, row = self._shard(i)
        p0, p1 = (int(v) for v in a["path_ptr"][row : row + 2])
        node_ptr = a["path_node_ptr"]
        nodes, hop_ptr, rels = a["path_nodes"], a["hop_ptr"], a["hop_rels"]
        out = []
        for p in range(p0, p1):
            lo, hi = int(node_ptr[p]), int(node_ptr[p + 1])
            first_hop = lo - p
            hops = [
                rels[hop_ptr[h] : hop_ptr[h + 1]].tolist()
                for h in range(first_hop, first_hop + hi - lo - 1)
            ]
            score = float(a["path_score"][p])
            out.append(
                RetrievedPath(nodes[lo:hi].tolist(), hops, None if np.isnan(score) else score)
            )
        return out

    def __getitem__(self, i: int) -> Retrieved:
        statement_id, choice = self.keys[i]
        return Retrieved(statement_id, choice, self.subgraph(i), self.paths(i))

    def __iter__(self) -> Iterator[Retrieved]:
        for i in range(len(self)):
            yield self[i]
