"""The scale benchmark, run tiny: one JSON object in which all builds agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_scale.py"


def test_bench_scale_tiny(tmp_path: Path):
    pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    pytest.importorskip("psutil", reason="psutil is not installed")
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--triples",
            "6000",
            "--workdir",
            str(tmp_path),
            "--partition-mb",
            "1",
            "--bucket-triples",
            "2000",
            "--scaling",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    (row,) = result["sizes"]
    assert row["agree"] is True and row["dist"]["buckets"] == 3
    assert len(row["dist"]["worker_peak_mb"]) == 2 and row["dist"]["edges"] > 0
    assert result["parse"]["triples"] == 6000
    # --scaling: the same input on one worker, the same index, and the ratio of the times
    assert row["agree_1_worker"] is True and len(row["dist_1_worker"]["worker_peak_mb"]) == 1
    assert row["worker_scaling"] > 0
