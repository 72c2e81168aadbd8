"""The two pieces :mod:`kelm.data.download` plugs into pooch.

* :class:`ResumingDownloader`, a pooch downloader (``downloader(url, output_file, pooch)``).
  pooch's own ``HTTPDownloader`` always starts from byte 0; a 475 MiB ConceptNet dump on a
  flaky link needs resuming, so this one keeps the bytes received so far in
  ``<file>.part`` and asks for the rest with ``Range: bytes=N-``: ``206`` appends, ``200`` (a
  server that ignores ``Range``) restarts from zero, ``416`` means the partial file is already
  complete. When the transfer is complete it moves ``.part`` onto pooch's temporary file;
  pooch then checks the sha256 and renames it onto the final path (or deletes it on a
  mismatch, so nothing half-written is left under the final name).
* :class:`Extract`, a pooch processor that unpacks chosen members of a tar archive into the
  layout kelm's readers expect (WordNet's ``dict/`` into NLTK's ``corpora/wordnet``), each
  target published atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import re
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from kelm._io import (
    atomic_file,
    publish_dir,
    remove_stale_staging,
    replace_file,
    staging_dir,
)
from kelm.errors import DownloadError, KelmError

log = logging.getLogger("kelm.data.download")

TIMEOUT_S = 30.0
"""Seconds to wait for a connection or for the next block of data."""

CHUNK = 1 << 20
USER_AGENT = "kelm-data-download/0.2 (+pooch; python-requests)"


class ResumingDownloader:
    """A pooch downloader that resumes ``part`` with HTTP ranges (see the module doc).

    After a call, :attr:`digest` and :attr:`size` describe the whole file (pooch checks the
    digest again on its temporary file; ours names the received digest in a mismatch message).
    """

    def __init__(
        self,
        part: Path,
        *,
        expected_size: int | None,
        root: Path,
        label: str,
        progress: bool,
        present: bool = False,
    ) -> None:
        self.part = part
        self.expected_size = expected_size
        self.root = root
        self.label = label
        self.progress = progress
        self.present = present
        self.digest: str | None = None
        self.size: int | None = None

    def __call__(self, url: str, output_file: str, pooch: Any, check_only: bool = False) -> Any:
        if check_only:  # pooch's is_available(); not used by kelm
            return True
        if self.present:
            log.warning("%s: checksum does not match, downloading it again", self.label)
        digest, size = self._transfer(url)
        if self.expected_size is not None and size != self.expected_size:
            discard(self.part)
            raise DownloadError(
                f"size mismatch for {self.label}: expected {self.expected_size:,} bytes, "
                f"got {size:,} (the partial download was deleted; run again)"
            )
        self.digest, self.size = digest, size
        # pooch hashes output_file and renames it onto the final path only if it matches.
        replace_file(self.part, output_file)
        return None

    # -------------------------------------------------------------------------- transfer
    def _transfer(self, url: str) -> tuple[str, int]:
        """Download ``url`` into ``part``, resuming it; return (sha256, size) of the whole."""
        import requests

        part, label = self.part, self.label
        for _attempt in range(2):
            offset = part.stat().st_size if part.is_file() else 0
            if self.expected_size is not None and offset > self.expected_size:
                discard(part)
                offset = 0
            if offset and offset == self.expected_size:
                return hash_prefix(part, offset).hexdigest(), offset

            headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            try:
                response = requests.get(url, headers=headers, stream=True, timeout=TIMEOUT_S)
            except requests.RequestException as exc:
                raise self._network_error(url, reason(exc)) from None

            with response:
                status = response.status_code
                if status == 416 and offset:
                    total = _unsatisfied_total(response.headers.get("Content-Range"))
                    if total is None or total == offset:
                        log.info("%s: server says the partial file is complete", label)
                        return hash_prefix(part, offset).hexdigest(), offset
                    log.info("%s: partial file does not fit the remote one, restarting", label)
                    discard(part)
                    continue
                if status >= 400:
                    raise DownloadError(
                        f"cannot download {url}: HTTP {status} {response.reason} "
                        f"(files can also be copied into {self.root} by hand)"
                    )
                length = _int_header(response.headers.get("Content-Length"))
                if status == 206:
                    if _range_start(response.headers.get("Content-Range")) != offset:
                        log.info("%s: server resumed at the wrong offset, restarting", label)
                        discard(part)
                        continue
                    total = None if length is None else offset + length
                elif status == 200:
                    if offset:
                        log.info("%s: server ignored the Range request, restarting from 0", label)
                    offset = 0
                    total = length
                else:
                    raise DownloadError(
                        f"cannot download {url}: unexpected HTTP status {status} "
                        f"(files can also be copied into {self.root} by hand)"
                    )
                if (
                    total is not None
                    and self.expected_size is not None
                    and total != self.expected_size
                ):
                    raise DownloadError(
                        f"cannot download {url}: the server announces {total:,} bytes but "
                        f"{label} should have {self.expected_size:,}"
                    )
                digest = hash_prefix(part, offset) if offset else hashlib.sha256()
                received, error = self._stream(response, offset, total, digest)
            size = offset + received
            if error is not None or (length is not None and received < length):
                what = f"{size:,} of {total:,}" if total is not None else f"{size:,}"
                cause = f"{error}: " if error else ""
                raise self._network_error(
                    url,
                    f"{cause}connection closed after {what} bytes; "
                    f"run again to resume from {part.name}",
                )
            return digest.hexdigest(), size
        raise DownloadError(f"cannot download {url}: the server keeps answering inconsistently")

    def _stream(
        self, response: Any, offset: int, total: int | None, digest: Any
    ) -> tuple[int, str | None]:
        """Append the body to ``part`` (truncated first when ``offset`` is 0); return the
        bytes received and, when the connection broke, why (what came is kept)."""
        import requests
        import urllib3
        from tqdm.auto import tqdm

        received = 0
        try:
            fh = open(self.part, "ab" if offset else "wb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise self._write_error(exc) from None
        with (
            fh,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=self.label,
                disable=not self.progress,
                leave=False,
            ) as bar,
        ):
            error = None
            try:
                for chunk in _chunks(response):
                    try:
                        fh.write(chunk)
                    except OSError as exc:
                        raise self._write_error(exc) from None
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (
                requests.RequestException,
                urllib3.exceptions.HTTPError,
                http.client.HTTPException,
                OSError,
            ) as exc:
                error = reason(exc)
            try:
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as exc:
                raise self._write_error(exc) from None
        return received, error

    def _network_error(self, url: str, why: str) -> DownloadError:
        return DownloadError(
            f"cannot download {url}: {why} "
            f"(offline? files can also be copied into {self.root} by hand)"
        )

    def _write_error(self, exc: OSError) -> KelmError:
        return KelmError(
            f"cannot write {self.part}: {reason(exc)} (pass --data-dir DIR to download elsewhere)"
        )


# ----------------------------------------------------------------------------- extraction
@dataclass(frozen=True)
class Extract:
    """Unpack ``member`` of a tar archive to ``target`` (relative to the data directory).

    ``member`` ending in ``/`` is a folder: its regular files (not its subfolders) become the
    files of the folder ``target``. Otherwise ``member`` is one file written to ``target``.
    """

    member: str
    target: str


class ExtractProcessor:
    """A pooch processor running :class:`Extract` steps after the archive is in place.

    A target is (re)written when the archive was just downloaded or updated, or when the
    target is missing (e.g. deleted by hand); each is published in one rename.
    """

    def __init__(self, steps: tuple[Extract, ...], root: Path, label: str) -> None:
        self.steps = steps
        self.root = root
        self.label = label

    def __call__(self, fname: str, action: str, pooch: Any) -> str:
        for step in self.steps:
            target = self.root / step.target
            if action == "fetch" and target.exists():
                continue
            try:
                with tarfile.open(fname) as archive:
                    if step.member.endswith("/"):
                        self._folder(archive, step.member, target)
                    else:
                        self._file(archive, step.member, target)
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise KelmError(
                    f"cannot unpack {self.label} into {target}: {reason(exc)} "
                    f"(delete {fname} and run again)"
                ) from None
            log.info("%s: unpacked %s into %s", self.label, step.member, target)
        return fname

    def _folder(self, archive: tarfile.TarFile, member: str, target: Path) -> None:
        prefix = PurePosixPath(member)
        members = [
            info
            for info in archive.getmembers()
            if info.isfile()
            and PurePosixPath(info.name).parent == prefix
            and not PurePosixPath(info.name).name.startswith(".")
        ]
        if not members:
            raise KelmError(f"{self.label}: the archive has no files under {member}")
        remove_stale_staging(target)
        staged = staging_dir(target)
        try:
            for info in members:
                # Names come from the archive: only the base name is used, so no member can
                # write outside the staging folder.
                _copy_member(archive, info, staged / PurePosixPath(info.name).name)
            publish_dir(staged, target)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise

    def _file(self, archive: tarfile.TarFile, member: str, target: Path) -> None:
        try:
            info = archive.getmember(member)
        except KeyError:
            raise KelmError(f"{self.label}: the archive has no member {member}") from None
        if not info.isfile():
            raise KelmError(f"{self.label}: {member} is not a regular file in the archive")
        source = archive.extractfile(info)
        assert source is not None  # a regular file always has a body
        with source, atomic_file(target, "wb") as out:
            shutil.copyfileobj(source, out, CHUNK)


def _chunks(response: Any) -> Iterator[bytes]:
    """The body as it arrives. urllib3 2's ``read1`` hands over what came before a broken
    connection; ``iter_content`` fills whole chunks and drops a partial one when the
    connection breaks, which would lose up to a chunk of what a resume could keep."""
    raw = response.raw
    if hasattr(raw, "read1"):
        while chunk := raw.read1(CHUNK):
            yield chunk
    else:  # urllib3 1.26
        yield from response.iter_content(CHUNK)


def _copy_member(archive: tarfile.TarFile, info: tarfile.TarInfo, dest: Path) -> None:
    source = archive.extractfile(info)
    assert source is not None
    with source, open(dest, "wb") as out:
        shutil.copyfileobj(source, out, CHUNK)


# ------------------------------------------------------------------------------- helpers
def hash_prefix(path: Path, length: int) -> Any:
    """sha256 of the first ``length`` bytes of ``path`` (a resumed download's start)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        remaining = length
        while remaining > 0 and (block := fh.read(min(1 << 22, remaining))):
            digest.update(block)
            remaining -= len(block)
    return digest


def discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def reason(exc: BaseException | str) -> str:
    """A short reason for a network or file error: ``Connection refused``, ``timed out``,
    ``Name or service not known`` rather than requests' nested retry description."""
    if isinstance(exc, str):
        return exc
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TimeoutError) or "timed out" in str(current).lower():
            return "timed out"
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        inner = getattr(current, "reason", None)
        if isinstance(inner, BaseException):
            current = inner
            continue
        if current.args and isinstance(current.args[0], BaseException):
            current = current.args[0]
            continue
        current = current.__context__
    text = str(exc)
    match = _ERRNO.search(text)
    if match:
        return match.group(1).strip()
    if "IncompleteRead" in text or "Connection broken" in text:
        return "connection broken"
    return text.splitlines()[0] if text else type(exc).__name__


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED = re.compile(r"bytes\s+\*/(\d+)")


def _range_start(value: str | None) -> int | None:
    match = _RANGE.match(value or "")
    return int(match.group(1)) if match else None


def _unsatisfied_total(value: str | None) -> int | None:
    match = _UNSATISFIED.match(value or "")
    return int(match.group(1)) if match else None
