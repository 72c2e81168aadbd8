"""The knowledge-necessary task generator: only the graph answers, test heads are unseen, one
seed gives one task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kelm.data.qa import read_qa
from kelm.data.synthetic import ISA, TEMPLATES, SyntheticTaskConfig, make_task, write_task
from kelm.errors import KelmError


def head_of(stem: str) -> str:
    return stem.split(" a ", 1)[1].split()[0].rstrip("?")


@pytest.mark.parametrize("hops", [1, 2])
def test_only_the_graph_answers(hops: int) -> None:
    cfg = SyntheticTaskConfig(hops=hops, train_questions=80, test_questions=20, seed=3)
    task = make_task(cfg)
    assert len(task.train) == 80 and len(task.test) == 20
    edges = {(h, t): r for h, r, t in task.triples}
    isa = {h: t for h, r, t in task.triples if r == ISA}
    for q in task.train + task.test:
        head = head_of(q["question"]["stem"])
        holder = isa[head] if hops == 2 else head
        texts = [c["text"] for c in q["question"]["choices"]]
        answer = texts["ABCDE".index(q["answerKey"])]
        assert len(texts) == 5 and len(set(texts)) == 5
        assert edges[(holder, answer)] == q["relation"]  # the asked relation leads to the answer
        linked = [t for t in texts if (holder, t) in edges and t != answer]
        assert len(linked) == cfg.linked_distractors  # by other relations: edges are not enough
        assert all(edges[(holder, t)] != q["relation"] for t in linked)
        assert TEMPLATES[q["relation"]].format(head=head) == q["question"]["stem"]
    train_heads = {head_of(q["question"]["stem"]) for q in task.train}
    test_heads = {head_of(q["question"]["stem"]) for q in task.test}
    assert train_heads and test_heads and not train_heads & test_heads
    answers = [q["answerKey"] for q in task.train]
    assert len(set(answers)) == 5  # the answer is not always in one position


def test_one_seed_one_task(tmp_path: Path) -> None:
    cfg = SyntheticTaskConfig(train_questions=40, test_questions=8, seed=5)
    a = write_task(make_task(cfg), tmp_path / "a")
    b = write_task(make_task(cfg), tmp_path / "b")
    for name in ("graph.tsv", "train.jsonl", "test.jsonl", "manifest.json"):
        assert a[name].read_bytes() == b[name].read_bytes(), name
    other = make_task(SyntheticTaskConfig(train_questions=40, test_questions=8, seed=6))
    assert other.triples != make_task(cfg).triples
    items = read_qa(a["train.jsonl"])  # kelm reads what it writes
    assert len(items) == 40 and items[0].answer_index is not None
    manifest = json.loads(a["manifest.json"].read_text())
    assert manifest["counts"]["test_questions"] == 8 and manifest["config"]["seed"] == 5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hops": 3}, "hops must be 1 or 2"),
        ({"relations": ["UsedFor", "Nope"]}, "relations must be distinct"),
        ({"choices": 1}, "choices must be between"),
        ({"linked_distractors": 4}, "linked_distractors must be at most"),
        ({"test_questions": 0}, "test_questions must be at least 1"),
    ],
)
def test_bad_settings_are_named(changes: dict, message: str) -> None:
    with pytest.raises(KelmError, match=message):
        make_task(SyntheticTaskConfig(**changes))
