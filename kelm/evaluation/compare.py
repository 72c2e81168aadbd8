"""``kelm compare``: a table of runs (or evaluation directories) by accuracy.

Each directory must hold a ``metrics.json`` (written by ``kelm train`` or ``kelm evaluate``);
a training run's ``config.resolved.yaml`` adds its seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kelm._io import read_json_object
from kelm.errors import KelmError


def compare_runs(run_dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """One row per directory: ``run``, ``model``, ``accuracy`` (``None`` without labels),
    ``n``, ``loss``, ``seed``.

    Raises:
        KelmError: a directory has no readable ``metrics.json``.
    """
    import yaml

    if not run_dirs:
        raise KelmError("compare needs at least one run directory")
    rows = []
    for run in map(Path, run_dirs):
        file = run / "metrics.json"
        if not file.is_file():
            raise KelmError(f"{run}: no metrics.json (not a finished kelm run or evaluation)")
        metrics = read_json_object(file, KelmError)
        seed = metrics.get("seed")
        config = run / "config.resolved.yaml"
        if seed is None and config.is_file():
            try:
                seed = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("seed")
            except yaml.YAMLError:
                seed = None
        rows.append(
            {
                "run": str(run),
                "model": metrics.get("model"),
                "accuracy": metrics.get("accuracy"),
                "n": metrics.get("n"),
                "loss": metrics.get("loss"),
                "seed": seed,
            }
        )
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table: run, model, seed, n, accuracy (``-`` when unknown)."""
    header = ("run", "model", "seed", "n", "accuracy")
    cells = [
        (
            str(r["run"]),
            str(r["model"] or "-"),
            "-" if r["seed"] is None else str(r["seed"]),
            "-" if r["n"] is None else str(r["n"]),
            "-" if r["accuracy"] is None else f"{r['accuracy']:.4f}",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for c in cells:
        left = [v.ljust(w) for v, w in zip(c[:2], widths[:2], strict=True)]
        right = [v.rjust(w) for v, w in zip(c[2:], widths[2:], strict=True)]
        lines.append("  ".join(left + right).rstrip())
    return "\n".join(lines)


__all__ = ["compare_runs", "format_table"]
