"""Export a graph index to GraphML or a TSV edge list."""

from __future__ import annotations

from pathlib import Path

from kelm._io import atomic_file
from kelm.errors import KelmError
from kelm.graph.index import GraphIndex

EXPORT_FORMATS = ("graphml", "edgelist")


def export_index(index: str | Path, to: str, out: str | Path | None = None) -> Path:
    """Write ``index`` as ``graphml`` or ``edgelist`` (``head<TAB>relation<TAB>tail<TAB>weight``)
    to ``out`` (default: ``<index>/../<name>.<ext>``). Returns the written path."""
    if to not in EXPORT_FORMATS:
        raise KelmError(f"unknown export format {to!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    graph = GraphIndex.load(index)
    ext = {"graphml": "graphml", "edgelist": "tsv"}[to]
    out = Path(out) if out else Path(index).with_suffix(f".{ext}")
    if to == "graphml":
        import networkx as nx

        nxg = graph.to_networkx()
        for _, _, key in nxg.edges(keys=True):  # GraphML keys must be strings
            del key
        with atomic_file(out, "wb") as fh:
            nx.write_graphml(nxg, fh)
    else:
        names = graph.names.to_list()
        relations = graph.relations
        heads, rels, tails, weights = graph.edges()
        with atomic_file(out, "w", encoding="utf-8") as fh:
            for h, r, t, w in zip(
                heads.tolist(), rels.tolist(), tails.tolist(), weights.tolist(), strict=True
            ):
                fh.write(f"{names[h]}\t{relations[r]}\t{names[t]}\t{w:g}\n")
    return out
