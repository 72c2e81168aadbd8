"""Parallel, streaming reading of large delimited files with exact line numbers.

The file (plain or gzip) is cut into blocks of whole lines. Each block is parsed by Arrow's
CSV engine on a worker thread (Arrow releases the GIL, so blocks parse in parallel) and then
handed to a per-format ``transform`` on the same thread. Because every block knows its first
line number and which of its lines were rejected, any row can be traced back to its line.
"""

from __future__ import annotations

import collections
import contextlib
import concurrent.futures
import gzip
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from kelm.errors import InputError
from kelm.graph.sources.base import LineIssues

BLOCK_BYTES = 32 << 20


def _quiet_unraisable(hook):
    """Arrow calls our invalid-row handler only if the row's text is UTF-8; otherwise it prints
    an "Exception ignored" warning and fails the block, which we then re-parse exactly
    (:func:`_parse_block_slowly`). Silence just that warning."""

    def quiet(unraisable) -> None:
        if getattr(unraisable.object, "__qualname__", "").startswith("parse_block.<locals>"):
            return
        hook(unraisable)

    return quiet


sys.unraisablehook = _quiet_unraisable(sys.unraisablehook)


@dataclass
class Block:
    """One parsed block: binary columns, plus what is needed to map rows back to lines."""

    path: str
    first_line: int  # 1-based line number of the block's first line
    n_lines: int
    table: pa.Table
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    blank: list[int] = field(default_factory=list)

    def line_of(self, rows: np.ndarray) -> np.ndarray:
        """1-based file line numbers of the given row positions of ``table``."""
        skipped = sorted([ln for ln, _ in self.rejected] + self.blank)
        if not skipped:
            return self.first_line + np.asarray(rows)
        lines = np.arange(self.first_line, self.first_line + self.n_lines)
        kept = lines[~np.isin(lines, np.asarray(skipped))]
        return kept[np.asarray(rows)]


