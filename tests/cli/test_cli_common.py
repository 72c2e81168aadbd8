"""The pieces the commands share: one-line user errors, the settings precedence of
``--config`` / ``--set`` / flags, and the run options of ``kelm train`` / ``kelm pretrain``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import pytest
import typer
from cli_fixtures import assert_one_line_error, runner

from kelm.cli._common import (
    AtLeast,
    DeviceCheck,
    ProgressOption,
    config_option,
    dataclass_fields,
    echo_unfinished_run,
    run_config_args,
    set_option,
    settings_from,
    user_errors,
)
from kelm.errors import KelmError


@dataclass
class Settings:
    size: int = 1
    name: str = "a"
    path: str | None = None
    flag: bool = False


def settings_app() -> typer.Typer:
    """A one-command app that prints the Settings it resolved, as JSON."""
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.command()
    @user_errors
    def show(
        ctx: typer.Context,
        config_file: Annotated[Path | None, config_option("Settings YAML.")] = None,
        overrides: Annotated[list[str] | None, set_option("size=2")] = None,
        size: Annotated[int, typer.Option()] = 1,
        name: Annotated[str, typer.Option()] = "a",
        path: Annotated[Path | None, typer.Option()] = None,
        flag: Annotated[bool, typer.Option()] = False,
    ) -> None:
        typer.echo(json.dumps(vars(settings_from(Settings, config_file, overrides, ctx))))

    return app


def resolve(*args: str) -> dict:
    result = runner.invoke(settings_app(), [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_settings_precedence(tmp_path: Path) -> None:
    yaml = tmp_path / "s.yaml"
    yaml.write_text("size: 5\nname: yaml\nflag: true\n")
    assert resolve() == {"size": 1, "name": "a", "path": None, "flag": False}
    # YAML over the defaults; flags left at their defaults do not override it
    assert resolve("-c", yaml) == {"size": 5, "name": "yaml", "path": None, "flag": True}
    # --set over YAML
    assert resolve("--config", yaml, "--set", "size=7")["size"] == 7
    # a flag given on the command line over --set, even at its default value
    got = resolve("--config", yaml, "--set", "size=7", "--size", "1", "--no-flag")
    assert got["size"] == 1 and got["flag"] is False and got["name"] == "yaml"
    # paths arrive as strings, as the YAML gives them
    assert resolve("--path", tmp_path)["path"] == str(tmp_path)


@pytest.mark.parametrize(
    ("yaml", "args", "message"),
    [
        ("sise: 5\n", [], "unknown key 'sise'"),
        ("size: many\n", [], "'size' must be int"),
        ("size: [\n", [], "invalid YAML"),
        (None, ["--set", "colour=red"], "unknown key 'colour'"),
        (None, ["--set", "size"], "must look like key.sub=value"),
    ],
)
def test_bad_settings_are_one_line(tmp_path: Path, yaml: str | None, args, message) -> None:
    if yaml is not None:
        (tmp_path / "s.yaml").write_text(yaml)
        args = ["--config", str(tmp_path / "s.yaml"), *args]
    assert_one_line_error(runner.invoke(settings_app(), args), message)


def test_user_errors() -> None:
    def fails(exc: BaseException):
        @user_errors
        def command() -> None:
            raise exc

        return command

    app = typer.Typer()
    app.command("kelm-error")(fails(KelmError("bad  input\nfile")))
    app.command("interrupt")(fails(KeyboardInterrupt()))
    result = runner.invoke(app, ["kelm-error"])
    assert result.exit_code == 2 and result.output == "error: bad input file\n"
    result = runner.invoke(app, ["interrupt"])
    assert result.exit_code == 130 and result.output == "interrupted\n"


def test_user_errors_os_error_naming_a_file() -> None:
    """The last resort for what the checks of the output paths cannot foresee (a disk full
    mid-write): an OSError that names a file is a one-line error; any other is a bug."""

    @user_errors
    def full() -> None:
        raise OSError(28, "No space left on device", "/data/out/shard-00001.safetensors")

    @user_errors
    def bug() -> None:
        raise OSError("something else")

    app = typer.Typer()
    app.command("full")(full)
    app.command("bug")(bug)
    result = runner.invoke(app, ["full"])
    assert result.exit_code == 2
    assert result.output == "error: /data/out/shard-00001.safetensors: No space left on device\n"
    result = runner.invoke(app, ["bug"])
    assert isinstance(result.exception, OSError) and "error:" not in result.output


def checked_app() -> typer.Typer:
    """A command with a count and a device option, which prints what it got."""
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.command()
    @user_errors
    def run(
        size: Annotated[int, typer.Option("--size", "-s"), AtLeast(1)] = 1,
        top_k: Annotated[int | None, typer.Option(), AtLeast(0)] = None,
        device: Annotated[str, typer.Option(), DeviceCheck()] = "auto",
    ) -> None:
        typer.echo(json.dumps([size, top_k, device]))

    return app


def test_option_checks() -> None:
    app = checked_app()
    ok = runner.invoke(app, ["-s", "3", "--top-k", "0", "--device", "cpu"])
    assert ok.exit_code == 0 and json.loads(ok.output) == [3, 0, "cpu"]
    # auto is the library's default (None): a GPU when there is one
    assert json.loads(runner.invoke(app, []).output) == [1, None, None]
    assert_one_line_error(runner.invoke(app, ["-s", "0"]), "--size must be at least 1, not 0")
    assert_one_line_error(runner.invoke(app, ["--top-k", "-1"]), "--top-k must be at least 0")
    for bad in ("tpu", "cuda:x", "cpu:0", "", "CUDA"):
        assert_one_line_error(
            runner.invoke(app, ["--device", bad]), "--device must be auto, cpu, cuda, cuda:N or mps"
        )


def test_device_check_asks_torch(monkeypatch) -> None:
    import torch

    check = DeviceCheck()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(KelmError, match="--device cuda: .*; use cpu"):
        check("--device", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check("--device", "cuda:1") == "cuda:1"
    with pytest.raises(KelmError, match=r"there are 2 CUDA GPUs \(cuda:0 to cuda:1\)"):
        check("--device", "cuda:2")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(KelmError, match="no Apple GPU"):
        check("--device", "mps")


def test_no_progress_turns_off_hugging_face_bars() -> None:
    """``--no-progress`` also hides transformers' own bars ("Loading weights"), for the
    command only."""
    from transformers.utils import logging as hf_logging

    app = typer.Typer(pretty_exceptions_enable=False)

    @app.command()
    @user_errors
    def load(progress: ProgressOption = True) -> None:
        typer.echo(f"bars {hf_logging.is_progress_bar_enabled()}")

    assert hf_logging.is_progress_bar_enabled()
    assert runner.invoke(app, ["--no-progress"]).output == "bars False\n"
    assert hf_logging.is_progress_bar_enabled()
    assert runner.invoke(app, []).output == "bars True\n"


def test_dataclass_fields_picks_fields_and_stringifies_paths() -> None:
    params = {"size": 3, "path": Path("/x"), "other": 1}
    assert dataclass_fields(Settings, params) == {"size": 3, "path": "/x"}


def test_run_config_args(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    assert run_config_args(config, ["a=1"], None, False) == (config, ["a=1"])
    assert run_config_args(config, None, tmp_path / "run", False) == (
        config,
        [f"run_dir={tmp_path / 'run'}"],
    )
    # --resume --run-dir without --config: the run's resolved config
    assert run_config_args(None, None, tmp_path, True)[0] == tmp_path / "config.resolved.yaml"
    with pytest.raises(KelmError, match="--config is required"):
        run_config_args(None, None, tmp_path, False)


def test_echo_unfinished_run(monkeypatch, capsys) -> None:
    result = SimpleNamespace(
        run_dir=Path("runs/x"), completed=False, metrics={"steps": 3}, history={}
    )
    assert echo_unfinished_run(result, as_json=False, unit="epoch", done=1, total=3)
    assert capsys.readouterr().out == (
        f"stopped after epoch 1 of 3; checkpoint in {Path('runs/x/checkpoints')} "
        "(continue with --resume)\n"
    )
    assert echo_unfinished_run(result, as_json=True, unit="epoch", done=1, total=3)
    assert json.loads(capsys.readouterr().out) == {
        "run_dir": "runs/x",
        "completed": False,
        "steps": 3,
    }
    result.completed = True
    assert not echo_unfinished_run(result, as_json=False, unit="epoch", done=3, total=3)
    # the other processes of a distributed run print nothing
    monkeypatch.setenv("RANK", "1")
    assert echo_unfinished_run(result, as_json=True, unit="epoch", done=3, total=3)
    assert capsys.readouterr().out == ""
