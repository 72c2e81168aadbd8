"""What the graph's edges can add to a trained text model on CommonsenseQA, at most.

Reads the held-out predictions (``predictions.jsonl``: each choice's score) of text-model runs
(``bench_qa.py --models lm``), computes each held-out statement's edge features on the graph of
``--config`` (a direct edge, by which relations, two-hop paths, answer degree:
:mod:`kelm.evaluation.graph_ceiling`), fits ``a * text score + w . features`` over each
question's choices on 9/10 of the held-out questions and scores the tenth (10 folds), and
prints one JSON object: per run and feature set the text model's accuracy, the cross-fitted
accuracy and the in-sample accuracy (fitted and scored on all held-out questions), and their
mean over the runs::

    python scripts/graph_ceiling.py runs/bench-qa-full/lm-s0 runs/bench-qa-full/lm-s1

The held-out questions, the graph and the grounding are those of ``--config`` (default: the
shipped GSC config; the graph pipeline's caches are reused). Each run must have scored exactly
those questions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, nargs="+", help="text-model run directories")
    p.add_argument(
        "--config",
        type=Path,
        default=REPO / "configs" / "csqa-gsc.yaml",
        help="the config whose data and graph sections give the held-out questions and the graph",
    )
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--l2", type=float, default=1e-2, help="weight penalty of the fit")
    p.add_argument("--seed", type=int, default=0, help="the folds' seed")
    return p.parse_args(argv)


def read_scores(run: Path) -> dict[str, tuple[dict[str, float], str]]:
    """``question id -> (choice label -> score, answer label)`` of a run's predictions."""
    from kelm.errors import InputError

    path = run / "predictions.jsonl"
    if not path.is_file():
        raise InputError(f"{run}: no predictions.jsonl (a finished run directory?)")
    out = {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            try:
                d = json.loads(line)
                out[str(d["id"])] = ({k: float(v) for k, v in d["scores"].items()}, d["answer"])
            except (ValueError, KeyError, TypeError, AttributeError):
                raise InputError(f"{path}:{number}: no scores and answer") from None
    return out


def held_out_features(args: argparse.Namespace) -> tuple[list[Any], dict, int]:
    """The held-out questions of ``--config``, ``(id, label) -> ChoiceFeatures`` and the
    graph's relation count."""
    from kelm.evaluation.graph_ceiling import choice_features
    from kelm.evaluation.graph_signal import read_grounded
    from kelm.pipeline import GraphResources
    from kelm.training import load_train_config
    from kelm.training.run_data import retrieve_options, run_items

    cfg = load_train_config(args.config, args.sets)
    items = run_items(cfg)[1]  # the questions a run of the config evaluates on
    if cfg.graph.index is None and cfg.graph.source is None:
        raise SystemExit(f"error: {args.config}: graph.index or graph.source is needed")
    graph = GraphResources.open(cfg.graph, cfg.graph.cache_dir)
    graph.retrieve(items, retrieve_options(cfg.graph), pipeline=cfg.graph.pipeline)  # grounds
    grounded = read_grounded(graph.grounded_path(items, cfg.graph.pipeline))
    features = {key: choice_features(graph.index, *grounded[key]) for key in grounded}
    return items, features, graph.index.num_relations


def arrays(
    items: list[Any], scores: dict, features: dict, num_relations: int, feature_set: str, run: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``scores [q, c]``, ``features [q, c, d]`` and ``answers [q]`` of the held-out questions
    in their order of choices (a question with fewer than ``c`` choices: score ``-inf`` and
    features 0 on the padding)."""
    from kelm.errors import InputError
    from kelm.evaluation.graph_ceiling import feature_matrix

    missing = [it.id for it in items if it.id not in scores]
    if missing or len(scores) != len(items):
        raise InputError(
            f"{run}: its predictions are not the {len(items)} held-out questions of the config "
            f"({len(scores)} predicted, {len(missing)} held-out ones missing)"
        )
    width = max(len(it.choices) for it in items)  # fewer choices: padded, score -inf
    s = np.full((len(items), width), -np.inf)
    x: np.ndarray | None = None
    y = np.empty(len(items), dtype=np.int64)
    for i, it in enumerate(items):
        labels = [c.label for c in it.choices]
        by_label, answer = scores[it.id]
        if sorted(by_label) != sorted(labels) or answer not in labels:
            raise InputError(f"{run}: question {it.id!r}: its scores are not of choices {labels}")
        s[i, : len(labels)] = [by_label[label] for label in labels]
        rows = feature_matrix([features[it.id, lb] for lb in labels], num_relations, feature_set)
        if x is None:
            x = np.zeros((len(items), width, rows.shape[1]), dtype=np.float32)
        x[i, : len(labels)] = rows
        y[i] = labels.index(answer)
    assert x is not None
    return s, x, y


def main(argv: list[str] | None = None) -> int:
    from kelm.errors import InputError
    from kelm.evaluation.graph_ceiling import (
        FEATURE_SETS,
        accuracy,
        cross_fitted_accuracy,
        fit_choice_logit,
    )

    args = parse_args(argv)
    start = time.perf_counter()
    try:
        log("graph features of the held-out statements ...")
        items, features, num_relations = held_out_features(args)
        result: dict[str, Any] = {"runs": {}}
        for run in args.runs:
            scores = read_scores(run)
            row: dict[str, Any] = {"cross_fitted": {}, "in_sample": {}}
            for feature_set in FEATURE_SETS:
                s, x, y = arrays(items, scores, features, num_relations, feature_set, run)
                row["text"] = accuracy(s, y)
                if feature_set == "linked":  # the share of gold / other choices linked
                    linked = np.where(np.isfinite(s), x[..., 0], np.nan)  # NaN on padding
                    row["gold_linked"] = float(np.mean(linked[np.arange(len(y)), y]))
                    row["distractor_linked"] = float(np.nanmean(_others(linked, y)))
                row["cross_fitted"][feature_set] = cross_fitted_accuracy(
                    s, x, y, folds=args.folds, seed=args.seed, l2=args.l2
                )
                fit = fit_choice_logit(s, x, y, l2=args.l2)
                row["in_sample"][feature_set] = accuracy(fit.logits(s, x), y)
            result["runs"][str(run)] = row
            log(f"{run}: text {row['text']:.4f}, cross-fitted {row['cross_fitted']}")
    except InputError as e:
        raise SystemExit(f"error: {e}") from None
    rows = list(result["runs"].values())
    result["mean"] = {
        "text": statistics.fmean(r["text"] for r in rows),
        **{
            f"{kind}.{fs}": statistics.fmean(r[kind][fs] for r in rows)
            for kind in ("cross_fitted", "in_sample")
            for fs in FEATURE_SETS
        },
    }
    result["settings"] = {
        "config": str(args.config),
        "sets": args.sets,
        "questions": len(items),
        "folds": args.folds,
        "l2": args.l2,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(result))
    return 0


def _others(linked: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """The ``linked`` flags of every question's other choices, flattened."""
    mask = np.ones_like(linked, dtype=bool)
    mask[np.arange(len(answers)), answers] = False
    return linked[mask]


if __name__ == "__main__":
    raise SystemExit(main())
