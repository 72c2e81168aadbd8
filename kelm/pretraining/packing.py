"""Packing the tokenised units of one document into instances of at most ``max_length``
wordpieces (see :mod:`kelm.pretraining.instances`): consecutive units per instance,
``[CLS] units [SEP]`` or ``[CLS] A [SEP] B [SEP]``, a unit longer than the room truncated and
counted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

ARRAYS = ("input_ids", "lengths", "entity_ids", "word_starts", "seps", "docs")
"""The arrays of a shard of instances."""
COUNTS = (
    "documents",
    "units",
    "empty_units",
    "instances",
    "tokens",
    "truncated_units",
    "truncated_tokens",
    "unpairable",
    "mentions",
    "mentions_overlapping",
    "mentions_unaligned",
    "entities",
    "entities_truncated",
    "units_without_entities",
)
"""The counts of a preparation (per shard, summed in the manifest)."""


@dataclass
class Unit:
    ids: np.ndarray  # [n] int32
    ents: np.ndarray  # [n] int32
    starts: np.ndarray  # [n] uint8


class Packer:
    """Packs the units of one document into instances (see the module docstring)."""

    def __init__(self, max_length: int, specials: list[int], segments: str) -> None:
        self.specials = specials
        self.segments = segments
        n_special = len(specials) + (1 if segments == "pair" and specials else 0)
        self.budget = max_length - n_special
        self.rows: dict[str, list[Any]] = {name: [] for name in ARRAYS}
        self.counts = dict.fromkeys(COUNTS, 0)

    def add_document(self, doc: int, units: list[Unit]) -> None:
        buf: list[Unit] = []
        used = 0
        for unit in units:
            n = len(unit.ids)
            if n == 0:
                continue
            if n > self.budget:
                self._flush(doc, buf)
                buf, used = [], 0
                self.counts["truncated_units"] += 1
                self.counts["truncated_tokens"] += n - self.budget
                self.counts["entities_truncated"] += int((unit.ents[self.budget :] >= 0).sum())
                cut = self.budget
                unit = Unit(unit.ids[:cut], unit.ents[:cut], unit.starts[:cut])
                self._flush(doc, [unit])
                continue
            if used + n > self.budget:
                self._flush(doc, buf)
                buf, used = [], 0
            buf.append(unit)
            used += n
        self._flush(doc, buf)

    def _flush(self, doc: int, units: list[Unit]) -> None:
        if not units:
            return
        if self.segments == "pair":
            if len(units) >= 2:
                k = len(units) // 2
                a, b = units[:k], units[k:]
            else:
                only = units[0]
                if len(only.ids) < 2:
                    self.counts["unpairable"] += 1
                    return
                starts = np.flatnonzero(only.starts[1:]) + 1
                mid = len(only.ids) // 2
                cut = int(starts[np.argmin(np.abs(starts - mid))]) if len(starts) else mid
                a = [Unit(only.ids[:cut], only.ents[:cut], only.starts[:cut])]
                b = [Unit(only.ids[cut:], only.ents[cut:], only.starts[cut:])]
            pieces = [a, b]
        else:
            pieces = [units]
        ids: list[np.ndarray] = []
        ents: list[np.ndarray] = []
        starts: list[np.ndarray] = []
        one = np.ones(1, np.uint8)
        none = np.full(1, -1, np.int32)
        sep = -1
        if self.specials:
            ids.append(np.array(self.specials[:1], np.int32))
            ents.append(none)
            starts.append(one)
        for number, piece in enumerate(pieces):
            for u in piece:
                ids.append(u.ids)
                ents.append(u.ents)
                starts.append(u.starts)
            if self.specials:
                if number == 0 and len(pieces) == 2:
                    sep = sum(len(x) for x in ids)
                ids.append(np.array(self.specials[1:], np.int32))
                ents.append(none)
                starts.append(one)
            elif number == 0 and len(pieces) == 2:
                sep = sum(len(x) for x in ids) - 1
        row_ids = np.concatenate(ids).astype(np.int32)
        self.rows["input_ids"].append(row_ids)
        self.rows["entity_ids"].append(np.concatenate(ents).astype(np.int32))
        self.rows["word_starts"].append(np.concatenate(starts).astype(np.uint8))
        self.rows["lengths"].append(len(row_ids))
        self.rows["seps"].append(sep)
        self.rows["docs"].append(doc)
        self.counts["instances"] += 1
        self.counts["tokens"] += len(row_ids)
        self.counts["entities"] += int(sum(int((u.ents >= 0).sum()) for p in pieces for u in p))

    def arrays(self) -> dict[str, np.ndarray]:
        r = self.rows

        def cat(name: str, dtype: Any) -> np.ndarray:
            return np.concatenate(r[name]).astype(dtype) if r[name] else np.zeros(0, dtype)

        return {
            "input_ids": cat("input_ids", np.int32),
            "entity_ids": cat("entity_ids", np.int32),
            "word_starts": cat("word_starts", np.uint8),
            "lengths": np.asarray(r["lengths"], dtype=np.int32),
            "seps": np.asarray(r["seps"], dtype=np.int32),
            "docs": np.asarray(r["docs"], dtype=np.int64),
        }


__all__ = ["ARRAYS", "COUNTS", "Packer", "Unit"]
