"""What the explorer page draws, as plain data: a retrieved subgraph as vis-network nodes and
edges (JSON), linked spans as highlighted-text segments, a node's neighbours by relation.

Layout is vis-network's (its hierarchical layout, left to right: question concepts, then
intermediate nodes, then answer concepts); nothing here places a node. vis-network's script is
the copy the ``pyvis`` package ships, read from its package data and inlined into the page, so
the page needs no network.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from kelm.errors import KelmError
from kelm.retrieval.draw import NODE_COLOURS, NODE_KINDS  # the colours of `kelm show`

HOT_EDGE = "#C44E52"
_LEVELS = {0: 0, 2: 1, 3: 1, 1: 2}  # columns of the hierarchical layout

#: vis-network options: hierarchical left-to-right with its own node placement, and physics
#: off once placed, so the graph stays still while a user drags a node.
GRAPH_OPTIONS: dict[str, Any] = {
    "layout": {
        "hierarchical": {
            "enabled": True,
            "direction": "LR",
            "sortMethod": "directed",
            "levelSeparation": 260,
            "nodeSpacing": 90,
        }
    },
    "physics": False,
    "interaction": {"hover": True, "navigationButtons": False, "zoomView": True},
    "edges": {"arrows": {"to": {"enabled": True, "scaleFactor": 0.5}}, "font": {"size": 11}},
    "nodes": {"shape": "dot", "size": 14, "font": {"size": 14}},
}


def subgraph_data(
    sub: Any,
    paths: list[tuple[list[int], list[list[int]]]],
    names: Any,
    relations: list[str],
    *,
    hot: list[int],
) -> dict[str, Any]:
    """vis-network ``{"nodes", "edges", "options"}`` of one statement's subgraph.

    Args:
        sub: a :class:`kelm.retrieval.subgraph.Subgraph`.
        paths: its paths (``PathSet.to_list()``).
        names: node names by id.
        relations: relation names by id (forward, then inverse).
        hot: indices into ``paths`` of the paths drawn highlighted (their nodes are added when
            the node cap left them out).
    """
    ids = [int(i) for i in sub.node_ids.tolist()]
    kinds = [int(k) for k in sub.node_type.tolist()]
    nodes: dict[int, dict[str, Any]] = {}
    for node, kind in zip(ids, kinds, strict=True):
        key = node if node >= 0 else -1
        label = "[context]" if node < 0 else str(names[node])
        nodes[key] = _node(key, label, kind)
    edges: dict[tuple[int, int], set[str]] = {}
    for (u, v), r in zip(sub.edge_index.T.tolist(), sub.edge_type.tolist(), strict=True):
        a, b = ids[u], ids[v]
        if a == b:
            continue
        edges.setdefault((a, b), set()).add(relations[r] if r < len(relations) else "context")
    hot_edges: set[tuple[int, int]] = set()
    for index in hot:
        if not 0 <= index < len(paths):
            continue
        path_nodes, path_rels = paths[index]
        for node in path_nodes:
            if node not in nodes:
                nodes[node] = _node(node, str(names[node]), 2)
        for a, b, hop in zip(path_nodes, path_nodes[1:], path_rels, strict=False):
            label = {relations[r] for r in hop if r < len(relations)}
            if (b, a) in edges:  # shown as the stored edge, whichever way it points
                a, b = b, a
            edges.setdefault((a, b), set()).update(label)
            hot_edges.add((a, b))
    return {
        "nodes": list(nodes.values()),
        "edges": [
            {
                "from": a,
                "to": b,
                "label": ", ".join(sorted(rels))[:40],
                "color": {"color": HOT_EDGE if (a, b) in hot_edges else "#999999"},
                "width": 4 if (a, b) in hot_edges else 1,
            }
            for (a, b), rels in edges.items()
        ],
        "options": GRAPH_OPTIONS,
    }


def _node(key: int, label: str, kind: int) -> dict[str, Any]:
    return {
        "id": key,
        "label": label,
        "title": f"{label} ({NODE_KINDS.get(kind, 'node')})",
        "color": NODE_COLOURS.get(kind, "#BBBBBB"),
        "level": _LEVELS.get(kind, 1),
        "group": NODE_KINDS.get(kind, "node"),
    }


def graph_json(data: dict[str, Any] | None, message: str = "") -> str:
    """The value of the page's graph block: the graph's JSON, or a message in its place."""
    return json.dumps(data if data is not None else {"nodes": [], "edges": [], "message": message})


def highlighted(text: str, spans: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """``gr.HighlightedText`` segments: overlapping spans (concept mode keeps every n-gram match)
    merge into one segment labelled with all their nodes; text between spans has no label."""
    merged: list[list[Any]] = []
    for span in sorted(spans, key=lambda s: (s["start"], -s["end"])):
        names = list(span["names"])
        if merged and span["start"] < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], span["end"])
            merged[-1][2].extend(n for n in names if n not in merged[-1][2])
        else:
            merged.append([span["start"], span["end"], names])
    segments: list[tuple[str, str | None]] = []
    at = 0
    for start, end, names in merged:
        if start > at:
            segments.append((text[at:start], None))
        segments.append(
            (text[start:end], "; ".join(names[:6]) + (" ..." if len(names) > 6 else ""))
        )
        at = end
    if at < len(text):
        segments.append((text[at:], None))
    return segments


@lru_cache(maxsize=1)
def vis_network_script() -> str:
    """vis-network's minified script, from the ``pyvis`` package's data (no download).

    Raises:
        KelmError: pyvis is not installed.
    """
    from importlib import resources

    try:
        lib = resources.files("pyvis") / "lib"
    except ModuleNotFoundError:
        raise KelmError(
            "kelm explore needs the explore extra: pip install 'kelm[explore]' (pyvis)"
        ) from None
    versions = sorted(
        (p for p in lib.iterdir() if p.name.startswith("vis-")),
        key=lambda p: tuple(int(x) for x in p.name[4:].split(".") if x.isdigit()),
    )
    if not versions:
        raise KelmError("pyvis ships no vis-network script (lib/vis-*/vis-network.min.js)")
    return (versions[-1] / "vis-network.min.js").read_text(encoding="utf-8")


__all__ = [
    "GRAPH_OPTIONS",
    "NODE_COLOURS",
    "NODE_KINDS",
    "graph_json",
    "highlighted",
    "subgraph_data",
    "vis_network_script",
]
