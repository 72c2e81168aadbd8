#!/usr/bin/env python
"""Benchmark: the shipped CommonsenseQA configs (text baseline, KagNet, QA-GNN, ERNIE), trained
and evaluated on the held-out 10% of CommonsenseQA v1.0 train with several seeds.

Every run is ``kelm train`` on ``configs/csqa-{lm,kagnet,qagnn,gsc,ernie}.yaml`` with the overrides
below (the same for every model), evaluated by the run itself on the held-out split
(``data.holdout: 0.1`` with the shipped ``data.split_seed``: the same questions for every model
and seed). Seeds change model initialisation, dropout and batch order, not the split.

Default settings are sized to stay near 60 minutes on 2 idle CPU cores (4 models x 3 seeds; pass
``--threads 1`` when something else runs beside it): a seeded subset of
``--train-questions`` training questions, statements cut to ``--max-length`` tokens, subgraphs
of ``--max-nodes`` nodes, ``--epochs`` epochs of which the first ``--frozen-epochs`` keep the
MiniLM encoder frozen (forward only; the GNN and heads learn) and the rest fine-tune it.
The graph pipeline (CN-100K index, grounding, retrieval, ERNIE's entity links and TransE table,
node-name embeddings) runs once, first, and is cached in ``--cache`` for every run;
``--scorer none`` (default here) keeps the subgraph cap in degree order instead of embedding
every statement for the cosine scorer.

``--time-limit MIN`` starts no run that would end past MIN minutes (estimated from the model's
previous seed, else the longest run so far); ``settings.left_out`` names the runs left out.
``--jobs N`` trains N runs at once, each in a process of its own with ``--threads`` threads
(default 1): ``--jobs 2`` on 2 cores takes about half the time of one run after another (the
cached graph pipeline is shared; runs that prepare the same cache entry take turns).

``--quick`` checks that everything works: about 100 training questions, 100 held-out
questions, one seed, one epoch.

``--full`` is the comparison that counts: all of CommonsenseQA v1.0 train (the held-out 10% for
evaluation), 3 epochs of which the first keeps the encoder frozen (``optim.unfreeze_epoch``:
statement vectors computed once; ``--epochs`` / ``--frozen-epochs`` change both for an
ablation), RAdam, 3 seeds: 20 to 25 minutes a run on one CPU thread, 15 runs (``--jobs 2`` runs
two at once on 2 cores). Every finished run
leaves ``bench.json`` in its run directory, and ``--resume`` reuses those of equal settings and
continues an interrupted run from its newest checkpoint (one per epoch; ``kelm train --resume``
reproduces the uninterrupted run) when its run directory holds one of the same config, so an
interrupted benchmark continues where it stopped. ``--ernie-pretrained RUN/model`` adds
``ernie-pretrained``: the ERNIE config initialised from a ``kelm pretrain`` ERNIE run, beside the
scratch fusion.

``--models ... ernie-text`` adds ERNIE with no entity linked (``model.entities: false``): with
the encoder frozen, ERNIE's K-Encoder layers still train, so ``lm`` is not its like-for-like
baseline; ``ernie-text`` is. ``--set KEY=VALUE`` (repeatable) adds a config override to every
run, for ablations (``--set model.statement_paths=false``).

``--encoder DIR`` trains another copy of the encoder (``scripts/gpu_run.sh`` passes the
half-precision MiniLM it carries, widened back to float32); ``--mixed-precision bf16`` trains in
bfloat16 autocast (a GPU; ``mixed_precision`` of the run config).

The JSON also reports the graph side: the share of statements with a question-answer path and
the mean subgraph size (nodes), from the retrieval of the training and held-out statements;
``graph.question_classes`` sorts the held-out questions by what the graph's direct edges say
about their choices (only the correct one linked to a question concept, only others, ...: see
:mod:`kelm.evaluation.graph_signal`), and ``accuracy_by_question_class`` gives each model's
accuracy in each class (mean over seeds): where a knowledge model gains and loses.

Output: one JSON object on stdout (progress on stderr)::

    {"lm": {"mean", "std", "accuracies"}, "kagnet": {...}, "qagnn": {...}, "ernie": {...},
     "settings": {..., "device", "mixed_precision", "left_out"}, "graph": {...},
     "throughput": {"lm", "kagnet", ..., "kagnet_over_lm", "qagnn_over_lm", "ernie_over_lm"},
     "train_throughput": {...same keys...}, "seconds": {...}}

``throughput`` is inference speed in statements (question-choice pairs) per second on the
held-out split, the mean over seeds; ``train_throughput`` is training statements per second
over all epochs; ``*_over_lm`` is the knowledge model's statements/s divided by the baseline's
(below 1: slower). ``std`` is the sample standard deviation over seeds (0 for one seed).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODELS = ("lm", "kagnet", "qagnn", "gsc", "ernie", "ernie-text")
#: Benchmark models that are a shipped config with fixed overrides: ``ernie-text`` is ERNIE with
#: no entity linked (its K-Encoder layers and head train on the text alone), the like-for-like
#: text baseline of ``ernie`` when the encoder is frozen (its top layers still train).
VARIANTS = {"ernie-text": ("ernie", ["model.entities=false"]), "ernie-pretrained": ("ernie", [])}
DEFAULT_MODELS = ("lm", "kagnet", "qagnn", "gsc", "ernie")
#: Every model --models takes: ``ernie-pretrained`` also needs --ernie-pretrained.
ALL_MODELS = (*MODELS, "ernie-pretrained")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="~100 questions, 1 seed, 1 epoch")
    p.add_argument(
        "--full",
        action="store_true",
        help="all of CSQA train, 3 epochs (1 frozen) unless --epochs / --frozen-epochs, RAdam",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse finished runs of equal settings; continue interrupted ones from their "
        "newest checkpoint",
    )
    p.add_argument(
        "--ernie-pretrained",
        type=Path,
        default=None,
        help="a `kelm pretrain` ERNIE run's model/ folder: also train ernie from it",
    )
    p.add_argument("--optimizer", default="adamw", choices=("adamw", "radam"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--models",
        nargs="+",
        choices=ALL_MODELS,
        default=list(DEFAULT_MODELS),
        help="ernie-text: ERNIE with no entity linked (the text baseline of ernie); "
        "ernie-pretrained: ERNIE from --ernie-pretrained (added when that is given)",
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one more config override for every run (an ablation); repeatable",
    )
    p.add_argument("--train-questions", type=int, default=1000, help="0: all")
    p.add_argument("--eval-questions", type=int, default=None, help="default: all held out")
    p.add_argument("--epochs", type=int, default=None, help="default 2 (--full: 3)")
    p.add_argument(
        "--frozen-epochs",
        type=int,
        default=None,
        help="epochs that keep the encoder frozen first (default 0; --full: 1)",
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=48)
    p.add_argument("--max-nodes", type=int, default=32)
    p.add_argument("--scorer", default="none", choices=("none", "cosine", "lm"))
    p.add_argument("--lm-lr", type=float, default=1e-4)
    p.add_argument("--gnn-lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument(
        "--encoder", default=None, help="text encoder folder (default: the bundled MiniLM)"
    )
    p.add_argument("--mixed-precision", default="no", choices=("no", "fp16", "bf16"))
    p.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="MIN",
        help="start no run that would end past MIN minutes (the JSON lists those left out)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at once, each in a process of --threads threads (default 1 then)",
    )
    p.add_argument("--out", type=Path, default=REPO / "runs" / "bench-qa")
    p.add_argument("--cache", type=Path, default=None, help="pipeline cache directory")
    p.add_argument("--data-dir", type=Path, default=None, help="default: $KELM_DATA")
    p.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep each run's checkpoints/ (default: delete them after the run; model/, "
        "metrics and predictions stay)",
    )
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.jobs > 1 and args.time_limit is not None:
        p.error("--time-limit estimates each run from the one before: use it with --jobs 1")
    if args.quick:
        args.seeds = args.seeds[:1]
        args.train_questions = 100
        args.eval_questions = args.eval_questions or 100
        args.epochs = 1
        args.frozen_epochs = 0
        args.out = args.out.with_name(args.out.name + "-quick")
    elif args.full:
        # the recipe's epochs unless given: an ablation may change them
        args.train_questions = 0
        args.epochs = 3 if args.epochs is None else args.epochs
        args.frozen_epochs = 1 if args.frozen_epochs is None else args.frozen_epochs
        args.max_length, args.optimizer = 64, "radam"
        args.out = args.out.with_name(args.out.name + "-full")
    args.epochs = 2 if args.epochs is None else args.epochs
    args.frozen_epochs = 0 if args.frozen_epochs is None else args.frozen_epochs
    if args.ernie_pretrained is not None:
        if not (args.ernie_pretrained / "config.json").is_file():
            raise SystemExit(f"error: {args.ernie_pretrained}: no config.json (a run's model/?)")
        if "ernie-pretrained" not in args.models:
            args.models = [*args.models, "ernie-pretrained"]
    elif "ernie-pretrained" in args.models:
        p.error("--models ernie-pretrained needs --ernie-pretrained RUN/model")
    return args


def config_of(model: str) -> Path:
    """The shipped config a benchmark model trains (a variant: its base model's)."""
    return REPO / "configs" / f"csqa-{VARIANTS.get(model, (model,))[0]}.yaml"


def full_train_questions() -> int:
    """Training questions of a run on all of the CSQA file (``$KELM_DATA``): the file's
    questions less the held-out 10%, as :func:`kelm.pipeline.split_items` rounds them; the
    warm-up is a share of the steps these make."""
    from kelm.paths import data_dir

    n = _count_lines(data_dir() / "qa" / "csqa" / "train_rand_split_v1.0.jsonl")
    return n - int(round(0.1 * n))


@functools.cache
def _count_lines(path: Path) -> int:
    """Non-empty lines of ``path`` (one question each), counted once per path."""
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def overrides(args: argparse.Namespace, model: str, seed: int) -> list[str]:
    """The ``--set`` overrides of one run."""
    questions = args.train_questions or full_train_questions()
    steps_per_epoch = math.ceil(questions / args.batch_size)
    total = steps_per_epoch * args.epochs
    sets = [
        f"run_dir={args.out / f'{model}-s{seed}'}",
        f"seed={seed}",
        f"epochs={args.epochs}",
        f"batch_size={args.batch_size}",
        "eval_batch_size=64",
        "eval_every_epoch=false",
        "keep_checkpoints=1",
        f"data.max_train={args.train_questions or 'null'}",
        f"data.max_length={args.max_length}",
        f"graph.max_nodes={args.max_nodes}",
        f"graph.scorer={args.scorer}",
        f"optim.lm_lr={args.lm_lr}",
        f"optim.gnn_lr={args.gnn_lr}",
        f"optim.warmup_steps={max(total // 10, 1)}",
        "optim.freeze_lm_steps=0",
        f"optim.unfreeze_epoch={args.frozen_epochs}",
        f"optim.optimizer={args.optimizer}",
    ]
    sets += VARIANTS.get(model, ("", []))[1]
    if model == "ernie-pretrained":
        sets.append(f"model.encoder={args.ernie_pretrained}")
    elif args.encoder:
        sets.append(f"model.encoder={args.encoder}")
    if args.mixed_precision != "no":
        sets.append(f"mixed_precision={args.mixed_precision}")
    if args.eval_questions:
        sets.append(f"data.max_eval={args.eval_questions}")
    if args.cache:
        sets.append(f"graph.cache_dir={args.cache}")
    if args.threads:
        sets.append(f"threads={args.threads}")
    return sets + list(args.sets)


def split_questions(cfg: Any) -> tuple[list[Any], list[Any]]:
    """The training and held-out questions of a run, as ``kelm train`` splits them."""
    from kelm.training.run_data import run_items

    return run_items(cfg)


def prepare_graph(
    args: argparse.Namespace, *, embeddings: bool = True, device: str = "cpu"
) -> tuple[float, dict[str, Any]]:
    """Run the graph pipeline once (index, grounding, retrieval; ERNIE's entity links and its
    TransE table; node-name embeddings) so that every graph run finds it cached; returns its
    seconds and the retrieval's statistics.

    ``embeddings=False`` leaves out what needs no spaCy (the TransE table, the node-name
    embeddings: ``scripts/gpu_run.py pack`` packs the rest, and the GPU machine computes
    these); ``device`` trains the TransE table and embeds the node names (``cuda`` there)."""
    from kelm.modeling import default_text_encoder_path
    from kelm.pipeline.node_embeddings import node_name_embeddings
    from kelm.training import load_train_config
    from kelm.training.model_factory import graph_embeddings
    from kelm.training.run_data import open_graph, retrieve_options

    start = time.perf_counter()
    cfg = load_train_config(REPO / "configs" / "csqa-qagnn.yaml", overrides(args, "qagnn", 0))
    parts = split_questions(cfg)
    log("graph pipeline: index, grounding, retrieval ...")
    graph = open_graph(cfg)
    assert graph is not None
    counts = {"statements": 0, "nodes": 0, "without_paths": 0}
    for part in parts:  # as `kelm train` prepares them
        store = graph.retrieve(part, retrieve_options(cfg.graph), pipeline=cfg.graph.pipeline)
        for key in counts:
            counts[key] += int(store.manifest["counts"][key])
    names = False
    for model in args.models:
        m_cfg = load_train_config(config_of(model), overrides(args, model, 0))
        family, m = m_cfg.family, m_cfg.model
        if family.uses_entities and m.entities:
            log(f"graph pipeline: {model} entity links ...")
            for part in parts:
                graph.link_entities(part, pipeline=m_cfg.graph.pipeline)
        init = m.node_init if m.node_init != "auto" else ("kge" if m.kge_dir else None)
        init = init or family.default_node_init
        if embeddings and family.node_table and init == "graph":
            log(f"graph pipeline: {model} {m.kge_model} embeddings of the graph ...")
            graph_embeddings(m_cfg, graph, device=device)
        names = names or (family.node_table and init == "names")
    if embeddings and names:
        log("graph pipeline: node-name embeddings ...")
        encoder = str(cfg.model.encoder or default_text_encoder_path())
        node_name_embeddings(graph, None, None, encoder, device=device)
    n = max(counts["statements"], 1)
    stats = {
        "statements": counts["statements"],
        "share_with_qa_path": round(1.0 - counts["without_paths"] / n, 4),
        "mean_subgraph_nodes": round(counts["nodes"] / n, 2),
        "question_classes": held_out_classes(args, graph, parts[1], cfg.graph.pipeline),
    }
    return time.perf_counter() - start, stats


def held_out_classes(args: argparse.Namespace, graph: Any, items: list[Any], pipeline: Any) -> dict:
    """Classify the held-out questions by what the graph's direct edges say about their
    choices (:mod:`kelm.evaluation.graph_signal`); the classes go to
    ``OUT/question_classes.json`` (for :func:`report`), their sizes are returned."""
    from collections import Counter

    from kelm._io import write_json
    from kelm.evaluation.graph_signal import CLASSES, link_classes, read_grounded

    grounded = read_grounded(graph.grounded_path(items, pipeline))
    classes = link_classes(graph.index, items, grounded)
    write_json(args.out / "question_classes.json", classes)
    sizes = Counter(classes.values())
    return {c: sizes[c] for c in CLASSES}


def accuracy_by_graph_signal(
    args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]]
) -> dict[str, dict[str, float]]:
    """Each model's held-out accuracy per question class (mean over its seeds); empty without
    ``OUT/question_classes.json`` (the graph pipeline did not run)."""
    from kelm.evaluation.graph_signal import accuracy_by_class, read_correct

    file = args.out / "question_classes.json"
    if not file.is_file():
        return {}
    classes = json.loads(file.read_text(encoding="utf-8"))
    out: dict[str, dict[str, float]] = {}
    for model, model_runs in runs.items():
        per_class: dict[str, list[float]] = {}
        for r in model_runs:
            run_dir = next(o for o in r["overrides"] if o.startswith("run_dir="))[8:]
            if not (Path(run_dir) / "predictions.jsonl").is_file():
                continue
            for c, v in accuracy_by_class(classes, read_correct(run_dir)).items():
                per_class.setdefault(c, []).append(v["accuracy"])
        if per_class:
            out[model] = {c: round(statistics.fmean(v), 4) for c, v in per_class.items()}
    return out


