"""The training loop (``kelm train``), written to be read top to bottom.

    result = train(load_train_config("configs/csqa-qagnn.yaml"))

One run:

1. **Setup** (:mod:`kelm.engine.runtime`): an ``accelerate.Accelerator`` (one or several
   processes: ``torchrun`` / ``accelerate launch``; gloo on CPUs), the run directory, seeds.
2. **Data** (:mod:`kelm.training.run_data`): QA file -> training questions and a held-out
   split, prepared for the family of ``model.type`` (:func:`kelm.pipeline.prepare_examples`):
   subgraph families ground -> retrieve (cached) and get one subgraph (+ paths) per statement;
   entity families get each statement's mentions linked to graph nodes, aligned to wordpieces.
3. **Model** (:mod:`kelm.training.model_factory`): the family's builder on the text encoder;
   families with a graph get a node (entity) table of the graph's size, initialised from KG
   embeddings or from text embeddings of the node names (cached per graph checksum + encoder).
4. **Optimizer**: AdamW or RAdam, one learning rate for the text encoder and one for the
   rest; a warm-up + linear/cosine/constant schedule; the encoder frozen for the first
   ``optim.unfreeze_epoch`` epochs / ``optim.freeze_lm_steps`` steps. While it is frozen, its
   output (statement vectors; ERNIE: T-Encoder token states) is computed once and reused
   (:mod:`kelm.engine.frozen`).
5. **Loop**: per epoch a permutation seeded by ``(seed, epoch)``, cut into global batches of
   ``batch_size`` of which each process takes its share, weighting its loss by it
   (:mod:`kelm.engine.batching`): a step on ``W`` processes is the one-process step on the
   same batch up to the order of the float sums, and a run resumes on another number of
   processes (with dropout, whose masks are drawn per process, close but not equal); per
   step cross-entropy over
   the choices (with ``distill.teacher``, mixed with the KL divergence to a teacher run's
   choice distribution: :mod:`kelm.training.distillation`); after each epoch evaluation on
   the held-out split and a checkpoint (model, optimizer, scheduler, RNG states).
   ``resume=True`` restarts from the newest checkpoint and reproduces the uninterrupted run
   exactly. On the CPU, runs of one config, seed and thread count (``threads``) are meant to
   be bitwise identical (models gather repeated rows with
   :func:`kelm.modeling.gather.gather_rows`, whose backward does not race); other thread
   counts split the sums of matrix products and layer norms differently, so their numbers
   differ in the last bits.
6. **Outputs** (main process): ``model/`` (``save_pretrained`` + tokenizer), ``metrics.json``,
   ``predictions.jsonl``, ``history.json``, ``curves.png``; TensorBoard events in ``tb/``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kelm._io import write_json
from kelm.config import SEED_LIMIT, flat_dict
from kelm.engine import checkpoint as ckpt
from kelm.engine.batching import (
    check_global_batch,
    global_batches,
    move_to,
    rank_slice,
    share_scale,
)
from kelm.engine.frozen import frozen_features, with_frozen_features
from kelm.engine.logs import log_train_step, progress_bar, summary_writer
from kelm.engine.model_card import model_card
from kelm.engine.optim import decays, make_scheduler, optimizer_step
from kelm.engine.predict import check_finite, predict_logits, score, write_predictions
from kelm.engine.runtime import (
    check_resume_config,
    check_run_dir,
    make_accelerator,
    open_run_dir,
    restore_checkpoint,
    save_model,
    torch_threads,
    warn_streams_differ,
    write_checkpoint,
    write_history,
)
from kelm.errors import KelmError
from kelm.modeling.backbones import IGNORE_INDEX
from kelm.modeling.encoders import hf_progress_bars
from kelm.pipeline import Collator
from kelm.training.config import TrainConfig, load_train_config
from kelm.training.distillation import (
    choice_distillation_loss,
    teacher_batch,
    teacher_choice_logits,
)
from kelm.training.model_factory import build_model, run_tokenizer, set_lm_trainable
from kelm.training.run_data import RunData, load_data

log = logging.getLogger(__name__)

RESUMABLE_CHANGES = frozenset(
    {
        "run_dir",
        "eval_batch_size",
        "log_every",
        "threads",
        "keep_checkpoints",
        "graph.cache_dir",
        "nonfinite_loss",
    }
)
"""Config keys that may differ between a run and its ``--resume`` (they do not change the
numbers; ``nonfinite_loss`` only changes a run that would otherwise stop)."""

RUN_OUTPUTS = (
    "model",
    "checkpoints",
    "tb",
    "metrics.json",
    "predictions.jsonl",
    "history.json",
    "curves.png",
)


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes:
        run_dir: the run directory.
        metrics: the contents of ``metrics.json`` (empty when the run stopped early).
        history: per-step and per-epoch losses and accuracies.
        completed: all ``epochs`` done (``False`` after ``stop_after_epochs``).
        resumed_from: the checkpoint the run continued from, if any.
    """

    run_dir: Path
    metrics: dict[str, Any]
    history: dict[str, Any]
    completed: bool
    resumed_from: Path | None = None


