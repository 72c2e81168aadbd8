"""What the command modules share: the error wrapper (with the checks of the options' values),
JSON output, the common options (``--device`` among them), options objects from dataclasses
(with ``--config`` / ``--set``) and the run options of ``kelm train`` / ``kelm pretrain``.

Nothing here imports more than typer and kelm's foundation modules, so ``kelm --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import os
import re
import sys
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from kelm._io import json_ready
from kelm.errors import KelmError

T = TypeVar("T")


# --------------------------------------------------------------------------- option checks
class OptionCheck:
    """A check of an option's value, given as extra metadata of the option's type
    (``Annotated[int, typer.Option(...), AtLeast(1)]``). :func:`user_errors` runs the checks of
    every option before the command, so a bad value is a one-line error (a callback of click's
    would print a usage box); ``None`` (an option not given) is not checked. A check returns
    the value the command gets."""

    def __call__(self, option: str, value: Any) -> Any:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class AtLeast(OptionCheck):
    """A count option's lower bound (batch sizes, workers, ...: 1 where 0 means nothing)."""

    minimum: int

    def __call__(self, option: str, value: Any) -> Any:
        if value < self.minimum:
            raise KelmError(f"{option} must be at least {self.minimum}, not {value}")
        return value


_DEVICE = re.compile(r"(cpu|auto|mps|cuda)(:(\d+))?")


class DeviceCheck(OptionCheck):
    """``--device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, and one this torch
    can use (torch's own errors are a RuntimeError or an AssertionError deep in the run).
    The command gets the device, or ``None`` for ``auto`` (the library's default: a GPU when
    there is one)."""

    def __call__(self, option: str, value: Any) -> Any:
        match = _DEVICE.fullmatch(str(value))
        if match is None or (match.group(2) and match.group(1) != "cuda"):
            raise KelmError(f"{option} must be auto, cpu, cuda, cuda:N or mps, not {value!r}")
        kind, index = match.group(1), match.group(3)
        if kind in ("auto", "cpu"):
            return None if kind == "auto" else value
        import torch  # only for a device that needs it

        if kind == "mps" and not torch.backends.mps.is_available():
            raise KelmError(f"{option} mps: no Apple GPU (MPS) is available; use cpu")
        if kind != "cuda":
            return value
        if not torch.cuda.is_available():
            why = (
                f"this torch ({torch.__version__}) is built without CUDA"
                if torch.version.cuda is None
                else "no CUDA GPU is visible"
            )
            raise KelmError(f"{option} {value}: {why}; use cpu")
        if index is not None and int(index) >= torch.cuda.device_count():
            raise KelmError(
                f"{option} {value}: there are {torch.cuda.device_count()} CUDA GPUs "
                f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})"
            )
        return value


def _parameters(fn: Callable[..., Any]) -> dict[str, tuple[str, list[OptionCheck]]]:
    """``fn``'s parameters as the command line names them (``--out``, ``TEXT``) and the
    checks of each: name -> (name as typed, checks)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    params = {}
    for name in inspect.signature(fn).parameters:
        extras = getattr(hints.get(name), "__metadata__", ())
        # With Annotated, typer reads the first declaration from the default's place.
        decls = [
            d
            for m in extras
            for d in (getattr(m, "default", None), *(getattr(m, "param_decls", ()) or ()))
            if isinstance(d, str) and d.startswith("--")
        ]
        if any(isinstance(m, typer.models.ArgumentInfo) for m in extras):
            shown = name.upper()
        else:
            shown = decls[0] if decls else "--" + name.replace("_", "-")
        params[name] = (shown, [m for m in extras if isinstance(m, OptionCheck)])
    return params


def _check_utf8(option: str, value: Any) -> None:
    """A text or path argument must be UTF-8: a byte that is not arrives from the command line
    as a lone surrogate (Python's ``surrogateescape``), which every later write of it (a
    manifest, a message, spaCy) fails on with a UnicodeEncodeError."""
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if not isinstance(item, (str, Path)):
            continue
        text = str(item)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            near = text[max(exc.start - 20, 0) : exc.start + 20]
            raise KelmError(
                f"{option}: not valid UTF-8 (character {exc.start + 1}, in '{_escaped(near)}'); "
                "kelm takes text and file names in UTF-8"
            ) from None


def _escaped(text: str) -> str:
    r"""``text`` printable: a byte the command line could not decode as ``\xff`` (Python
    keeps it as the surrogate U+DCFF), any other surrogate as ``\udxxx``."""
    return "".join(
        f"\\x{ord(c) - 0xDC00:02x}"
        if "\udc80" <= c <= "\udcff"
        else c.encode("utf-8", "backslashreplace").decode()
        for c in text
    )


@contextlib.contextmanager
def _hf_progress_bars_off() -> Iterator[None]:
    """Hugging Face's own progress bars ("Loading weights", downloads) off for a command run
    with ``--no-progress``, then as they were. Through huggingface_hub's switch (which
    transformers reads when imported) and transformers' own when it is already imported, so
    a command that does not use transformers does not import it."""
    from huggingface_hub import utils as hub

    hub_on = not hub.are_progress_bars_disabled()
    loaded = sys.modules.get("transformers.utils.logging")
    transformers_on = loaded.is_progress_bar_enabled() if loaded is not None else hub_on
    if loaded is not None:
        loaded.disable_progress_bar()  # and huggingface_hub's
    elif hub_on:
        hub.disable_progress_bars()
    try:
        yield
    finally:
        loaded = sys.modules.get("transformers.utils.logging")
        if loaded is not None and transformers_on:
            loaded.enable_progress_bar()  # and huggingface_hub's
        if hub_on:
            hub.enable_progress_bars()
        elif loaded is not None and transformers_on:
            hub.disable_progress_bars()


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command: check its arguments (text and paths in UTF-8) and options
    (:class:`OptionCheck`), turn off Hugging Face's progress bars with ``--no-progress``, and
    turn a KelmError, or an OSError that names a file (a disk full, a permission the checks of
    the output paths did not foresee), into a one-line message and exit status 2 (no
    traceback)."""
    params: dict[str, tuple[str, list[OptionCheck]]] | None = None

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        nonlocal params
        try:
            if params is None:  # resolved on the first call, as typer resolves the hints
                params = _parameters(fn)
            for name, (option, option_checks) in params.items():
                if kwargs.get(name) is None:
                    continue
                _check_utf8(option, kwargs[name])
                for check in option_checks:
                    kwargs[name] = check(option, kwargs[name])
            quiet = kwargs.get("progress") is False
            with _hf_progress_bars_off() if quiet else contextlib.nullcontext():
                return fn(*args, **kwargs)
        except KelmError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:
            if exc.filename is None:
                raise
            typer.echo(f"error: {exc.filename}: {exc.strerror or exc}", err=True)
            raise typer.Exit(KelmError.exit_code) from None
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
SchedulerOption = Annotated[
    str | None,
    typer.Option(
        help="Run on Dask: local (this machine), slurm:CONFIG (a dask-jobqueue YAML) or a "
        "scheduler address (tcp://host:8786). Default: one process, no Dask."
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(help="--scheduler local: worker processes (default min(4, CPUs))."),
    AtLeast(1),
]
DeviceOption = Annotated[
    str,
    typer.Option(help="auto (a GPU when there is one), cpu, cuda, cuda:N or mps."),
    DeviceCheck(),
]
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
