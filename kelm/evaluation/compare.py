"""``kelm compare``: a table of runs (or evaluation directories) by accuracy.

Each directory must hold a ``metrics.json`` (written by ``kelm train`` or ``kelm evaluate``);
a training run's ``config.resolved.yaml`` adds its seed, and its saved ``model/config.json``
(for an evaluation: that of the run it evaluated) the model family's backbone: the encoder
architecture under ``lm`` (BERT, ALBERT, ELECTRA, DistilBERT ...), the causal LM under ``gpt``,
the encoder of ``ernie``, ``kagnet`` and ``qagnn``, with its depth and width.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kelm._io import read_json_object
from kelm.errors import KelmError

_LAYER_KEYS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers")
_WIDTH_KEYS = ("hidden_size", "n_embd", "dim", "d_model")


def backbone_info(run: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """The backbone of a run's saved model: ``encoder`` (its ``model_type``, e.g. ``albert``),
    ``encoder_layers``, ``encoder_hidden`` (``None`` each when unknown).

    Reads ``run/model/config.json``, else (an evaluation directory) that of the run named by
    ``metrics["run"]``.
    """
    info: dict[str, Any] = {"encoder": None, "encoder_layers": None, "encoder_hidden": None}
    files = [run / "model" / "config.json"]
    if isinstance(metrics.get("run"), str):
        files.append(Path(metrics["run"]) / "model" / "config.json")
    for file in files:
        if not file.is_file():
            continue
        try:
            config = read_json_object(file, KelmError)
        except KelmError:
            continue
        encoder = config.get("encoder_config")
        if not isinstance(encoder, dict):
            continue
        info["encoder"] = encoder.get("model_type")
        info["encoder_layers"] = next((encoder[k] for k in _LAYER_KEYS if k in encoder), None)
        info["encoder_hidden"] = next((encoder[k] for k in _WIDTH_KEYS if k in encoder), None)
        break
    return info


def model_label(row: dict[str, Any]) -> str:
    """``model (backbone Lx Hy)``, e.g. ``lm (albert L12 H768)``; the model alone when the
    backbone is unknown."""
    model = str(row.get("model") or "-")
    if not row.get("encoder"):
        return model
    size = " ".join(
        f"{tag}{row[key]}"
        for tag, key in (("L", "encoder_layers"), ("H", "encoder_hidden"))
        if row.get(key) is not None
    )
    return f"{model} ({row['encoder']}{' ' + size if size else ''})"


def compare_runs(run_dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """One row per directory: ``run``, ``model``, ``accuracy`` (``None`` without labels),
    ``n``, ``loss``, ``seed``, and the backbone (:func:`backbone_info`): ``encoder``,
    ``encoder_layers``, ``encoder_hidden``.

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
        row = {
            "run": str(run),
            "model": metrics.get("model"),
            "accuracy": metrics.get("accuracy"),
            "n": metrics.get("n"),
            "loss": metrics.get("loss"),
            "seed": seed,
            **backbone_info(run, metrics),
        }
        rows.extend(_per_normalization(row, metrics))
    return rows


def _per_normalization(row: dict[str, Any], metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """A zero/few-shot evaluation (``kelm evaluate --zero-shot``) reports one accuracy per
    score normalisation: one row each, labelled ``<model> [<evaluation>, <normalisation>]``;
    with ``--knowledge``, one more row each for the prompts with facts
    (``[<evaluation> + knowledge, <normalisation>]``)."""
    accuracy = row["accuracy"]
    if not isinstance(accuracy, dict):
        return [row]
    evaluation = metrics.get("evaluation", "zero-shot")
    name = str(row["model"] or "-").rsplit("/", 1)[-1]
    rows = [
        {**row, "model": f"{name} [{evaluation}, {norm}]", "accuracy": value}
        for norm, value in accuracy.items()
    ]
    knowledge = metrics.get("knowledge")
    if isinstance(knowledge, dict) and isinstance(knowledge.get("accuracy"), dict):
        rows += [
            {**row, "model": f"{name} [{evaluation} + knowledge, {norm}]", "accuracy": value}
            for norm, value in knowledge["accuracy"].items()
        ]
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table: run, model (with its backbone, :func:`model_label`), seed, n,
    accuracy (``-`` when unknown)."""
    header = ("run", "model", "seed", "n", "accuracy")
    cells = [
        (
            str(r["run"]),
            model_label(r),
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


__all__ = ["backbone_info", "compare_runs", "format_table", "model_label"]
