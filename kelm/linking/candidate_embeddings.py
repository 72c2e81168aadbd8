"""Sentence embeddings of entity candidates' texts (what entity mode compares a mention's context
with), computed once per graph, encoder and text recipe, and cached on disk.

**Candidate text** (:func:`candidate_text`, recipe :data:`RECIPE`): the node's names (its label,
then its aliases: WordNet lemmas, RDF labels; at most :data:`MAX_NAMES`), a colon, then its text
(the WordNet gloss with its example sentences, an RDF ``rdfs:comment``/``skos:definition``); a
node without text gets the labels of up to :data:`MAX_NEIGHBOURS` neighbours instead. For
WordNet's ``bank.n.01``: ``bank: sloping land (especially the slope beside a body of water);
"they pulled the canoe up on the bank"; ...``.

**Cache**: a folder per (graph checksum, encoder fingerprint, token limit, recipe) under the
linker cache (``$KELM_CACHE/linker/candidates/<key>/``), holding ``manifest.json`` (the key) and
shards ``part-*.safetensors`` (``ids`` int64, ``vectors`` float16), each with a ``.sha256``
sidecar written after it. Texts are embedded lazily, for the candidates that linking meets (a
sentence needs tens of them; WordNet's 117,659 glosses take minutes to embed on 2 CPU cores,
:meth:`CandidateEmbeddings.embed_all` does it ahead); each batch of new rows becomes a shard,
and past :data:`MAX_SHARDS` shards they are merged into one. A shard that is unreadable or not
what its sidecar records is ignored (its rows are embedded again); processes sharing the folder
only ever add complete shards, so they never see a partial one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kelm._io import atomic_file, replace_file, sha256_file, verify_file, write_json

if TYPE_CHECKING:
    from kelm.graph.index import GraphIndex
    from kelm.linking.sentence_encoder import SentenceEncoder

log = logging.getLogger(__name__)

#: Identity of the text recipe: part of the cache key, change it with :func:`candidate_text`.
RECIPE = "names:text|neighbours/1"
MAX_NAMES = 6
MAX_NEIGHBOURS = 8
#: Shards in a cache folder before they are merged into one.
MAX_SHARDS = 16
CACHE_VERSION = 1


def candidate_text(graph: GraphIndex, node: int) -> str:
    """The text a candidate node is embedded from (see the module docstring)."""
    names = [graph.node_label(node)] + graph.aliases(node)
    unique = list(dict.fromkeys(" ".join(n.replace("_", " ").split()) for n in names))
    head = ", ".join(n for n in unique if n)[:200] or graph.node_name(node)
    text = " ".join(graph.node_text(node).split())
    if not text:
        neighbours, _, _ = graph.neighbors(node)
        labels = dict.fromkeys(
            graph.node_label(int(n)).replace("_", " ") for n in neighbours[: 4 * MAX_NEIGHBOURS]
        )
        text = ", ".join(list(labels)[:MAX_NEIGHBOURS])
    return f"{head}: {text}" if text else head


class CandidateEmbeddings:
    """Unit-length embeddings of candidate texts, looked up by node id (see the module
    docstring for the cache).

    Args:
        graph: the graph whose nodes are the candidates.
        encoder: the sentence encoder (its ``model_id`` and ``max_length`` key the cache).
        cache_dir: the linker cache root (default ``$KELM_CACHE/linker``).
        batch_size: texts per encoder batch.
    """

    def __init__(
        self,
        graph: GraphIndex,
        encoder: SentenceEncoder,
        cache_dir: str | Path | None = None,
        *,
        batch_size: int = 64,
    ) -> None:
        from kelm.paths import cache_dir as default_cache

        self.graph = graph
        self.encoder = encoder
        self.batch_size = batch_size
        self.key = {
            "kind": "kelm-candidate-embeddings",
            "version": CACHE_VERSION,
            "graph_checksum": graph.checksum,
            "encoder": encoder.model_id,
            "max_length": encoder.max_length,
            "recipe": RECIPE,
        }
        root = Path(cache_dir) if cache_dir else default_cache() / "linker"
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:24]
        self.directory = root.expanduser() / "candidates" / digest
        self._vectors: np.ndarray | None = None
        self._have = np.zeros(graph.num_nodes, dtype=bool)
        self._read: set[str] = set()
        self._writable = True
        self._manifest_ok = False  # this folder's manifest.json was seen to be (or made) the key

    # ------------------------------------------------------------------ lookup
    def vectors(self, nodes: np.ndarray) -> np.ndarray:
        """``float32 [len(nodes), dim]`` embeddings of the nodes' texts (cached, else computed
        now and cached)."""
        nodes = np.asarray(nodes, dtype=np.int64)
        if not self._have[nodes].all():
            self._read_shards()
            missing = np.unique(nodes[~self._have[nodes]])
            if missing.size:
                self._add(missing, self._embed(missing))
        assert self._vectors is not None
        return self._vectors[nodes].astype(np.float32)

    def embed_all(self, progress: bool = False) -> None:
        """Embed every node's text now (what linking would otherwise do as it meets them)."""
        self._read_shards()
        missing = np.flatnonzero(~self._have)
        if missing.size:
            self._add(missing, self._embed(missing, progress))

    # ------------------------------------------------------------------ computing
    def _embed(self, nodes: np.ndarray, progress: bool = False) -> np.ndarray:
        texts = [candidate_text(self.graph, int(n)) for n in nodes]
        return self.encoder.encode(
            texts, self.batch_size, progress, desc="candidate embeddings"
        ).astype(np.float16)

    def _store(self, nodes: np.ndarray, vectors: np.ndarray) -> None:
        if self._vectors is None:
            # Zeros are not written until touched: only the rows linking meets take memory.
            self._vectors = np.zeros((self.graph.num_nodes, vectors.shape[1]), dtype=np.float16)
        self._vectors[nodes] = vectors
        self._have[nodes] = True

    def _add(self, nodes: np.ndarray, vectors: np.ndarray) -> None:
        self._store(nodes, vectors)
        if not self._writable:
            return
        try:
            self._write_shard(nodes, vectors)
            if len(self._shards()) > MAX_SHARDS:
                self._compact()
        except OSError as exc:  # a read-only cache still gives a working linker
            log.warning("could not write candidate embeddings to %s (%s)", self.directory, exc)
            self._writable = False

    # ------------------------------------------------------------------ disk
    def _shards(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("part-*.safetensors"))

    def _read_shards(self) -> None:
        """Read the shards not read yet (other processes may have added some)."""
        from safetensors.numpy import load_file

        shards = [p for p in self._shards() if p.name not in self._read]
        if not shards or not self._manifest_matches():
            return
        for path in shards:
            sidecar = path.with_name(path.name + ".sha256")
            try:
                expected = sidecar.read_text(encoding="ascii").strip()
                verify_file(path, expected, what="candidate embedding cache", error=ValueError)
                arrays = load_file(str(path))
                ids, vectors = arrays["ids"], arrays["vectors"]
                if (
                    ids.ndim != 1
                    or vectors.ndim != 2
                    or vectors.shape[0] != ids.shape[0]
                    or (ids.size and (ids.min() < 0 or ids.max() >= self.graph.num_nodes))
                ):
                    raise ValueError("rows that do not fit this graph")
            except FileNotFoundError:  # being written (no sidecar yet) or merged away
                continue
            except (OSError, ValueError, KeyError) as exc:
                self._read.add(path.name)
                log.warning("%s: unusable candidate embedding shard (%s); ignored", path, exc)
                continue
            self._read.add(path.name)
            self._store(ids.astype(np.int64), vectors.astype(np.float16))

    def _manifest_matches(self) -> bool:
        try:
            manifest = json.loads((self.directory / "manifest.json").read_text("utf-8"))
        except (OSError, ValueError):
            return False
        return manifest == self.key

    def _write_shard(self, nodes: np.ndarray, vectors: np.ndarray) -> Path:
        from safetensors.numpy import save_file

        self.directory.mkdir(parents=True, exist_ok=True)
        if not self._manifest_ok:  # checked once per instance, not on every shard
            if not self._manifest_matches():  # new, or damaged: its shards carry their own checks
                write_json(self.directory / "manifest.json", self.key)
            self._manifest_ok = True
        path = self.directory / f"part-{time.time_ns():020d}-{os.getpid()}.safetensors"
        tmp = path.with_name(f".{path.name}.tmp")
        save_file(
            {
                "ids": np.ascontiguousarray(nodes, dtype=np.int64),
                "vectors": np.ascontiguousarray(vectors, dtype=np.float16),
            },
            str(tmp),
        )
        replace_file(tmp, path)
        with atomic_file(path.with_name(path.name + ".sha256"), "w") as fh:
            fh.write(sha256_file(path) + "\n")
        self._read.add(path.name)
        return path

    def _compact(self) -> None:
        """Merge every shard read so far into one new shard, then remove them."""
        old = [p for p in self._shards() if p.name in self._read]
        nodes = np.flatnonzero(self._have)
        assert self._vectors is not None
        self._write_shard(nodes, self._vectors[nodes])
        for path in old:
            for file in (path, path.with_name(path.name + ".sha256")):
                file.unlink(missing_ok=True)


def cache_info(embeddings: CandidateEmbeddings) -> dict[str, Any]:
    """What the cache holds: folder, shards and rows embedded (for benchmarks and logs)."""
    return {
        "directory": str(embeddings.directory),
        "shards": len(embeddings._shards()),
        "rows": int(embeddings._have.sum()),
    }
