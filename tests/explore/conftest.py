"""Tiny runs for the explorer's tests, trained once per session on the tiny inputs of
``tests/training/training_fixtures.py`` (a dozen questions, a 14-node graph, a 1-layer BERT)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from training_fixtures import train_run  # noqa: E402

#: ERNIE on the fixture encoder's one layer, with a small entity table (as test_train_ernie)
ERNIE = {"knowledge_layers": 1, "entity_heads": 2, "kge_dim": 8, "kge_epochs": 2}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``graph``, ``qa`` and one run per family shown in the page: ``lm``, ``qagnn``,
    ``kagnet``, ``ernie``."""
    root = tmp_path_factory.mktemp("explore")
    runs = {family: train_run(root, family) for family in ("lm", "qagnn", "kagnet")}
    runs["ernie"] = train_run(root, "ernie", model=ERNIE)
    return {"graph": root / "kg" / "graph", "qa": root / "qa.jsonl", "root": root, **runs}