def resume_point(cfg: Any) -> Path | None:
    """The checkpoint an interrupted run of ``cfg`` continues from (its run directory holds
    one, written with the same config), else ``None`` (the run starts afresh)."""
    from kelm.errors import KelmError
    from kelm.training.loop import prepare_run_dir

    try:
        return prepare_run_dir(cfg, resume=True, overwrite=False)
    except KelmError:  # no checkpoint, no saved config, another config
        return None


def run_one(
    args: argparse.Namespace, model: str, seed: int, config: Path | None = None
) -> dict[str, Any]:
    """Train (and evaluate) one model with one seed (``config``: its config file, default
    :func:`config_of`); the run's metrics and timings."""
    from kelm.engine.checkpoint import CheckpointError
    from kelm.training import load_train_config, train

    sets = overrides(args, model, seed)
    record = Path(args.out / f"{model}-s{seed}" / "bench.json")
    if args.resume and record.is_file():
        saved = json.loads(record.read_text())
        if saved.get("overrides") == sets:
            log(f"{model} seed {seed}: reusing the finished run")
            return saved
    cfg = load_train_config(config or config_of(model), sets)
    start = time.perf_counter()
    checkpoint = resume_point(cfg) if args.resume else None
    result = None
    if checkpoint is not None:
        log(f"{model} seed {seed}: continuing from {checkpoint.name}")
        try:
            result = train(cfg, resume=True, progress=False)
        except CheckpointError as exc:  # a damaged checkpoint: start over
            log(f"{model} seed {seed}: {exc}; starting afresh")
            checkpoint = None
    if result is None:
        result = train(cfg, overwrite=True, progress=False)
    seconds = time.perf_counter() - start
    if not args.keep_checkpoints:
        shutil.rmtree(Path(cfg.run_dir) / "checkpoints", ignore_errors=True)
    epochs = result.history["epochs"]
    train_seconds = sum(e["train_seconds"] for e in epochs)
    statements = result.metrics["data"]["train_statements"] * len(epochs)
    out = {
        "accuracy": result.metrics.get("accuracy"),
        "n": result.metrics.get("n"),
        "eval_statements_per_second": result.metrics.get("eval_statements_per_second"),
        "train_statements_per_second": statements / max(train_seconds, 1e-9),
        "seconds": seconds,
        "resumed_from": checkpoint.name if checkpoint is not None else None,
        "overrides": sets,
    }
    from kelm._io import write_json

    write_json(record, out)  # atomically: a run interrupted before this line is redone
    return out


