"""The graph-build benchmark script, run tiny: it must print one JSON object in which kelm and
the networkx baseline built the same graph."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_graph_build.py"
KEYS = {
    "edges",
    "kelm_s",
    "baseline_s",
    "speedup",
    "kelm_peak_mb",
    "baseline_peak_mb",
    "memory_ratio",
    "kelm_load_s",
    "baseline_load_s",
    "load_speedup",
    "floor_s",
}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_bench_graph_build_tiny(tmp_path: Path):
    done = run("--edges", "2000", "--workdir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert set(result) >= KEYS
    assert all(isinstance(result[k], (int, float)) and result[k] >= 0 for k in KEYS)
    assert result["kelm_s"] > 0 and result["baseline_s"] > 0 and result["speedup"] > 0
    # Both builds saw the same English edges of the same merged relations.
    assert result["kelm_nodes"] == result["baseline_nodes"] > 100
    assert result["edges"] == result["baseline_edges"] > 1000
    assert result["nodes_match"] is True
    assert result["kelm_malformed_lines"] == 0
    # The generated file is cached: a second run reuses it.
    generated = list(tmp_path.glob("conceptnet-assertions-synth-*.csv"))
    assert len(generated) == 1
    again = run("--edges", "2000", "--workdir", str(tmp_path), "--skip-baseline")
    assert again.returncode == 0, again.stderr
    assert "reusing" in again.stderr
    second = json.loads(again.stdout)
    assert second["edges"] == result["edges"] and second["baseline_s"] is None
    assert [p.name for p in tmp_path.iterdir()] == [generated[0].name]  # scratch cleaned up


def test_generated_file_is_in_the_official_format(tmp_path: Path):
    spec = importlib.util.spec_from_file_location("bench_graph_build", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = bench.cached_input(tmp_path, 500, 1)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == round(500 * bench.LINES_PER_EN_EDGE)
    en_en = 0
    for line in lines:
        edge, rel, head, tail, info = line.split("\t")
        assert edge == f"/a/[{rel}/,{head}/,{tail}/]"
        assert head.startswith("/c/")
        assert tail.startswith("/c/") or rel == "/r/ExternalURL"
        assert isinstance(json.loads(info)["weight"], float)
        en_en += head.startswith("/c/en/") and tail.startswith("/c/en/")
    assert en_en == 500
