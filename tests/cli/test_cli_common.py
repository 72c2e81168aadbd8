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
