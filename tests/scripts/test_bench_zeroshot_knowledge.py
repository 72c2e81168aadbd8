"""``scripts/bench_zeroshot_knowledge.py``: its options and the paired (McNemar) comparison of
the runs with and without facts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_zeroshot_knowledge", REPO / "scripts" / "bench_zeroshot_knowledge.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_options() -> None:
    bench = _bench()
    args = bench.parse_args(["--facts", "0,3,5", "--forms", "paths", "--positions", "before,after"])
    assert args.facts == [0, 3, 5] and args.forms == ["paths"]
    assert args.positions == ["before", "after"] and args.csqa_questions is None
    quick = bench.parse_args(["--quick"])
    assert quick.csqa_questions == quick.copa_questions == 40
    assert quick.facts == [3] and quick.forms == ["triples"] and quick.positions == ["before"]


def test_paired_counts_and_exact_mcnemar() -> None:
    bench = _bench()
    before = {"sum": [True, True, False, False, False], "pmi": [True] * 5}
    after = {"sum": [True, False, True, True, False], "pmi": [True] * 5}
    out = bench.paired(before, after)
    # 2 fixed, 1 broken: p = 2 * P(X <= 1), X ~ Binomial(3, 1/2) = 2 * 4/8 = 1
    assert out["sum"] == {"fixed": 2, "broken": 1, "p_mcnemar": 1.0}
    assert out["pmi"] == {"fixed": 0, "broken": 0, "p_mcnemar": 1.0}
    lopsided = bench.paired({"sum": [False] * 10}, {"sum": [True] * 10})["sum"]
    assert lopsided["fixed"] == 10 and lopsided["p_mcnemar"] == pytest.approx(2 / 1024, abs=1e-4)
