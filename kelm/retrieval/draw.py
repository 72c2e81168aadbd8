"""Pictures of retrieval results: a statement's retrieved subgraph and its best paths
(``kelm show``), drawn with matplotlib's Agg backend (no display).

matplotlib is imported inside each function, so importing this module is cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


#: Node colours by node type (question, answer, intermediate, context).
NODE_COLOURS = {0: "#4C72B0", 1: "#DD8452", 2: "#BBBBBB", 3: "#55A868"}
NODE_KINDS = {0: "question concept", 1: "answer concept", 2: "intermediate", 3: "context"}


def draw_subgraph(
    sub: Any,
    paths: Any,
    node_names: Any,
    relation_names: list[str],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    highlight: int = 3,
) -> Path:
    """Draw one statement's retrieved subgraph into a PNG, written atomically.

    Question concepts sit on the left, answer concepts on the right and intermediate nodes in
    between; edges carry their relation names, and the ``highlight`` best paths (by KagNet score
    when scored, else the shortest in canonical order) are drawn thick in red.

    Args:
        sub: a :class:`kelm.retrieval.subgraph.Subgraph`.
        paths: its :class:`kelm.retrieval.paths.PathSet`.
        node_names: node name lookup by graph node id (``GraphIndex.names``).
        relation_names: relation names by id (``GraphIndex.relations``).
        path: the PNG file.
        title: figure title (e.g. the statement).
        highlight: how many paths to highlight.
    """
    import networkx as nx
    import numpy as np

    from kelm._io import atomic_file

    plt = _pyplot()
    path = Path(path)
    ids = sub.node_ids.tolist()
    kinds = sub.node_type.tolist()
    labels = {i: ("[context]" if ids[i] < 0 else node_names[ids[i]]) for i in range(len(ids))}
    graph = nx.Graph()
    graph.add_nodes_from(range(len(ids)))
    edge_rels: dict[tuple[int, int], set[str]] = {}
    for (u, v), r in zip(sub.edge_index.T.tolist(), sub.edge_type.tolist(), strict=True):
        if u == v:
            continue
        name = relation_names[r] if r < len(relation_names) else "context"
        edge_rels.setdefault((min(u, v), max(u, v)), set()).add(name)
    graph.add_edges_from(edge_rels)
    pos = _layered_positions(kinds)

    # The paths to highlight, as local node positions.
    local = {n: i for i, n in enumerate(ids)}
    order = np.arange(len(paths))
    if getattr(paths, "score", None) is not None and len(paths):
        order = np.argsort(-np.nan_to_num(paths.score, nan=-1.0), kind="stable")
    else:
        order = np.argsort(paths.length, kind="stable") if len(paths) else order
    hot: set[tuple[int, int]] = set()
    for nodes, _ in [paths.to_list()[i] for i in order[:highlight].tolist()]:
        if all(n in local for n in nodes):
            steps = [local[n] for n in nodes]
            hot |= {(min(a, b), max(a, b)) for a, b in zip(steps, steps[1:], strict=False)}
            graph.add_edges_from(zip(steps, steps[1:], strict=False))

    width = max(8.0, 2.2 * max(1, sum(1 for k in kinds if k == 2)) ** 0.5 + 6)
    fig, ax = plt.subplots(figsize=(width, max(6.0, 0.45 * len(ids) + 2)))
    try:
        cold_edges = [e for e in graph.edges if (min(e), max(e)) not in hot]
        nx.draw_networkx_edges(
            graph, pos, edgelist=cold_edges, ax=ax, edge_color="#999999", width=0.8, alpha=0.7
        )
        nx.draw_networkx_edges(
            graph, pos, edgelist=sorted(hot), ax=ax, edge_color="#C44E52", width=3.0
        )
        nx.draw_networkx_nodes(
            graph,
            pos,
            ax=ax,
            node_size=500,
            node_color=[NODE_COLOURS.get(k, "#BBBBBB") for k in kinds],
        )
        nx.draw_networkx_labels(graph, pos, labels=labels, ax=ax, font_size=9)
        nx.draw_networkx_edge_labels(
            graph,
            pos,
            ax=ax,
            font_size=7,
            rotate=False,
            edge_labels={e: ", ".join(sorted(r))[:40] for e, r in edge_rels.items()},
        )
        handles = [
            plt.Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markersize=10,
                color=NODE_COLOURS[k],
                label=NODE_KINDS[k],
            )
            for k in sorted(set(kinds))
        ]
        handles.append(
            plt.Line2D(
                [],
                [],
                color="#C44E52",
                linewidth=3,
                label=f"top {min(highlight, len(paths))} paths",
            )
        )
        ax.legend(
            handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=5, frameon=False
        )
        ax.set_title(title, fontsize=11)
        ax.axis("off")
        fig.tight_layout()
        with atomic_file(path, "wb") as fh:
            fig.savefig(fh, format="png", dpi=110)
    finally:
        plt.close(fig)
    return path


def _layered_positions(kinds: list[int]) -> dict[int, tuple[float, float]]:
    """Question concepts at x=0, intermediates (and context) in the middle, answers at x=2."""
    columns: dict[float, list[int]] = {}
    for i, kind in enumerate(kinds):
        x = {0: 0.0, 1: 2.0, 3: 1.0}.get(kind, 1.0)
        columns.setdefault(x, []).append(i)
    pos = {}
    for x, members in columns.items():
        n = len(members)
        for j, i in enumerate(members):
            # intermediates zig-zag a little so their labels do not overlap
            jitter = 0.18 * ((j % 3) - 1) if x == 1.0 else 0.0
            pos[i] = (x + jitter, (n - 1) / 2 - j)
    return pos


def show_statement(
    graph: str | os.PathLike[str],
    question: str,
    choice: str,
    out: str | os.PathLike[str],
    *,
    max_nodes: int = 30,
    hops: int = 2,
    paths: int = 20,
    kge: str | os.PathLike[str] | None = None,
    highlight: int = 3,
) -> Path:
    """Ground ``question`` + ``choice`` in ``graph``, retrieve its subgraph and paths, and
    draw them (what ``kelm show`` does). Nodes are capped at ``max_nodes`` by degree order.

    Raises:
        KelmError: an empty question or choice, settings out of range (``kelm retrieve``'s
            limits), an ``out`` kelm cannot write, nothing to draw.
    """
    from kelm._io import check_output_file
    from kelm.errors import KelmError
    from kelm.graph.index import GraphIndex
    from kelm.linking.ground import StatementLinker
    from kelm.retrieval.retrieve import RetrieveOptions, Retriever

    if not question.strip() or not choice.strip():
        raise KelmError("--question and --choice must both be non-empty")
    # the same limits as `kelm retrieve` (--hops at most MAX_HOPS)
    RetrieveOptions(max_nodes=max_nodes, hops=hops, paths=paths, scorer="none").validate()
    if highlight < 0:
        raise KelmError(f"--highlight must be 0 or more, not {highlight}")
    check_output_file(out)
    index = GraphIndex.load(graph)
    grounding = StatementLinker(index).ground([(question, choice)])[0]
    if not grounding.question_concepts and not grounding.answer_concepts:
        raise KelmError("no graph concept found in the question or the choice: nothing to draw")
    entity = relation = None
    if kge is not None:
        from kelm.kge.store import load_embeddings

        emb = load_embeddings(kge, index)
        entity, relation = emb.entity.numpy(), emb.relation.numpy()
    retriever = Retriever(
        index,
        max_nodes=max_nodes,
        hops=hops,
        max_paths=paths,
        entity_emb=entity,
        relation_emb=relation,
    )
    sub, found = retriever(
        grounding.question_concepts, grounding.answer_concepts, statement=f"{question} {choice}"
    )
    title = f"{question}  ->  {choice}"
    return draw_subgraph(
        sub, found, index.names, index.relations, out, title=title, highlight=highlight
    )


__all__ = ["draw_subgraph", "show_statement"]
