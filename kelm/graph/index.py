"""The graph index: node and relation vocabularies plus CSR adjacency, memory-mapped from disk.

Directory layout (format version 1)::

    manifest.json            format version, kelm version, inputs (sha256), options, counts,
                             the sha256 of every other file (``files``), and ``checksum``:
                             the digest of ``files`` (:func:`content_checksum`), the index's
                             identity, checked on every load
    relations.json           relation vocabulary: forward relations, then their inverses
    nodes.name.{data,offsets}.npy     node names (the unique key; sorted)
    nodes.label.{data,offsets}.npy    display label ("" = same as name)
    nodes.text.{data,offsets}.npy     optional node text (WordNet gloss, RDF comment)
    aliases.{alias.data,alias.offsets,node}.npy   alias -> node pairs
    attrs.{node,key.*,value.*}.npy     node attributes (RDF literals)
    out.{indptr,indices,type,weight}.npy          CSR by head: tails, relation ids, weights
    in.{indptr,indices,type,weight,edge}.npy      CSR by tail: heads, relation ids, weights,
                                                  and the edge's position in ``out``

Edge ``e`` of ``out`` goes from the node whose indptr range holds ``e`` to ``out.indices[e]``
with forward relation ``out.type[e]``. Reading an edge backwards gives relation
``type + num_relations`` (its inverse in :attr:`GraphIndex.relations`).
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kelm._io import check_manifest_checksum, read_manifest, verify_file
from kelm.errors import IndexFormatError
from kelm.graph.strings import StringColumn

if TYPE_CHECKING:
    import networkx as nx
    from torch_geometric.data import Data

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
RELATIONS = "relations.json"
INVERSE_PREFIX = "~"

_STRING_COLUMNS = (
    "nodes.name",
    "nodes.label",
    "nodes.text",
    "aliases.alias",
    "attrs.key",
    "attrs.value",
)
_ARRAYS = (
    "aliases.node",
    "attrs.node",
    "out.indptr",
    "out.indices",
    "out.type",
    "out.weight",
    "in.indptr",
    "in.indices",
    "in.type",
    "in.weight",
    "in.edge",
)


def array_files() -> list[str]:
    """Every array file name of the format, in a fixed order."""
    files = [f"{c}.{part}.npy" for c in _STRING_COLUMNS for part in ("data", "offsets")]
    return files + [f"{a}.npy" for a in _ARRAYS]


class GraphIndex:
    """A loaded graph index. Build one with :func:`kelm.graph.build_index` or ``kelm graph build``.

    Node ids are ``0 .. num_nodes-1`` in name order; relation ids ``0 .. num_relations-1`` are the
    forward relations and ``num_relations .. 2*num_relations-1`` their inverses.
    """

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        relations: list[dict[str, Any]],
        arrays: dict[str, np.ndarray],
    ) -> None:
        self.path = path
        self.manifest = manifest
        self._relations = relations
        self._a = arrays
        self.names = self._strings("nodes.name")
        self._labels = self._strings("nodes.label")
        self._texts = self._strings("nodes.text")

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path, *, verify: bool = True, mmap: bool = True) -> GraphIndex:
        """Open an index directory.

        Args:
            path: the directory written by ``kelm graph build``.
            verify: check every file against the sha256 recorded in the manifest (once per
                process for unchanged files); the manifest's own checksum and the presence
                of every file are checked either way.
            mmap: memory-map the arrays (``False`` reads them into memory).

        Raises:
            IndexFormatError: the directory is missing, incomplete, of an unknown format
                version, or an array does not match its checksum.
        """
        path = Path(path)
        manifest = read_manifest(
            path,
            kind="kelm-graph-index",
            version=FORMAT_VERSION,
            what="graph index",
            error=IndexFormatError,
            hint="; rebuild it with `kelm graph build`",
        )
        checksums = manifest.get("files")
        if not isinstance(checksums, dict):
            raise IndexFormatError(f"{path / MANIFEST}: no 'files' record (corrupt manifest)")
        # The checksum is the index's identity (caches, embeddings and grounded files are keyed
        # on it): it must be the digest of the files the manifest lists, which are checked next.
        check_manifest_checksum(
            manifest,
            content_checksum(checksums),
            path / MANIFEST,
            what="graph index",
            error=IndexFormatError,
        )
        for name in [*array_files(), RELATIONS]:
            if name not in checksums or not (path / name).is_file():
                raise IndexFormatError(
                    f"{path}: {name} missing from the index (incomplete or damaged; rebuild it "
                    "with `kelm graph build`)"
                )
            if verify:
                verify_file(
                    path / name,
                    checksums[name],
                    what="graph index",
                    error=IndexFormatError,
                    hint="rebuild it with `kelm graph build`",
                )
        arrays: dict[str, np.ndarray] = {}
        for name in array_files():
            file = path / name
            try:
                arrays[name[:-4]] = np.load(
                    file, mmap_mode="r" if mmap else None, allow_pickle=False
                )
            except (ValueError, OSError) as exc:
                raise IndexFormatError(f"{file}: unreadable array ({exc})") from None
        relations = _read_relations(path / RELATIONS)
        return cls(path, manifest, relations, arrays)

    def _strings(self, column: str) -> StringColumn:
        return StringColumn(self._a[f"{column}.data"], self._a[f"{column}.offsets"])

    # ------------------------------------------------------------------ sizes
    @property
    def num_nodes(self) -> int:
        return len(self.names)

    @property
    def num_edges(self) -> int:
        """Number of stored (forward) edges."""
        return int(self._a["out.indices"].shape[0])

    @property
    def num_relations(self) -> int:
        """Number of forward relations (the vocabulary has twice as many with inverses)."""
        return len(self._relations) // 2

    @property
    def relations(self) -> list[str]:
        """All relation names by id: forward relations, then their inverses (``~name``)."""
        return [r["name"] for r in self._relations]

    @property
    def checksum(self) -> str:
        """A digest of the whole index content; caches downstream are keyed on it."""
        return self.manifest["checksum"]

    # ------------------------------------------------------------------ vocabularies
    @cached_property
    def _name_to_id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names.to_list())}

    def node_id(self, name: str) -> int:
        """Id of the node called ``name`` (exact key). Raises ``KeyError`` if absent."""
        try:
            return self._name_to_id[name]
        except KeyError:
            raise KeyError(f"no node named {name!r} in {self.path}") from None

    def node_ids(self, names: list[str]) -> np.ndarray:
        """Ids of many node names at once; ``-1`` where a name is absent."""
        import pyarrow as pa
        import pyarrow.compute as pc

        found = pc.index_in(pa.array(names, pa.large_string()), value_set=self.names.to_arrow())
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._name_to_id

    def node_name(self, node: int) -> str:
        return self.names[int(node)]

    def node_label(self, node: int) -> str:
        """Display label: the RDF/WordNet label when there is one, else the name."""
        return self._labels[int(node)] or self.names[int(node)]

    def node_text(self, node: int) -> str:
        """Node text (WordNet gloss, RDF comment), or ``""``."""
        return self._texts[int(node)]

    @cached_property
    def _alias_table(self) -> dict[str, list[int]]:
        table: dict[str, list[int]] = {}
        for alias, node in zip(
            self._strings("aliases.alias").to_list(), self._a["aliases.node"].tolist(), strict=True
        ):
            table.setdefault(alias, []).append(node)
        return table

    def aliases(self, node: int) -> list[str]:
        """The aliases of a node (WordNet lemma names, RDF labels)."""
        lo, hi = _rows_of(self._a["aliases.node"], node)
        column = self._strings("aliases.alias")
        return [column[i] for i in range(lo, hi)]

    def lookup(self, alias: str) -> list[int]:
        """Nodes whose name or an alias equals ``alias`` (names first)."""
        hits = [self._name_to_id[alias]] if alias in self._name_to_id else []
        return hits + [n for n in self._alias_table.get(alias, []) if n not in hits]

    def attributes(self, node: int) -> dict[str, list[str]]:
        """Literal attributes of a node (RDF builds with ``--literals keep``)."""
        lo, hi = _rows_of(self._a["attrs.node"], node)
        keys, values = self._strings("attrs.key"), self._strings("attrs.value")
        out: dict[str, list[str]] = {}
        for i in range(lo, hi):
            out.setdefault(keys[i], []).append(values[i])
        return out

    def relation_id(self, name: str) -> int:
        try:
            return self.relations.index(name)
        except ValueError:
            raise KeyError(f"no relation {name!r}; known: {', '.join(self.relations)}") from None

    # ------------------------------------------------------------------ adjacency
    def _relation_filter(self, relations) -> np.ndarray | None:
        if relations is None:
            return None
        ids = [self.relation_id(r) if isinstance(r, str) else int(r) for r in relations]
        return np.asarray(ids, dtype=np.int64)

    def neighbors(
        self, node: int | str, relations=None, direction: str = "both"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Neighbours of a node.

        Args:
            node: node id or name.
            relations: relation names or ids to keep (inverse ids select incoming edges);
                ``None`` keeps all.
            direction: ``out`` (edges leaving the node), ``in`` (edges arriving, reported with
                inverse relation ids) or ``both``.

        Returns:
            ``(nodes, relation_ids, weights)`` arrays of equal length.
        """
        if isinstance(node, str):
            node = self.node_id(node)
        node = int(node)
        if not 0 <= node < self.num_nodes:
            raise IndexError(f"node id {node} out of range 0..{self.num_nodes - 1}")
        parts = []
        if direction in ("out", "both"):
            lo, hi = self._a["out.indptr"][node : node + 2]
            parts.append(
                (
                    self._a["out.indices"][lo:hi],
                    self._a["out.type"][lo:hi],
                    self._a["out.weight"][lo:hi],
                )
            )
        if direction in ("in", "both"):
            lo, hi = self._a["in.indptr"][node : node + 2]
            parts.append(
                (
                    self._a["in.indices"][lo:hi],
                    self._a["in.type"][lo:hi] + self.num_relations,
                    self._a["in.weight"][lo:hi],
                )
            )
        if not parts:
            raise ValueError(f"direction must be 'out', 'in' or 'both', not {direction!r}")
        nodes = np.concatenate([p[0] for p in parts]).astype(np.int64)
        rels = np.concatenate([p[1] for p in parts]).astype(np.int64)
        weights = np.concatenate([p[2] for p in parts]).astype(np.float32)
        keep = self._relation_filter(relations)
        if keep is not None:
            mask = np.isin(rels, keep)
            nodes, rels, weights = nodes[mask], rels[mask], weights[mask]
        return nodes, rels, weights

    def degree(self, direction: str = "both") -> np.ndarray:
        out_deg = np.diff(self._a["out.indptr"])
        in_deg = np.diff(self._a["in.indptr"])
        return {"out": out_deg, "in": in_deg, "both": out_deg + in_deg}[direction]

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """All forward edges as ``(heads, relation_ids, tails, weights)``."""
        heads = np.repeat(np.arange(self.num_nodes, dtype=np.int64), np.diff(self._a["out.indptr"]))
        # Copies, not views: callers (torch.from_numpy) may write, and the arrays are mmapped.
        return (
            heads,
            np.array(self._a["out.type"], dtype=np.int64),
            np.array(self._a["out.indices"], dtype=np.int64),
            np.array(self._a["out.weight"], dtype=np.float32),
        )

    @property
    def csr(self) -> dict[str, np.ndarray]:
        """The raw CSR arrays (``out.*`` and ``in.*``), memory-mapped, for fast traversal."""
        return {k: v for k, v in self._a.items() if k.startswith(("out.", "in."))}

    # ------------------------------------------------------------------ conversion
    def to_pyg(self, with_inverse: bool = False) -> Data:
        """A ``torch_geometric.data.Data`` with ``edge_index`` [2, E], ``edge_type`` [E],
        ``edge_weight`` [E] and ``num_nodes``; ``with_inverse`` appends reversed edges typed
        with inverse relation ids."""
        import torch
        from torch_geometric.data import Data

        heads, rels, tails, weights = self.edges()
        if with_inverse:
            heads, tails = np.concatenate([heads, tails]), np.concatenate([tails, heads])
            rels = np.concatenate([rels, rels + self.num_relations])
            weights = np.concatenate([weights, weights])
        return Data(
            edge_index=torch.from_numpy(np.stack([heads, tails])),
            edge_type=torch.from_numpy(rels),
            edge_weight=torch.from_numpy(weights),
            num_nodes=self.num_nodes,
        )

    def to_networkx(self) -> nx.MultiDiGraph:
        """A ``networkx.MultiDiGraph``: node ``name``, edge ``relation`` and ``weight``."""
        import networkx as nx

        graph = nx.MultiDiGraph()
        graph.add_nodes_from((i, {"name": n}) for i, n in enumerate(self.names.to_list()))
        heads, rels, tails, weights = self.edges()
        names = self.relations
        graph.add_edges_from(
            (h, t, {"relation": names[r], "weight": w})
            for h, r, t, w in zip(
                heads.tolist(), rels.tolist(), tails.tolist(), weights.tolist(), strict=True
            )
        )
        return graph

    # ------------------------------------------------------------------ summary
    def info(self) -> dict[str, Any]:
        """Counts and degree statistics (what ``kelm graph info --json`` prints)."""
        _, rels, _, _ = self.edges()
        counts = np.bincount(rels, minlength=self.num_relations)
        deg = self.degree()
        stats = {}
        if deg.size:
            stats = {
                "min": int(deg.min()),
                "max": int(deg.max()),
                "mean": float(deg.mean()),
                "median": float(np.median(deg)),
                "isolated": int((deg == 0).sum()),
            }
        return {
            "path": str(self.path),
            "format": self.manifest.get("options", {}).get("format"),
            "nodes": self.num_nodes,
            "edges": self.num_edges,
            "relations": {n: int(c) for n, c in zip(self.relations, counts, strict=False)},
            "degree": stats,
            "aliases": int(self._a["aliases.node"].shape[0]),
            "checksum": self.checksum,
        }

    def __repr__(self) -> str:
        return (
            f"GraphIndex({str(self.path)!r}, nodes={self.num_nodes:,}, "
            f"edges={self.num_edges:,}, relations={self.num_relations})"
        )


def _rows_of(sorted_nodes: np.ndarray, node: int) -> tuple[int, int]:
    """The row range of ``node`` in a node-sorted table (aliases, attributes)."""
    lo = int(np.searchsorted(sorted_nodes, node, side="left"))
    hi = int(np.searchsorted(sorted_nodes, node, side="right"))
    return lo, hi


def _read_relations(file: Path) -> list[dict[str, Any]]:
    """The relation vocabulary: forward relations then as many inverses, each with a name."""
    try:
        relations = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexFormatError(f"{file}: unreadable relation vocabulary ({exc})") from None
    if (
        not isinstance(relations, list)
        or len(relations) % 2
        or not all(isinstance(r, dict) and isinstance(r.get("name"), str) for r in relations)
    ):
        raise IndexFormatError(f"{file}: not a relation vocabulary (corrupt index)")
    return relations


def content_checksum(file_checksums: dict[str, str]) -> str:
    """The index checksum: sha256 over the sorted ``name:sha256`` lines of its files."""
    lines = "".join(f"{k}:{v}\n" for k, v in sorted(file_checksums.items()))
    return hashlib.sha256(lines.encode()).hexdigest()
