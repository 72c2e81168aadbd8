"""``kelm._io``: the checks of output paths every writer runs, the permissions of the files
kelm writes, the message for a file given where an artifact directory is expected, and JSON
as kelm writes and reads it: strict JSON (no NaN or infinity) both ways."""

from __future__ import annotations

import json
import math
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest

from kelm._io import (
    FILE_MODE,
    atomic_file,
    check_output_dir,
    check_output_file,
    json_line,
    make_output_dir,
    output_lock,
    publish_dir,
    read_json_object,
    read_manifest,
    read_small_text,
    replace_file,
    staging_dir,
    write_json,
)
from kelm.errors import IndexFormatError, KelmError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_mode_is_what_open_gives(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("x")
    assert mode(plain) == FILE_MODE


# ------------------------------------------------------------------------- wrong kinds
def test_output_file_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(KelmError, match="is a directory, expected a file path"):
        check_output_file(tmp_path)
    with pytest.raises(KelmError, match="is a directory"), atomic_file(tmp_path) as fh:
        fh.write("x")


def test_output_file_refuses_a_device_or_pipe(tmp_path: Path) -> None:
    """The atomic rename would replace it (as root, ``-o /dev/null`` replaced the device by a
    regular file): a pipe of the test's own stands in for the device."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(KelmError, match="not a regular file"):
        check_output_file(pipe)
    with pytest.raises(KelmError, match="not a regular file"), atomic_file(pipe) as fh:
        fh.write("x")
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)


def test_read_small_text(tmp_path: Path) -> None:
    """A small input file is checked before it is read: /dev/zero never ends, a pipe without a
    writer blocks."""
    good = tmp_path / "map.yaml"
    good.write_text("a: [b]\n", encoding="utf-8")
    assert read_small_text(good, what="mapping", error=KelmError) == "a: [b]\n"
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: b\n" * 300_000)
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"a: \xff\n")
    cases = {
        "/dev/zero": "not a regular file",
        str(pipe): "not a regular file",
        str(tmp_path): "is a directory, not a mapping",
        str(tmp_path / "nope"): "no such file",
        str(big): "1,500,000 bytes is too large for a mapping",
        str(bad): "the mapping is not UTF-8 text (byte 0xff at offset 3)",
    }
    for path, message in cases.items():
        with pytest.raises(KelmError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_small_text(path, what="mapping", error=KelmError)


def test_output_dir_refuses_a_file(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_text("keep me")
    with pytest.raises(KelmError, match="exists and is not a directory"):
        check_output_dir(file)
    with pytest.raises(KelmError, match="exists and is not a directory"):
        make_output_dir(file)
    with pytest.raises(KelmError, match="exists and is not a directory"):
        staging_dir(file)
    # publish_dir never replaces a file by a directory (it used to: the file survived
    # only as a hidden .f.old-* that the next build removed)
    staged = tmp_path / "staged"
    staged.mkdir()
    with pytest.raises(KelmError, match="exists and is not a directory"):
        publish_dir(staged, file)
    assert file.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "staged"]


def test_parent_that_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_text("")
    with pytest.raises(KelmError, match="f is not a directory"):
        check_output_dir(file / "sub" / "out")
    with pytest.raises(KelmError, match="f is not a directory"):
        check_output_file(file / "out.json")


def test_good_outputs_pass(tmp_path: Path) -> None:
    assert check_output_file(tmp_path / "a" / "b.json") == tmp_path / "a" / "b.json"
    assert check_output_dir(tmp_path / "new" / "dir") == tmp_path / "new" / "dir"
    assert check_output_dir(tmp_path) == tmp_path
    assert make_output_dir(tmp_path / "x" / "y").is_dir()


# --------------------------------------------------------------------------- permissions
def test_not_writable_is_a_kelm_error(tmp_path: Path, monkeypatch) -> None:
    """What the kernel says (os.access); see tests/cli/test_cli_outputs.py for the real
    thing, a root without CAP_DAC_OVERRIDE."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, m, **kw: Path(p) != locked and real_access(p, m, **kw)
    )
    with pytest.raises(KelmError, match=r"locked/out: cannot write there \(.*locked is not"):
        check_output_dir(locked / "out")
    with pytest.raises(KelmError, match="cannot write there"):
        check_output_file(locked / "a" / "b" / "out.json")
    with pytest.raises(KelmError, match="cannot write in this directory"):
        check_output_dir(locked)


# ------------------------------------------------------------------------ file modes
def test_temp_file_writers_give_the_usual_mode(tmp_path: Path) -> None:
    """Files written through a temporary file (mkstemp, safetensors: 0600) get the mode a
    plain open() gives, as every other file kelm writes."""
    from safetensors.numpy import save_file

    write_json(tmp_path / "a.json", {"a": 1})
    assert mode(tmp_path / "a.json") == FILE_MODE
    tmp = tmp_path / ".b.tmp"
    save_file({"x": np.zeros(2)}, str(tmp))
    replace_file(tmp, tmp_path / "b.safetensors")
    assert mode(tmp_path / "b.safetensors") == FILE_MODE

    out = tmp_path / "out"
    staged = staging_dir(out)
    (staged / "sub").mkdir()
    save_file({"x": np.zeros(2)}, str(staged / "sub" / "c.safetensors"))
    save_file({"x": np.zeros(2)}, str(staged / "d.safetensors"))
    publish_dir(staged, out)
    assert mode(out / "sub" / "c.safetensors") == FILE_MODE
    assert mode(out / "d.safetensors") == FILE_MODE


# ---------------------------------------------------------------- artifact directories
def test_a_file_where_an_artifact_directory_is_expected(tmp_path: Path) -> None:
    file = tmp_path / "graph.tsv"
    file.write_text("a\tb\tc\n")
    kwargs = {"kind": "graph-index", "version": 1, "what": "graph index", "error": IndexFormatError}
    with pytest.raises(IndexFormatError, match="graph.tsv: is a file, not a graph index dir"):
        read_manifest(file, **kwargs)
    with pytest.raises(IndexFormatError, match="the directory does not exist"):
        read_manifest(tmp_path / "missing", **kwargs)


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


def test_output_lock_makes_a_second_writer_wait(tmp_path: Path) -> None:
    out = tmp_path / "not-yet" / "grounded.jsonl"  # its folder is made for the lock
    entered = threading.Event()

    def second() -> None:
        with output_lock(out):
            entered.set()

    with output_lock(out):
        thread = threading.Thread(target=second)
        thread.start()
        # it can only enter once the first holder leaves: never within the block
        assert not entered.wait(0.5)
    thread.join(30)
    assert entered.is_set() and not thread.is_alive()
