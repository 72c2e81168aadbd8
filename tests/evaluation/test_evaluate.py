"""``kelm evaluate`` and ``kelm compare`` on tiny trained runs: CommonsenseQA (both forms),
OpenBookQA and COPA files, files without answer keys, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evaluation_fixtures import QUESTIONS, one_line_error, qa_record, train_run, write_qa
from typer.testing import CliRunner

from kelm.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qa"
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("evaluation")


@pytest.fixture(scope="module")
def lm_run(root: Path) -> Path:
    return train_run(root, "lm", epochs=1)


@pytest.fixture(scope="module")
def qagnn_run(root: Path) -> Path:
    return train_run(root, "qagnn", epochs=1)


def evaluate(run: Path, qa: Path, out: Path, *extra: object):
    return invoke("evaluate", "--model", run, "--qa", qa, "--out", out, "--no-progress", *extra)


def test_labelled_file(root: Path, lm_run: Path) -> None:
    qa = write_qa(root / "labelled.jsonl")
    result = evaluate(lm_run, qa, root / "eval-labelled", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((root / "eval-labelled" / "metrics.json").read_text())
    assert metrics["n"] == metrics["n_labelled"] == len(QUESTIONS)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["model"] == "lm"
    rows = [json.loads(x) for x in (root / "eval-labelled" / "predictions.jsonl").open()]
    assert [r["id"] for r in rows] == [f"q{i}" for i in range(len(QUESTIONS))]
    assert sum(r["correct"] for r in rows) == round(metrics["accuracy"] * len(rows))
    assert all(set(r["scores"]) == {"A", "B", "C"} for r in rows)


def test_file_without_answer_keys_gives_predictions_only(root: Path, lm_run: Path) -> None:
    records = [qa_record(i, s, c, None) for i, (s, c, _) in enumerate(QUESTIONS[:4])]
    result = evaluate(lm_run, write_qa(root / "nokeys.jsonl", records), root / "eval-nokeys")
    assert result.exit_code == 0, result.output
    assert "predictions only" in result.output
    metrics = json.loads((root / "eval-nokeys" / "metrics.json").read_text())
    assert "accuracy" not in metrics and metrics["n"] == 4 and metrics["n_labelled"] == 0
    rows = [json.loads(x) for x in (root / "eval-nokeys" / "predictions.jsonl").open()]
    assert all(r["answer"] is None and r["correct"] is None for r in rows)
    assert all(r["prediction"] in "ABC" for r in rows)


@pytest.mark.parametrize(
    ("name", "choices"), [("copa.xml", 2), ("obqa.jsonl", 4), ("csqa_hf.jsonl", 5)]
)
def test_other_datasets_and_choice_counts(root: Path, lm_run: Path, name: str, choices: int):
    out = root / f"eval-{name}"
    result = evaluate(lm_run, FIXTURES / name, out)
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (out / "predictions.jsonl").open()]
    assert rows and all(len(r["scores"]) == choices for r in rows)


def test_graph_model_evaluates_ungroundable_questions(root: Path, qagnn_run: Path) -> None:
    records = [qa_record(i, s, c, a) for i, (s, c, a) in enumerate(QUESTIONS[:2])]
    records.append(qa_record(5, "qwerty zxcv", ["plugh", "xyzzy"], 1))
    result = evaluate(qagnn_run, write_qa(root / "mixed.jsonl", records), root / "eval-q")
    assert result.exit_code == 0, result.output
    metrics = json.loads((root / "eval-q" / "metrics.json").read_text())
    assert metrics["n"] == 3 and metrics["model"] == "qagnn"
    assert metrics["empty_graphs"] >= 2  # both statements of the last question


def test_bad_inputs_are_one_line_errors(root: Path, lm_run: Path) -> None:
    dup = [qa_record(0, "a dog", ["house", "sky"], 0), qa_record(0, "a cat", ["house", "sky"], 0)]
    one_line_error(
        evaluate(lm_run, write_qa(root / "dup.jsonl", dup), root / "e1"), "duplicate id 'q0'"
    )
    # A question with one choice is always "answered": it used to raise the accuracy.
    single = [qa_record(0, "a dog", ["house", "sky"], 0), qa_record(1, "a cat", ["house"], 0)]
    one_line_error(
        evaluate(lm_run, write_qa(root / "single.jsonl", single), root / "e5"),
        "single.jsonl:2: only 1 choice",
    )
    assert not (root / "e5").exists()
    empty = [{"id": "q0", "question": {"stem": "x", "choices": []}, "answerKey": ""}]
    one_line_error(evaluate(lm_run, write_qa(root / "empty.jsonl", empty), root / "e2"), "choices")
    one_line_error(evaluate(root / "no-run", FIXTURES / "obqa.jsonl", root / "e3"), "no-run")
    one_line_error(evaluate(lm_run, root / "missing.jsonl", root / "e4"), "missing.jsonl")


def test_corrupt_model_is_a_one_line_error(root: Path, lm_run: Path) -> None:
    import shutil

    broken = root / "broken-run"
    shutil.copytree(lm_run, broken)
    weights = broken / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    one_line_error(
        evaluate(broken, write_qa(root / "x.jsonl"), root / "e5"),
        "model.safetensors: checksum does not match",  # the model's file manifest
    )
    (broken / "model" / "manifest.json").unlink()  # a run saved before kelm recorded one
    one_line_error(
        evaluate(broken, write_qa(root / "x.jsonl"), root / "e5"), "cannot load the model"
    )


def test_compare_table_and_json(root: Path, lm_run: Path, qagnn_run: Path) -> None:
    table = invoke("compare", lm_run, qagnn_run)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["run", "model", "seed", "n", "accuracy"]
    assert " lm " in lines[1] and " qagnn " in lines[2]
    rows = json.loads(invoke("compare", lm_run, qagnn_run, "--json").output)
    assert [r["model"] for r in rows] == ["lm", "qagnn"] and rows[0]["seed"] == 3
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    one_line_error(invoke("compare", lm_run, root / "nope"), "no metrics.json")
    # a run whose metrics hold a bare NaN (not JSON; what a diverged run used to write)
    nan_run = root / "nan-run"
    nan_run.mkdir(exist_ok=True)
    (nan_run / "metrics.json").write_text('{"model": "lm", "accuracy": 0.4, "loss": NaN}\n')
    one_line_error(invoke("compare", lm_run, nan_run), "metrics.json: not valid JSON (NaN")


def test_compare_lists_each_zero_shot_normalization(root: Path, lm_run: Path) -> None:
    shot = root / "zero-shot-eval"
    shot.mkdir(exist_ok=True)
    (shot / "metrics.json").write_text(
        json.dumps(
            {
                "accuracy": {"sum": 0.5, "mean": 0.25, "pmi": 0.75},
                "n": 4,
                "model": "/models/smollm2.gguf",
                "evaluation": "5-shot",
                "seed": 0,
            }
        )
    )
    rows = json.loads(invoke("compare", lm_run, shot, "--json").output)
    assert [(r["model"], r["accuracy"]) for r in rows[1:]] == [
        ("smollm2.gguf [5-shot, sum]", 0.5),
        ("smollm2.gguf [5-shot, mean]", 0.25),
        ("smollm2.gguf [5-shot, pmi]", 0.75),
    ]
    table = invoke("compare", lm_run, shot)
    assert table.exit_code == 0 and "[5-shot, pmi]" in table.output and "0.7500" in table.output
