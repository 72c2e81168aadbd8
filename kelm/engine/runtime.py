"""The run around a loop: the accelerate setup, the run directory, resuming and writing
checkpoints, and the outputs every run writes (the model, ``history.json``, ``curves.png``).

The training loop (``kelm train``) and the pretraining loop (``kelm pretrain``) keep their own
steps, data and metrics; these helpers hold only what is the same for both, so a fix to (say)
the checkpoint protocol reaches both runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kelm._io import (
    check_output_dir,
    make_output_dir,
    publish_dir,
    remove_stale_staging,
    staging_dir,
    write_json,
)
from kelm.config import dump_config
from kelm.engine import checkpoint as ckpt
from kelm.errors import KelmError
from kelm.modeling.model_files import record_model_files

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------- setup
def make_accelerator(*, cpu: bool, mixed_precision: str) -> Any:
    """An ``accelerate.Accelerator`` for the processes this run was launched as (``torchrun``
    / ``accelerate launch`` set ``WORLD_SIZE``; one process otherwise). ``fp16`` on the CPU
    runs in float32, as accelerate does, with a warning that says so.

    Raises:
        KelmError: accelerate set up another number of processes than were launched.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    launched = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun / accelerate launch
    accelerator = Accelerator(
        # accelerate only runs several CPU processes (gloo) when told to use the CPU
        cpu=cpu or (launched > 1 and not torch.cuda.is_available()),
        mixed_precision=mixed_precision,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    if accelerator.num_processes != launched:
        raise KelmError(
            f"launched as {launched} processes but accelerate set up "
            f"{accelerator.num_processes}; check the launcher's settings"
        )
    if mixed_precision == "fp16" and accelerator.device.type == "cpu":
        # accelerate quietly leaves fp16 off on the CPU (no autocast, no gradient scaler)
        log.warning(
            "mixed_precision fp16 has no effect on the CPU: this run computes in float32 "
            "(bf16 works on the CPU)"
        )
    return accelerator


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` (``None``: unchanged) for a block, and the
    caller's count restored after it: a run must not change the process it runs in."""
    previous = torch.get_num_threads()
    if threads and threads > 0:  # a bad value is refused by the config's validation
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ---------------------------------------------------------------------------------- run dir
def check_run_dir(
    run_dir: Path,
    *,
    resume: bool,
    overwrite: bool,
    outputs: tuple[str, ...],
    check_config: Callable[[Path], None],
) -> Path | None:
    """Check the run directory for this start mode; returns the checkpoint to resume from.

    Args:
        run_dir: the run directory.
        resume: continue the run (``check_config(run_dir)`` then vets the config).
        overwrite: the run's ``outputs`` may be replaced.
        outputs: the names a run writes into ``run_dir``.
        check_config: raises when the run cannot resume with this config.

    Raises:
        KelmError: ``resume`` without checkpoint or with another config; an existing run
            without ``resume`` or ``overwrite``.
    """
    if resume and overwrite:
        raise KelmError("--resume and --overwrite exclude each other")
    check_output_dir(run_dir)
    if resume:
        latest = ckpt.latest_checkpoint(run_dir)
        if latest is None:
            raise KelmError(f"{run_dir}: nothing to resume (no checkpoints in {run_dir})")
        check_config(run_dir)
        return latest
    existing = [name for name in outputs if (run_dir / name).exists()]
    if existing and not overwrite:
        raise KelmError(
            f"{run_dir}: already holds a run ({', '.join(existing[:3])}); pass --resume to "
            "continue it, --overwrite to start over, or choose another run_dir"
        )
    return None


def check_resume_config(
    run_dir: Path,
    now: dict[str, Any],
    load_saved: Callable[[Path], dict[str, Any]],
    resumable: frozenset[str],
) -> None:
    """The config (flattened to ``{"a.b": value}``) must match the run's saved one
    (``load_saved(path)``, flattened alike) except for the ``resumable`` keys.

    Raises:
        KelmError: the saved config is missing or differs; the message names the first keys.
    """
    saved_file = run_dir / "config.resolved.yaml"
    if not saved_file.is_file():
        raise KelmError(f"{run_dir}: cannot resume, config.resolved.yaml is missing")
    saved = load_saved(saved_file)
    changed = [k for k in now if k not in resumable and now[k] != saved.get(k)]
    if changed:
        shown = ", ".join(f"{k} ({saved.get(k)!r} -> {now[k]!r})" for k in changed[:4])
        raise KelmError(
            f"{run_dir}: cannot resume with a different config: {shown}"
            f"{' ...' if len(changed) > 4 else ''}; resume with the run's own config "
            "(its config.resolved.yaml) or start a new run"
        )


def clear_run_dir(run_dir: Path, outputs: tuple[str, ...]) -> None:
    """Delete a run's ``outputs`` from ``run_dir`` (``--overwrite``)."""
    for name in outputs:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()


def open_run_dir(
    accelerator: Any,
    cfg: Any,
    resume_from: Path | None,
    *,
    overwrite: bool,
    outputs: tuple[str, ...],
) -> None:
    """The main process clears (``overwrite``: the run's ``outputs``), creates ``cfg.run_dir``
    and, for a new run, writes the resolved config to ``config.resolved.yaml``; every process
    waits for it."""
    run_dir = Path(cfg.run_dir)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if overwrite:
            clear_run_dir(run_dir, outputs)
        make_output_dir(run_dir)
        if resume_from is None:
            dump_config(cfg, run_dir / "config.resolved.yaml")
    accelerator.wait_for_everyone()


# ---------------------------------------------------------------------------------- checkpoints
def restore_checkpoint(
    path: Path, rank: int, model: nn.Module, optimizer: Any, scheduler: Any
) -> ckpt.Checkpoint:
    """Load checkpoint ``path`` (this process's RNG states included) into the model, optimizer
    and scheduler; returns it for the trainer state and the RNG states.

    Raises:
        CheckpointError: a damaged checkpoint, or one of another model.
    """
    state = ckpt.load_checkpoint(path, rank)
    try:
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ckpt.CheckpointError(
            f"checkpoint {path} does not fit this model ({str(exc).splitlines()[0][:200]})"
        ) from None
    scheduler.load_state_dict(state.scheduler)
    return state


def warn_streams_differ(path: Path, saved_world: Any, world: int) -> None:
    """Log that a resumed run cannot continue the checkpoint's random streams."""
    log.warning(
        "%s was written by %s processes, this run has %d: the random streams differ "
        "from an uninterrupted run",
        path,
        saved_world,
        world,
    )


def write_checkpoint(
    accelerator: Any,
    run_dir: str | Path,
    number: int,
    *,
    model: nn.Module,
    optimizer: Any,
    scheduler: Any,
    trainer_state: dict[str, Any],
    keep: int,
    per_process: Callable[[Path, int], None] | None = None,
) -> None:
    """Write checkpoint ``number``: the main process stages it, every process adds its RNG
    states (and ``per_process(staged_dir, rank)``), the main process writes the rest and
    publishes it."""
    if accelerator.is_main_process:
        ckpt.begin_checkpoint(run_dir, number)
    accelerator.wait_for_everyone()
    staged = ckpt.staging_path(run_dir, number)
    rank = accelerator.process_index
    ckpt.write_rng(staged, rank)
    if per_process is not None:
        per_process(staged, rank)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        ckpt.finish_checkpoint(
            run_dir,
            number,
            model_state=model.state_dict(),
            optimizer_state=optimizer.state_dict(),
            scheduler_state=scheduler.state_dict(),
            trainer_state=trainer_state,
            keep=keep,
        )
    accelerator.wait_for_everyone()


# ---------------------------------------------------------------------------------- outputs
def save_model(model: nn.Module, tokenizer: Any, out: Path, card: str | None = None) -> None:
    """``save_pretrained`` of the model and tokenizer, its model ``card`` (``README.md``,
    :mod:`kelm.engine.model_card`) when given, and the sha256 of every file
    (:mod:`kelm.modeling.model_files`), published atomically as ``out``."""
    remove_stale_staging(out)
    staged = staging_dir(out)
    try:
        model.save_pretrained(staged)
        tokenizer.save_pretrained(staged)
        if card is not None:
            # Written with the weights, before the sums are recorded (the card is one of the
            # files they cover), and published with them.
            (staged / "README.md").write_text(card, encoding="utf-8")
        record_model_files(staged)  # the sums every load of the run's model verifies
        publish_dir(staged, out)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def write_history(run_dir: Path, history: dict[str, Any]) -> None:
    """``history.json`` and its plot ``curves.png`` (without matplotlib: no plot, a warning;
    matplotlib is a dependency, but a run should not die for its plot)."""
    from kelm.engine.curves import plot_curves

    write_json(run_dir / "history.json", history)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log.warning("matplotlib is not installed; no curves.png")
        return
    plot_curves(history, run_dir / "curves.png")


__all__ = [
    "check_resume_config",
    "check_run_dir",
    "clear_run_dir",
    "make_accelerator",
    "open_run_dir",
    "restore_checkpoint",
    "save_model",
    "torch_threads",
    "warn_streams_differ",
    "write_checkpoint",
    "write_history",
]
