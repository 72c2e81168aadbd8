"""Small I/O helpers: hashing, atomic files and directories, JSON."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_CHUNK = 1 << 22
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def json_ready(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by ``None``.

    JSON has no NaN or infinity (Python's ``json`` writes bare ``NaN``, which other readers
    refuse), so kelm writes an undefined number as ``null``: a metric without data (the
    perplexity of zero held-out tokens) reads as absent, not as a number. The training loops
    never let a non-finite loss get this far (:func:`kelm.engine.optim.optimizer_step`).
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return obj


def json_line(obj: Any) -> str:
    """One line of JSON Lines (non-finite numbers as ``null``: :func:`json_ready`)."""
    return json.dumps(json_ready(obj), ensure_ascii=False, allow_nan=False)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file in the same directory, then rename); non-finite
    numbers are written as ``null`` (:func:`json_ready`)."""
    with atomic_file(path, "w") as fh:
        json.dump(json_ready(obj), fh, indent=2, ensure_ascii=False, allow_nan=False)
        fh.write("\n")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name}: JSON has no NaN or infinity")


def read_json_object(file: Path, error: type[Exception]) -> dict[str, Any]:
    """A JSON object read from ``file``; anything else (``NaN`` and ``Infinity`` included,
    which Python's ``json`` would accept) raises ``error`` naming the file."""
    try:
        obj = json.loads(Path(file).read_text(encoding="utf-8"), parse_constant=_no_constants)
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError included
        raise error(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise error(f"{file}: expected a JSON object")
    return obj


def read_manifest(
    directory: Path,
    *,
    kind: str,
    version: int,
    what: str,
    error: type[Exception],
    hint: str = "",
) -> dict[str, Any]:
    """The ``manifest.json`` of an artifact directory, checked for ``kind`` and ``version``.

    Args:
        directory: the artifact directory.
        kind: the manifest's expected ``kind``.
        version: the format version this kelm reads.
        what: the artifact in words, for messages ("graph index", "retrieval").
        error: the exception raised (a :class:`~kelm.errors.KelmError` subclass).
        hint: appended to the unknown-version message (how to rebuild it).
    """
    directory = Path(directory)
    file = directory / "manifest.json"
    if not directory.is_dir():
        raise error(f"{directory}: no {what} here (the directory does not exist)")
    if not file.is_file():
        raise error(f"{directory}: not a kelm {what} directory (manifest.json missing)")
    manifest = read_json_object(file, error)
    if manifest.get("kind") != kind:
        raise error(f"{file}: not a kelm {what} manifest")
    found = manifest.get("format_version")
    if found != version:
        raise error(
            f"{directory}: {what} format version {found} is not supported "
            f"(this kelm reads version {version}){hint}"
        )
    return manifest


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[Any]:
    """Open a temp file next to ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def staging_dir(out: Path) -> Path:
    """A fresh hidden directory beside ``out`` where a build is written before it is published."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def publish_dir(staged: Path, out: Path) -> None:
    """Replace ``out`` by the complete directory ``staged``.

    The old ``out`` is moved aside first and removed only after the rename, so at every
    instant ``out`` is either the old complete directory, absent, or the new complete one.
    """
    _fsync_dir(staged)
    old = None
    if out.exists() or out.is_symlink():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
    os.replace(staged, out)
    _fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_stale_staging(out: Path) -> None:
    """Remove leftovers of builds of ``out`` that were killed before publishing."""
    if not out.parent.is_dir():
        return
    for leftover in out.parent.glob(f".{out.name}.building-*"):
        pid = leftover.name.split("-")[-2] if leftover.name.count("-") >= 2 else ""
        if pid.isdigit() and _pid_alive(int(pid)):
            continue
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in out.parent.glob(f".{out.name}.old-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
