"""``kelm compare --plot``: accuracy per model, the seeds of a model grouped into one bar with
their spread as error bars, a bar per normalisation of a zero-shot evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evaluation_fixtures import one_line_error
from typer.testing import CliRunner

from kelm.cli import app
from kelm.errors import KelmError
from kelm.evaluation.plots import accuracy_groups, plot_accuracy

runner = CliRunner()


def write_run(folder: Path, metrics: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return folder


def test_seeds_of_a_model_make_one_group() -> None:
    rows = [
        {"model": "qagnn", "accuracy": 0.5},
        {"model": "lm", "accuracy": 0.4},
        {"model": "qagnn", "accuracy": 0.7},
        {"model": "qagnn", "accuracy": None},  # no answer keys: not drawn
        {"model": "lm", "accuracy": 0.4, "encoder": "bert", "encoder_layers": 2},
    ]
    groups = accuracy_groups(rows)
    assert [g["label"] for g in groups] == ["qagnn", "lm", "lm (bert L2)"]
    assert groups[0]["accuracies"] == [0.5, 0.7]
    assert groups[0]["mean"] == pytest.approx(0.6)
    assert groups[0]["std"] == pytest.approx(0.1414, abs=1e-4)
    assert (groups[0]["low"], groups[0]["high"]) == (0.5, 0.7)
    assert groups[1]["std"] == 0.0
    with pytest.raises(KelmError, match="no run has an accuracy"):
        accuracy_groups([{"model": "lm", "accuracy": None}])


def test_compare_plot(tmp_path: Path) -> None:
    runs = [
        write_run(
            tmp_path / f"lm-{seed}", {"model": "lm", "accuracy": 0.4 + seed / 10, "seed": seed}
        )
        for seed in range(3)
    ]
    runs.append(
        write_run(
            tmp_path / "zero-shot",
            {
                "model": "smollm2.gguf",
                "evaluation": "zero-shot",
                "accuracy": {"sum": 0.5, "pmi": 0.6},
            },
        )
    )
    png = tmp_path / "plots" / "acc.png"
    result = runner.invoke(app, ["compare", *map(str, runs), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert f"wrote {png}" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = [
        g["label"]
        for g in accuracy_groups(
            [
                {"model": "smollm2.gguf [zero-shot, sum]", "accuracy": 0.5},
                {"model": "smollm2.gguf [zero-shot, pmi]", "accuracy": 0.6},
            ]
        )
    ]
    assert labels == ["smollm2.gguf [zero-shot, sum]", "smollm2.gguf [zero-shot, pmi]"]
    # a bad path is refused before the runs are read, and nothing is left behind
    one_line_error(
        runner.invoke(app, ["compare", str(runs[0]), "--plot", str(tmp_path)]), "is a directory"
    )
    unlabelled = write_run(tmp_path / "unlabelled", {"model": "lm", "accuracy": None})
    out = tmp_path / "none.png"
    one_line_error(
        runner.invoke(app, ["compare", str(unlabelled), "--plot", str(out)]),
        "no run has an accuracy",
    )
    assert not out.exists()


def test_plot_accuracy_writes_a_png(tmp_path: Path) -> None:
    png = plot_accuracy([{"model": "lm", "accuracy": 0.3}], tmp_path / "one.png")
    assert png.stat().st_size > 1000
