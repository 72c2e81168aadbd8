"""User-facing errors.

A :class:`KelmError` carries a one-line message that names the problem (file, line, field).
The CLI prints it and exits with status 2; anything else escaping is a bug.
"""

from __future__ import annotations


class KelmError(Exception):
    """A problem with the user's input, data or environment, described in one line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class InputError(KelmError):
    """An input file is missing, empty, truncated or not in the expected format."""


class IndexFormatError(KelmError):
    """A graph index directory is missing, incomplete, corrupt or of an unknown version."""


class DownloadError(KelmError):
    """A download failed (offline, checksum mismatch, server error)."""
