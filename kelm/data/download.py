"""Fetch public datasets and knowledge graphs into the data directory.

``download(name)`` fetches every file of a :data:`REGISTRY` entry into
``kelm.paths.data_dir(data_dir, must_exist=False)`` (see :mod:`kelm.paths` for the order of
``--data-dir``, ``$KELM_DATA`` and the defaults):

* a file already present whose checksum matches is left alone (``force=True`` fetches it anew);
* a download goes to ``<file>.part`` and is resumed from where it stopped with an HTTP
  ``Range: bytes=N-`` request: ``206`` appends, ``200`` (a server that ignores ``Range``)
  restarts from zero, ``416`` means the partial file is already complete;
* ``Content-Length`` is checked (a short transfer keeps the ``.part`` for the next run), then
  the sha256, then the ``.part`` is renamed onto the final path in one step;
* a file whose published sha256 is known is verified against it. For a file without one
  (``sha256=None``) the digest and size of the first complete download are recorded in
  ``checksums.json`` at the top of the data directory (trust on first use) and every later
  run checks against that record. To accept a deliberately changed upstream file, delete its
  entry from ``checksums.json``.

Only the standard library does the transfer (``urllib``), so proxies come from the usual
``http_proxy`` / ``https_proxy`` / ``no_proxy`` variables. Offline, the files can be copied
into the data directory by hand under the relative paths listed in the registry.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kelm import paths
from kelm._io import sha256_file, write_json
from kelm.errors import DownloadError, KelmError

log = logging.getLogger(__name__)

TIMEOUT_S = 30.0
"""Seconds to wait for a connection or for the next block of data."""

CHUNK = 1 << 20
CHECKSUMS_FILE = "checksums.json"
USER_AGENT = "kelm-data-download/0.1 (+python-urllib)"


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch.

    ``relative_path`` is where it goes inside the data directory. ``sha256`` and ``size`` are
    the published values when known; ``None`` means "trust on first use" (see module doc).
    """

    url: str
    relative_path: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    files: list[RemoteFile]


