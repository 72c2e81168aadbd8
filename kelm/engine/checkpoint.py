"""Epoch checkpoints: everything a run needs to continue exactly where it stopped.

Layout of ``<run_dir>/checkpoints/epoch-NNNN/`` (format version 1)::

    model.safetensors        the model's state dict
    optimizer.safetensors    the optimizer's per-parameter tensors (``state.<param>.<name>``)
    optimizer.json           param groups (learning rates, betas...) and non-tensor state
    scheduler.json           the learning-rate scheduler's state dict
    rng-<rank>.safetensors   torch (and CUDA) generator states of process ``rank``
    rng-<rank>.json          Python ``random`` and numpy states of process ``rank``
    trainer_state.json       epochs done, optimizer steps done, the loss/metric history
    manifest.json            kind, format version and every file's size and sha256 (last)

Tensors are stored with safetensors, everything else as JSON: nothing is unpickled. A
checkpoint is written into a hidden staging directory and renamed into place whole, so a
crash leaves either no checkpoint or a complete one; :func:`load_checkpoint` verifies every
file against the manifest, and a truncated or modified checkpoint is a one-line
:class:`CheckpointError`.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kelm._io import publish_dir, sha256_file, write_json
from kelm.errors import KelmError

KIND = "kelm-train-checkpoint"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_TENSOR = "__tensor__"
_EPOCH_DIR = re.compile(r"^epoch-(\d{4,})$")


class CheckpointError(KelmError):
    """A checkpoint is missing, incomplete, corrupt or of an unknown version."""


@dataclass
class Checkpoint:
    """A loaded checkpoint (tensors on the CPU)."""

    path: Path
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    trainer_state: dict[str, Any]
    rng: dict[str, Any] | None


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def epoch_dir(run_dir: str | Path, epoch: int) -> Path:
    """``<run_dir>/checkpoints/epoch-NNNN`` (``epoch`` counts completed epochs, from 1)."""
    return checkpoints_dir(run_dir) / f"epoch-{epoch:04d}"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Published epoch checkpoints, oldest first."""
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _EPOCH_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest epoch checkpoint, or ``None``."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


# ---------------------------------------------------------------------------------- pieces
def _plain_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors; storage shared between entries is copied (safetensors refuses
    shared storage)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in state.items():
        t = value.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr() if t.numel() else -1
        if ptr in seen:
            t = t.clone()
        elif ptr != -1:
            seen.add(ptr)
        out[key] = t
    return out


