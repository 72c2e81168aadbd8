"""What the command modules share: the error wrapper, JSON output, the common options, options
objects from dataclasses (with ``--config`` / ``--set``) and the run options of ``kelm train`` /
``kelm pretrain``.

Nothing here imports more than typer and kelm's foundation modules, so ``kelm --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from kelm._io import json_ready
from kelm.errors import KelmError

T = TypeVar("T")


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a KelmError into a one-line message and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KelmError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def echo_json(obj: Any) -> None:
    """Print ``obj`` as JSON (non-finite numbers as ``null``: JSON has no NaN)."""
    typer.echo(json.dumps(json_ready(obj), indent=2, ensure_ascii=False, allow_nan=False))


# ------------------------------------------------------------------------ common options
GraphOption = Annotated[Path, typer.Option("--graph", "-g", help="Graph index directory.")]
ProgressOption = Annotated[bool, typer.Option(help="Show progress bars.")]
MetricsJsonOption = Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")]


def config_option(help: str) -> Any:
    """``--config`` / ``-c``: a YAML file of settings (the help names which)."""
    return typer.Option("--config", "-c", help=help)


def set_option(example: str) -> Any:
    """``--set key=value``, repeatable; the help shows ``example``."""
    return typer.Option("--set", help=f"Override a config key: --set {example} (repeatable).")


# ------------------------------------------ options objects: dataclass, --config, --set, flags
def settings_from(
    cls: type[T], config: Path | None, overrides: list[str] | None, ctx: typer.Context
) -> T:
    """The dataclass ``cls`` from, in rising precedence: its defaults, the ``--config`` YAML,
    the ``--set`` overrides, then the command's flags of the same names given on the command
    line (a flag left at its default does not override the YAML)."""
    from kelm.config import load_config

    settings = load_config(cls, config, overrides)
    given = {
        name: value
        for name, value in dataclass_fields(cls, ctx.params).items()
        if _on_command_line(ctx, name)
    }
    return dataclasses.replace(settings, **given)


def _on_command_line(ctx: typer.Context, name: str) -> bool:
    # By the enum's name: recent typer vendors click (typer._click), older typer uses click's.
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def dataclass_fields(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``params`` (a command's parsed options) that name a field of ``cls``.

    Paths become strings: the option dataclasses hold paths as ``str``, as YAML gives them.
    """
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return {
        name: str(value) if isinstance(value, Path) else value
        for name, value in params.items()
        if name in names
    }


# -------------------------------------------------------- kelm train / kelm pretrain runs
RunDirOption = Annotated[
    Path | None, typer.Option("--run-dir", help="Run directory (overrides run_dir).")
]
ResumeOption = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue from the newest checkpoint of the run directory (without --config: "
        "with the run's config.resolved.yaml).",
    ),
]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Delete an existing run in the run directory.")
]


def run_config_args(
    config: Path | None, overrides: list[str] | None, run_dir: Path | None, resume: bool
) -> tuple[Path, list[str]]:
    """The config file and ``--set`` overrides of a run: ``--run-dir`` overrides ``run_dir``;
    without ``--config``, ``--resume --run-dir`` reads the run's ``config.resolved.yaml``."""
    sets = list(overrides or [])
    if run_dir is not None:
        sets.append(f"run_dir={run_dir}")
    if config is None:
        if not (resume and run_dir is not None):
            raise KelmError("--config is required (or --resume with --run-dir)")
        config = run_dir / "config.resolved.yaml"
    return config, sets


def echo_unfinished_run(result: Any, *, as_json: bool, unit: str, done: int, total: int) -> bool:
    """Print what every run prints first (nothing on other processes than the main one; the
    metrics with ``--json``; where a stopped run left its checkpoint); ``True``: that was all."""
    if not is_main_process():
        return True
    if as_json:
        echo_json({"run_dir": str(result.run_dir), "completed": result.completed, **result.metrics})
        return True
    if not result.completed:
        typer.echo(
            f"stopped after {unit} {done} of {total}; checkpoint in "
            f"{result.run_dir / 'checkpoints'} (continue with --resume)"
        )
        return True
    return False


def is_main_process() -> bool:
    """Whether this is the main process of a ``torchrun`` / ``accelerate launch`` run (or the
    only one): the others print nothing."""
    return os.environ.get("RANK", "0") == "0"
