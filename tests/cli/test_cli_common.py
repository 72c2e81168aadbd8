"""The pieces the commands share: one-line user errors, options objects from dataclasses, and
the run options of ``kelm train`` / ``kelm pretrain``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from cli_fixtures import runner

from kelm.cli._common import (
    dataclass_fields,
    echo_unfinished_run,
    run_config_args,
    user_errors,
)
from kelm.errors import KelmError


@dataclass
class Settings:
    size: int = 1
    path: str | None = None


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