def summarise(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one seed) and the values (``None`` for none)."""
    if not values:
        return {"mean": None, "std": None, "accuracies": []}
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "accuracies": values,
    }


def run_all(
    args: argparse.Namespace, t0: float, after_run: Callable[..., None] | None = None
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Every model for one seed, then the next seed; with ``--time-limit``, a run that would
    end past the limit, counted from ``t0`` (its model's previous seed took as long, or, for a
    first seed, the longest run so far) is not started. ``after_run(runs, left_out)`` is
    called after each run. Returns the runs per model and the runs left out."""
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in args.models}
    left_out: list[str] = []
    if args.jobs > 1:
        return run_in_processes(args, runs, after_run), left_out
    limit = args.time_limit * 60 if args.time_limit else None
    for seed in args.seeds:
        for model in args.models:
            if limit is not None:
                done = [r["seconds"] for rs in runs.values() for r in rs]
                mine = [r["seconds"] for r in runs[model]]
                need = mine[-1] if mine else max(done, default=0.0)
                if time.perf_counter() - t0 + need > limit:
                    log(f"{model} seed {seed}: left out (~{need:.0f}s would pass the time limit)")
                    left_out.append(f"{model}-s{seed}")
                    continue
            log(f"{model} seed {seed} ...")
            r = run_one(args, model, seed)
            runs[model].append(r)
            log_run(model, seed, r)
            if after_run is not None:
                after_run(runs, left_out)
    return runs, left_out