# Checksums marked "published" below are the sha256/size recorded for the very same URL by
# independent third parties (Hugging Face `datasets` dataset_infos.json / urls_checksums,
# ParlAI's build.py, and several other pipelines that pin them); they are verified on every
# download. Entries with sha256=None have no published checksum: trust on first use.
REGISTRY: dict[str, Dataset] = {
    "conceptnet": Dataset(
        name="conceptnet",
        description="ConceptNet 5.7.0 assertions, all languages (csv.gz, 475 MiB)",
        files=[
            # published: HF datasets `conceptnet5` download_checksums (+ other pipelines).
            RemoteFile(
                url="https://s3.amazonaws.com/conceptnet/downloads/2019/edges/"
                "conceptnet-assertions-5.7.0.csv.gz",
                relative_path="kg/conceptnet/conceptnet-assertions-5.7.0.csv.gz",
                sha256="accd65fe94038584295574ddc26e1500c1919c8c4532bf771811cafd0948af7e",
                size=497_963_447,
            ),
        ],
    ),
    "cn100k": Dataset(
        name="cn100k",
        description="CN-100K ConceptNet subset (Li et al. 2016), splits as in DeqingYang/CKBC",
        # trust on first use: no published checksums. Pinned to a commit of the CKBC
        # repository, so the bytes cannot change under the same URL.
        files=[
            RemoteFile(
                url="https://raw.githubusercontent.com/DeqingYang/CKBC/"
                f"6230e1b8fc590267aab4a1d7d4a46008142dcc62/data/ConceptNet/{fname}",
                relative_path=f"kg/conceptnet100k/{fname}",
            )
            for fname in (
                "train.txt",
                "dev1.txt",
                "dev2.txt",
                "valid.txt",
                "test.txt",
                "rel.txt",
                "cn_node_names.txt",
            )
        ],
    ),
    "csqa": Dataset(
        name="csqa",
        description="CommonsenseQA v1.11, random split: train, dev, test (no answers)",
        # published: HF datasets `commonsense_qa` download_checksums and ParlAI.
        files=[
            RemoteFile(
                url=f"https://s3.amazonaws.com/commensenseqa/{fname}",
                relative_path=f"qa/csqa/{fname}",
                sha256=digest,
                size=size,
            )
            for fname, digest, size in (
                (
                    "train_rand_split.jsonl",
                    "58ffa3c8472410e24b8c43f423d89c8a003d8284698a6ed7874355dedd09a2fb",
                    3_785_890,
                ),
                (
                    "dev_rand_split.jsonl",
                    "3210497fdaae614ac085d9eb873dd7f4d49b6f965a93adadc803e1229fd8a02a",
                    471_653,
                ),
                (
                    "test_rand_split_no_answers.jsonl",
                    "b426896d71a9cd064cf01cfaf6e920817c51701ef66028883ac1af2e73ad5f29",
                    423_148,
                ),
            )
        ],
    ),
    "copa": Dataset(
        name="copa",
        description="COPA dev/test XML (Roemmele et al. 2011) and Balanced COPA "
        "(Kavumba et al. 2019) archives",
        files=[
            # published: ParlAI's COPA build.py (for the old people.ict.usc.edu/~gordon/
            # downloads/COPA-resources.tgz, which no longer answers) and a pipeline pinning
            # this very revision of the author's site repository. Contains
            # COPA-resources/datasets/copa-{dev,test}.xml.
            RemoteFile(
                url="https://raw.githubusercontent.com/asgordon/asgordon.github.io/"
                "14496936a3bed7b386aa8f517656d6f91e3fa77a/downloads/COPA-resources.tgz",
                relative_path="qa/copa/COPA-resources.tgz",
                sha256="5145348834d2081ad90da0397d1db3d70fa044e506bd8ce224194d24b04cdbbe",
            ),
            # trust on first use: the download linked from https://balanced-copa.github.io
            # (holds the 1000-question balanced dev set, balacopa-dev-all.xml).
            RemoteFile(
                url="https://balanced-copa.github.io/downloads/balanced_copa.tar.bz2",
                relative_path="qa/copa/balanced_copa.tar.bz2",
            ),
        ],
    ),
    "obqa": Dataset(
        name="obqa",
        description="OpenBookQA v1 (Sep 2018): questions, open book of facts (zip)",
        files=[
            # published: HF datasets `openbookqa` urls_checksums (+ other pipelines).
            RemoteFile(
                url="https://s3-us-west-2.amazonaws.com/ai2-website/data/OpenBookQA-V1-Sep2018.zip",
                relative_path="qa/obqa/OpenBookQA-V1-Sep2018.zip",
                sha256="82368cf05df2e3b309c17d162e10b888b4d768fad6e171e0a041954c8553be46",
                size=1_446_098,
            ),
        ],
    ),
}


