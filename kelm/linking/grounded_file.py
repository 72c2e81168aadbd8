"""The grounded JSONL file of a QA file (:func:`kelm.linking.ground.ground_file`): its manifest,
which is the cache key, the resumable writing in flushed batches, publishing the finished file,
and reusing a complete one (also on a machine without spaCy)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kelm._io import replace_file, sha256_file, sha256_once, verify_file, write_json
from kelm.errors import InputError, KelmError

if TYPE_CHECKING:
    from kelm.data.qa import QAItem
    from kelm.linking.ground import Grounding

log = logging.getLogger(__name__)

GROUNDED_FORMAT_VERSION = 1
GROUNDED_KIND = "kelm-grounded"


@dataclass
class GroundReport:
    """What :func:`ground_file` did."""

    out: Path
    statements: int
    resumed_from: int
    reused: bool
    empty_question: int
    empty_answer: int
    seconds: float


def partial_paths(out: Path) -> tuple[Path, Path]:
    return out.with_name(out.name + ".partial"), out.with_name(out.name + ".partial.json")


def manifest_path(out: str | Path) -> Path:
    """The sidecar manifest of a grounded JSONL file."""
    out = Path(out)
    return out.with_name(out.name + ".manifest.json")


def _same_key(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Manifests describe the same grounding: graph content, QA content, linker settings
    (paths may differ: moving a file does not change its grounding)."""
    fields = ("kind", "format_version", "graph_checksum", "qa_sha256", "linker", "statements")
    return all(a.get(f) == b.get(f) for f in fields)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def is_complete(out: Path, manifest: dict[str, Any]) -> bool:
    """An existing output with a matching complete manifest and the right line count."""
    existing = _read_json(manifest_path(out))
    if not out.is_file() or existing is None or existing.get("complete") is not True:
        return False
    if not _same_key(existing, manifest):
        return False
    if "sha256" in existing:  # recorded since it was added: the content itself, once
        return sha256_once(out) == existing["sha256"]
    return _count_lines(out) == manifest["statements"]


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def check_complete(path: Path) -> dict[str, Any] | None:
    """The rule for reading a grounded file (``kelm retrieve``): never an unfinished one.

    A ``.partial`` file is a grounding that was interrupted. A file with a sidecar manifest
    (:func:`manifest_path`) must be marked complete and hold what the manifest records: its
    sha256 (or, in manifests written before it was recorded, its number of statements). A file
    without a sidecar (written by another tool) is read as it is.

    Returns:
        The sidecar manifest, or ``None`` when there is none.

    Raises:
        InputError: an unfinished, cut short or modified grounded file, or a sidecar that is
            not a JSON object.
    """
    path = Path(path)
    if path.name.endswith(".partial"):
        raise InputError(
            f"{path}: an unfinished grounding (kelm ground was interrupted); run `kelm ground` "
            f"again to finish {path.name[: -len('.partial')]}"
        )
    side = manifest_path(path)
    if not side.is_file():
        return None
    meta = _read_json(side)
    if meta is None:
        raise InputError(f"{side}: not valid JSON (expected the grounded file's manifest)")
    if "complete" in meta and meta["complete"] is not True:
        raise InputError(f"{path}: its manifest {side.name} marks it incomplete")
    if "statements" in meta and (found := _count_lines(path)) != meta["statements"]:
        raise InputError(
            f"{path}: {found} statements where its manifest {side.name} records "
            f"{meta['statements']} (cut short or modified); run `kelm ground` again"
        )
    if "sha256" in meta:
        verify_file(
            path,
            meta["sha256"],
            what="grounded file",
            error=InputError,
            hint="run `kelm ground` again",
        )
    return meta


def resume_point(
    partial: Path, partial_manifest: Path, manifest: dict[str, Any], rows: list[tuple[QAItem, Any]]
) -> int:
    """Statements already in a matching ``.partial`` file (cut back to its last good line);
    0 after starting a fresh one."""
    existing = _read_json(partial_manifest)
    if partial.is_file() and existing is not None and _same_key(existing, manifest):
        done, good_bytes = 0, 0
        with open(partial, "rb") as fh:
            for raw in fh:
                if (
                    not raw.endswith(b"\n")
                    or done >= len(rows)
                    or not _line_matches(raw, rows[done])
                ):
                    break
                done += 1
                good_bytes += len(raw)
        with open(partial, "r+b") as fh:
            fh.truncate(good_bytes)
        log.info("resuming %s after %d statements", partial, done)
        return done
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    write_json(partial_manifest, {**manifest, "complete": False})
    partial.touch()
    return 0


