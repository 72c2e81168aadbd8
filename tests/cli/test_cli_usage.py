"""Click's own usage errors (an unknown option, a missing argument, a text that starts with
'-', a value of the wrong type, an unknown command) are one ``error: ...`` line on stderr and
exit status 2, like every kelm error: no usage box, no traceback; ``--help`` and a bare group
printing its help are unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_fixtures import REPO, invoke, tiny_graph

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
BOX = ("╭", "│", "╰")

USAGE_ERRORS = [
    (["train", "--bogus"], ["no such option: --bogus", "see `kelm train --help`"]),
    (["link"], ["missing argument 'text'", "see `kelm link --help`"]),
    (["link", "-dog"], ["no such option: -d", "an argument that starts with '-' goes after `--`"]),
    (["graph", "bogus"], ["no such command 'bogus'", "see `kelm graph --help`"]),
    (["retrieve", "--batch-size", "abc"], ["invalid value for '--batch-size'"]),
    (["--version"], ["no such option: --version", "see `kelm --help`"]),
]


def kelm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kelm", *args], capture_output=True, text=True, env=ENV, check=False
    )


def check_one_line(code: int, stdout: str, stderr: str, fragments: list[str]) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, (code, stdout, stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr and not stdout.strip(), (stdout, stderr)
    assert not any(ch in stderr for ch in BOX), stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(("args", "fragments"), USAGE_ERRORS[:3], ids=lambda a: str(a))
def test_python_dash_m_kelm_usage_errors_are_one_line(args: list[str], fragments) -> None:
    done = kelm(*args)
    check_one_line(done.returncode, done.stdout, done.stderr, fragments)


@pytest.mark.parametrize(("args", "fragments"), USAGE_ERRORS, ids=lambda a: str(a))
def test_usage_errors_are_one_line_in_process(args: list[str], fragments) -> None:
    """The root command's class prints them, so Typer's test runner sees the same line."""
    result = invoke(*args)
    check_one_line(result.exit_code, result.stdout, result.stderr, fragments)


def test_help_and_bare_groups_are_unchanged() -> None:
    done = kelm("train", "--help")
    assert done.returncode == 0 and "Usage: kelm train" in done.stdout, done.stderr
    assert "--config" in done.stdout and not done.stderr.strip()
    for args in ([], ["graph"]):  # no command: the help, and Click's status 2
        result = invoke(*args)
        assert result.exit_code == 2 and "Usage: " in result.output, result.output
        assert "error:" not in result.output


def test_the_hint_for_a_text_starting_with_a_dash_works(tmp_path: Path) -> None:
    graph = tiny_graph(tmp_path)
    result = invoke("link", "-g", graph, "--", "-a dog")
    assert result.exit_code == 0, result.output
    assert "dog\tdog" in result.stdout


def test_exit_codes_of_commands_pass_through() -> None:
    done = kelm("link", "dog", "-g", "/nonexistent-kelm-graph")  # a KelmError: 2, one line
    check_one_line(done.returncode, done.stdout, done.stderr, ["/nonexistent-kelm-graph"])
    assert kelm("data", "list").returncode == 0