def optimizer_to_files(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into safetensors tensors and a JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    state: dict[str, dict[str, Any]] = {}
    for pid, entry in state_dict["state"].items():
        meta: dict[str, Any] = {}
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{name}"] = value
                meta[name] = _TENSOR
            else:
                meta[name] = value
        state[str(pid)] = meta
    return _plain_tensors(tensors), {"state": state, "param_groups": state_dict["param_groups"]}


def optimizer_from_files(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict:
    """Inverse of :func:`optimizer_to_files`."""
    state: dict[int, dict[str, Any]] = {}
    for pid, entry in meta["state"].items():
        state[int(pid)] = {
            name: tensors[f"state.{pid}.{name}"] if value == _TENSOR else value
            for name, value in entry.items()
        }
    groups = []
    for group in meta["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """This process's generator states: torch (and CUDA) as tensors, Python and numpy as JSON."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy.keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss_next = random.getstate()
    meta = {
        "python": [version, list(internal), gauss_next],
        "numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached": cached},
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    n = meta["numpy"]
    keys = tensors["numpy.keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss_next = meta["python"]
    random.setstate((version, tuple(internal), gauss_next))


# ---------------------------------------------------------------------------------- writing
def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file(_plain_tensors(tensors), str(path), metadata={"kind": KIND})


def _dump(obj: Any, path: Path) -> None:
    try:
        text = json.dumps(obj, indent=1, ensure_ascii=False, allow_nan=True)
    except TypeError as exc:
        raise KelmError(f"{path.name}: state is not JSON-serialisable ({exc})") from None
    path.write_text(text + "\n", encoding="utf-8")


def staging_path(run_dir: str | Path, epoch: int) -> Path:
    """Where the checkpoint of ``epoch`` is assembled (the same name on every process)."""
    return checkpoints_dir(run_dir) / f".epoch-{epoch:04d}.staging"


def begin_checkpoint(run_dir: str | Path, epoch: int) -> Path:
    """Create an empty staging directory for the checkpoint of ``epoch`` (main process)."""
    staged = staging_path(run_dir, epoch)
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    return staged


def write_rng(staged: Path, rank: int) -> None:
    """Write process ``rank``'s generator states into the staging directory."""
    tensors, meta = rng_state()
    _save_tensors(tensors, staged / f"rng-{rank}.safetensors")
    _dump(meta, staged / f"rng-{rank}.json")


def finish_checkpoint(
    run_dir: str | Path,
    epoch: int,
    *,
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    scheduler_state: dict[str, Any],
    trainer_state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write the shared parts, the manifest, publish the checkpoint and prune old ones
    (main process, after every process has called :func:`write_rng`).

    Returns:
        The published ``epoch-NNNN`` directory.
    """
    staged = staging_path(run_dir, epoch)
    _save_tensors(model_state, staged / "model.safetensors")
    opt_tensors, opt_meta = optimizer_to_files(optimizer_state)
    _save_tensors(opt_tensors, staged / "optimizer.safetensors")
    _dump(opt_meta, staged / "optimizer.json")
    _dump(scheduler_state, staged / "scheduler.json")
    _dump(trainer_state, staged / "trainer_state.json")
    files = {
        p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(staged.iterdir())
    }
    write_json(staged / MANIFEST, {"kind": KIND, "format_version": FORMAT_VERSION, "files": files})
    final = epoch_dir(run_dir, epoch)
    publish_dir(staged, final)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_checkpoint(
    run_dir: str | Path,
    epoch: int,
    *,
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    scheduler_state: dict[str, Any],
    trainer_state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Single-process convenience: :func:`begin_checkpoint`, :func:`write_rng` for rank 0,
    :func:`finish_checkpoint`."""
    staged = begin_checkpoint(run_dir, epoch)
    write_rng(staged, 0)
    return finish_checkpoint(
        run_dir,
        epoch,
        model_state=model_state,
        optimizer_state=optimizer_state,
        scheduler_state=scheduler_state,
        trainer_state=trainer_state,
        keep=keep,
    )


# ---------------------------------------------------------------------------------- reading
def _bad(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} is corrupt or incomplete ({why}); delete it to resume from an "
        "earlier checkpoint, or start over with --overwrite"
    )


def verify_checkpoint(path: str | Path) -> dict[str, Any]:
    """Check a checkpoint directory against its manifest; returns the manifest.

    Raises:
        CheckpointError: missing manifest or file, wrong size or checksum, unknown version.
    """
    path = Path(path)
    file = path / MANIFEST
    if not file.is_file():
        raise _bad(path, f"{MANIFEST} missing")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad(path, f"{MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise _bad(path, f"{MANIFEST} is not a kelm checkpoint manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path}: format version {manifest.get('format_version')} is not "
            f"supported (this kelm reads version {FORMAT_VERSION})"
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise _bad(path, f"{MANIFEST} lists no files")
    for name in ("model.safetensors", "optimizer.safetensors", "trainer_state.json"):
        if name not in files:
            raise _bad(path, f"{name} not in the manifest")
    for name, info in files.items():
        f = path / name
        if not f.is_file():
            raise _bad(path, f"{name} missing")
        if f.stat().st_size != info.get("bytes"):
            raise _bad(path, f"{name} has {f.stat().st_size} bytes, expected {info.get('bytes')}")
        if sha256_file(f) != info.get("sha256"):
            raise _bad(path, f"{name} does not match its checksum")
    return manifest


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise _bad(path.parent, f"{path.name}: {exc}") from None


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad(path.parent, f"{path.name}: {exc}") from None


def load_checkpoint(path: str | Path, rank: int = 0) -> Checkpoint:
    """Load and verify a checkpoint; ``rng`` is ``None`` when it has no state for ``rank``
    (it was written by fewer processes).

    Raises:
        CheckpointError: see :func:`verify_checkpoint`.
    """
    path = Path(path)
    verify_checkpoint(path)
    model = _load_tensors(path / "model.safetensors")
    optimizer = optimizer_from_files(
        _load_tensors(path / "optimizer.safetensors"), _load_json(path / "optimizer.json")
    )
    scheduler = _load_json(path / "scheduler.json")
    trainer_state = _load_json(path / "trainer_state.json")
    rng = None
    if (path / f"rng-{rank}.safetensors").is_file():
        rng = {
            "tensors": _load_tensors(path / f"rng-{rank}.safetensors"),
            "meta": _load_json(path / f"rng-{rank}.json"),
        }
    return Checkpoint(path, model, optimizer, scheduler, trainer_state, rng)


__all__ = [
    "Checkpoint",
    "CheckpointError",
    "begin_checkpoint",
    "checkpoints_dir",
    "epoch_dir",
    "finish_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "optimizer_from_files",
    "optimizer_to_files",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "verify_checkpoint",
    "write_rng",
]