def log_run(model: str, seed: int, r: dict[str, Any]) -> None:
    accuracy, n, seconds = r["accuracy"], r["n"], r["seconds"]
    log(f"{model} seed {seed}: accuracy {accuracy:.4f} on {n} questions in {seconds:.0f}s")


def run_in_processes(
    args: argparse.Namespace,
    runs: dict[str, list[dict[str, Any]]],
    after_run: Callable[..., None] | None,
) -> dict[str, list[dict[str, Any]]]:
    """:func:`run_all` with ``--jobs`` runs at once in spawned processes (a fresh interpreter
    each: no forked torch thread pool); runs start in the usual order (every model of a seed,
    then the next seed) and are reported per model in seed order."""
    tasks = [(model, seed) for seed in args.seeds for model in args.models]
    done: dict[tuple[str, int], dict[str, Any]] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(args.jobs, len(tasks)), mp_context=context) as pool:
        futures = {}
        for model, seed in tasks:
            log(f"{model} seed {seed} ...")
            futures[pool.submit(run_in_process, args, model, seed, config_of(model))] = (
                model,
                seed,
            )
        for future in as_completed(futures):
            model, seed = futures[future]
            done[model, seed] = future.result()
            log_run(model, seed, done[model, seed])
            if after_run is not None:
                after_run(_in_seed_order(args, done), [])
    return _in_seed_order(args, done)


