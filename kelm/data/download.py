"""Fetch public datasets and knowledge graphs into the data directory, through pooch.

``download(name)`` fetches every file of a :data:`REGISTRY` entry into
``kelm.paths.data_dir(data_dir, must_exist=False)`` (see :mod:`kelm.paths` for the order of
``--data-dir``, ``$KELM_DATA`` and the defaults). pooch does the bookkeeping: a file already
present whose sha256 matches is left alone (``force=True`` fetches it anew), a download lands
in a temporary file beside the target, is hashed, and is renamed onto the target only when the
hash matches (a mismatch deletes it: nothing half-written is left under the final name).
Two pieces are kelm's own (:mod:`kelm.data._transfer`): a downloader that resumes an
interrupted transfer from ``<file>.part`` with an HTTP ``Range`` request (pooch restarts from
zero), and a processor that unpacks archives into the layout kelm's readers expect.

Checksums: a file whose published sha256 is known is verified against it. For a file without
one (``sha256=None``) the digest and size of the first complete download are recorded in
``checksums.json`` at the top of the data directory (trust on first use) and every later run
checks against that record. To accept a deliberately changed upstream file, delete its entry
from ``checksums.json``.

``$KELM_DATA_MIRROR`` (a base URL) fetches every file from ``<mirror>/<relative path>``
instead of its origin, checksums unchanged: a copy of a data directory served over HTTP (an
institutional mirror, an air-gapped network). Proxies come from the usual ``http_proxy`` /
``https_proxy`` / ``no_proxy`` variables. Offline, the files can be copied into the data
directory by hand under the relative paths listed in the registry.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kelm import paths
from kelm._io import sha256_file, write_json
from kelm.data._transfer import (
    Extract,
    ExtractProcessor,
    ResumingDownloader,
    discard,
    reason,
)
from kelm.errors import DownloadError, KelmError

log = logging.getLogger(__name__)

CHECKSUMS_FILE = "checksums.json"
MIRROR_ENV = "KELM_DATA_MIRROR"

__all__ = ["CHECKSUMS_FILE", "REGISTRY", "Dataset", "Extract", "RemoteFile", "download"]


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch.

    ``relative_path`` is where it goes inside the data directory. ``sha256`` and ``size`` are
    the published values when known; ``None`` means "trust on first use" (see module doc).
    ``extract`` unpacks members of the (tar) archive after it is verified.
    """

    url: str
    relative_path: str
    sha256: str | None = None
    size: int | None = None
    extract: tuple[Extract, ...] = ()


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    files: list[RemoteFile]


