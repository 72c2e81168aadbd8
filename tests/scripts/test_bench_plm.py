"""scripts/bench_plm.py: how it runs its parts and folds their JSON objects into one."""

from __future__ import annotations

import importlib.util
import json
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


def test_resume_reuses_only_parts_saved_with_the_same_command(tmp_path: Path) -> None:
    bench = load_script()
    path = tmp_path / "objectives.json"
    bench.save_part(path, "--steps 30", {"mlm": 0.1}, 12.5)
    assert not list(tmp_path.glob("*.tmp"))
    assert bench.saved_part(path, "--steps 30") == {
        "command": "--steps 30",
        "seconds": 12.5,
        "result": {"mlm": 0.1},
    }
    assert bench.saved_part(path, "--steps 300") is None  # another setting: measured again
    path.write_text("{not json", encoding="utf-8")
    assert bench.saved_part(path, "--steps 30") is None
    assert bench.saved_part(tmp_path / "missing.json", "--steps 30") is None


def test_main_saves_each_part_and_resume_skips_it(tmp_path: Path, monkeypatch, capsys) -> None:
    bench = load_script()
    calls: list[list[str]] = []

    def fake_run(command: list[str]) -> dict:
        calls.append(command)
        return {"ran": command[1]}

    monkeypatch.setattr(bench, "run_part", fake_run)
    argv = ["--parts", "zero_shot", "objectives", "--out", str(tmp_path)]
    bench.main(argv)
    assert len(calls) == 2 and (tmp_path / "zero_shot.json").is_file()
    capsys.readouterr()
    bench.main([*argv, "--resume", "--objectives-args", "--steps 5"])
    assert len(calls) == 3 and calls[-1][-2:] == ["--steps", "5"]  # only the changed part reran
    printed = json.loads(capsys.readouterr().out)
    assert printed["settings"]["resumed"] == ["zero_shot"]
    assert printed["zero_shot"] == {"ran": str(bench.REPO / "scripts" / "bench_zeroshot.py")}
