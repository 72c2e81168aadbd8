"""scripts/bench_plm.py: how it runs its parts and folds their JSON objects into one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_plm.py"


def load_script():
    spec = importlib.util.spec_from_file_location("bench_plm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_part_commands_forward_quick_threads_and_extra_options() -> None:
    bench = load_script()
    args = bench.parse_args(["--quick", "--threads", "1", "--objectives-args", "--steps 30"])
    command = bench.part_command(args, "objectives")
    assert command[0] == sys.executable and command[1].endswith("bench_objectives.py")
    assert command[2:] == ["--quick", "--threads", "1", "--steps", "30"]
    assert bench.part_command(args, "zero_shot")[2:] == ["--quick", "--threads", "1"]


def test_run_part_reads_json_and_fails_cleanly() -> None:
    bench = load_script()
    ok = [sys.executable, "-c", "import json; print(json.dumps({'a': 1}))"]
    assert bench.run_part(ok) == {"a": 1}
    with pytest.raises(SystemExit, match="printed no JSON"):
        bench.run_part([sys.executable, "-c", "print('hello')"])
    with pytest.raises(SystemExit, match="exited with status 3"):
        bench.run_part([sys.executable, "-c", "raise SystemExit(3)"])
