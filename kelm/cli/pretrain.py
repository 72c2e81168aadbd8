"""``kelm pretrain`` (pretrain an encoder from a config) and ``kelm probe`` (its probe)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kelm.cli._common import (
    AtLeast,
    DeviceOption,
    MetricsJsonOption,
    OverwriteOption,
    ProgressOption,
    ResumeOption,
    RunDirOption,
    SchedulerOption,
    WorkersOption,
    config_option,
    echo_json,
    echo_unfinished_run,
    run_config_args,
    set_option,
    user_errors,
)

_PRETRAIN_SUMMARY_METRICS = (
    "mlm_accuracy",
    "perplexity",
    "dea_accuracy",
    "nsp_accuracy",
    "sop_accuracy",
    "lm_accuracy",
    "rtd_accuracy",
    "generator_mlm_accuracy",
    "cos_loss",
    "hidden_loss",
    "attention_loss",
)
"""Held-out metrics the ``kelm pretrain`` summary line shows, those the objective reports."""


@user_errors
def pretrain_command(
    config: Annotated[
        Path | None, config_option("Pretraining config YAML (configs/pretrain-*.yaml).")
    ] = None,
    overrides: Annotated[list[str] | None, set_option("max_steps=200")] = None,
    run_dir: RunDirOption = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
    stop_after_steps: Annotated[
        int | None,
        typer.Option(help="Stop after this many optimizer steps of this invocation."),
    ] = None,
    progress: ProgressOption = True,
    as_json: MetricsJsonOption = False,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
) -> None:
    """Pretrain an encoder (mlm, ernie, ...; runs under `torchrun` / `accelerate launch` too;
    --scheduler links and packs the corpus on a Dask cluster)."""
    from kelm.pretraining.config import load_pretrain_config

    cfg = load_pretrain_config(*run_config_args(config, overrides, run_dir, resume))
    from kelm.pretraining.loop import pretrain

    result = pretrain(
        cfg,
        resume=resume,
        overwrite=overwrite,
        stop_after_steps=stop_after_steps,
        progress=progress,
        scheduler=scheduler,
        workers=workers,
    )
    steps = len(result.history["steps"])
    if echo_unfinished_run(result, as_json=as_json, unit="step", done=steps, total=cfg.max_steps):
        return
    m = result.metrics
    shown = ", ".join(
        f"{k} {m[k]:.4f}" for k in _PRETRAIN_SUMMARY_METRICS if isinstance(m.get(k), float)
    )
    typer.echo(
        f"pretrained {cfg.objective} for {m['steps']:,} steps "
        f"({m['tokens_per_second']:,.0f} tokens/s){'; held out: ' + shown if shown else ''}; "
        f"run in {result.run_dir}"
    )


@user_errors
def probe_command(
    run: Annotated[Path, typer.Option("--run", help="Run directory of `kelm pretrain`.")],
    triples: Annotated[
        list[Path] | None,
        typer.Option(
            "--triples", help="CN-100K-format triple files (default: the run's probe.files)."
        ),
    ] = None,
    templates: Annotated[
        Path | None, typer.Option(help="YAML of cloze templates per relation.")
    ] = None,
    max_triples: Annotated[
        int | None, typer.Option(help="Probe at most N triples."), AtLeast(1)
    ] = None,
    device: DeviceOption = "auto",
    progress: ProgressOption = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Knowledge probe: CN-100K triples as cloze sentences, hits@k of the tail (probe.json)."""
    from kelm.pretraining.probe import probe_run

    r = probe_run(
        run,
        files=list(triples) if triples else None,
        templates=templates,
        max_triples=max_triples,
        device=device,
        progress=progress,
    )
    if as_json:
        echo_json(r)
        return
    typer.echo(
        f"probe of {run}: {r['n']:,} triples, hits@1 {r['hits@1']:.4f}, "
        f"hits@10 {r['hits@10']:.4f}, MRR {r['mrr']:.4f}; wrote {run / 'probe.json'}"
    )
