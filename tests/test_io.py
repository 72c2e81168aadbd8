"""JSON as kelm writes and reads it: strict JSON (no NaN or infinity) both ways."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from kelm._io import json_line, read_json_object, write_json
from kelm.errors import KelmError


def test_non_finite_numbers_are_written_as_null(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    write_json(path, {"loss": math.nan, "ppl": math.inf, "steps": [1.5, -math.inf], "n": 3})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"loss": None, "ppl": None, "steps": [1.5, None], "n": 3}
    assert json_line({"s": (math.nan, 2.0)}) == '{"s": [null, 2.0]}'


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_bare_nan_is_not_read_as_json(tmp_path: Path, constant: str) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(f'{{"accuracy": {constant}}}\n')
    with pytest.raises(KelmError, match=f"metrics.json: not valid JSON \\({constant}: JSON has no"):
        read_json_object(path, KelmError)