# ---------------------------------------------------------------------------------- optim
def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (or RAdam, ``optim.optimizer``) with four groups: encoder / rest x decay / no
    decay (biases, norms, 1-d); the rest decays by ``gnn_weight_decay`` when that is set.

    Frozen non-encoder parameters (a frozen node table) are left out; the encoder is always
    in (it may only be frozen for the first steps).
    """
    o = cfg.optim
    groups: dict[str, list[nn.Parameter]] = {
        "lm": [],
        "lm_no_decay": [],
        "gnn": [],
        "gnn_no_decay": [],
    }
    for name, p in model.named_parameters():
        lm = name.startswith("text_encoder.")
        if not lm and not p.requires_grad:
            continue
        no_decay = not decays(name, p)
        groups[("lm" if lm else "gnn") + ("_no_decay" if no_decay else "")].append(p)
    gnn_decay = o.weight_decay if o.gnn_weight_decay is None else o.gnn_weight_decay
    decay_of = {"lm": o.weight_decay, "gnn": gnn_decay}
    param_groups = [
        {
            "params": params,
            "lr": o.lm_lr if name.startswith("lm") else o.gnn_lr,
            "weight_decay": 0.0 if name.endswith("no_decay") else decay_of[name],
            "name": name,
        }
        for name, params in groups.items()
        if params
    ]
    betas = (o.betas[0], o.betas[1])
    if o.optimizer == "radam":
        return torch.optim.RAdam(param_groups, betas=betas, eps=o.eps, decoupled_weight_decay=True)
    return torch.optim.AdamW(param_groups, betas=betas, eps=o.eps)


def lm_frozen_at(cfg: TrainConfig, epoch: int, step: int) -> bool:
    """Whether the text encoder is frozen in ``epoch`` (0-based) at optimizer step ``step``."""
    return epoch < cfg.optim.unfreeze_epoch or step < cfg.optim.freeze_lm_steps


# ---------------------------------------------------------------------------------- run dir
def _check_resume_config(cfg: TrainConfig, run_dir: Path) -> None:
    """The config must match the run's saved one, except :data:`RESUMABLE_CHANGES`."""
    check_resume_config(
        run_dir,
        flat_dict(cfg),
        lambda saved_file: flat_dict(load_train_config(saved_file)),
        RESUMABLE_CHANGES,
    )


def prepare_run_dir(cfg: TrainConfig, *, resume: bool, overwrite: bool) -> Path | None:
    """Check the run directory for this start mode; returns the checkpoint to resume from.

    Raises:
        KelmError: ``resume`` without checkpoint or with another config; an existing run
            without ``resume`` or ``overwrite``.
    """
    return check_run_dir(
        Path(cfg.run_dir),
        resume=resume,
        overwrite=overwrite,
        outputs=RUN_OUTPUTS,
        check_config=lambda run_dir: _check_resume_config(cfg, run_dir),
    )


