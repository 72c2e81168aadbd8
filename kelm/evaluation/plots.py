"""``kelm compare --plot``: accuracy per model as a bar chart, the spread over seeds as error
bars, drawn with matplotlib's Agg backend (no display).

Rows are those of :func:`~kelm.evaluation.compare.compare_runs`; runs of one model (the same
:func:`~kelm.evaluation.compare.model_label`: family and backbone) are the seeds of one bar.
A zero-shot evaluation already comes as one row per score normalisation, so each
normalisation is a bar of its own.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kelm.errors import KelmError
from kelm.evaluation.compare import model_label


def accuracy_groups(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per model label, in first-seen order: ``label``, ``accuracies`` (one per
    run), ``mean``, ``std`` (sample standard deviation over the runs; 0 for one run),
    ``low`` / ``high`` (the smallest and largest). Rows without an accuracy are left out.

    Raises:
        KelmError: no row has an accuracy (nothing to draw).
    """
    groups: dict[str, list[float]] = {}
    for row in rows:
        accuracy = row.get("accuracy")
        if isinstance(accuracy, (int, float)) and math.isfinite(accuracy):
            groups.setdefault(model_label(row), []).append(float(accuracy))
    if not groups:
        raise KelmError("--plot: no run has an accuracy (evaluations without answer keys?)")
    out = []
    for label, values in groups.items():
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
        out.append(
            {
                "label": label,
                "accuracies": values,
                "mean": mean,
                "std": math.sqrt(var),
                "low": min(values),
                "high": max(values),
            }
        )
    return out


def plot_accuracy(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Draw the accuracy of each model (the mean over its runs, the bar; one standard deviation
    over the seeds, the error bar; every run, a dot) into a PNG, written atomically.

    Raises:
        KelmError: nothing to draw, or ``path`` cannot be written.
    """
    from kelm._io import atomic_file, check_output_file

    path = check_output_file(path)
    groups = accuracy_groups(rows)
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    n = len(groups)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * n + 2.5), 4.8))
    try:
        x = list(range(n))
        ax.bar(
            x,
            [g["mean"] for g in groups],
            yerr=[g["std"] for g in groups],
            capsize=5,
            color="#4C72B0",
            alpha=0.8,
            error_kw={"elinewidth": 1.5, "ecolor": "#333333"},
        )
        for i, g in enumerate(groups):
            ax.scatter([i] * len(g["accuracies"]), g["accuracies"], color="#C44E52", s=14, zorder=3)
            ax.annotate(
                f"{g['mean']:.3f}\n(n={len(g['accuracies'])})",
                (i, g["mean"] + g["std"]),
                textcoords="offset points",
                xytext=(0, 4),
                ha="center",
                fontsize=8,
            )
        ax.set_xticks(x, [g["label"] for g in groups], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("accuracy")
        top = max(g["high"] for g in groups)
        ax.set_ylim(0, min(1.0, top + 0.15) if top <= 0.85 else 1.05)
        ax.set_title("accuracy per model (bar: mean over seeds; error bar: 1 s.d.; dots: runs)")
        ax.title.set_fontsize(10)
        fig.tight_layout()
        with atomic_file(path, "wb") as fh:
            fig.savefig(fh, format="png", dpi=110)
    finally:
        plt.close(fig)
    return path


__all__ = ["accuracy_groups", "plot_accuracy"]
