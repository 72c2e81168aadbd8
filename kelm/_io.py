"""Small I/O helpers: hashing, atomic files and directories, JSON, the checks of output
paths every writer runs first (:func:`check_output_file`, :func:`check_output_dir`), and the
lock of an output that is written in resumable steps (:func:`output_lock`).

Every file kelm writes gets the permissions a plain ``open()`` gives (``0o666`` less the umask),
also those written through a temporary file (``mkstemp`` and safetensors create them ``0600``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kelm.errors import KelmError

log = logging.getLogger(__name__)

_CHUNK = 1 << 22
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
"""The permissions of a file kelm writes: those ``open()`` gives under this process's umask."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# Files whose sha256 this process has already computed, by identity: path, device, inode,
# size, mtime and ctime (any write changes the ctime, and a plain user cannot set it back).
# An artifact's files are then hashed once per process however often they are opened (a
# training run re-reads its retrieval shards every epoch), and a file changed on disk since
# is hashed again.
_DIGESTS: dict[tuple[str, int, int, int, int, int], str] = {}


def _identity(path: Path) -> tuple[str, int, int, int, int, int]:
    st = os.stat(path)
    return (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def sha256_once(path: str | os.PathLike[str]) -> str:
    """:func:`sha256_file`, computed at most once per process for an unchanged file."""
    path = Path(path)
    key = _identity(path)
    digest = _DIGESTS.get(key)
    if digest is None:
        digest = sha256_file(path)
        if _identity(path) == key:  # not written to while it was read
            _DIGESTS[key] = digest
    return digest


def verify_file(
    file: Path, expected: Any, *, what: str, error: type[Exception], hint: str = "rebuild it"
) -> None:
    """The integrity rule every artifact kelm reads follows, file by file: ``file`` exists and
    its sha256 is the ``expected`` one its manifest records (hashed once per process, see
    :func:`sha256_once`). ``hint`` says how to get a good copy.

    Raises:
        error: the file is missing, or its content is not what the manifest recorded.
    """
    file = Path(file)
    if not file.is_file():
        raise error(f"{file}: missing from the {what} (incomplete or damaged; {hint})")
    if not isinstance(expected, str) or sha256_once(file) != expected:
        raise error(
            f"{file}: checksum does not match the manifest (corrupt or modified {what}; rebuild it)"
        )


def fields_checksum(manifest: dict[str, Any], fields: tuple[str, ...]) -> str:
    """sha256 of the canonical JSON of a manifest's identity ``fields`` (what the manifest's
    own ``checksum`` records, so an edited field is noticed)."""
    chosen = {name: manifest.get(name) for name in fields}
    text = json.dumps(chosen, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def check_manifest_checksum(
    manifest: dict[str, Any], expected: str, file: Path, *, what: str, error: type[Exception]
) -> None:
    """The manifest's recorded ``checksum`` is ``expected`` (the digest of what it names)."""
    if manifest.get("checksum") != expected:
        raise error(
            f"{file}: the recorded checksum is not the one of the {what}'s content (edited or "
            "corrupt manifest; rebuild it)"
        )


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


# ----------------------------------------------------------------------------- output paths
def check_output_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as an output file kelm can write (atomically: a temporary file beside it,
    renamed over it), else a :class:`~kelm.errors.KelmError` naming it.

    Refused: an existing directory, or device, pipe or socket (the rename would replace it: as
    root, ``-o /dev/null`` replaced the device by a regular file), a parent that is a file, a
    directory kelm may not write in.
    """
    path = Path(path)
    if path.is_dir():
        raise KelmError(f"{path}: is a directory, expected a file path")
    if path.exists() and not path.is_file():
        raise KelmError(
            f"{path}: not a regular file (a device, pipe or socket), which kelm would replace; "
            "choose a file path"
        )
    _check_parent_writable(path)
    return path


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as an output directory kelm can create, write in, or replace as a whole
    (:func:`staging_dir`, :func:`publish_dir`), else a :class:`~kelm.errors.KelmError`.

    Refused: an existing file (never replaced by a directory), a parent that is a file, a
    directory kelm may not write in (``path`` itself when it exists, and its parent, where the
    staged directory is created and renamed).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise KelmError(
            f"{path}: exists and is not a directory; choose another output path or remove it"
        )
    _check_parent_writable(path)
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise KelmError(f"{path}: cannot write in this directory (permission denied)")
    return path


def make_output_dir(path: str | os.PathLike[str]) -> Path:
    """Create the output directory ``path`` (and its parents) after :func:`check_output_dir`."""
    path = check_output_dir(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_parent_writable(path: Path) -> None:
    """The nearest existing ancestor of ``path`` (created from there) must be a writable
    directory. ``os.access`` asks the kernel, so a root without ``CAP_DAC_OVERRIDE`` and a
    read-only file system are seen too."""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise KelmError(f"{path}: cannot be created, {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise KelmError(f"{path}: cannot write there ({ancestor} is not writable)")


def replace_file(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Rename the complete temporary file ``tmp`` over ``path``, with :data:`FILE_MODE`
    (``mkstemp`` and safetensors' ``save_file`` create their files ``0600``)."""
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------ reading
SMALL_FILE_BYTES = 2**20
"""The largest small input file (:func:`read_small_text`): a mapping or settings YAML is a
few kilobytes."""


def read_small_text(
    file: str | os.PathLike[str],
    *,
    what: str,
    error: type[Exception],
    max_bytes: int = SMALL_FILE_BYTES,
) -> str:
    """The UTF-8 text of a small input file (a YAML mapping of settings, relations, templates),
    checked before it is read: ``/dev/zero`` would be read until memory runs out and a pipe
    without a writer would block forever.

    Raises:
        error: one line naming ``file`` (``what`` says what it should be): missing, a
            directory, not a regular file, over ``max_bytes``, unreadable, not UTF-8.
    """
    file = Path(file)
    if file.is_dir():
        raise error(f"{file}: is a directory, not a {what}")
    if not file.exists():
        raise error(f"{file}: no such file (the {what})")
    if not file.is_file():
        raise error(f"{file}: not a regular file (a device or a pipe), not a {what}")
    size = file.stat().st_size
    if size > max_bytes:
        raise error(f"{file}: {size:,} bytes is too large for a {what} (at most {max_bytes:,})")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{file}: the {what} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start})"
        ) from None
    except OSError as exc:
        raise error(f"{file}: cannot read the {what} ({exc.strerror or exc})") from None


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
    if directory.exists() and not directory.is_dir():
        raise error(f"{directory}: is a file, not a {what} directory")
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