def _line_matches(raw: bytes, row: tuple[QAItem, Any]) -> bool:
    try:
        obj = json.loads(raw)
    except ValueError:
        return False
    item, choice = row
    return isinstance(obj, dict) and obj.get("id") == item.id and obj.get("choice") == choice.label


class GroundedWriter:
    """Appends grounded lines to the partial file, flushed and synced after every batch."""

    def __init__(self, partial: Path, names: list[str]) -> None:
        self.fh = open(partial, "ab")  # noqa: SIM115 -- closed by close()
        self.names = names

    def write(self, rows: Sequence[tuple[QAItem, Any]], groundings: Sequence[Grounding]) -> None:
        lines = []
        for (item, choice), g in zip(rows, groundings, strict=True):
            lines.append(
                json.dumps(
                    {
                        "id": item.id,
                        "choice": choice.label,
                        "question": item.question,
                        "answer": choice.text,
                        "question_concepts": g.question_concepts,
                        "question_names": [self.names[n] for n in g.question_concepts],
                        "answer_concepts": g.answer_concepts,
                        "answer_names": [self.names[n] for n in g.answer_concepts],
                    },
                    ensure_ascii=False,
                )
            )
        self.fh.write(("\n".join(lines) + "\n").encode("utf-8"))
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def publish(out: Path, partial: Path, partial_manifest: Path, manifest: dict[str, Any]) -> None:
    """Rename the finished partial into place, then write the manifest that marks it
    complete (a crash in between leaves an output without manifest: never reused)."""
    with contextlib.suppress(FileNotFoundError):
        manifest_path(out).unlink()
    replace_file(partial, out)
    write_json(manifest_path(out), {**manifest, "sha256": sha256_file(out)})
    with contextlib.suppress(FileNotFoundError):
        partial_manifest.unlink()


def count_empty(out: Path) -> tuple[int, int]:
    """Statements without question concepts, and without answer concepts."""
    empty_q = empty_a = 0
    with open(out, encoding="utf-8") as fh:
        for line in fh:
            obj = json.loads(line)
            empty_q += not obj["question_concepts"]
            empty_a += not obj["answer_concepts"]
    return empty_q, empty_a


def reuse_without_spacy(
    out: Path,
    wanted: dict[str, Any],
    linker: dict[str, Any],
    start: float,
    questions: int,
) -> GroundReport:
    """Without spaCy nothing can be grounded, and the lemma source that keys a grounded file
    (spaCy's version, tokenizer rules, lookup data) cannot be identified: a complete output
    whose manifest matches every other part of the key (``wanted``: graph, questions; and the
    ``linker`` settings but its ``lemma_source``) is reused as it is, e.g. one grounded where
    spaCy is and carried to a machine without it.

    Raises:
        KelmError: no such output.
    """
    existing = _read_json(manifest_path(out)) or {}
    wanted = {**wanted, "kind": GROUNDED_KIND, "format_version": GROUNDED_FORMAT_VERSION}
    linker = json.loads(json.dumps(linker))  # tuples as the manifest holds them: lists
    saved_linker = existing.get("linker") or {}
    usable = (
        out.is_file()
        and existing.get("complete") is True
        and all(existing.get(k) == v for k, v in wanted.items())
        and all(saved_linker.get(k) == v for k, v in linker.items())
    )
    if usable:
        if "sha256" in existing:
            usable = sha256_once(out) == existing["sha256"]
        else:
            usable = _count_lines(out) == existing.get("statements")
    if not usable:
        raise KelmError(
            f"grounding {questions} questions needs spaCy, which is not installed, and no "
            f"complete grounded file of them is cached ({out}): install spaCy, or ground where "
            "it is and carry the cache"
        )
    log.info("spaCy is not installed: reusing %s without checking its lemma source", out)
    n = int(existing["statements"])
    return GroundReport(out, n, n, True, *count_empty(out), time.perf_counter() - start)


__all__ = [
    "GROUNDED_FORMAT_VERSION",
    "GROUNDED_KIND",
    "GroundReport",
    "GroundedWriter",
    "check_complete",
    "count_empty",
    "is_complete",
    "manifest_path",
    "partial_paths",
    "publish",
    "resume_point",
    "reuse_without_spacy",
]
