"""``kelm train``: train a multiple-choice QA model from a config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kelm.cli._common import (
    MetricsJsonOption,
    OverwriteOption,
    ProgressOption,
    ResumeOption,
    RunDirOption,
    config_option,
    echo_unfinished_run,
    run_config_args,
    set_option,
    user_errors,
)


@user_errors
def train_command(
    config: Annotated[Path | None, config_option("Training config YAML (see configs/).")] = None,
    overrides: Annotated[list[str] | None, set_option("optim.lm_lr=2e-5")] = None,
    run_dir: RunDirOption = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
    stop_after_epochs: Annotated[
        int | None,
        typer.Option(help="Stop after this many epochs of this invocation (resume later)."),
    ] = None,
    progress: ProgressOption = True,
    as_json: MetricsJsonOption = False,
) -> None:
    """Train a multiple-choice QA model (runs under `torchrun` / `accelerate launch` too)."""
    from kelm.training.config import load_train_config

    cfg = load_train_config(*run_config_args(config, overrides, run_dir, resume))
    from kelm.training.loop import train

    result = train(
        cfg,
        resume=resume,
        overwrite=overwrite,
        stop_after_epochs=stop_after_epochs,
        progress=progress,
    )
    epochs = len(result.history["epochs"])
    if echo_unfinished_run(result, as_json=as_json, unit="epoch", done=epochs, total=cfg.epochs):
        return
    m = result.metrics
    acc = (
        f"; eval accuracy {m['accuracy']:.4f} on {m['n_labelled']:,} questions"
        if m.get("accuracy") is not None
        else ""
    )
    loss = "-" if m["train_loss"] is None else f"{m['train_loss']:.4f}"  # every step skipped
    skipped = f", {m['skipped_steps']:,} skipped" if m.get("skipped_steps") else ""
    typer.echo(
        f"trained {cfg.model.type} for {epochs} epochs ({m['steps']:,} steps{skipped}), "
        f"train loss {loss}{acc}; run in {result.run_dir}"
    )
