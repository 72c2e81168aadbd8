"""The file manifest of a model folder kelm saves (a run's ``model/``).

``save_pretrained`` writes no checksums, so a flipped byte inside ``model.safetensors`` (a
weight changed, not the file's structure) loads without a word. Every model folder a run saves
therefore also holds ``manifest.json`` (kind ``kelm-model``), the sha256 of every other file of
the folder, and every load of a run's model verifies them first (:func:`verify_model_files`,
each file hashed once per process). ``from_pretrained`` ignores the extra file, so the folder
stays a plain Hugging Face model folder.

A folder saved before kelm wrote the manifest has none: it still loads, with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kelm._io import read_manifest, sha256_file, verify_file, write_json
from kelm.errors import KelmError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
KIND = "kelm-model"
FORMAT_VERSION = 1
_WHAT = "saved model"


def model_files(folder: Path) -> list[Path]:
    """The files of a model folder the manifest covers (all but the manifest), sorted."""
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST
    )


def record_model_files(folder: str | Path) -> None:
    """Write ``folder/manifest.json``: the sha256 of every file of a just saved model folder
    (call it on the staged folder, before it is published)."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): sha256_file(p) for p in model_files(folder)}
    write_json(folder / MANIFEST, {"kind": KIND, "format_version": FORMAT_VERSION, "files": files})


def has_model_manifest(folder: str | Path) -> bool:
    """Whether ``folder`` holds a model manifest of kelm (any ``manifest.json`` at all: one
    of another kind is refused by :func:`verify_model_files`)."""
    return (Path(folder) / MANIFEST).exists()


def verify_model_files(folder: str | Path, *, required: bool = True) -> bool:
    """Check every file a model folder's manifest lists against its recorded sha256.

    Args:
        folder: the model folder (a run's ``model/``).
        required: whether the folder is a run's model, which kelm saved: without a manifest
            (saved before kelm recorded one) it is loaded unverified, with a warning. With
            ``False`` (any model folder, e.g. one of the Hub) a missing manifest is silent.

    Returns:
        Whether the folder had a manifest (and so was verified).

    Raises:
        KelmError: a damaged manifest, or a listed file that is missing or changed (the line
            names the file).
    """
    folder = Path(folder)
    if not has_model_manifest(folder):
        if required:
            log.warning(
                "%s: no %s (saved by an older kelm): its files are loaded unverified",
                folder,
                MANIFEST,
            )
        return False
    manifest = read_manifest(folder, kind=KIND, version=FORMAT_VERSION, what=_WHAT, error=KelmError)
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise KelmError(f"{folder / MANIFEST}: no 'files' record (corrupt manifest)")
    for name, expected in files.items():
        file = folder / str(name)
        if Path(str(name)).is_absolute() or ".." in Path(str(name)).parts:
            raise KelmError(f"{folder / MANIFEST}: file name {name!r} outside the folder")
        verify_file(file, expected, what=_WHAT, error=KelmError, hint="train the run again")
    return True


__all__ = [
    "FORMAT_VERSION",
    "KIND",
    "MANIFEST",
    "has_model_manifest",
    "model_files",
    "record_model_files",
    "verify_model_files",
]
