"""The explorer without its page: questions typed or picked, linking, grounding, retrieval and
paths per choice, each run's scores and attention, the graph browser's search and neighbours."""

from __future__ import annotations

from pathlib import Path

import pytest

from kelm.errors import KelmError
from kelm.explore import Explorer


@pytest.fixture(scope="module")
def explorer(tiny: dict[str, Path]) -> Explorer:
    runs = [tiny[f] for f in ("lm", "qagnn", "kagnet", "ernie")]
    return Explorer(tiny["graph"], runs=runs, qa_file=tiny["qa"])


def test_a_typed_question_is_linked_grounded_retrieved_and_scored(explorer: Explorer) -> None:
    item = explorer.make_item("where does a dog live", ["house", "sky", " ", "ocean"], "A")
    assert [c.label for c in item.choices] == ["A", "B", "C"]  # blank lines are no choice
    answer = explorer.ask(item)
    spans = {s["text"]: s["names"] for s in answer.spans}
    assert spans == {"dog": ["dog"], "house": ["house"], "sky": ["sky"], "ocean": ["ocean"]}
    first = answer.statements[0]
    assert (first.question_concepts, first.answer_concepts) == (["dog"], ["house"])
    assert first.path_texts == ["dog --atlocation--> house"]
    assert answer.statements[1].paths == []  # no dog-sky path within 2 hops
    assert [r.model for r in answer.runs] == ["lm", "qagnn", "kagnet", "ernie"]
    assert not answer.run_errors
    for run in answer.runs:
        assert len(run.choices) == 3
        assert sum(c.probability for c in run.choices) == pytest.approx(1.0)
        assert run.prediction == max(range(3), key=lambda c: run.choices[c].score)


def test_each_family_shows_what_it_attended_to(explorer: Explorer) -> None:
    item = explorer.make_item("where does a dog live", ["house", "sky"], None)
    by_model = {r.model: r for r in explorer.ask(item).runs}
    qagnn = by_model["qagnn"].choices[0]
    assert {name for name, _ in qagnn.nodes} == {"dog", "house"}
    assert sum(w for _, w in qagnn.nodes) == pytest.approx(1.0, abs=1e-4)  # pooling attention
    kagnet = by_model["kagnet"].choices[0]
    assert kagnet.paths == [("dog --atlocation--> house", pytest.approx(1.0))]
    assert by_model["ernie"].choices[0].entities == ["dog", "house"]
    assert by_model["lm"].choices[0].nodes == [] and by_model["lm"].choices[0].paths == []


@pytest.mark.parametrize(
    ("question", "choices", "answer", "message"),
    [
        ("", ["a", "b"], None, "type a question"),
        ("   ", ["a", "b"], None, "type a question"),
        ("where", ["house"], None, "at least two choices"),
        ("where", ["house", ""], None, "at least two choices"),
        ("where", [str(i) for i in range(11)], None, "at most 10 choices"),
        ("where", ["house", "sky"], "C", "one of the labels A, B"),
        ("x" * 2001, ["house", "sky"], None, "2,001 characters"),
    ],
)
def test_bad_questions_are_refused_with_a_message(
    explorer: Explorer, question: str, choices: list[str], answer: str | None, message: str
) -> None:
    with pytest.raises(KelmError, match=message):
        explorer.make_item(question, choices, answer)


def test_a_question_without_any_concept_still_answers(explorer: Explorer) -> None:
    answer = explorer.ask(explorer.make_item("qwerty", ["zzz", "yyy"], None))
    assert answer.spans == []
    assert all(s.sub.num_nodes == 0 and s.paths == [] for s in answer.statements)
    assert len(answer.runs) == 4


def test_the_qa_file_questions_are_listed(explorer: Explorer) -> None:
    titles = explorer.item_titles()
    assert len(titles) == 12 and titles[0] == "q0: where does a dog live"


def test_search_and_neighbours(explorer: Explorer) -> None:
    assert explorer.search("dog")[0] == "dog"
    assert explorer.search("AN") == ["animal", "ocean"]  # starts with it, then contains it
    assert explorer.search("ter") == ["water"]
    assert explorer.search("") == [] and explorer.search("qqq") == []
    assert explorer.neighbours("dog") == {
        "atlocation": ["house"],
        "isa": ["animal"],
        "~desires": ["person"],
    }
    with pytest.raises(KelmError, match="no node named 'unicorn'"):
        explorer.neighbours("unicorn")


def test_unknown_or_bad_run_directories_are_refused(explorer: Explorer, tmp_path: Path) -> None:
    with pytest.raises(KelmError, match="no such run directory"):
        explorer.add_run(tmp_path / "missing")
    with pytest.raises(KelmError, match="not a kelm run directory"):
        explorer.add_run(tmp_path)
    with pytest.raises(KelmError, match="give a run directory"):
        explorer.add_run("  ")
    before = len(explorer.runs)
    assert explorer.add_run(explorer.runs[0].run_dir) is explorer.runs[0]  # loaded once
    assert len(explorer.runs) == before


def test_linking_modes(explorer: Explorer) -> None:
    spans = explorer.link("a dog and a cat")["spans"]
    assert [s["text"] for s in spans] == ["dog", "cat"]
    with pytest.raises(KelmError, match="concept or entity"):
        explorer.link("a dog", mode="words")
