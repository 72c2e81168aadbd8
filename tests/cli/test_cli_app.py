"""The ``kelm`` app: every command registered, in the order ``kelm --help`` lists them, and
``kelm --help`` fast (no heavy library imported)."""

from __future__ import annotations

import os
import subprocess
import sys

from cli_fixtures import REPO, invoke
from typer.main import get_command

from kelm.cli import app

# The subprocesses import this checkout's kelm, whatever the environment has installed.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}

COMMANDS = [
    "retrieve",
    "link",
    "ground",
    "embed-kg",
    "train",
    "evaluate",
    "compare",
    "pretrain",
    "probe",
    "show",
    "explore",
    "graph",
    "data",
]


def test_help_lists_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "graph" in result.output and "data" in result.output
    assert list(get_command(app).commands) == COMMANDS
    group = get_command(app).commands
    assert list(group["graph"].commands) == ["build", "info", "export"]
    assert list(group["data"].commands) == ["download", "list", "synthetic"]


def test_every_command_has_help() -> None:
    for name in COMMANDS:
        result = invoke(name, "--help")
        assert result.exit_code == 0, (name, result.output)
        assert "Usage: " in result.output


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from kelm.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('torch', 'transformers', 'spacy') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_python_dash_m_kelm() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kelm", "data", "list"],
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
