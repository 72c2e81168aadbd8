"""Builds are atomic: a build killed with SIGKILL midway leaves nothing that loads as an index,
and an existing index at --out survives until a complete replacement is in place."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kelm.errors import IndexFormatError
from kelm.graph import GraphIndex, build_index
from kelm.graph.sources.base import BuildOptions


def write_random_tsv(path: Path, edges: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    heads = rng.integers(0, edges // 3, edges)
    tails = rng.integers(0, edges // 3, edges)
    rels = rng.integers(0, 20, edges)
    with open(path, "w") as fh:
        fh.writelines(
            f"node {h}\trel{r}\tnode {t}\n" for h, r, t in zip(heads, rels, tails, strict=True)
        )


def start_build(inp: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kelm",
            "graph",
            "build",
            "--format",
            "tsv",
            str(inp),
            "--out",
            str(out),
            "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_when_staging_appears(proc: subprocess.Popen, out: Path, timeout: float = 120) -> bool:
    """SIGKILL the build as soon as its staging directory exists (i.e. while writing arrays)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(out.parent.glob(f".{out.name}.building-*")):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.001)
    proc.kill()
    proc.wait()
    return False


@pytest.fixture(scope="module")
def big_tsv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("atomic") / "big.tsv"
    write_random_tsv(path, 1_000_000, seed=1)
    return path


def test_sigkill_keeps_previous_index(tmp_path: Path, big_tsv: Path) -> None:
    small = tmp_path / "small.tsv"
    small.write_text("a\tr\tb\nb\tr\tc\n")
    out = tmp_path / "index"
    build_index([small], out, BuildOptions(format="tsv"), progress=False)
    before = GraphIndex.load(out).checksum

    proc = start_build(big_tsv, out)
    assert kill_when_staging_appears(proc, out), "build finished before it could be killed"

    after = GraphIndex.load(out)  # still the old, complete index
    assert after.checksum == before and after.num_nodes == 3
    for leftover in out.parent.glob(f".{out.name}.building-*"):
        with pytest.raises(IndexFormatError):
            GraphIndex.load(leftover)

    # the next build cleans the leftovers up and replaces the index
    build_index([small], out, BuildOptions(format="tsv", keep_self_loops=True), progress=False)
    assert not list(out.parent.glob(f".{out.name}.building-*"))
    assert GraphIndex.load(out).num_edges == 2


@pytest.mark.parametrize("delay", [0.2, 0.8, 1.5])
def test_sigkill_at_any_time_leaves_no_loadable_index(
    tmp_path: Path, big_tsv: Path, delay: float
) -> None:
    out = tmp_path / "fresh"
    proc = start_build(big_tsv, out)
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.returncode == 0:  # it finished: then it must be complete
        assert GraphIndex.load(out).num_edges > 0
    else:
        with pytest.raises(IndexFormatError):
            GraphIndex.load(out)
