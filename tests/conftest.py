"""Shared fixtures. Tests never touch the network: the Hugging Face hub is forced offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def shared_data() -> Path:
    """The real data: $KELM_DATA, else ../shared/data beside the repository."""
    return Path(os.environ.get("KELM_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = shared_data()
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set KELM_DATA)")
    return root


@pytest.fixture(scope="session")
def cn100k_index(data_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """The CN-100K index built once per test session from the real data."""
    from kelm.graph import GraphIndex, build_index
    from kelm.graph.sources.base import BuildOptions

    out = tmp_path_factory.mktemp("graphs") / "cn100k"
    build_index(
        [data_root / "kg/conceptnet100k/train.txt"],
        out,
        BuildOptions(format="cn100k"),
        progress=False,
    )
    return GraphIndex.load(out)
