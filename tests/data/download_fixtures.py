"""Bytes and archives the loopback server of the download tests serves."""

from __future__ import annotations

import io
import random
import socket
import tarfile
from pathlib import Path

PAYLOAD = random.Random(0).randbytes(300_000)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def tarball(members: dict[str, bytes], mode: str = "w:bz2") -> bytes:
    """A tar archive (bzip2 by default, as WordNet's and Balanced COPA's) of ``members``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def wordnet_tarball() -> bytes:
    """The tiny WordNet database of tests/fixtures/wordnet packed as Princeton packs 3.0
    (``WordNet-3.0/dict/...``), with what must not be unpacked beside it: a subfolder, a
    macOS ``._`` file and a member whose name climbs out of the archive."""
    members = {
        f"WordNet-3.0/dict/{path.name}": path.read_bytes()
        for path in sorted((FIXTURES / "wordnet").iterdir())
    }
    members["WordNet-3.0/dict/dbfiles/noun.animal"] = b"lexicographer file\n"
    members["WordNet-3.0/dict/._data.noun"] = b"AppleDouble"
    members["WordNet-3.0/dict/../../escaped.txt"] = b"outside"
    members["WordNet-3.0/README"] = b"WordNet 3.0\n"
    return tarball(members)


def closed_port() -> int:
    """A loopback port nothing listens on (a download from it fails as offline does)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