# Where a checksum comes from is said next to it:
# * "published": the sha256/size recorded for the very same URL by independent third parties
#   (Hugging Face `datasets` dataset_infos.json / urls_checksums, ParlAI's build.py, distribution
#   packages, and other pipelines that pin them);
# * "pinned": the URL names a git commit, and the sha256/size are those of the file's git blob at
#   that commit (computed from a clone of the repository; raw.githubusercontent.com serves those
#   exact bytes, and a commit cannot change);
# * sha256=None: no checksum known, trust on first use.
_CKBC = "https://raw.githubusercontent.com/DeqingYang/CKBC/6230e1b8fc590267aab4a1d7d4a46008142dcc62"
_COSE = (
    "https://raw.githubusercontent.com/salesforce/cos-e/c8aae4061182d2bb696cf23e8bb899c447a0ea6e"
)
_BALANCED_COPA = (
    "https://raw.githubusercontent.com/Balanced-COPA/Balanced-COPA.github.io/"
    "7814230b6f49d620df106eae55b3c77eed685bee"
)

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
        # pinned: the blobs of data/ConceptNet at that commit of DeqingYang/CKBC.
        files=[
            RemoteFile(
                url=f"{_CKBC}/data/ConceptNet/{fname}",
                relative_path=f"kg/conceptnet100k/{fname}",
                sha256=digest,
                size=size,
            )
            for fname, digest, size in (
                (
                    "train.txt",
                    "8fd8b132482fa17837e74084c6d3e0c88c828999990cffe1cf036013de906c16",
                    3_454_511,
                ),
                (
                    "dev1.txt",
                    "eb55942d946831e037de63e9dfda4b5a7bbd385682d3803f72acd05228c38a8f",
                    35_862,
                ),
                (
                    "dev2.txt",
                    "c28a62f11d971d50b9d1694c0e7eab8a71f5e0327b426bc81794e9a26dffc0b0",
                    35_693,
                ),
                (
                    "valid.txt",
                    "109a14c6e165cc523255afa551890f8ea9f809b04c431098e550fa0a82b05ff5",
                    33_431,
                ),
                (
                    "test.txt",
                    "78a042e181118c46f678253cf1243ae190fd2a3511b01671a8b9bc049194bb67",
                    31_841,
                ),
                (
                    "rel.txt",
                    "09264dc2c18efc12f0a020d4c060a964fbc2fdb2b2c2dddf85023236cde9d6f9",
                    382,
                ),
                (
                    "cn_node_names.txt",
                    "4cf1b59c94e304f69b67ae3bbbbd6da805723c535acc9cba946da7f9ccdaf3a8",
                    1_330_468,
                ),
            )
        ],
    ),
    "wordnet": Dataset(
        name="wordnet",
        description="Princeton WordNet 3.0 (tar.bz2, 10 MiB), unpacked into the NLTK layout "
        "kg/wordnet_nltk/corpora/wordnet",
        files=[
            # published: the sha256 pinned for this URL by Homebrew's wordnet formula, nixpkgs,
            # Arch and Fedora packages. The .tar.gz sibling on the same site has no checksum
            # published anywhere we could check, so the .tar.bz2 is the one fetched. Its size
            # is not published: the sha256 alone is verified.
            RemoteFile(
                url="https://wordnetcode.princeton.edu/3.0/WordNet-3.0.tar.bz2",
                relative_path="kg/wordnet_nltk/WordNet-3.0.tar.bz2",
                sha256="6c492d0c7b4a40e7674d088191d3aa11f373bb1da60762e098b8ee2dda96ef22",
                # dict/ holds data.*, index.*, lexnames, *.exc: what `nltk.corpus.wordnet`
                # (NLTK_DATA=kg/wordnet_nltk) and `kelm graph build --format wordnet` read.
                extract=(Extract("WordNet-3.0/dict/", "kg/wordnet_nltk/corpora/wordnet"),),
            ),
        ],
    ),
    "csqa": Dataset(
        name="csqa",
        description="CommonsenseQA v1.11 (5 choices; train, dev, test without answers) and "
        "v1.0 (3 choices; the configs' default training file)",
        files=[
            # published: HF datasets `commonsense_qa` download_checksums and ParlAI.
            *(
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
            ),
            # pinned: v1.0 as kept in salesforce/cos-e (data/v1.0), the commit adding it.
            RemoteFile(
                url=f"{_COSE}/data/v1.0/train_rand_split.jsonl",
                relative_path="qa/csqa/train_rand_split_v1.0.jsonl",
                sha256="1989ce97e24d8572113d6a18f44e0f11ee9d206fb9bf9a1133937645583e697e",
                size=2_160_200,
            ),
        ],
    ),
    "copa": Dataset(
        name="copa",
        description="COPA dev/test XML (Roemmele et al. 2011) and Balanced COPA dev "
        "(Kavumba et al. 2019, unpacked to qa/copa/balacopa-dev-all.xml)",
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
            # pinned: the archive linked from https://balanced-copa.github.io, at the commit
            # of its site repository that added it (the 1000-question balanced dev set).
            RemoteFile(
                url=f"{_BALANCED_COPA}/downloads/balanced_copa.tar.bz2",
                relative_path="qa/copa/balanced_copa.tar.bz2",
                sha256="b27bbec0950b4bd8e76155c2297c045b03de059222ae08f794e61f1444c50ceb",
                size=27_908,
                extract=(
                    Extract("balanced_copa/balacopa-dev-all.xml", "qa/copa/balacopa-dev-all.xml"),
                ),
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
    with _quiet_pooch():
        return [
            _fetch_one(remote, root, store, force=force, progress=progress)
            for remote in REGISTRY[name].files
        ]


def source_url(remote: RemoteFile) -> str:
    """The URL ``remote`` is fetched from: its own, or its place under ``$KELM_DATA_MIRROR``."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{remote.relative_path}" if mirror else remote.url


# ------------------------------------------------------------------------------ one file
def _fetch_one(
    remote: RemoteFile, root: Path, store: _ChecksumStore, *, force: bool, progress: bool
) -> Path:
    import pooch

    final = root / remote.relative_path
    record = store.get(remote.relative_path)
    trusted = remote.sha256 is None and record is not None
    expected_sha = remote.sha256 or (record or {}).get("sha256")
    expected_size = remote.size if remote.size is not None else (record or {}).get("size")

    _ensure_writable(final.parent, root)
    part = final.with_name(final.name + ".part")
    if force:
        discard(final)
        discard(part)
    elif final.is_file() and expected_size is not None and final.stat().st_size != expected_size:
        # Cheaper than letting pooch hash a file that cannot match; a complete-looking file
        # is never resumed, so it goes.
        log.warning("%s: size does not match, downloading it again", final)
        discard(final)
    downloader = ResumingDownloader(
        part,
        expected_size=expected_size,
        root=root,
        label=remote.relative_path,
        progress=progress,
        present=final.is_file(),
    )
    processor = (
        ExtractProcessor(remote.extract, root, remote.relative_path) if remote.extract else None
    )
    url = source_url(remote)
    try:
        pooch.retrieve(
            url,
            known_hash=expected_sha,
            fname=final.name,
            path=final.parent,
            downloader=downloader,
            processor=processor,
        )
    except ValueError:
        # pooch's hash mismatch; it has already deleted its temporary file (which held our
        # .part), so a next run starts from zero.
        discard(part)
        hint = (
            f"; if the upstream file changed on purpose, delete its entry from {store.path}"
            if trusted
            else ""
        )
        raise DownloadError(
            f"checksum mismatch for {remote.relative_path}: expected sha256 {expected_sha}, "
            f"got {downloader.digest} (the download was deleted{hint})"
        ) from None
    except OSError as exc:
        raise KelmError(
            f"cannot write {final}: {reason(exc)} (pass --data-dir DIR to download elsewhere)"
        ) from None

    if remote.sha256 is None and record is None:
        # Just downloaded, or present (e.g. copied by hand) but never recorded: trust it now.
        digest = downloader.digest or sha256_file(final)
        store.record(remote, final, digest, final.stat().st_size)
    if downloader.digest is None:
        log.info("%s: present, checksum ok", final)
    else:
        log.info(
            "%s: downloaded, %s bytes, sha256 %s", final, f"{downloader.size:,}", downloader.digest
        )
    return final


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """pooch logs each transfer at INFO with advice for its own API ("use this value as
    known_hash"); kelm logs its own lines, so pooch only speaks up for warnings here."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


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


def _ensure_writable(directory: Path, root: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory, prefix=".kelm-write-test-"):
            pass
    except OSError as exc:
        raise KelmError(
            f"cannot write to the data directory {root} ({reason(exc)}); "
            f"pass --data-dir DIR (or set KELM_DATA) to download elsewhere"
        ) from None
