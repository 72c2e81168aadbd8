"""The ``tsv`` and ``cn100k`` readers on hostile bytes: a non-UTF-8 weight or label is a
malformed line named by file and line, and binary input is a one-line input error (never an
Arrow exception)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from kelm.errors import InputError
from kelm.graph import GraphIndex, build_index
from kelm.graph.sources.base import BuildOptions

ROWS = {
    "tsv": [b"dog\tisa\tanimal\t1", b"cat\tisa\tanimal\t\xff2", b"fish\tatlocation\twater"],
    "cn100k": [b"IsA\tdog\tanimal\t1", b"IsA\tcat\tanimal\t\xff", b"AtLocation\tfish\twater"],
}
FOURTH = {"tsv": "weight", "cn100k": "label"}


@pytest.mark.parametrize("fmt", ["tsv", "cn100k"])
def test_non_utf8_fourth_column_is_a_malformed_line(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"bad.{fmt}"
    path.write_bytes(b"\n".join(ROWS[fmt]) + b"\n")
    report = build_index([path], tmp_path / "g", BuildOptions(format=fmt), progress=False)
    assert [(i.line, i.reason) for i in report.issues.first] == [
        (2, f"invalid UTF-8 in {FOURTH[fmt]}")
    ]
    graph = GraphIndex.load(tmp_path / "g")
    assert graph.num_edges == 2 and "cat" not in graph
    with pytest.raises(InputError, match=rf"bad\.{fmt}:2: invalid UTF-8 in {FOURTH[fmt]}"):
        build_index([path], tmp_path / "s", BuildOptions(format=fmt, strict=True), progress=False)


@pytest.mark.parametrize("fmt", ["tsv", "cn100k"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_binary_input_is_a_one_line_input_error(tmp_path: Path, fmt: str, seed: int) -> None:
    path = tmp_path / "random.bin"
    path.write_bytes(random.Random(seed).randbytes(20_000))
    with pytest.raises(InputError) as err:
        build_index([path], tmp_path / "g", BuildOptions(format=fmt), progress=False)
    assert "random.bin" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "g").exists()
