"""What the graph says about a question's choices, and a model's accuracy by it.

A knowledge model can only gain where the graph tells the choices apart. The simplest thing a
graph says about a statement is whether a direct edge joins one of its question concepts and
one of its answer concepts, and by which relations. Each question falls in one class:

- ``only the gold linked``: the correct choice has such an edge, no other choice does (edge
  presence alone picks the answer);
- ``gold and another, other relations``: the correct choice and another one are linked, the
  other by none of the correct choice's relations;
- ``gold and another, a shared relation``: another choice is linked by a relation the correct
  one has too (the graph's first hop cannot tell them apart);
- ``only others linked``: some other choice is linked, the correct one is not (edge presence
  points away from the answer);
- ``no choice linked``.

CommonsenseQA builds its choices from ConceptNet: a question concept and several of its
neighbours by one relation, so on the full ConceptNet the shared-relation class is the rule; a
sample of it such as CN-100K drops edges at random, which moves questions into the other
classes. :func:`accuracy_by_class` shows where a model gains and loses against its baseline.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kelm.errors import InputError

if TYPE_CHECKING:
    from kelm.data.qa import QAItem
    from kelm.graph.index import GraphIndex

CLASSES = (
    "only the gold linked",
    "gold and another, other relations",
    "gold and another, a shared relation",
    "only others linked",
    "no choice linked",
)


def linking_relations(
    index: GraphIndex, question_concepts: Iterable[int], answer_concepts: Iterable[int]
) -> frozenset[int]:
    """Relation ids of the direct edges between a question concept and an answer concept
    (an edge from the answer to the question counts with its inverse id, as
    :meth:`GraphIndex.neighbors` gives it)."""
    answers = list(answer_concepts)
    found: set[int] = set()
    if not answers:
        return frozenset()
    for q in question_concepts:
        nodes, relations, _ = index.neighbors(int(q))
        hit = [r for n, r in zip(nodes.tolist(), relations.tolist(), strict=True) if n in answers]
        found.update(hit)
    return frozenset(found)


def question_class(gold: frozenset[int], others: Sequence[frozenset[int]]) -> str:
    """The class (:data:`CLASSES`) of a question whose correct choice is linked by ``gold``
    and whose other choices by ``others``."""
    if not gold:
        return "only others linked" if any(others) else "no choice linked"
    if not any(others):
        return "only the gold linked"
    if any(o & gold for o in others):
        return "gold and another, a shared relation"
    return "gold and another, other relations"


def read_grounded(path: str | Path) -> dict[tuple[str, str], tuple[list[int], list[int]]]:
    """``(question id, choice label) -> (question concepts, answer concepts)`` of a grounded
    JSONL file (``kelm ground``)."""
    rows: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            try:
                d = json.loads(line)
                rows[d["id"], d["choice"]] = (d["question_concepts"], d["answer_concepts"])
            except (ValueError, KeyError, TypeError):
                raise InputError(f"{path}:{number}: not a grounded statement line") from None
    return rows


def link_classes(
    index: GraphIndex,
    items: Sequence[QAItem],
    grounded: Mapping[tuple[str, str], tuple[list[int], list[int]]],
) -> dict[str, str]:
    """``question id -> class`` for every item with an answer key.

    Raises:
        InputError: a statement of ``items`` is not in ``grounded``.
    """
    classes: dict[str, str] = {}
    for item in items:
        if item.answer is None:
            continue
        links = {}
        for choice in item.choices:
            key = (item.id, choice.label)
            if key not in grounded:
                raise InputError(f"question {item.id!r}, choice {choice.label}: not grounded")
            links[choice.label] = linking_relations(index, *grounded[key])
        others = [r for label, r in links.items() if label != item.answer]
        classes[item.id] = question_class(links[item.answer], others)
    return classes


def read_correct(run_dir: str | Path) -> dict[str, bool]:
    """``question id -> correct`` from a run's ``predictions.jsonl``."""
    path = Path(run_dir) / "predictions.jsonl"
    correct = {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            try:
                d = json.loads(line)
                correct[str(d["id"])] = bool(d["correct"])
            except (ValueError, KeyError, TypeError):
                raise InputError(f"{path}:{number}: not a prediction line") from None
    return correct


def accuracy_by_class(
    classes: Mapping[str, str], correct: Mapping[str, bool]
) -> dict[str, dict[str, Any]]:
    """``class -> {"questions", "accuracy"}`` over the questions of ``correct`` (a class
    without a question is left out; a question without a class is an error)."""
    missing = [q for q in correct if q not in classes]
    if missing:
        raise InputError(f"{len(missing)} predicted questions have no class (e.g. {missing[0]!r})")
    n = Counter(classes[q] for q in correct)
    right = Counter(classes[q] for q, ok in correct.items() if ok)
    return {c: {"questions": n[c], "accuracy": right[c] / n[c]} for c in CLASSES if n[c]}
