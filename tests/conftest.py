"""Shared fixtures. Tests never touch the network: the Hugging Face hub is forced offline.

Every test starts from the same process state, whatever ran before it (tests run in random order
under pytest-randomly): its own empty ``KELM_CACHE`` and the torch thread count of the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SESSION_THREADS = torch.get_num_threads()  # before any test changed it


def shared_data() -> Path:
    """The real data: $KELM_DATA, else ../shared/data beside the repository."""
    return Path(os.environ.get("KELM_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Session and module fixtures cache under the session's temporary folder, never in the
    user's ``~/.cache/kelm`` (where the files of earlier runs and other versions lie)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KELM_CACHE", str(tmp_path_factory.mktemp("kelm-cache-session")))
        yield


@pytest.fixture(autouse=True)
def _isolated_test(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """A cache of the test's own (a linker table or node embeddings cached by an earlier test
    would otherwise decide what this one computes), and the session's torch thread count, set
    before and after: ``train`` and ``pretrain`` set it process-wide from their config
    (``threads: 1`` in the tiny configs), also from module fixtures, which changed the
    reductions of every later test."""
    monkeypatch.setenv("KELM_CACHE", str(tmp_path_factory.mktemp("kelm-cache")))
    torch.set_num_threads(SESSION_THREADS)
    yield
    torch.set_num_threads(SESSION_THREADS)


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


@pytest.fixture(scope="module")
def dask_client():
    """A Dask client on a 2-worker in-process ``LocalCluster``, one per test module (the tests
    of distributed builds, grounding and pretraining instances)."""
    distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()
