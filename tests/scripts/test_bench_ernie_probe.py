"""The ERNIE knowledge probe benchmark, run tiny: both arms pretrain (side by side, ``--jobs 2``),
both are probed on the same world, and one JSON object comes out with the ratio of their
hits@10 (and a readable table on stderr)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_ernie_probe.py"


def test_bench_ernie_probe_tiny(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            *("--tails", "6", "--heads-per-tail", "2", "--steps", "2", "--batch-size", "4"),
            *("--head-warmup-steps", "0", "--kge-epochs", "2", "--kge-dim", "8"),
            *("--knowledge-layers", "1", "--work", str(tmp_path), "--jobs", "2"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["world"] == {"tails": 6, "heads": 12, "probe_heads": 6}
    ernie, mlm = out["runs"]["ernie/seed0"], out["runs"]["mlm/seed0"]
    for run in (ernie, mlm):
        assert run["probe"]["n"] == 6 and run["probe"]["candidates"] == 6
        assert 0.0 <= run["probe"]["hits@10"] <= 1.0
    assert ernie["probe"]["heads_linked"] == 6 and mlm["probe"]["heads_linked"] == 0
    assert out["settings"]["knowledge_lr"] == 3e-3
    options = json.loads((tmp_path / "run-ernie-s0" / "metrics.json").read_text())["objective"]
    assert options["options"]["knowledge_lr"] == 3e-3 and not options["options"]["unlink_masked"]
    # the readable table on stderr: one row per run and the chance row
    table = done.stderr.splitlines()
    assert any(line.startswith("ernie/seed0 ") for line in table)
    assert any(line.startswith("mlm/seed0 ") for line in table)
    chance = next(line for line in table if line.startswith("chance "))
    assert chance.split()[1:] == ["0.167", "1.000", "0.408"]  # 1/6, 10/6 capped, H(6)/6
    control = out["mlm_hits@10_mean"]
    assert out["ratio_hits@10"] == (out["ernie_hits@10_mean"] / control if control else None)
