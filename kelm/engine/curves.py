"""Training curves of a run (``curves.png``), drawn with matplotlib's Agg backend (no display).

matplotlib is imported inside :func:`plot_curves`, so importing this module is cheap.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kelm._io import replace_file


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Plot the loss and accuracy curves of a run into a PNG, written atomically.

    Args:
        history: ``{"steps": [{"step", "loss", ...}, ...], "epochs": [{"epoch", "step",
            "train_loss", "train_accuracy", "eval_loss", "eval_accuracy"}, ...]}`` (the
            training loop's history; missing or ``None`` values are left out).
        path: the PNG file.

    Returns:
        ``path``.
    """
    plt = _pyplot()
    path = Path(path)
    steps = [s for s in history.get("steps", []) if s.get("loss") is not None]
    epochs = list(history.get("epochs", []))

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    if steps:
        ax_loss.plot(
            [s["step"] for s in steps],
            [s["loss"] for s in steps],
            color="tab:blue",
            alpha=0.35,
            linewidth=1,
            label="train (step)",
        )
    for key, label, style in (
        ("train_loss", "train (epoch mean)", "o-"),
        ("eval_loss", "eval", "s-"),
    ):
        points = [(e["step"], e[key]) for e in epochs if e.get(key) is not None]
        if points:
            ax_loss.plot(*zip(*points, strict=True), style, label=label)
    ax_loss.set_xlabel("optimizer step")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.set_title("loss")
    ax_loss.grid(alpha=0.3)

    for key, label, style in (
        ("train_accuracy", "train", "o-"),
        ("eval_accuracy", "eval", "s-"),
    ):
        points = [(e["epoch"], e[key]) for e in epochs if e.get(key) is not None]
        if points:
            ax_acc.plot(*zip(*points, strict=True), style, label=label)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title("accuracy")
    ax_acc.set_ylim(0.0, 1.0)
    ax_acc.grid(alpha=0.3)
    for ax in (ax_loss, ax_acc):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")
    fig.tight_layout()

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png")
        replace_file(tmp, path)
    finally:
        plt.close(fig)
        if tmp.exists():
            tmp.unlink()
    return path


__all__ = ["plot_curves"]