def download(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Fetch every file of dataset ``name``; return their final paths, in registry order.

    Raises :class:`KelmError` for an unknown name or an unwritable data directory and
    :class:`DownloadError` for a network failure or a checksum mismatch (one line each).
    """
    if name not in REGISTRY:
        raise KelmError(f"unknown dataset {name!r}; known datasets: {', '.join(REGISTRY)}")
    root = paths.data_dir(data_dir, must_exist=False)
    store = _ChecksumStore(root / CHECKSUMS_FILE)
    return [
        _fetch_one(remote, root, store, force=force, progress=progress)
        for remote in REGISTRY[name].files
    ]


# ------------------------------------------------------------------------------ one file
def _fetch_one(
    remote: RemoteFile, root: Path, store: _ChecksumStore, *, force: bool, progress: bool
) -> Path:
    final = root / remote.relative_path
    record = store.get(remote.relative_path)
    trusted = remote.sha256 is None and record is not None
    expected_sha = remote.sha256 or (record or {}).get("sha256")
    expected_size = remote.size if remote.size is not None else (record or {}).get("size")

    if final.is_file() and not force:
        if _matches(final, expected_sha, expected_size):
            if remote.sha256 is None and record is None:
                # Present (e.g. copied by hand) but never recorded: trust it now.
                store.record(remote, final, sha256_file(final), final.stat().st_size)
            log.info("%s: present, checksum ok", final)
            return final
        log.warning("%s: checksum does not match, downloading it again", final)

    _ensure_writable(final.parent, root)
    part = final.with_name(final.name + ".part")
    if force:
        _discard(part)
    digest, size = _transfer(remote.url, part, expected_size, root, progress, remote.relative_path)

    if expected_size is not None and size != expected_size:
        _discard(part)
        raise DownloadError(
            f"size mismatch for {remote.relative_path}: expected {expected_size:,} bytes, "
            f"got {size:,} (the partial download was deleted; run again)"
        )
    if expected_sha is not None and digest != expected_sha:
        _discard(part)
        hint = (
            f"; if the upstream file changed on purpose, delete its entry from {store.path}"
            if trusted
            else ""
        )
        raise DownloadError(
            f"checksum mismatch for {remote.relative_path}: expected sha256 {expected_sha}, "
            f"got {digest} (the partial download was deleted{hint})"
        )
    os.replace(part, final)
    if remote.sha256 is None and record is None:
        store.record(remote, final, digest, size)
    log.info("%s: downloaded, %s bytes, sha256 %s", final, f"{size:,}", digest)
    return final


def _matches(path: Path, sha: str | None, size: int | None) -> bool:
    if size is not None and path.stat().st_size != size:
        return False
    return sha is None or sha256_file(path) == sha


def _transfer(
    url: str, part: Path, expected_size: int | None, root: Path, progress: bool, label: str
) -> tuple[str, int]:
    """Download ``url`` into ``part``, resuming it; return (sha256, size) of the whole file."""
    for _attempt in range(2):
        offset = part.stat().st_size if part.is_file() else 0
        if expected_size is not None and offset > expected_size:
            _discard(part)
            offset = 0
        if offset and offset == expected_size:
            return _hash_prefix(part, offset).hexdigest(), offset

        request = urllib.request.Request(
            url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        )
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            response = urllib.request.build_opener().open(request, timeout=TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            with contextlib.suppress(Exception):
                exc.close()
            if exc.code == 416 and offset:
                total = _content_range_total(exc.headers.get("Content-Range"))
                if total is None or total == offset:
                    log.info("%s: server says the partial file is complete", label)
                    return _hash_prefix(part, offset).hexdigest(), offset
                log.info("%s: partial file does not fit the remote one, restarting", label)
                _discard(part)
                continue
            raise DownloadError(
                f"cannot download {url}: HTTP {exc.code} {exc.reason} "
                f"(files can also be copied into {root} by hand)"
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _network_error(url, exc, root) from None

        with response:
            status = response.status
            length = _int_header(response.headers.get("Content-Length"))
            if status == 206:
                start = _content_range_start(response.headers.get("Content-Range"))
                if start != offset:
                    log.info("%s: server resumed at the wrong offset, restarting", label)
                    _discard(part)
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
                    f"(files can also be copied into {root} by hand)"
                )
            if total is not None and expected_size is not None and total != expected_size:
                raise DownloadError(
                    f"cannot download {url}: the server announces {total:,} bytes but "
                    f"{label} should have {expected_size:,}"
                )
            digest = _hash_prefix(part, offset) if offset else hashlib.sha256()
            received = _stream(response, part, offset, total, digest, url, root, progress, label)
        size = offset + received
        if length is not None and received < length:
            raise _network_error(
                url,
                f"connection closed after {size:,} of {total:,} bytes; "
                f"run again to resume from {part.name}",
                root,
            )
        return digest.hexdigest(), size
    raise DownloadError(f"cannot download {url}: the server keeps answering inconsistently")


def _stream(
    response: Any,
    part: Path,
    offset: int,
    total: int | None,
    digest: Any,
    url: str,
    root: Path,
    progress: bool,
    label: str,
) -> int:
    """Append the response body to ``part`` (truncated first when ``offset`` is 0)."""
    from tqdm.auto import tqdm

    received = 0
    try:
        fh = open(part, "ab" if offset else "wb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise _write_error(part, exc, root) from None
    with (
        fh,
        tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=label,
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        while True:
            try:
                chunk = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                with contextlib.suppress(OSError):
                    fh.flush()
                reason = (
                    f"{_reason(exc)} after {offset + received:,} bytes; "
                    f"run again to resume from {part.name}"
                )
                raise _network_error(url, reason, root) from None
            if not chunk:
                break
            try:
                fh.write(chunk)
            except OSError as exc:
                raise _write_error(part, exc, root) from None
            digest.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
        try:
            fh.flush()
            os.fsync(fh.fileno())
        except OSError as exc:
            raise _write_error(part, exc, root) from None
    return received


def _hash_prefix(path: Path, length: int) -> Any:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        remaining = length
        while remaining > 0 and (block := fh.read(min(1 << 22, remaining))):
            digest.update(block)
            remaining -= len(block)
    return digest


# --------------------------------------------------------------------- checksum records
class _ChecksumStore:
    """``checksums.json``: sha256 and size recorded on first download (trust on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, dict[str, Any]] | None = None

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (FileNotFoundError, NotADirectoryError):
                data = {}
            except (OSError, ValueError) as exc:
                raise KelmError(
                    f"cannot read {self.path}: {exc} (fix or delete it; it only holds "
                    f"checksums recorded by earlier downloads)"
                ) from None
            files = data.get("files") if isinstance(data, dict) else None
            self._entries = files if isinstance(files, dict) else {}
        return self._entries

    def get(self, relative_path: str) -> dict[str, Any] | None:
        entry = self._load().get(relative_path)
        return entry if isinstance(entry, dict) and entry.get("sha256") else None

    def record(self, remote: RemoteFile, final: Path, digest: str, size: int) -> None:
        entries = self._load()
        entries[remote.relative_path] = {
            "url": remote.url,
            "sha256": digest,
            "size": size,
            "recorded": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        try:
            write_json(self.path, {"note": _STORE_NOTE, "files": dict(sorted(entries.items()))})
        except OSError as exc:
            log.warning("cannot record the checksum of %s in %s: %s", final, self.path, exc)


_STORE_NOTE = (
    "sha256 and size of files without a published checksum, recorded by `kelm data download` "
    "on their first complete download and checked on later runs (trust on first use)"
)


# ------------------------------------------------------------------------------- helpers
def _ensure_writable(directory: Path, root: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory, prefix=".kelm-write-test-"):
            pass
    except OSError as exc:
        raise KelmError(
            f"cannot write to the data directory {root} ({_reason(exc)}); "
            f"pass --data-dir DIR (or set KELM_DATA) to download elsewhere"
        ) from None


def _discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _reason(exc: BaseException | str) -> str:
    if isinstance(exc, str):
        return exc
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return _reason(exc.reason) if isinstance(exc.reason, BaseException) else str(exc.reason)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _network_error(url: str, exc: BaseException | str, root: Path) -> DownloadError:
    return DownloadError(
        f"cannot download {url}: {_reason(exc)} "
        f"(offline? files can also be copied into {root} by hand)"
    )


def _write_error(part: Path, exc: OSError, root: Path) -> KelmError:
    return KelmError(
        f"cannot write {part}: {_reason(exc)} (pass --data-dir DIR to download elsewhere)"
    )


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED = re.compile(r"bytes\s+\*/(\d+)")


def _content_range_start(value: str | None) -> int | None:
    match = _RANGE.match(value or "")
    return int(match.group(1)) if match else None


def _content_range_total(value: str | None) -> int | None:
    match = _UNSATISFIED.match(value or "")
    return int(match.group(1)) if match else None
