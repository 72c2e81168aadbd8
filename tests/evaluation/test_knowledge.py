"""Facts for causal-LM prompts (:mod:`kelm.evaluation.knowledge`): path ranking on a tiny graph
against a networkx reference, the relation a hop is stated by, fact selection (triples vs
paths, distinct, at most N), and grounding + ranking of a QA file with its cache."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from evaluation_fixtures import index_of_edges

from kelm.data.qa import read_qa
from kelm.errors import KelmError
from kelm.evaluation import knowledge as knowledge_module
from kelm.evaluation.knowledge import (
    CANDIDATES,
    Fact,
    KnowledgeOptions,
    hop_relation,
    load_knowledge_graph,
    question_facts,
    rank_question,
    retrieve_facts,
    select_facts,
)
from kelm.graph.build import build_index
from kelm.graph.index import GraphIndex
from kelm.graph.sources.base import BuildOptions
from kelm.retrieval.paths import reference_paths
from kelm.retrieval.subgraph import Adjacency, networkx_graph

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# lantern -> house directly, through "light" (a specific node) and through "person" (a hub);
# sale -> shop -> antique shop; "person" has many other neighbours.
EDGES = [
    ("lantern", "AtLocation", "house"),
    ("lantern", "UsedFor", "light"),
    ("light", "AtLocation", "house"),
    ("person", "Desires", "lantern"),
    ("person", "AtLocation", "house"),
    ("sale", "RelatedTo", "shop"),
    ("sale", "AtLocation", "shop"),
    ("antique shop", "IsA", "shop"),
    ("dark place", "HasProperty", "dark"),
    *[("person", "CapableOf", f"act {i}") for i in range(8)],
]


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> GraphIndex:
    return index_of_edges(tmp_path_factory.mktemp("kg"), EDGES)


def ids(graph: GraphIndex, *names: str) -> list[int]:
    return sorted(graph.node_id(n) for n in names)


def rank(graph: GraphIndex, per_choice, hops: int = 2, limit: int = CANDIDATES) -> list[Fact]:
    adjacency = Adjacency.from_index(graph)
    named = [(label, ids(graph, *q), ids(graph, *a)) for label, q, a in per_choice]
    return rank_question(
        named, adjacency, graph.names.to_list(), graph.relations, hops, limit=limit
    )


# ---------------------------------------------------------------------------------- ranking
def test_paths_rank_by_hops_then_specific_inner_nodes(graph: GraphIndex) -> None:
    facts = rank(graph, [("A", ["lantern", "sale"], ["house"]), ("B", ["lantern"], ["shop"])])
    seqs = [f.nodes for f in facts]
    assert seqs[0] == ["lantern", "house"] and facts[0].choice == "A"
    # one hop before two; through "light" (degree 2) before through "person" (degree 10)
    assert seqs.index(["lantern", "light", "house"]) < seqs.index(["lantern", "person", "house"])
    assert all(len(a.nodes) <= len(b.nodes) for a, b in zip(facts, facts[1:], strict=False))
    assert facts[0].key[0] == 1.0 and facts[-1].key[0] == 2.0
    # the path "lantern person house" reads person -> lantern against its edge
    hub = facts[seqs.index(["lantern", "person", "house"])]
    assert hub.relations == ["~Desires", "AtLocation"]
    assert hub.sentence() == ("Person wants lantern. You are likely to find person in house.")


def test_ranking_matches_a_networkx_reference(graph: GraphIndex) -> None:
    per_choice = [
        ("A", ["lantern", "sale", "dark"], ["house"]),
        ("B", ["lantern", "sale"], ["antique shop", "shop"]),
        ("C", ["lantern"], ["dark place"]),
    ]
    facts = rank(graph, per_choice, hops=3)
    nx_graph = networkx_graph(graph)
    degree = graph.degree()
    expected = []
    for order, (_, q, a) in enumerate(per_choice):
        found = reference_paths(nx_graph, ids(graph, *q), ids(graph, *a), hops=3)
        for k, (nodes, _) in enumerate(found):
            logs = [math.log1p(degree[n]) for n in nodes]
            key = (len(nodes) - 1, sum(logs[1:-1]), logs[0] + logs[-1], order, k)
            expected.append((key, [graph.node_name(n) for n in nodes]))
    expected.sort(key=lambda row: row[0])
    unique = []
    for _, nodes in expected:
        if nodes not in unique:
            unique.append(nodes)
    assert [f.nodes for f in facts] == unique
    assert not any(f.choice == "C" for f in facts)  # no path reaches "dark place"
    assert len(rank(graph, per_choice, hops=3, limit=2)) == 2


def test_hop_relation_prefers_forward_specific_relations(graph: GraphIndex) -> None:
    rels, r = graph.relations, graph.num_relations
    at, related = graph.relation_id("AtLocation"), graph.relation_id("RelatedTo")
    assert hop_relation([at, related], rels, r) == "AtLocation"
    assert hop_relation([related, at + r], rels, r) == "RelatedTo"
    assert hop_relation([at + r, related + r], rels, r) == "~AtLocation"
    facts = rank(graph, [("A", ["sale"], ["shop"])], hops=1)
    assert [f.sentence() for f in facts] == ["You are likely to find sale in shop."]


# ---------------------------------------------------------------------------------- selection
def test_select_facts_triples_and_paths() -> None:
    a = Fact("A", ["lantern", "light", "house"], ["UsedFor", "AtLocation"])
    b = Fact("A", ["lantern", "house"], ["AtLocation"])
    c = Fact("B", ["house", "light", "lantern"], ["~AtLocation", "~UsedFor"])  # a reversed
    d = Fact("B", ["sale", "shop"], ["RelatedTo"])
    ranked = [a, b, c, d]
    assert select_facts(ranked, 10, "triples") == [
        "Lantern is used for light.",
        "You are likely to find light in house.",
        "You are likely to find lantern in house.",
        "Sale is related to shop.",
    ]
    assert select_facts(ranked, 2, "triples") == select_facts(ranked, 10, "triples")[:2]
    assert select_facts(ranked, 10, "paths") == [
        "Lantern is used for light. You are likely to find light in house.",
        "You are likely to find lantern in house.",
        "You are likely to find light in house. Lantern is used for light.",
        "Sale is related to shop.",
    ]
    assert select_facts(ranked, 1, "paths") == [a.sentence()]
    assert select_facts(ranked, 0, "triples") == [] and select_facts([], 5, "paths") == []
    both = question_facts({"q1": ranked, "q2": []}, KnowledgeOptions(facts=3, form="triples"))
    assert both == {"q1": select_facts(ranked, 3, "triples"), "q2": []}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (KnowledgeOptions(facts=-1), "--facts"),
        (KnowledgeOptions(form="graphs"), "--knowledge-form"),
        (KnowledgeOptions(position="middle"), "--facts-position"),
        (KnowledgeOptions(hops=0), "--fact-hops"),
        (KnowledgeOptions(hops=4), "--fact-hops"),
    ],
)
def test_option_errors(options: KnowledgeOptions, message: str) -> None:
    with pytest.raises(KelmError, match=message):
        options.validate()


# ---------------------------------------------------------------------------------- retrieval
def test_retrieve_facts_grounds_ranks_and_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("spacy", reason="grounding needs spaCy")
    out = tmp_path / "tiny"
    build_index(
        [FIXTURES / "linking" / "tiny.tsv"], out, BuildOptions(format="tsv"), progress=False
    )
    items = read_qa(FIXTURES / "qa" / "csqa_original.jsonl")
    cache = tmp_path / "cache"
    facts = retrieve_facts(out, items, 2, cache_dir=cache)
    assert list(facts) == [i.id for i in items]
    labels = {i.id: {c.label for c in i.choices} for i in items}
    assert any(facts.values())
    for item_id, ranked in facts.items():
        assert all(f.choice in labels[item_id] for f in ranked)
        keys = [tuple(f.key) for f in ranked]
        assert keys == sorted(keys, key=lambda k: k[0])  # fewer hops first
        assert all(1 <= len(f.relations) <= 2 for f in ranked)
    # "sale RelatedTo shop" links the lantern question to its choice "antique shop"
    assert "Sale is related to shop." in select_facts(facts["q1"], 10, "triples")
    assert len(list(cache.glob("facts-*.json"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("the cached facts were not reused")

    monkeypatch.setattr(knowledge_module, "rank_question", fail)
    again = retrieve_facts(out, items, 2, cache_dir=cache)
    assert again == facts
    with pytest.raises(AssertionError, match="not reused"):
        retrieve_facts(out, items, 1, cache_dir=cache)  # another key
    monkeypatch.undo()
    # a damaged cache file is computed again
    (damaged,) = cache.glob("facts-*.json")
    damaged.write_text("{not json", encoding="utf-8")
    assert retrieve_facts(out, items, 2, cache_dir=cache) == facts


def test_load_knowledge_graph_errors(tmp_path: Path) -> None:
    with pytest.raises(KelmError, match="no such graph index"):
        load_knowledge_graph(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(KelmError, match="not a directory"):
        load_knowledge_graph(tmp_path / "file")
    with pytest.raises(KelmError):
        load_knowledge_graph(tmp_path)