# ---------------------------------------------------------------------------------- train
def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    stop_after_epochs: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or continue training) a multiple-choice model; see the module docstring.

    Args:
        cfg: the run's config (:func:`~kelm.training.config.load_train_config`).
        resume: continue from the newest checkpoint of ``cfg.run_dir``.
        overwrite: delete an existing run in ``cfg.run_dir`` first.
        stop_after_epochs: stop (after checkpointing) once this many epochs have run in this
            call; ``--resume`` continues.
        progress: progress bars (main process).

    Raises:
        KelmError: bad config, data, graph or checkpoint; an existing run directory.
    """
    with hf_progress_bars(progress), torch_threads(cfg.threads):
        return _train(
            cfg,
            resume=resume,
            overwrite=overwrite,
            stop_after_epochs=stop_after_epochs,
            progress=progress,
        )


def _train(
    cfg: TrainConfig,
    *,
    resume: bool,
    overwrite: bool,
    stop_after_epochs: int | None,
    progress: bool,
) -> TrainResult:
    from accelerate.utils import set_seed

    cfg.validate()
    if stop_after_epochs is not None and stop_after_epochs < 1:
        raise KelmError("--stop-after-epochs must be at least 1")

    # ---- 1. setup: processes, run directory, seeds
    accelerator = make_accelerator(cpu=cfg.cpu, mixed_precision=cfg.mixed_precision)
    rank, world = accelerator.process_index, accelerator.num_processes
    check_global_batch(cfg.batch_size, world)
    main = accelerator.is_main_process
    run_dir = Path(cfg.run_dir)
    resume_from = prepare_run_dir(cfg, resume=resume, overwrite=overwrite)
    open_run_dir(accelerator, cfg, resume_from, overwrite=overwrite, outputs=RUN_OUTPUTS)
    set_seed(cfg.seed)
    show = progress and main

    # ---- 2. data
    tokenizer = run_tokenizer(cfg)
    data = load_data(cfg, tokenizer, accelerator, progress=show)
    if not data.train:
        raise KelmError(f"{cfg.data.train}: no training questions")
    collator = Collator(tokenizer.pad_token_id or 0, cfg.graph.hops, cfg.model.max_paths)
    # Task distillation: the teacher run scores the training questions once (soft targets).
    soft_targets = None
    if cfg.distill.teacher:
        soft_targets = teacher_choice_logits(
            cfg.distill.teacher,
            data.train_items,
            device=accelerator.device,
            batch_size=cfg.eval_batch_size,
            progress=show,
        )
    alpha = cfg.distill.alpha if soft_targets is not None else 0.0

    # ---- 3. model (identical on every process: same seed)
    set_seed(cfg.seed)
    with accelerator.main_process_first():  # the main process fills the node-name cache
        model = build_model(cfg, tokenizer, data.graph, progress=show)
    family = cfg.family

    # ---- 4. optimizer and schedule
    # batch_size is the global batch: the steps of an epoch do not depend on the processes
    batches_per_epoch = len(global_batches(len(data.train), cfg.batch_size, cfg.seed, 0))
    total_steps = cfg.epochs * batches_per_epoch
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(
        optimizer,
        warmup_steps=cfg.optim.warmup_steps,
        schedule=cfg.optim.schedule,
        total_steps=total_steps,
    )

    # ---- resume: model, optimizer, scheduler, history (RNG states at the very end)
    history: dict[str, Any] = {"steps": [], "epochs": []}
    start_epoch, global_step, rng = 0, 0, None
    if resume_from is not None:
        state = restore_checkpoint(resume_from, rank, model, optimizer, scheduler)
        start_epoch = int(state.trainer_state["epoch"])
        global_step = int(state.trainer_state["global_step"])
        history = state.trainer_state["history"]
        rng = state.rng
        if rng is None or int(state.trainer_state.get("world_size", 1)) != world:
            warn_streams_differ(resume_from, state.trainer_state.get("world_size"), world)

    # The encoder must require grad when DDP wraps the model (it registers those parameters
    # only); freezing afterwards makes them "unused" in DDP's eyes for the frozen steps.
    set_lm_trainable(model, True)
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    lm_frozen: bool | None = None
    # Frozen-encoder features (computed on first use; the encoder is frozen from step 0 until
    # it unfreezes for good, so they stay valid for the whole frozen phase).
    reuse = family.frozen_input is not None
    frozen_sets: dict[str, list[Any]] = {}

    def frozen_examples(name: str, examples: list[Any]) -> list[Any]:
        if name not in frozen_sets:
            features = frozen_features(
                unwrapped,
                examples,
                collator,
                batch_size=cfg.eval_batch_size,
                device=accelerator.device,
                progress=show,
            )
            frozen_sets[name] = with_frozen_features(examples, features)
        return frozen_sets[name]

    if rng is not None:
        ckpt.set_rng_state(rng["tensors"], rng["meta"])
    elif resume_from is not None:
        set_seed((cfg.seed + 1000 * start_epoch + rank) % SEED_LIMIT)

    writer = summary_writer(run_dir, global_step if resume_from else None) if main else None
    if main:
        log.info(
            "training %s on %d questions (%d held out), %d steps/epoch x %d epochs, %d process(es)",
            family.name,
            len(data.train),
            len(data.eval),
            batches_per_epoch,
            cfg.epochs,
            world,
        )

    # ---- 5. the loop
    eval_logits: list[np.ndarray] | None = None
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        batches = global_batches(len(data.train), cfg.batch_size, cfg.seed, epoch)
        t0, statements = time.perf_counter(), 0
        loss_sum = torch.zeros(3, dtype=torch.float64)  # [sum of losses, correct, questions]
        skipped = 0  # steps with a non-finite loss (nonfinite_loss: skip)
        bar = progress_bar(len(batches), f"epoch {epoch + 1}/{cfg.epochs}", show)
        for global_batch in batches:
            lo, hi = rank_slice(len(global_batch), rank, world)
            idx = global_batch[lo:hi]
            # A process without a share of the last, short batch still runs forward and
            # backward (DDP needs every process) on one example weighted 0.
            scale = share_scale(len(idx), len(global_batch), world) if world > 1 else 1.0
            idx = idx or global_batch[:1]
            frozen = lm_frozen_at(cfg, epoch, global_step)
            if frozen != lm_frozen:
                set_lm_trainable(unwrapped, not frozen)
                lm_frozen = frozen
            train_set = frozen_examples("train", data.train) if frozen and reuse else data.train
            batch = move_to(collator([train_set[i] for i in idx]), accelerator.device)
            output = model(**family.model_inputs(batch))
            logits = output.logits.float()  # [B, C]
            logits = logits.masked_fill(~batch["choice_mask"], float("-inf"))  # [B, C]
            labels = batch["labels"]  # [B]
            loss = nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)  # []
            objective = loss if alpha == 0 else (1.0 - alpha) * loss
            step_logs: dict[str, float] = {}
            if soft_targets is not None:
                teacher = teacher_batch(soft_targets, idx, logits.shape[1], logits.device)
                kd = choice_distillation_loss(
                    output.logits, teacher, batch["choice_mask"], cfg.distill.temperature
                )  # []
                objective = objective + alpha * kd
                step_logs["distill_loss"] = float(accelerator.reduce(kd.detach(), "mean"))
            # gpt: the weighted auxiliary LM loss joins the gradient; logs keep the choice loss.
            aux = getattr(output, "aux_loss", None)
            total = objective if aux is None else objective + aux
            if world > 1:
                # DDP averages the gradients: weighted by its share of the global batch, each
                # process's mean makes the average the gradient of the global batch's mean
                # (the one-process step). aux (a token mean) is weighted alike: close, not equal.
                total = total * scale
            accelerator.backward(total)

            # The step's loss summed over processes, before the update: every process must
            # take the same decision on a non-finite loss.
            share = float(len(idx)) if scale else 0.0
            correct = (logits.argmax(-1) == labels).sum().double() * (1.0 if share else 0.0)
            count = torch.tensor(share, dtype=torch.float64, device=loss.device)
            chosen_loss = loss.detach().double() * count if share else count
            stats = torch.stack(
                [
                    chosen_loss,
                    correct,
                    count,
                    total.detach().double(),
                    batch["choice_mask"].sum().double() * (1.0 if share else 0.0),
                ]
            )  # [5]
            stats = accelerator.reduce(stats, "sum").cpu()  # [5] summed over processes
            lrs = optimizer_step(
                accelerator,
                model,
                optimizer,
                scheduler,
                cfg.optim.max_grad_norm,
                loss=float(stats[3]),
                step=global_step + 1,
                nonfinite_loss=cfg.nonfinite_loss,
            )
            global_step += 1
            statements += int(stats[4])
            if lrs is None:  # skipped (nonfinite_loss: skip): counted, not averaged in
                skipped += 1
                history["steps"].append(
                    {"step": global_step, "epoch": epoch + 1, "loss": None, "skipped": True}
                )
                bar.update(1)
                continue
            loss_sum += stats[:3]
            step_loss = float(stats[0] / stats[2])
            history["steps"].append(
                {
                    "step": global_step,
                    "epoch": epoch + 1,
                    "loss": step_loss,
                    "lr_lm": lrs.get("lm", lrs.get("lm_no_decay", 0.0)),
                    "lr_gnn": lrs.get("gnn", lrs.get("gnn_no_decay", 0.0)),
                    "lm_frozen": frozen,
                    **step_logs,
                }
            )
            log_train_step(
                writer, {"loss": step_loss, **step_logs}, lrs, global_step, cfg.log_every
            )
            bar.set_postfix(loss=f"{step_loss:.4f}")
            bar.update(1)
        bar.close()
        train_seconds = time.perf_counter() - t0

        # ---- end of epoch: evaluate, record, checkpoint
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": global_step,
            "train_loss": float(loss_sum[0] / loss_sum[2]) if loss_sum[2] else None,
            "train_accuracy": float(loss_sum[1] / loss_sum[2]) if loss_sum[2] else None,
            "skipped_steps": skipped,
            "train_seconds": round(train_seconds, 3),
            "train_statements_per_second": round(statements / max(train_seconds, 1e-9), 2),
        }
        last = epoch + 1 == cfg.epochs
        eval_logits = None
        if data.eval and (cfg.eval_every_epoch or last):
            t1 = time.perf_counter()
            # The frozen phase is a prefix: if the last step was frozen, the encoder has not
            # moved yet and its features are still those computed once.
            eval_set = frozen_examples("eval", data.eval) if reuse and lm_frozen else data.eval
            eval_logits = predict_logits(
                unwrapped,
                eval_set,
                collator,
                family,
                batch_size=cfg.eval_batch_size,
                device=accelerator.device,
                accelerator=accelerator,
                progress=show,
            )
            check_finite(eval_logits, f"epoch {epoch + 1}")
            m = score(data.eval, eval_logits)
            record["eval_loss"] = m.get("loss")
            record["eval_accuracy"] = m.get("accuracy")
            eval_seconds = time.perf_counter() - t1
            record["eval_seconds"] = round(eval_seconds, 3)
            eval_statements = sum(e.num_choices for e in data.eval)
            record["eval_statements_per_second"] = round(
                eval_statements / max(eval_seconds, 1e-9), 2
            )
        history["epochs"].append(record)
        if writer is not None:
            for key in ("train_loss", "train_accuracy", "eval_loss", "eval_accuracy"):
                if record.get(key) is not None:
                    group, name = key.split("_", 1)
                    writer.add_scalar(f"{group}/epoch_{name}", record[key], epoch + 1)
            writer.flush()
        if show:
            acc_text = (
                f", eval accuracy {record['eval_accuracy']:.4f}"
                if record.get("eval_accuracy") is not None
                else ""
            )
            loss_text = "-" if record["train_loss"] is None else f"{record['train_loss']:.4f}"
            print(f"epoch {epoch + 1}: train loss {loss_text}{acc_text}")
        write_checkpoint(
            accelerator,
            cfg.run_dir,
            epoch + 1,
            model=unwrapped,
            optimizer=optimizer,
            scheduler=scheduler,
            trainer_state={
                "epoch": epoch + 1,
                "global_step": global_step,
                "history": history,
                "world_size": world,
                "seed": cfg.seed,
                # the sampler's position is global: batch_size (global) and the epoch say it
                "global_batch_size": cfg.batch_size,
            },
            keep=cfg.keep_checkpoints,
        )
        ran = epoch + 1 - start_epoch
        if stop_after_epochs is not None and ran >= stop_after_epochs and not last:
            break

    completed = len(history["epochs"]) >= cfg.epochs
    if writer is not None:
        writer.close()
    metrics: dict[str, Any] = {}
    if completed:
        if data.eval and eval_logits is None:  # resumed a finished run: evaluate again
            eval_logits = predict_logits(
                unwrapped,
                data.eval,
                collator,
                family,
                batch_size=cfg.eval_batch_size,
                device=accelerator.device,
                accelerator=accelerator,
            )
        metrics = _final_metrics(cfg, history, data, eval_logits, score)
    # ---- 6. outputs
    if main:
        write_history(run_dir, history)
        if completed:
            card = model_card(unwrapped, run_dir, metrics, kind="train")
            save_model(unwrapped, tokenizer, run_dir / "model", card=card)
            if eval_logits is not None:
                write_predictions(run_dir / "predictions.jsonl", data.eval, eval_logits)
            write_json(run_dir / "metrics.json", metrics)
    accelerator.wait_for_everyone()
    return TrainResult(run_dir, metrics, history, completed, resume_from)


def _final_metrics(
    cfg: TrainConfig,
    history: dict[str, Any],
    data: RunData,
    eval_logits: list[np.ndarray] | None,
    score: Any,
) -> dict[str, Any]:
    last = history["epochs"][-1]
    metrics: dict[str, Any] = {"model": cfg.model.type, "seed": cfg.seed}
    if eval_logits is not None:
        metrics.update(score(data.eval, eval_logits))
    else:
        metrics.update({"n": 0, "n_labelled": 0})
    metrics.update(
        {
            "epochs": len(history["epochs"]),
            "steps": last["step"],
            "train_loss": last["train_loss"],
            "train_accuracy": last["train_accuracy"],
            "skipped_steps": sum(e.get("skipped_steps", 0) for e in history["epochs"]),
            "train_statements_per_second": last.get("train_statements_per_second"),
            "eval_statements_per_second": last.get("eval_statements_per_second"),
            "data": data.counts,
            "history": [
                {k: v for k, v in e.items() if not k.endswith(("seconds", "per_second"))}
                for e in history["epochs"]
            ],
        }
    )
    return metrics


__all__ = [
    "RESUMABLE_CHANGES",
    "TrainResult",
    "lm_frozen_at",
    "make_optimizer",
    "prepare_run_dir",
    "train",
]
