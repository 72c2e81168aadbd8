"""``scripts/graph_ceiling.py`` on a tiny trained text model: its JSON, the text accuracy it
reads back equal to the run's own, and a one-line error for predictions of other questions."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "training"))
from training_fixtures import tiny_config, write_config  # noqa: E402


def _script():
    spec = importlib.util.spec_from_file_location(
        "graph_ceiling", REPO / "scripts" / "graph_ceiling.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny lm run (its predictions of the 3 held-out questions) and its config."""
    from kelm.training import load_train_config, train

    root = tmp_path_factory.mktemp("ceiling")
    config = write_config(root / "lm.yaml", tiny_config(root / "inputs"))
    cfg = load_train_config(config, [f"run_dir={root / 'run'}"])
    train(cfg, overwrite=True, progress=False)
    return root / "run", config


def test_the_json_of_a_run(trained, capsys: pytest.CaptureFixture[str]) -> None:
    run, config = trained
    script = _script()
    assert script.main([str(run), str(run), "--config", str(config), "--folds", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    row = out["runs"][str(run)]
    metrics = json.loads((run / "metrics.json").read_text())
    assert row["text"] == pytest.approx(metrics["accuracy"])
    sets = {"linked", "relations", "two_hop", "degree", "degree_only"}
    assert set(row["cross_fitted"]) == set(row["in_sample"]) == sets
    assert all(0.0 <= v <= 1.0 for v in row["cross_fitted"].values())
    assert 0.0 <= row["gold_linked"] <= 1.0 and 0.0 <= row["distractor_linked"] <= 1.0
    assert out["mean"]["text"] == row["text"]  # the same run twice
    assert out["settings"]["questions"] == 3


def test_predictions_of_other_questions_are_refused(trained, tmp_path: Path) -> None:
    run, config = trained
    lines = (run / "predictions.jsonl").read_text().splitlines()
    other = tmp_path / "other"
    other.mkdir()
    (other / "predictions.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(SystemExit, match="not the 3 held-out questions"):
        _script().main([str(other), "--config", str(config), "--folds", "2"])
    (other / "predictions.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(SystemExit, match=r"predictions.jsonl:1: no scores and answer"):
        _script().main([str(other), "--config", str(config), "--folds", "2"])
