"""Progress and logs of a run: tqdm bars and TensorBoard points."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar counting steps (disabled: a no-op with the same methods)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=not enabled, dynamic_ncols=True)


def summary_writer(run_dir: Path, purge_step: int | None) -> Any:
    """A TensorBoard writer on ``run_dir/tb`` (``None`` without tensorboard)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but a run should not die for logs
        log.warning("tensorboard is not installed; no TensorBoard logs")
        return None
    return SummaryWriter(str(run_dir / "tb"), purge_step=purge_step)


def log_train_step(
    writer: Any, losses: dict[str, float], lrs: dict[str, float], step: int, log_every: int
) -> None:
    """A step's losses as ``train/<name>``; every ``log_every`` steps the learning rates as
    ``lr/<group>``. No-op without a writer (other processes, no tensorboard)."""
    if writer is None:
        return
    for name, value in losses.items():
        writer.add_scalar(f"train/{name}", value, step)
    if step % log_every == 0:
        for name, lr in lrs.items():
            writer.add_scalar(f"lr/{name}", lr, step)


__all__ = ["log_train_step", "progress_bar", "summary_writer"]
