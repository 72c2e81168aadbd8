"""Where kelm finds data: ``--data-dir``, else ``$KELM_DATA``, else ``../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

from kelm.errors import KelmError

_SHARED_DEFAULT = Path("..") / "shared" / "data"


def data_dir(explicit: str | os.PathLike[str] | None = None, *, must_exist: bool = True) -> Path:
    """Resolve the data directory.

    Order: ``explicit`` (the ``--data-dir`` option), ``$KELM_DATA``, then ``../shared/data``
    relative to the working directory when it exists, else ``./data``.
    """
    if explicit:
        path = Path(explicit)
    elif os.environ.get("KELM_DATA"):
        path = Path(os.environ["KELM_DATA"])
    elif _SHARED_DEFAULT.is_dir():
        path = _SHARED_DEFAULT
    else:
        path = Path("data")
    path = path.expanduser()
    if must_exist and not path.is_dir():
        raise KelmError(f"data directory {path} does not exist (set KELM_DATA or pass --data-dir)")
    return path


def data_file(relative: str, explicit: str | os.PathLike[str] | None = None) -> Path:
    """A file inside the data directory, with a clear error when it is absent."""
    path = data_dir(explicit) / relative
    if not path.exists():
        raise KelmError(f"{path} not found (is KELM_DATA pointing at the kelm data folder?)")
    return path


def cache_dir() -> Path:
    """Download cache: ``$KELM_CACHE``, else ``~/.cache/kelm``."""
    root = os.environ.get("KELM_CACHE") or Path.home() / ".cache" / "kelm"
    return Path(root)
