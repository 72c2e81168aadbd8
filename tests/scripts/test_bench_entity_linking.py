"""The entity-linking benchmark, run tiny: on the WordNet excerpt and the dev mentions of its
words it prints one JSON object with the prior and the context side by side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kelm.graph.build import build_index
from kelm.graph.sources.base import BuildOptions

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "bench_entity_linking.py"
FIXTURES = REPO / "tests" / "fixtures" / "linking"


def test_bench_entity_linking_tiny(tmp_path: Path) -> None:
    graph = tmp_path / "wordnet"
    build_index([FIXTURES / "wordnet_excerpt"], graph, BuildOptions(format="wordnet"))
    rows = [json.loads(line) for line in (FIXTURES / "wsd_dev.jsonl").read_text().splitlines()]
    mentions = tmp_path / "mentions.jsonl"
    chosen = [r for r in rows if r["lemma"] in ("bank", "pitcher", "crane")]
    mentions.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    errors = tmp_path / "errors.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            str(mentions),
            "--graph",
            str(graph),
            "--settings",
            "prior,context",
            "--repeat",
            "1",
            "--threads",
            "1",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--errors",
            str(errors),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "KELM_CACHE": str(tmp_path / "kelm-cache")},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    report = result["files"][str(mentions)]
    assert report["mentions"] == len(chosen) == 10
    assert report["mfs_accuracy"] == pytest.approx(
        sum(r["mfs"] in r["gold"] for r in chosen) / len(chosen), abs=1e-4
    )
    assert set(report["prior"]) >= {"accuracy", "accuracy_n", "covered"}
    assert report["context"]["accuracy"] > report["prior"]["accuracy"]
    assert "accuracy_where_prior_wrong" in report["context"]
    assert result["context_weight"] == {"prior": 0.0, "context": 0.5}
    assert all(result["sentences_per_s"][s] > 0 for s in ("prior", "context"))
    wrong = [json.loads(line) for line in errors.read_text().splitlines()]
    assert all(w["predicted"] not in w["gold"] for w in wrong)
