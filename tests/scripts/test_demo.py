"""``scripts/demo.sh``'s first step, in isolation (``--data-only``): on a machine without
``../shared`` the demo fetches what it reads into ``./data`` with ``kelm data download``, only
what is missing; offline it stops with one clear message and exit status 2. The script is run
from a copy of the repository layout in the test's folder, so ``../shared`` is absent there."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data.download_fixtures import closed_port

REPO = Path(__file__).resolve().parents[2]
NEEDS = {
    "cn100k": "kg/conceptnet100k/train.txt",
    "wordnet": "kg/wordnet_nltk/corpora/wordnet/data.noun",
    "copa": "qa/copa/balacopa-dev-all.xml",
    "csqa": "qa/csqa/train_rand_split_v1.0.jsonl",
}

# A stand-in `kelm` that records its arguments and, for `data download`, writes the file the
# demo reads for each name (the real download is tested in tests/data).
FAKE_KELM = f"""#!{sys.executable}
import os, sys
from pathlib import Path
NEEDS = {NEEDS!r}
with open(os.environ["FAKE_KELM_LOG"], "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
root = Path(args[args.index("--data-dir") + 1])
for name in args[2 : args.index("--data-dir")]:
    (root / NEEDS[name]).parent.mkdir(parents=True, exist_ok=True)
    (root / NEEDS[name]).write_text("x")
"""


def _layout(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "demo.sh", repo / "scripts" / "demo.sh")
    return repo


def _run(repo: Path, path: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("KELM_DATA", "KELM_DATA_MIRROR")}
    environ.update(env, PATH=path)
    return subprocess.run(
        ["bash", str(repo / "scripts" / "demo.sh"), "--data-only"],
        cwd=repo,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _fake_kelm(tmp_path: Path) -> tuple[str, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kelm = bin_dir / "kelm"
    kelm.write_text(FAKE_KELM)
    kelm.chmod(kelm.stat().st_mode | stat.S_IXUSR)
    return f"{bin_dir}:{os.environ['PATH']}", tmp_path / "kelm.log"


def test_fetches_only_what_is_missing_into_data(tmp_path: Path) -> None:
    repo = _layout(tmp_path)
    present = repo / "data" / NEEDS["copa"]
    present.parent.mkdir(parents=True)
    present.write_text("<copa-assessment-set/>")
    path, log = _fake_kelm(tmp_path)

    result = _run(repo, path, FAKE_KELM_LOG=str(log))
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == ["data download cn100k wordnet csqa --data-dir data"]
    assert result.stdout.strip().endswith(f"data ready in {repo / 'data'}")
    assert all((repo / "data" / rel).is_file() for rel in NEEDS.values())

    # Everything there now: no download at all.
    result = _run(repo, path, FAKE_KELM_LOG=str(log))
    assert result.returncode == 0, result.stderr
    assert len(log.read_text().splitlines()) == 1


def test_kelm_data_wins_over_the_default(tmp_path: Path) -> None:
    repo = _layout(tmp_path)
    mine = tmp_path / "mine"
    for rel in NEEDS.values():
        (mine / rel).parent.mkdir(parents=True, exist_ok=True)
        (mine / rel).write_text("x")
    path, log = _fake_kelm(tmp_path)
    result = _run(repo, path, KELM_DATA=str(mine), FAKE_KELM_LOG=str(log))
    assert result.returncode == 0, result.stderr
    assert not log.exists() and not (repo / "data").exists()
    assert f"data ready in {mine}" in result.stdout


def test_offline_stops_with_one_clear_message(tmp_path: Path) -> None:
    kelm = Path(sys.executable).parent / "kelm"
    if not kelm.is_file():
        pytest.skip(f"the kelm command is not installed beside {sys.executable}")
    repo = _layout(tmp_path)
    # The real `kelm data download`, pointed at a port nothing listens on: what offline gives.
    mirror = f"http://127.0.0.1:{closed_port()}"
    path = f"{kelm.parent}:{os.environ['PATH']}"
    result = _run(repo, path, KELM_DATA_MIRROR=mirror, no_proxy="127.0.0.1,localhost")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, result.stderr
    assert errors[0].startswith(f"error: cannot download {mirror}/kg/conceptnet100k/")
    assert "(offline? files can also be copied into data by hand)" in errors[0]
    assert errors[1].startswith(
        "error: data directory data lacks cn100k wordnet copa csqa and the download failed "
        "(offline?"
    )
    assert "Traceback" not in result.stderr
    # Nothing half-written: at most the empty folders of the first file.
    assert [p for p in (repo / "data").rglob("*") if p.is_file()] == []
