"""The pretraining loop (``kelm pretrain``), one for every objective.

    result = pretrain(load_pretrain_config("configs/pretrain-ernie.yaml"))

One run:

1. **Setup**: an ``accelerate.Accelerator`` (one or several processes under ``torchrun`` /
   ``accelerate launch``; gloo on CPUs; mixed precision where the device has it), the run
   directory, seeds.
2. **Data** (:mod:`~kelm.pretraining.run_data`): the corpus (:mod:`~kelm.pretraining.corpus`)
   is linked (objectives with entities), tokenised and packed into cached instances
   (:mod:`~kelm.pretraining.instances`; the main process prepares them first, the others find
   the cache), then split by document into
   training and held-out instances.
3. **Model and optimizer**: the objective builds its module; AdamW with decay / no-decay groups;
   warm-up and decay over ``max_steps`` (:func:`kelm.engine.optim.make_scheduler`).
4. **Loop**: micro-batch ``m`` (``grad_accum_steps`` per optimizer step) is global batch
   ``m mod E`` of pass ``m div E`` over the training instances, a permutation seeded by
   ``(seed, pass)`` (:func:`kelm.engine.batching.global_batches`; ``batch_size`` is the global
   micro-batch); the objective collates it with the run's one ``torch.Generator`` (masking,
   noise), on every process alike, and each process keeps its share and weights its loss by
   it (:meth:`~kelm.pretraining.objectives.base.Objective.loss_weight`). Held-out evaluation
   every ``eval_every`` steps and at the end; checkpoints every ``save_every`` steps and at
   the end, holding model, optimizer, scheduler, the RNG states of every process and the
   collate generator's state: ``--resume`` reproduces the uninterrupted run exactly, and
   resumes on another number of processes (dropout's draws aside).
5. **Outputs** (main process): ``model/`` (the objective's kept model, ``save_pretrained`` +
   tokenizer), ``metrics.json``, ``history.json``, ``curves.png``, ``probe.json`` (when
   ``probe.enabled``), TensorBoard events in ``tb/``, ``config.resolved.yaml``.

Checkpoints use :mod:`kelm.engine.checkpoint`; their directory number is the optimizer step
(``checkpoints/epoch-0200`` holds the state after step 200).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kelm._io import write_json
from kelm.config import SEED_LIMIT
from kelm.engine import checkpoint as ckpt
from kelm.engine.batching import (
    check_global_batch,
    global_batches,
    move_to,
    rank_slice,
    share_scale,
    slice_batch,
)
from kelm.engine.logs import log_train_step, progress_bar, summary_writer
from kelm.engine.model_card import model_card
from kelm.engine.optim import make_scheduler, optimizer_step
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
from kelm.modeling.encoders import hf_progress_bars
from kelm.pretraining.config import (
    RESUMABLE_CHANGES,
    PretrainConfig,
    flat_pretrain_config,
    load_pretrain_config,
)
from kelm.pretraining.run_data import prepare_data

log = logging.getLogger(__name__)

RUN_OUTPUTS = (
    "model",
    "checkpoints",
    "tb",
    "metrics.json",
    "history.json",
    "curves.png",
    "probe.json",
)
GENERATOR_FILE = "generator-{rank}.safetensors"


@dataclass
class PretrainResult:
    """What :func:`pretrain` did.

    Attributes:
        run_dir: the run directory.
        metrics: the contents of ``metrics.json`` (empty when the run stopped early).
        history: per-step losses and the evaluations.
        completed: ``max_steps`` reached (``False`` after ``stop_after_steps``).
        resumed_from: the checkpoint the run continued from, if any.
    """

    run_dir: Path
    metrics: dict[str, Any]
    history: dict[str, Any]
    completed: bool
    resumed_from: Path | None = None


# ---------------------------------------------------------------------------------- run dir
def prepare_pretrain_run_dir(cfg: PretrainConfig, *, resume: bool, overwrite: bool) -> Path | None:
    """Check ``cfg.run_dir`` for this start mode; returns the checkpoint to resume from.

    Raises:
        KelmError: as :func:`~kelm.engine.runtime.check_run_dir`; resuming with a config
            that differs from the saved one outside
            :data:`~kelm.pretraining.config.RESUMABLE_CHANGES`.
    """
    return check_run_dir(
        Path(cfg.run_dir),
        resume=resume,
        overwrite=overwrite,
        outputs=RUN_OUTPUTS,
        check_config=lambda run_dir: check_resume_config(
            run_dir,
            flat_pretrain_config(cfg),
            lambda saved_file: flat_pretrain_config(load_pretrain_config(saved_file)),
            RESUMABLE_CHANGES,
        ),
    )


def resolve_mixed_precision(cfg: PretrainConfig) -> str:
    """``auto``: bf16 on a GPU that supports it, fp16 on another GPU, ``no`` on the CPU."""
    if cfg.mixed_precision != "auto":
        return cfg.mixed_precision
    if cfg.cpu or not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


# ---------------------------------------------------------------------------------- loop
def pretrain(
    cfg: PretrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    stop_after_steps: int | None = None,
    progress: bool = True,
    scheduler: str | None = None,
    workers: int | None = None,
) -> PretrainResult:
    """Pretrain (or continue pretraining) with ``cfg.objective``; see the module docstring.

    Args:
        cfg: the run's config (:func:`~kelm.pretraining.config.load_pretrain_config`).
        resume: continue from the newest checkpoint of ``cfg.run_dir``.
        overwrite: delete an existing run in ``cfg.run_dir`` first.
        stop_after_steps: stop (after a checkpoint) once this many optimizer steps have run
            in this call; ``resume=True`` continues.
        progress: progress bars (main process).
        scheduler: prepare the instances on this Dask cluster (``local``, ``slurm:CONFIG``
            or an address: :func:`kelm.cluster.dask_client`) when they are not cached.
        workers: ``scheduler="local"``: its worker processes.

    Raises:
        KelmError: bad config, corpus, graph or checkpoint; an existing run directory.
    """
    with hf_progress_bars(progress), torch_threads(cfg.threads):
        return _pretrain(
            cfg,
            resume=resume,
            overwrite=overwrite,
            stop_after_steps=stop_after_steps,
            progress=progress,
            cluster=(scheduler, workers),
        )


def _pretrain(
    cfg: PretrainConfig,
    *,
    resume: bool,
    overwrite: bool,
    stop_after_steps: int | None,
    progress: bool,
    cluster: tuple[str | None, int | None] = (None, None),
) -> PretrainResult:
    from accelerate.utils import set_seed

    from kelm.modeling.causal_lm import check_positions
    from kelm.pretraining.evaluate import evaluate_objective
    from kelm.pretraining.objectives.base import load_tokenizer_for, open_knowledge

    cfg.validate()
    if stop_after_steps is not None and stop_after_steps < 1:
        raise KelmError("--stop-after-steps must be at least 1")

    # ---- 1. setup
    accelerator = make_accelerator(cpu=cfg.cpu, mixed_precision=resolve_mixed_precision(cfg))
    rank, world = accelerator.process_index, accelerator.num_processes
    check_global_batch(cfg.batch_size, world)
    main = accelerator.is_main_process
    run_dir = Path(cfg.run_dir)
    resume_from = prepare_pretrain_run_dir(cfg, resume=resume, overwrite=overwrite)
    open_run_dir(accelerator, cfg, resume_from, overwrite=overwrite, outputs=RUN_OUTPUTS)
    show = progress and main

    # ---- 2. data
    objective_cls = cfg.objective_class()
    options = cfg.options()
    tokenizer = load_tokenizer_for(cfg)
    knowledge = None
    with accelerator.main_process_first():  # the main process builds the caches
        if objective_cls.needs_entities:
            knowledge = open_knowledge(cfg, progress=show)
        store = prepare_data(
            cfg,
            objective_cls,
            options,
            tokenizer,
            knowledge,
            progress=show,
            scheduler=cluster[0],
            workers=cluster[1],
        )
    objective = objective_cls(cfg, options, tokenizer, knowledge)
    train_idx, eval_idx = store.split(
        cfg.data.holdout, cfg.data.split_seed, cfg.data.max_eval_instances
    )

    # ---- 3. model and optimizer (identical on every process: same seed)
    set_seed(cfg.seed)
    with accelerator.main_process_first():  # caches of entity vectors
        model = objective.build_model(progress=show)
    check_positions(objective.kept_model(model), cfg.data.max_length, "model")
    warm = None
    if resume_from is None and not cfg.model.from_scratch and cfg.model.head_warmup_steps:
        from kelm.pretraining.head_warmup import warm_up_head
        from kelm.pretraining.instances import default_cache_dir

        cache = Path(cfg.data.cache_dir) if cfg.data.cache_dir else default_cache_dir()
        with accelerator.main_process_first():  # the main process fills the cache
            warm = warm_up_head(
                objective,
                objective.kept_model(model),
                [store[int(i)] for i in train_idx[:4096]],
                store_key=store.manifest.get("key"),
                cache_dir=cache,
            )
        if warm is not None and main:
            log.info("MLM head warm-up: %s", warm)
    o = cfg.optim
    optimizer = torch.optim.AdamW(
        objective.param_groups(model), lr=o.lr, betas=(o.betas[0], o.betas[1]), eps=o.eps
    )
    scheduler = make_scheduler(
        optimizer,
        warmup_steps=o.warmup_steps,
        schedule=o.schedule,
        total_steps=cfg.max_steps,
    )
    # One collate stream for the run, not one per process: every process collates the whole
    # global micro-batch with it (the same masks and noise) and keeps its share, so the draws
    # do not depend on the number of processes and a checkpoint resumes on any number.
    generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 1)

    history: dict[str, Any] = {"steps": [], "epochs": [], "totals": {"tokens": 0, "seconds": 0.0}}
    if warm is not None:
        history["head_warmup"] = warm
    global_step, rng = 0, None
    if resume_from is not None:
        state = restore_checkpoint(resume_from, rank, model, optimizer, scheduler)
        global_step = int(state.trainer_state["global_step"])
        history = state.trainer_state["history"]
        rng = state.rng
        gen_file = resume_from / GENERATOR_FILE.format(rank=0)
        if gen_file.is_file():
            from safetensors.torch import load_file

            generator.set_state(load_file(str(gen_file))["state"])
        else:
            generator.manual_seed(cfg.seed * 1_000_003 + 1 + 7919 * global_step)
        if rng is None or int(state.trainer_state.get("world_size", 1)) != world:
            # the collate stream continues; dropout's draws (per process) do not
            warn_streams_differ(resume_from, state.trainer_state.get("world_size"), world)

    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    if rng is not None:
        ckpt.set_rng_state(rng["tensors"], rng["meta"])
    elif resume_from is not None:
        set_seed((cfg.seed + 1000 * global_step + rank) % SEED_LIMIT)

    writer = summary_writer(run_dir, global_step if resume_from else None) if main else None
    accum = cfg.grad_accum_steps
    # batch_size is the global micro-batch: the passes do not depend on the processes
    per_epoch = len(global_batches(len(train_idx), cfg.batch_size, cfg.seed, 0))
    if main:
        log.info(
            "pretraining %s on %d instances (%d held out), %d steps x %d micro-batches of %d "
            "x %d process(es)",
            objective.name,
            len(train_idx),
            len(eval_idx),
            cfg.max_steps,
            accum,
            cfg.batch_size,
            world,
        )

    # ---- 4. the loop
    batches_of: dict[int, list[list[int]]] = {}
    started = global_step
    bar = progress_bar(cfg.max_steps, f"pretraining {objective.name}", show)
    bar.update(global_step)
    since_eval: list[float] = []
    model.train()
    while global_step < cfg.max_steps:
        t0 = time.perf_counter()
        logged: dict[str, torch.Tensor] = {}
        tokens = torch.zeros((), dtype=torch.float64)
        for k in range(accum):
            micro = global_step * accum + k
            epoch, pos = divmod(micro, per_epoch)
            if epoch not in batches_of:
                batches_of.clear()
                batches_of[epoch] = global_batches(len(train_idx), cfg.batch_size, cfg.seed, epoch)
            chosen = [store[int(train_idx[i])] for i in batches_of[epoch][pos]]
            collated = objective.collate(chosen, generator)
            scale, has_share = 1.0, True
            if world > 1:
                # This process's share of the global micro-batch; its loss weighted by its share
                # of what the loss is a mean over, so the gradients DDP averages are those of
                # the global micro-batch. A process without a share (a short last batch) runs
                # one row weighted 0: DDP needs every process in the backward.
                lo, hi = rank_slice(len(chosen), rank, world)
                mine = slice_batch(collated, len(chosen), *((lo, hi) if hi > lo else (0, 1)))
                if hi > lo:
                    part = objective.loss_weight(mine)
                    scale = share_scale(part, objective.loss_weight(collated), world)
                else:
                    scale, has_share = 0.0, False
                collated = mine
            batch = move_to(collated, accelerator.device)
            sync = contextlib.nullcontext() if k == accum - 1 else accelerator.no_sync(model)
            with sync:
                output = model(**objective.model_inputs(batch))
                losses = objective.losses(output, batch)
                loss = losses["loss"] if world == 1 else losses["loss"] * scale
                accelerator.backward(loss / accum)
            for name, value in losses.items():
                if value is None:
                    continue
                value = value.detach().double().cpu()
                if world > 1:
                    # summed over processes below: the global micro-batch's mean (a mean over
                    # another count than the loss's, e.g. ernie's dea_loss: close, not equal)
                    value = value * scale / world if scale else torch.zeros_like(value)
                logged[name] = logged.get(name, 0.0) + value / accum
            if has_share:
                tokens += batch["attention_mask"].sum().double().cpu()
        # The losses summed over processes, before the update: every process must take the
        # same decision on a non-finite loss.
        names = list(logged)
        stats = torch.stack([logged[n] for n in names] + [tokens]).to(accelerator.device)
        stats = accelerator.reduce(stats, "sum").cpu()  # summed over processes
        step_losses = {n: float(stats[i]) for i, n in enumerate(names)}
        lrs = optimizer_step(
            accelerator,
            model,
            optimizer,
            scheduler,
            o.max_grad_norm,
            loss=step_losses["loss"],
            step=global_step + 1,
            nonfinite_loss=cfg.nonfinite_loss,
        )
        global_step += 1
        history["totals"]["tokens"] += int(stats[-1])
        history["totals"]["seconds"] += time.perf_counter() - t0
        if lrs is None:  # skipped (nonfinite_loss: skip): counted, not averaged in
            history["totals"]["skipped_steps"] = history["totals"].get("skipped_steps", 0) + 1
            history["steps"].append({"step": global_step, "loss": None, "skipped": True})
        else:
            record = {"step": global_step, **step_losses, "lr": next(iter(lrs.values()), 0.0)}
            history["steps"].append(record)
            since_eval.append(step_losses["loss"])
            log_train_step(writer, step_losses, lrs, global_step, cfg.log_every)
            bar.set_postfix(loss=f"{step_losses['loss']:.4f}")
        bar.update(1)

        last = global_step == cfg.max_steps
        if (cfg.eval_every and global_step % cfg.eval_every == 0) or last:
            evaluation: dict[str, Any] = {}
            if main and len(eval_idx):
                evaluation = evaluate_objective(
                    objective,
                    unwrapped,
                    store,
                    eval_idx,
                    batch_size=cfg.eval_batch_size,
                    device=accelerator.device,
                )
            passes = global_step * accum * cfg.batch_size / max(len(train_idx), 1)
            entry: dict[str, Any] = {
                "epoch": round(passes, 4),
                "step": global_step,
                "train_loss": float(np.mean(since_eval)) if since_eval else None,
                **{f"eval_{k}": v for k, v in evaluation.items()},
            }
            main_metric = evaluation.get(objective.main_metric)
            entry["eval_accuracy"] = main_metric
            entry["eval_loss"] = evaluation.get("mlm_loss", evaluation.get("loss"))
            since_eval = []
            history["epochs"].append(entry)
            if writer is not None:
                for key, value in evaluation.items():
                    if isinstance(value, (int, float)) and key != "instances":
                        writer.add_scalar(f"eval/{key}", value, global_step)
                writer.flush()
            if show and evaluation:
                shown = ", ".join(f"{k} {v:.4f}" for k, v in evaluation.items() if k != "instances")
                bar.write(f"step {global_step}: {shown}")
            accelerator.wait_for_everyone()
        ran = global_step - started
        stopping = stop_after_steps is not None and ran >= stop_after_steps and not last
        if (cfg.save_every and global_step % cfg.save_every == 0) or last or stopping:
            write_checkpoint(
                accelerator,
                cfg.run_dir,
                global_step,
                model=unwrapped,
                optimizer=optimizer,
                scheduler=scheduler,
                trainer_state={
                    "epoch": global_step,
                    "global_step": global_step,
                    "unit": "optimizer step",
                    "history": history,
                    "world_size": world,
                    "seed": cfg.seed,
                    # the sampler's position is global: micro-batch global_step * accum of
                    # the global micro-batches of batch_size
                    "global_batch_size": cfg.batch_size,
                    "micro_batches": global_step * accum,
                },
                keep=cfg.keep_checkpoints,
                # the run's collate stream (the same on every process): --resume continues it
                per_process=lambda staged, rank: (
                    _save_generator(generator, staged) if rank == 0 else None
                ),
            )
        if stopping:
            break
    bar.close()

    # ---- 5. outputs
    completed = global_step >= cfg.max_steps
    if writer is not None:
        writer.close()
    metrics: dict[str, Any] = {}
    if completed and main:
        kept = objective.kept_model(unwrapped)
        probe = None
        if cfg.probe.enabled:
            from kelm.pretraining.probe import probe_model

            probe = probe_model(objective, kept, device=accelerator.device, progress=show)
            write_json(run_dir / "probe.json", probe)
        metrics = _final_metrics(cfg, objective, history, store, train_idx, eval_idx, probe)
        card = model_card(kept, run_dir, metrics, kind="pretrain")
        save_model(kept, tokenizer, run_dir / "model", card=card)
        write_json(run_dir / "metrics.json", metrics)
    if main:
        write_history(run_dir, history)
    accelerator.wait_for_everyone()
    return PretrainResult(run_dir, metrics, history, completed, resume_from)


def _final_metrics(
    cfg: PretrainConfig,
    objective: Any,
    history: dict[str, Any],
    store: Any,
    train_idx: np.ndarray,
    eval_idx: np.ndarray,
    probe: dict[str, Any] | None,
) -> dict[str, Any]:
    last_eval = history["epochs"][-1] if history["epochs"] else {}
    totals = history["totals"]
    metrics: dict[str, Any] = {
        "objective": objective.describe(),
        "seed": cfg.seed,
        "steps": history["steps"][-1]["step"] if history["steps"] else 0,
        "train_loss": history["steps"][-1]["loss"] if history["steps"] else None,
        "skipped_steps": totals.get("skipped_steps", 0),
        **{
            k[5:]: v
            for k, v in last_eval.items()
            if k.startswith("eval_") and k not in ("eval_accuracy", "eval_loss", "eval_instances")
        },
        "tokens_per_second": round(totals["tokens"] / max(totals["seconds"], 1e-9), 2),
        "train_tokens": totals["tokens"],
        "data": {
            **store.counts,
            "train_instances": int(len(train_idx)),
            "eval_instances": int(len(eval_idx)),
            "cache": str(store.path),
        },
    }
    if probe is not None:
        metrics["probe"] = {k: v for k, v in probe.items() if k != "per_relation"}
    return metrics


def _save_generator(generator: torch.Generator, staged: Path) -> None:
    """The collate generator's state, into checkpoint staging directory ``staged``."""
    from safetensors.torch import save_file

    save_file({"state": generator.get_state()}, str(staged / GENERATOR_FILE.format(rank=0)))


__all__ = [
    "RUN_OUTPUTS",
    "PretrainResult",
    "prepare_pretrain_run_dir",
    "pretrain",
    "resolve_mixed_precision",
]