# ------------------------------------------------------------------------------------ writing
@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[Any]:
    """Open a temp file next to ``path``; rename it over ``path`` only if the block succeeds.

    Raises:
        KelmError: ``path`` cannot be written (:func:`check_output_file`).
    """
    path = check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        replace_file(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def output_lock(out: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the lock of ``out`` (``<out>.lock``, an OS file lock) for the block.

    A writer that resumes from a fixed-name partial state (a grounding's ``.partial`` file, an
    instance preparation's ``.partial/`` folder) takes it around its check-reuse-write-publish,
    so two processes asked for the same cached output (two benchmark runs side by side) do
    not append to one partial file: the second waits, then finds the first one's output
    complete and reuses it. The OS releases the lock of a process that dies.
    """
    from filelock import FileLock, Timeout

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out.with_name(out.name + ".lock"), mode=FILE_MODE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("%s: another process is writing it; waiting for it to finish", out)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def staging_dir(out: Path) -> Path:
    """A fresh hidden directory beside ``out`` where a build is written before it is published.

    Raises:
        KelmError: ``out`` cannot be written (:func:`check_output_dir`).
    """
    check_output_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def publish_dir(staged: Path, out: Path) -> None:
    """Replace ``out`` by the complete directory ``staged``.

    The old ``out`` is moved aside first and removed only after the rename, so at every
    instant ``out`` is either the old complete directory, absent, or the new complete one.
    An ``out`` that is not a directory is never replaced. The files get :data:`FILE_MODE`.

    Raises:
        KelmError: ``out`` exists and is not a directory.
    """
    if out.exists() and not out.is_dir():
        raise KelmError(
            f"{out}: exists and is not a directory; choose another output path or remove it"
        )
    _normalize_modes(staged)
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


def _normalize_modes(directory: Path) -> None:
    """Give the files under ``directory`` :data:`FILE_MODE` (writers such as safetensors'
    ``save_file`` create theirs ``0600``)."""
    for root, _, names in os.walk(directory):
        for name in names:
            file = os.path.join(root, name)
            if not os.path.islink(file) and os.stat(file).st_mode & 0o777 != FILE_MODE:
                os.chmod(file, FILE_MODE)


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