def open_binary(path: Path):
    """Open plain or gzip input (by magic bytes, not by name)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb")


def iter_raw_blocks(path: Path, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[int, bytes]]:
    """Yield ``(first_line, bytes)`` blocks that end on a line boundary."""
    line = 1
    rest = b""
    try:
        with open_binary(path) as fh:
            while True:
                chunk = fh.read(block_bytes)
                if not chunk:
                    break
                chunk = rest + chunk
                cut = chunk.rfind(b"\n")
                if cut < 0:
                    rest = chunk
                    continue
                block, rest = chunk[: cut + 1], chunk[cut + 1 :]
                yield line, block
                line += block.count(b"\n")
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise InputError(f"{path}: unreadable or truncated compressed input ({exc})") from None
    if rest:
        yield line, rest + b"\n"


def parse_block(path: Path, first_line: int, raw: bytes, columns: list[str],
                min_columns: int | None = None) -> Block:
    """Parse one block into binary columns; rows with another column count are rejected.

    With ``min_columns`` set, rows with between ``min_columns`` and ``len(columns)`` fields are
    padded with nulls (optional trailing columns, e.g. a weight).
    """
    n_lines = raw.count(b"\n")
    rejected: list[tuple[int, str]] = []
    blank: list[int] = []
    short: list[tuple[int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        number = first_line + (row.number or 1) - 1
        if not row.text.strip(" \r"):
            blank.append(number)
        elif min_columns is not None and min_columns <= row.actual_columns < len(columns):
            short.append((number, row.text))
        else:
            rejected.append((number, f"wrong column count (expected {len(columns)}, got "
                                     f"{row.actual_columns})"))
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(raw),
            read_options=pacsv.ReadOptions(column_names=columns, use_threads=False,
                                           block_size=max(1 << 20, len(raw) + 1)),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False,
                                             double_quote=False, ignore_empty_lines=False,
                                             invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.binary() for c in columns},
                                                 strings_can_be_null=False,
                                                 quoted_strings_can_be_null=False),
        )
    except Exception:  # noqa: BLE001 - Arrow cannot report some rows (e.g. non-UTF-8 text)
        return _parse_block_slowly(path, first_line, raw, columns, min_columns)
    block = Block(str(path), first_line, n_lines, table, rejected, blank)
    if short:
        block = _merge_short_rows(block, short, columns)
    return block


def _parse_block_slowly(path: Path, first_line: int, raw: bytes, columns: list[str],
                        min_columns: int | None) -> Block:
    """Exact pure-Python parse of a block Arrow rejected (rare: a malformed non-UTF-8 row)."""
    width = len(columns)
    lowest = min_columns if min_columns is not None else width
    rows: list[list[bytes | None]] = []
    rejected: list[tuple[int, str]] = []
    blank: list[int] = []
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for offset, line in enumerate(lines):
        number = first_line + offset
        line = line.rstrip(b"\r")
        if not line.strip(b" "):
            blank.append(number)
            continue
        fields = line.split(b"\t")
        if lowest <= len(fields) <= width:
            rows.append(fields + [None] * (width - len(fields)))
        else:
            rejected.append((number, f"wrong column count (expected {width}, got {len(fields)})"))
    table = pa.table({c: pa.array([r[i] for r in rows], pa.binary())
                      for i, c in enumerate(columns)})
    return Block(str(path), first_line, len(lines), table, rejected, blank)


def _merge_short_rows(block: Block, short: list[tuple[int, str]], columns: list[str]) -> Block:
    """Re-insert rows that lacked optional trailing columns, in line order."""
    rows = [line.rstrip("\r").split("\t") for _, line in short]
    extra = pa.table({c: pa.array([r[i].encode() if i < len(r) else None for r in rows],
                                  pa.binary()) for i, c in enumerate(columns)})
    # Simplest exact approach: rebuild the table sorted by line number.
    lines_main = block.line_of(np.arange(block.table.num_rows))
    lines_extra = np.array([ln for ln, _ in short])
    table = pa.concat_tables([block.table, extra])
    order = np.argsort(np.concatenate([lines_main, lines_extra]), kind="stable")
    return Block(block.path, block.first_line, block.n_lines, table.take(pa.array(order)),
                 block.rejected, block.blank)


def read_blocks(path: Path, columns: list[str], transform: Callable[[Block, LineIssues], object],
                issues: LineIssues, *, min_columns: int | None = None, threads: int | None = None,
                block_bytes: int = BLOCK_BYTES, progress: bool = False) -> list:
    """Parse ``path`` block by block on a thread pool and return ``transform``'s results in order.

    ``transform(block, issues)`` runs on the worker thread with a per-block issue collector;
    rejected lines and the transform's own findings are merged into ``issues`` in file order. At most ``2 * threads`` blocks are in flight,
    so memory stays bounded by a few blocks however large the file.
    """
    threads = threads or min(4, os.cpu_count() or 1)
    results: list = []
    bar = _progress(path, progress)

    def work(first_line: int, raw: bytes):
        # Issues are collected per block and merged in file order on the main thread, so the
        # report (and --strict's first error) is the same whatever the thread timing.
        local = LineIssues(strict=False, keep=10_000)
        block = parse_block(path, first_line, raw, columns, min_columns)
        for line, reason in block.rejected:
            local.add(path, line, reason)
        result = transform(block, local)
        local.first.sort(key=lambda issue: issue.line or 0)
        return result, local, len(raw)

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool, _closing(bar):
        pending: collections.deque = collections.deque()

        def drain_one() -> None:
            result, local, size = pending.popleft().result()
            issues.merge(local)
            results.append(result)
            if bar is not None:
                bar.update(size)

        for first_line, raw in iter_raw_blocks(path, block_bytes):
            pending.append(pool.submit(work, first_line, raw))
            while len(pending) >= 2 * threads:
                drain_one()
        while pending:
            drain_one()
    return results


@contextlib.contextmanager
def _closing(bar):
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


def _progress(path: Path, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    size = path.stat().st_size
    compressed = False
    with open(path, "rb") as fh:
        compressed = fh.read(2) == b"\x1f\x8b"
    return tqdm(total=None if compressed else size, unit="B", unit_scale=True,
                desc=f"reading {path.name}", leave=False,
                disable=None)  # None: only on a terminal


def decode_utf8(block: Block, column: pa.Array, issues: LineIssues, what: str
                ) -> tuple[pa.Array, np.ndarray | None]:
    """Cast a binary column to UTF-8 strings; rows with invalid UTF-8 are reported and masked.

    Returns the string array and a boolean keep-mask (``None`` when every row is valid).
    """
    try:
        return column.cast(pa.string()), None
    except pa.ArrowInvalid:
        pass
    values = column.to_pylist()
    keep = np.ones(len(values), dtype=bool)
    out = []
    for i, raw in enumerate(values):
        try:
            out.append(raw.decode("utf-8") if raw is not None else None)
        except UnicodeDecodeError:
            keep[i] = False
            out.append(None)
    bad = np.flatnonzero(~keep)
    for line in block.line_of(bad):
        issues.add(block.path, int(line), f"invalid UTF-8 in {what}")
    return pa.array(out, pa.string()), keep