def _in_seed_order(
    args: argparse.Namespace, done: dict[tuple[str, int], dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    return {m: [done[m, s] for s in args.seeds if (m, s) in done] for m in args.models}


def run_in_process(args: argparse.Namespace, model: str, seed: int, config: Path) -> dict[str, Any]:
    """:func:`run_one` in a worker process of ``--threads`` torch threads (default 1)."""
    import torch

    torch.set_num_threads(args.threads or 1)
    return run_one(args, model, seed, config)


def device_name() -> str:
    """The accelerator the runs train on (``cpu`` without one)."""
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def report(
    args: argparse.Namespace,
    runs: dict[str, list[dict[str, Any]]],
    left_out: list[str],
    graph_stats: dict[str, Any],
    seconds: dict[str, Any],
) -> dict[str, Any]:
    """The benchmark's JSON object (see the module docstring)."""
    import torch

    out: dict[str, Any] = {m: summarise([r["accuracy"] for r in runs[m]]) for m in args.models}
    throughput: dict[str, Any] = {}
    train_throughput: dict[str, Any] = {}
    for m in args.models:
        if not runs[m]:
            continue
        throughput[m] = round(statistics.fmean(r["eval_statements_per_second"] for r in runs[m]), 2)
        train_throughput[m] = round(
            statistics.fmean(r["train_statements_per_second"] for r in runs[m]), 2
        )
        seconds[m] = round(sum(r["seconds"] for r in runs[m]), 1)
    for table in (throughput, train_throughput):
        for m in ALL_MODELS[1:]:
            if m in table and "lm" in table:
                table[f"{m}_over_lm"] = round(table[m] / max(table["lm"], 1e-9), 3)
    evaluated = [rs[0]["n"] for rs in runs.values() if rs]
    out["settings"] = {
        "quick": args.quick,
        "full": args.full,
        "optimizer": args.optimizer,
        "seeds": args.seeds,
        "train_questions": args.train_questions,
        "eval_questions": evaluated[0] if evaluated else None,
        "epochs": args.epochs,
        "frozen_epochs": args.frozen_epochs,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "max_nodes": args.max_nodes,
        "scorer": args.scorer,
        "lm_lr": args.lm_lr,
        "gnn_lr": args.gnn_lr,
        "threads": (args.threads or 1) if args.jobs > 1 else torch.get_num_threads(),
        "jobs": args.jobs,
        "device": device_name(),
        "mixed_precision": args.mixed_precision,
        "encoder": args.encoder,
        "time_limit_minutes": args.time_limit,
        "left_out": left_out,
        "configs": [str(config_of(m).relative_to(REPO)) for m in args.models],
        "ernie_pretrained": str(args.ernie_pretrained) if args.ernie_pretrained else None,
        "overrides": list(args.sets),
        "throughput_unit": "held-out statements per second (inference)",
    }
    out["graph"] = graph_stats
    out["accuracy_by_question_class"] = accuracy_by_graph_signal(args, runs)
    out["throughput"] = throughput
    out["train_throughput"] = train_throughput
    out["seconds"] = seconds
    return out


def main(argv: list[str] | None = None) -> None:
    from _bench import start

    args = parse_args(argv)
    start(args)
    t0 = time.perf_counter()
    seconds: dict[str, Any] = {}
    graph_stats: dict[str, Any] = {}
    if any(m != "lm" for m in args.models):
        pipeline_seconds, graph_stats = prepare_graph(args)
        seconds["graph_pipeline"] = round(pipeline_seconds, 1)
        log(f"graph pipeline ready in {seconds['graph_pipeline']:.0f}s")
    runs, left_out = run_all(args, t0)
    seconds["total"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report(args, runs, left_out, graph_stats, seconds), indent=2))


if __name__ == "__main__":
    main()
