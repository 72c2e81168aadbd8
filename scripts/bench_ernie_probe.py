"""Does ERNIE pretraining carry graph knowledge into the encoder? A knowledge-necessary probe.

A made-up-word world (:mod:`kelm.pretraining.knowledge_probe`): heads used for tails, one head
per tail probed, its fact in the graph only. The graph is embedded with TransE (``kelm
embed-kg``), then ERNIE (MLM + dEA, entity table = those vectors) and the MLM-only control are
pretrained with the same settings, steps and seed on the same corpus, and both are probed:
"a {head} is used for [MASK]..." ranked over every tail. Prints one JSON object.

    python scripts/bench_ernie_probe.py --seeds 0 1      # about 23 min per run on one thread

The defaults are the measured setting (100 tails, 1,000 steps, backbone lr 3e-4, ERNIE's added
parameters at 3e-3); at 300 steps neither model has learned even the stated facts.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
import yaml


def load_run(run_dir: Path) -> tuple[Any, Any]:
    """The objective and kept model of a finished run (as ``kelm probe`` loads them)."""
    from kelm.pretraining.config import load_pretrain_config
    from kelm.pretraining.objectives.base import load_tokenizer_for, open_knowledge

    cfg = load_pretrain_config(run_dir / "config.resolved.yaml")
    cls = cfg.objective_class()
    knowledge = open_knowledge(cfg) if cls.needs_entities else None
    cfg.model.tokenizer = str(run_dir / "model")
    objective = cls(cfg, cfg.options(), load_tokenizer_for(cfg), knowledge)
    return objective, objective.load_kept_model(run_dir / "model")


def run_arm(objective: str, work: Path, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from kelm.pretraining.config import load_pretrain_config
    from kelm.pretraining.knowledge_probe import probe_world
    from kelm.pretraining.loop import pretrain

    run_dir = work / f"run-{objective}-s{seed}"
    cfg: dict[str, Any] = {
        "run_dir": str(run_dir),
        "seed": seed,
        "objective": objective,
        "max_steps": args.steps,
        "eval_every": args.steps,
        "batch_size": args.batch_size,
        "threads": 1,
        "mixed_precision": "no",
        "corpus": {"kind": "text", "paths": [str(work / "world" / "corpus")]},
        "data": {"max_length": 24, "holdout": 0.05, "cache_dir": str(work / "cache")},
        "knowledge": {
            "index": str(work / "graph"),
            "entity_init": "kge",
            "kge_dir": str(work / "kge"),
        },
        "model": {"encoder": args.encoder, "head_warmup_steps": args.head_warmup_steps},
        "masking": {"probability": args.mask_probability, "whole_word": True},
        "optim": {"lr": args.lr, "warmup_steps": max(1, args.steps // 10)},
    }
    if objective == "ernie":
        cfg["objective_options"] = {
            "num_knowledge_layers": args.knowledge_layers,
            "unlink_masked": args.unlink_masked,
            "knowledge_lr": args.knowledge_lr or None,
        }
    if args.encoder is None:
        del cfg["model"]["encoder"]
    path = work / f"{objective}-s{seed}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    t0 = time.perf_counter()
    result = pretrain(load_pretrain_config(path), overwrite=True, progress=False)
    seconds = time.perf_counter() - t0
    obj, model = load_run(run_dir)
    graph = obj.knowledge.index if obj.knowledge is not None else None
    probe = probe_world(obj, model, args.world, graph)
    return {
        "probe": probe,
        # the corpus is one document, split by document: no held-out MLM accuracy to report
        "train_loss": result.metrics.get("train_loss"),
        "head_warmup": result.history.get("head_warmup"),
        "seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tails", type=int, default=100, help="made-up tail words (probe candidates)")
    p.add_argument(
        "--heads-per-tail", type=int, default=3, help="heads used for each tail (one is probed)"
    )
    p.add_argument("--steps", type=int, default=1000, help="pretraining steps per arm")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per step")
    p.add_argument("--lr", type=float, default=3e-4, help="backbone learning rate")
    p.add_argument("--mask-probability", type=float, default=0.25, help="share of words masked")
    p.add_argument(
        "--head-warmup-steps", type=int, default=300, help="MLM head-only warm-up (cached)"
    )
    p.add_argument(
        "--knowledge-layers", type=int, default=2, help="ERNIE fusion layers (top of the encoder)"
    )
    p.add_argument(
        "--knowledge-lr",
        type=float,
        default=3e-3,
        help="learning rate of ERNIE's added parameters (objective_options.knowledge_lr; 0: --lr)",
    )
    p.add_argument("--kge-epochs", type=int, default=200, help="TransE epochs on the world graph")
    p.add_argument("--kge-dim", type=int, default=64, help="TransE dimension")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    p.add_argument(
        "--unlink-masked",
        action="store_true",
        help="a masked mention loses its input entity (objective_options.unlink_masked)",
    )
    p.add_argument("--encoder", default=None, help="backbone folder (default: bundled MiniLM)")
    p.add_argument(
        "--arms",
        nargs="+",
        choices=["ernie", "mlm"],
        default=["ernie", "mlm"],
        help="ernie and/or mlm (the control)",
    )
    p.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs (arm x seed) at once, each in a process of one thread",
    )
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)

    from kelm.graph import build_index
    from kelm.graph.sources.base import BuildOptions
    from kelm.kge import KGEConfig, embed_kg
    from kelm.pretraining.knowledge_probe import make_world, write_world

    with tempfile.TemporaryDirectory(prefix="kelm-ernie-probe-") as tmp:
        work = Path(args.work or tmp)
        args.world = make_world(args.tails, args.heads_per_tail, seed=0)
        files = write_world(args.world, work / "world")
        build_index([files["graph"]], work / "graph", BuildOptions(format="tsv"), progress=False)
        kcfg = KGEConfig(model="transe", dim=args.kge_dim, epochs=args.kge_epochs, seed=0)
        embed_kg(work / "graph", work / "kge", kcfg, progress=False)
        out: dict[str, Any] = {
            "world": {
                "tails": args.tails,
                "heads": len(args.world.facts),
                "probe_heads": len(args.world.probe_heads),
            },
            "settings": {k: v for k, v in vars(args).items() if k not in ("world", "work", "arms")},
            "runs": {},
        }
        tasks = [(arm, seed) for seed in args.seeds for arm in args.arms]
        if args.jobs > 1 and len(tasks) > 1:
            # spawn: a fresh interpreter per run (no forked torch thread pools)
            context = multiprocessing.get_context("spawn")
            workers = min(args.jobs, len(tasks))
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures = [pool.submit(run_arm, arm, work, seed, args) for arm, seed in tasks]
                results = [f.result() for f in futures]
        else:
            results = [run_arm(arm, work, seed, args) for arm, seed in tasks]
        for (arm, seed), result in zip(tasks, results, strict=True):
            out["runs"][f"{arm}/seed{seed}"] = result
        for arm in args.arms:
            hits = [out["runs"][f"{arm}/seed{s}"]["probe"]["hits@10"] for s in args.seeds]
            out[f"{arm}_hits@10_mean"] = sum(hits) / len(hits)
        if "ernie" in args.arms and "mlm" in args.arms:
            control = out["mlm_hits@10_mean"]
            out["ratio_hits@10"] = out["ernie_hits@10_mean"] / control if control else None
    print(summary(out), file=sys.stderr)
    print(json.dumps(out, indent=1))
    return out


def summary(out: dict[str, Any]) -> str:
    """A readable table of the runs (stderr; the JSON on stdout is the result)."""
    lines = [f"{'run':<14} {'hits@1':>7} {'hits@10':>8} {'MRR':>6}"]
    probe: dict[str, Any] = {}
    for name, run in out["runs"].items():
        probe = run["probe"]
        lines.append(
            f"{name:<14} {probe['hits@1']:>7.3f} {probe['hits@10']:>8.3f} {probe['mrr']:>6.3f}"
        )
    if probe:
        lines.append(
            f"{'chance':<14} {probe['chance_hits@1']:>7.3f} {probe['chance_hits@10']:>8.3f} "
            f"{probe['chance_mrr']:>6.3f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
