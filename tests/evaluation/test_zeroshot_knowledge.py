"""``kelm evaluate --zero-shot --knowledge``: prompts with facts against a hand-written
reference (both positions, CommonsenseQA and COPA, with demonstrations), scores against a direct
full-sequence computation, and the CLI's side-by-side outputs and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from causal_lm_fixtures import FIXTURES, POOL, direct_logprob
from evaluation_fixtures import one_line_error
from typer.testing import CliRunner

from kelm.cli import app
from kelm.data.qa import Choice, QAItem, read_qa
from kelm.evaluation.prompts import PromptEncoder, build_requests, format_item
from kelm.evaluation.zeroshot import NORMALIZATIONS, evaluate_items
from kelm.graph.build import build_index
from kelm.graph.sources.base import BuildOptions

pytestmark = pytest.mark.usefixtures("single_thread")

runner = CliRunner()
FACTS = ["Dog is a kind of animal.", "You are likely to find dog in house."]


def copa(asks_for: str) -> QAItem:
    return QAItem(
        "c1",
        "The dog ran to the house. What was the cause?",
        [Choice("1", "The cat was at the bus stop."), Choice("2", "It ate ice cream.")],
        "1",
        {"premise": "The dog ran to the house.", "asks_for": asks_for},
    )


def reference_prompt(q: QAItem, facts: list[str], position: str) -> str:
    """The prompt text with facts, written out as the documentation states it."""
    knowledge = " ".join(facts)
    if "premise" in q.meta:
        connective = {"cause": "because", "effect": "so"}[q.meta["asks_for"]]
        premise = q.meta["premise"]
        if not facts:
            return f"{premise[:-1]} {connective}"
        if position == "before":
            return f"{knowledge}\n{premise[:-1]} {connective}"
        return f"{premise}\n{knowledge}\n{connective.capitalize()}"
    if not facts:
        return f"Question: {q.question}\nAnswer:"
    if position == "before":
        return f"{knowledge}\nQuestion: {q.question}\nAnswer:"
    return f"Question: {q.question}\n{knowledge}\nAnswer:"


# ---------------------------------------------------------------------------------- prompts
@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize(
    "question", [POOL[0], copa("cause"), copa("effect")], ids=["csqa", "cause", "effect"]
)
def test_prompt_with_facts_matches_the_reference(tokenizer, question, position) -> None:
    encoder = PromptEncoder(tokenizer)
    (plain,) = build_requests([question], tokenizer)
    (r,) = build_requests(
        [question], tokenizer, knowledge={question.id: FACTS}, facts_position=position
    )
    assert format_item(question, FACTS, position).context == reference_prompt(
        question, FACTS, position
    )
    assert r.prompt_ids == encoder.prompt(reference_prompt(question, FACTS, position))
    assert plain.prompt_ids == encoder.prompt(reference_prompt(question, [], position))
    # the choices and the PMI prompt are those without knowledge
    assert r.choice_ids == plain.choice_ids
    assert r.unconditional_ids == plain.unconditional_ids
    assert r.facts == FACTS and plain.facts == []


def test_facts_go_to_their_question_only_and_demos_carry_none(tokenizer) -> None:
    encoder = PromptEncoder(tokenizer)
    questions = [POOL[0], POOL[1]]
    requests = build_requests(
        questions, tokenizer, shots=1, pool=POOL, seed=0, knowledge={POOL[0].id: FACTS}
    )
    first, second = requests
    demo = next(p for p in POOL if p.id == first.demos[0])
    demo_text = f"Question: {demo.question}\nAnswer: {demo.choices[demo.answer_index].text}"
    expected = f"{demo_text}\n\n{reference_prompt(POOL[0], FACTS, 'before')}"
    assert first.prompt_ids == encoder.prompt(expected)
    assert second.facts == [] and "Dog is a kind" not in tokenizer.decode(second.prompt_ids)


def test_knowledge_scores_match_direct_computation(tokenizer, llama) -> None:
    questions = POOL[:3]
    knowledge = {POOL[0].id: FACTS, POOL[2].id: FACTS[:1]}
    encoder = PromptEncoder(tokenizer)
    for method in ("cached", "naive"):
        _, requests, scores = evaluate_items(
            llama, tokenizer, questions, batch_size=2, knowledge=knowledge, method=method
        )
        for r, s in zip(requests, scores, strict=True):
            text = reference_prompt(r.item, knowledge.get(r.item.id, []), "before")
            assert r.prompt_ids == encoder.prompt(text)
            for j, ids in enumerate(r.choice_ids):
                direct = direct_logprob(llama, r.prompt_ids, ids)
                assert s.conditional[j] == pytest.approx(direct, abs=1e-4)


# ---------------------------------------------------------------------------------- CLI
def evaluate(*args: object):
    return runner.invoke(app, ["evaluate", *map(str, args)])


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kg") / "tiny"
    build_index(
        [FIXTURES.parent / "linking" / "tiny.tsv"], out, BuildOptions(format="tsv"), progress=False
    )
    return out


def test_cli_scores_with_and_without_knowledge_side_by_side(
    tmp_path: Path, lm_dir: Path, graph_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("spacy", reason="grounding needs spaCy")
    monkeypatch.setenv("KELM_CACHE", str(tmp_path / "cache"))
    qa = FIXTURES / "csqa_original.jsonl"
    base = ["--zero-shot", "--lm", lm_dir, "--qa", qa, "--no-progress"]
    plain = evaluate(*base, "--out", tmp_path / "plain")
    assert plain.exit_code == 0, plain.output
    result = evaluate(
        *base, "--out", tmp_path / "kg", "--knowledge", graph_dir, "--facts", 3, "--fact-hops", 2
    )
    assert result.exit_code == 0, result.output
    assert "with knowledge" in result.output
    metrics = json.loads((tmp_path / "kg" / "metrics.json").read_text())
    plain_metrics = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    assert metrics["accuracy"] == plain_metrics["accuracy"]
    k = metrics["knowledge"]
    assert set(k["accuracy"]) == set(k["gain"]) == set(NORMALIZATIONS)
    for name in NORMALIZATIONS:
        assert k["gain"][name] == pytest.approx(k["accuracy"][name] - metrics["accuracy"][name])
    assert k["facts"] == 3 and k["form"] == "triples" and k["position"] == "before"
    assert k["hops"] == 2 and k["graph"] == str(graph_dir) and k["questions_with_facts"] >= 1
    assert k["prompt_tokens"] > metrics["prompt_tokens"]

    rows = [json.loads(line) for line in (tmp_path / "kg" / "predictions.jsonl").open()]
    plain_rows = [json.loads(line) for line in (tmp_path / "plain" / "predictions.jsonl").open()]
    assert [r["id"] for r in rows] == [q.id for q in read_qa(qa)]
    with_facts = 0
    for row, before in zip(rows, plain_rows, strict=True):
        assert row["scores"] == before["scores"] and row["prediction"] == before["prediction"]
        kn = row["knowledge"]
        assert set(kn) == {"facts", "prediction", "correct", "scores"}
        assert len(kn["facts"]) <= 3 and all(f.endswith(".") for f in kn["facts"])
        with_facts += bool(kn["facts"])
        for name in NORMALIZATIONS:
            values = kn["scores"][name]
            assert kn["prediction"][name] == max(values, key=values.get)
            assert kn["correct"][name] == (kn["prediction"][name] == row["answer"])
        if not kn["facts"]:  # the same prompt (in another batch): the same scores
            for name in NORMALIZATIONS:
                assert kn["scores"][name].keys() == row["scores"][name].keys()
                for label, v in row["scores"][name].items():
                    assert kn["scores"][name][label] == pytest.approx(v, abs=1e-5)
    assert with_facts == k["questions_with_facts"]
    for name in NORMALIZATIONS:
        correct = sum(r["knowledge"]["correct"][name] for r in rows)
        assert correct == round(k["accuracy"][name] * len(rows))

    # kelm compare lists both
    table = runner.invoke(app, ["compare", str(tmp_path / "kg")])
    assert table.exit_code == 0 and "zero-shot + knowledge, pmi" in table.output

    # --facts 0: the prompts with knowledge are the prompts without
    zero = evaluate(*base, "--out", tmp_path / "k0", "--knowledge", graph_dir, "--facts", 0)
    assert zero.exit_code == 0, zero.output
    for line in (tmp_path / "k0" / "predictions.jsonl").open():
        row = json.loads(line)
        assert row["knowledge"]["facts"] == []
        for name in NORMALIZATIONS:
            for label, v in row["scores"][name].items():
                assert row["knowledge"]["scores"][name][label] == pytest.approx(v, abs=1e-5)


def test_cli_knowledge_errors(tmp_path: Path, lm_dir: Path, graph_dir: Path) -> None:
    qa = FIXTURES / "csqa_original.jsonl"
    base = ["--zero-shot", "--lm", lm_dir, "--qa", qa, "--out", tmp_path / "o", "--no-progress"]
    one_line_error(evaluate(*base, "--knowledge", tmp_path / "missing"), "--knowledge", "no such")
    (tmp_path / "file").write_text("not a graph")
    one_line_error(evaluate(*base, "--knowledge", tmp_path / "file"), "not a directory")
    (tmp_path / "empty").mkdir()
    one_line_error(evaluate(*base, "--knowledge", tmp_path / "empty"), "not a kelm graph index")
    one_line_error(evaluate(*base, "--facts", 3), "need --knowledge")
    one_line_error(evaluate(*base, "--knowledge-form", "paths"), "need --knowledge")
    one_line_error(
        evaluate(
            "--model", tmp_path, "--qa", qa, "--out", tmp_path / "o", "--knowledge", graph_dir
        ),
        "--knowledge needs --zero-shot",
    )
    for flag, value, message in (
        ("--facts", -1, "--facts must be at least 0"),
        ("--knowledge-form", "graphs", "unknown --knowledge-form"),
        ("--facts-position", "middle", "unknown --facts-position"),
        ("--fact-hops", 4, "--fact-hops must be between 1 and 3"),
    ):
        one_line_error(evaluate(*base, "--knowledge", graph_dir, flag, value), message)
    assert not (tmp_path / "o").exists()
