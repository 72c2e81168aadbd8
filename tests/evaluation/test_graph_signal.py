"""Question classes by the graph's direct edges (kelm.evaluation.graph_signal), checked
against a naive reference over the graph's edge list, and accuracy by class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evaluation_fixtures import index_of_edges

from kelm.data.qa import Choice, QAItem
from kelm.errors import InputError
from kelm.evaluation.graph_signal import (
    CLASSES,
    accuracy_by_class,
    link_classes,
    linking_relations,
    question_class,
    read_correct,
    read_grounded,
)
from kelm.graph.index import GraphIndex

EDGES = [
    ("dog", "IsA", "animal"),
    ("dog", "AtLocation", "house"),
    ("cat", "AtLocation", "house"),
    ("cat", "IsA", "pet"),
    ("bird", "CapableOf", "fly"),
    ("plane", "CapableOf", "fly"),
    ("kennel", "AtLocation", "dog"),  # into a question concept: an inverse relation
]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> GraphIndex:
    return index_of_edges(tmp_path_factory.mktemp("signal"), EDGES)


def reference(index: GraphIndex, qs: list[str], answers: list[str]) -> frozenset[int]:
    """Every edge of the list whose ends are a question and an answer concept."""
    found = set()
    for h, r, t in EDGES:
        if h in qs and t in answers:
            found.add(index.relation_id(r))
        if t in qs and h in answers:
            found.add(index.relation_id(r) + index.num_relations)
    return frozenset(found)


@pytest.mark.parametrize(
    ("qs", "answers"),
    [
        (["dog"], ["animal", "house"]),
        (["dog", "cat"], ["house"]),
        (["dog"], ["kennel"]),
        (["dog"], ["fly"]),
        (["bird", "plane"], ["fly", "pet"]),
        (["cat"], []),
    ],
)
def test_linking_relations_match_the_edge_list(index, qs, answers) -> None:
    got = linking_relations(index, index.node_ids(qs).tolist(), index.node_ids(answers).tolist())
    assert got == reference(index, qs, answers)


def test_question_class_rules() -> None:
    a, b = frozenset({1}), frozenset({2})
    assert question_class(a, [frozenset(), frozenset()]) == "only the gold linked"
    assert question_class(a, [b, frozenset()]) == "gold and another, other relations"
    assert question_class(a | b, [b]) == "gold and another, a shared relation"
    assert question_class(frozenset(), [frozenset(), a]) == "only others linked"
    assert question_class(frozenset(), [frozenset()]) == "no choice linked"


def _item(qid: str, answer: str, labels: str = "ABC") -> QAItem:
    return QAItem(qid, "q?", [Choice(c, c.lower()) for c in labels], answer)


def test_link_classes_and_accuracy(index, tmp_path: Path) -> None:
    ids = {n: int(index.node_id(n)) for n in ("dog", "cat", "animal", "house", "pet", "fly")}
    rows = [  # (question id, choice, question concepts, answer concepts)
        ("q1", "A", ["dog"], ["animal"]),
        ("q1", "B", ["dog"], ["fly"]),
        ("q1", "C", ["dog"], []),
        ("q2", "A", ["cat"], ["house"]),
        ("q2", "B", ["dog"], ["house"]),
        ("q2", "C", ["cat"], ["fly"]),
        ("q3", "A", ["cat"], ["animal"]),
        ("q3", "B", ["cat"], ["pet"]),
        ("q3", "C", ["cat"], ["fly"]),
    ]
    grounded = tmp_path / "g.jsonl"
    grounded.write_text(
        "".join(
            json.dumps(
                {
                    "id": q,
                    "choice": c,
                    "question_concepts": [ids[n] for n in qc],
                    "answer_concepts": [ids[n] for n in ac],
                }
            )
            + "\n"
            for q, c, qc, ac in rows
        ),
        encoding="utf-8",
    )
    items = [_item("q1", "A"), _item("q2", "B"), _item("q3", "A"), _item("q4", None)]
    with pytest.raises(InputError, match="q4"):  # an answered question must be grounded
        link_classes(index, [*items[:3], _item("q4", "A")], read_grounded(grounded))
    classes = link_classes(index, items, read_grounded(grounded))
    assert classes == {
        "q1": "only the gold linked",
        "q2": "gold and another, a shared relation",  # both AtLocation house
        "q3": "only others linked",  # cat IsA pet, not animal
    }
    run = tmp_path / "run"
    run.mkdir()
    lines = [{"id": "q1", "correct": True}, {"id": "q2", "correct": False}]
    lines.append({"id": "q3", "correct": True})
    (run / "predictions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    by_class = accuracy_by_class(classes, read_correct(run))
    assert list(by_class) == [c for c in CLASSES if c in by_class]
    assert by_class == {
        "only the gold linked": {"questions": 1, "accuracy": 1.0},
        "gold and another, a shared relation": {"questions": 1, "accuracy": 0.0},
        "only others linked": {"questions": 1, "accuracy": 1.0},
    }
    with pytest.raises(InputError, match="no class"):
        accuracy_by_class({"q1": CLASSES[0]}, read_correct(run))


def test_malformed_lines_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "g.jsonl"
    bad.write_text('{"id": "q1", "choice": "A", "question_concepts": [], "answer_concepts": []}\n{')
    with pytest.raises(InputError, match=r"g\.jsonl:2"):
        read_grounded(bad)
    (tmp_path / "predictions.jsonl").write_text('{"id": "q1"}\n')
    with pytest.raises(InputError, match=r"predictions\.jsonl:1"):
        read_correct(tmp_path)
