"""What the page draws, as data: overlapping linked spans merged into one highlighted segment,
a subgraph as vis-network nodes and edges (kelm show's colours, highlighted paths, path nodes
the node cap left out), vis-network's script from pyvis's package data."""

from __future__ import annotations

import numpy as np
import pytest

from kelm.explore.views import graph_json, highlighted, subgraph_data, vis_network_script
from kelm.retrieval.subgraph import Subgraph


def test_overlapping_spans_merge_into_one_segment() -> None:
    text = "a hot dog stand"
    spans = [
        {"start": 2, "end": 9, "names": ["hot_dog"]},
        {"start": 6, "end": 9, "names": ["dog"]},
        {"start": 6, "end": 15, "names": ["dog_stand", "dog"]},
    ]
    assert highlighted(text, spans) == [
        ("a ", None),
        ("hot dog stand", "hot_dog; dog_stand; dog"),
    ]
    assert highlighted("no links", []) == [("no links", None)]
    many = [{"start": 0, "end": 3, "names": [f"n{i}" for i in range(8)]}]
    assert highlighted("dog", many) == [("dog", "n0; n1; n2; n3; n4; n5 ...")]


def test_subgraph_data() -> None:
    names = ["dog", "animal", "zoo", "house"]
    relations = ["isa", "atlocation", "~isa", "~atlocation"]
    sub = Subgraph(
        node_ids=np.array([0, 3, 1]),
        node_type=np.array([0, 1, 2], dtype=np.int8),
        node_score=np.zeros(3, np.float32),
        edge_index=np.array([[0, 0], [1, 2]]),
        edge_type=np.array([1, 0]),
    )
    # the second path runs through zoo, which the node cap left out
    paths = [([0, 3], [[1]]), ([0, 2, 3], [[1], [3]])]
    data = subgraph_data(sub, paths, names, relations, hot=[1])
    nodes = {n["label"]: n for n in data["nodes"]}
    assert set(nodes) == {"dog", "house", "animal", "zoo"}
    assert (nodes["dog"]["color"], nodes["dog"]["level"]) == ("#4C72B0", 0)
    assert (nodes["house"]["color"], nodes["house"]["level"]) == ("#DD8452", 2)
    assert nodes["zoo"]["group"] == "intermediate"
    hot = {(e["from"], e["to"]) for e in data["edges"] if e["width"] > 1}
    assert hot == {(0, 2), (2, 3)}  # dog -> zoo, and house -> zoo drawn as stored (~atlocation)
    labels = {(e["from"], e["to"]): e["label"] for e in data["edges"]}
    assert labels[(0, 3)] == "atlocation" and labels[(0, 1)] == "isa"
    assert subgraph_data(sub, paths, names, relations, hot=[7])["nodes"] == data["nodes"][:3]
    assert '"message": "none"' in graph_json(None, "none")


def test_vis_network_comes_from_pyvis() -> None:
    pytest.importorskip("pyvis", reason="kelm explore needs pyvis (the explore extra)")
    script = vis_network_script()
    assert len(script) > 100_000 and "vis-network" in script[:2000]
