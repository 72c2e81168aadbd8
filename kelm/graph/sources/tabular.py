"""Tab-separated triple files: ``tsv`` (head, relation, tail[, weight]) and ``cn100k``
(relation, head, tail[, label]) as in ConceptNet-100K."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kelm.graph.sources._blocks import Block, decode_utf8, read_blocks
from kelm.graph.sources.base import BuildOptions, LineIssues, SourceOutput


def read_tsv(path: Path, options: BuildOptions, issues: LineIssues) -> SourceOutput:
    """``head<TAB>relation<TAB>tail[<TAB>weight]``; a missing weight is 1.0."""
    columns = ["head", "relation", "tail", "weight"]
    return _read(path, columns, options, issues, fourth="weight")


def read_cn100k(path: Path, options: BuildOptions, issues: LineIssues) -> SourceOutput:
    """``relation<TAB>head<TAB>tail[<TAB>label]``; rows labelled 0 (corrupted triples of the
    CN-100K dev files) are left out, rows labelled 1 or unlabelled are kept."""
    columns = ["relation", "head", "tail", "label"]
    return _read(path, columns, options, issues, fourth="label")


def _read(
    path: Path, columns: list[str], options: BuildOptions, issues: LineIssues, fourth: str
) -> SourceOutput:
    def transform(block: Block, local: LineIssues) -> tuple[pa.Table, int]:
        return _to_triples(block, local, options, fourth), block.n_lines

    parts = read_blocks(path, columns, transform, issues, min_columns=3, progress=options.progress)
    out = SourceOutput(triples=[t for t, _ in parts if t.num_rows])
    out.lines_read = sum(n for _, n in parts)
    return out


def _to_triples(block: Block, issues: LineIssues, options: BuildOptions, fourth: str) -> pa.Table:
    table = block.table
    n = table.num_rows
    keep = np.ones(n, dtype=bool)
    cols = {}
    for name in ("head", "relation", "tail"):
        text, valid = decode_utf8(block, table[name].combine_chunks(), issues, name)
        if valid is not None:
            keep &= valid
        text = pc.utf8_trim_whitespace(text)
        if options.lowercase:
            text = pc.utf8_lower(text)
        cols[name] = text
    for name in ("head", "relation", "tail"):
        empty = (pc.equal(pc.utf8_length(cols[name].fill_null("")), 0)).to_numpy(
            zero_copy_only=False
        ) & keep
        for line in block.line_of(np.flatnonzero(empty)):
            issues.add(block.path, int(line), f"empty {name}")
        keep &= ~empty

    raw4 = table[fourth].combine_chunks()
    weight = np.ones(n, dtype=np.float32)
    present = pc.is_valid(raw4).to_numpy(zero_copy_only=False)
    if present.any():
        # Decoded like the other columns: a non-UTF-8 weight or label is a malformed line
        # (reported with its line number), never an Arrow error escaping the build.
        text4, valid4 = decode_utf8(block, raw4, issues, fourth)
        if valid4 is not None:
            present &= valid4
            keep &= valid4
        text4 = pc.utf8_trim_whitespace(text4.fill_null("1"))
        values = _parse_floats(text4)
        bad = np.isnan(values) & present & keep
        for line in block.line_of(np.flatnonzero(bad)):
            issues.add(block.path, int(line), f"non-numeric {fourth}")
        keep &= ~bad
        if fourth == "label":
            keep &= ~(present & (values == 0))
        else:
            weight = np.where(present & ~np.isnan(values), values, 1.0).astype(np.float32)
    mask = pa.array(keep)
    return pa.table(
        {
            "head": cols["head"].filter(mask),
            "relation": cols["relation"].filter(mask),
            "tail": cols["tail"].filter(mask),
            "weight": pa.array(weight).filter(mask),
        }
    )


def _parse_floats(array: pa.Array) -> np.ndarray:
    """Floats from strings; NaN where a value is not a finite number."""
    try:  # fast path: Arrow parses the whole column at once
        values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
        return np.where(np.isfinite(values), values, np.nan)
    except pa.ArrowInvalid:
        pass
    texts = array.to_pylist()
    out = np.empty(len(texts), dtype=np.float64)
    for i, text in enumerate(texts):
        try:
            value = float(text)
            out[i] = value if np.isfinite(value) else np.nan
        except (TypeError, ValueError):
            out[i] = np.nan
    return out
