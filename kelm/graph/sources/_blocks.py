"""Parallel, streaming reading of large delimited files with exact line numbers.

The file (plain or gzip) is cut into blocks of whole lines. Each block is parsed by Arrow's
CSV engine on a worker thread (Arrow releases the GIL, so blocks parse in parallel) and then
handed to a per-format ``transform`` on the same thread. Line numbers are tracked without
counting newlines: Arrow turns every line of a block either into a row or into a call of the
invalid-row handler, so a block's line count is ``rows + handled`` and each row's line is
known. Workers number lines from 1 within their block; the main thread, which merges blocks
in file order, shifts them to file line numbers.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import contextvars
import gzip
import hashlib
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from kelm.errors import InputError
from kelm.graph.sources.base import LineIssues

BLOCK_BYTES = 8 << 20


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


class InlineHash:
    """sha256 of a plain input file, computed from the bytes the block reader reads anyway."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.size = self.path.stat().st_size
        self.digest = hashlib.sha256()
        self.seen = 0
        self.complete = False

    @staticmethod
    def applies(path: Path) -> bool:
        path = Path(path)
        if not path.is_file():
            return False
        with open(path, "rb") as fh:
            return fh.read(2) != b"\x1f\x8b"

    def update(self, data) -> None:
        self.digest.update(data)
        self.seen += len(data)

    def record(self) -> dict | None:
        """The input record, or ``None`` if the file was not read (whole) through here."""
        if not self.complete or self.seen != self.size:
            return None
        return {"path": str(self.path), "sha256": self.digest.hexdigest(), "bytes": self.size}


_HASHERS: dict[str, InlineHash] = {}


@contextlib.contextmanager
def hashing(hashers):
    """Register inline hashers for the duration of a build (keyed by resolved path)."""
    keys = []
    for hasher in hashers:
        key = str(hasher.path.resolve())
        _HASHERS[key] = hasher
        keys.append(key)
    try:
        yield
    finally:
        for key in keys:
            _HASHERS.pop(key, None)


@dataclass
class Block:
    """One parsed block: binary columns, and the line number of each row.

    ``lines[i]`` is the line of row ``i`` counted from ``first_line`` (1 within a worker).
    Blank lines are dropped; lines with a wrong column count are in ``rejected``.
    """

    path: str
    first_line: int
    n_lines: int
    table: pa.Table
    lines: np.ndarray
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    def line_of(self, rows: np.ndarray) -> np.ndarray:
        """Line numbers of the given row positions of ``table``."""
        return self.lines[np.asarray(rows, dtype=np.int64)] + (self.first_line - 1)


#: The byte range ``(start, end)`` of a file that a reader called in this context reads instead
#: of the whole file (set by :func:`reading_range` for one partition of a distributed build).
_RANGE: contextvars.ContextVar[tuple[str, int, int] | None] = contextvars.ContextVar(
    "kelm_block_range", default=None
)


@contextlib.contextmanager
def reading_range(path: Path, start: int, end: int):
    """Make readers called in this context read only bytes ``[start, end)`` of ``path``.

    Both ends must be line starts (see :func:`line_ranges`); the readers then see a file of
    whole lines, numbered from 1 at ``start``. Only plain (not gzip) files can be cut.
    """
    token = _RANGE.set((str(Path(path).resolve()), int(start), int(end)))
    try:
        yield
    finally:
        _RANGE.reset(token)


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def line_ranges(path: Path, target_bytes: int) -> list[tuple[int, int]]:
    """Cut a plain file into byte ranges of about ``target_bytes`` that start at line starts.

    Each cut is moved forward to just after the next newline, so every line lies in exactly
    one range; a gzip file is one range (it cannot be read from the middle).
    """
    size = Path(path).stat().st_size
    if size == 0:
        return []
    if is_gzip(path):
        return [(0, size)]
    cuts = [0]
    with open(path, "rb") as fh:
        pos = target_bytes
        while pos < size:
            fh.seek(pos)
            while True:  # the next newline at or after pos (lines may be longer than a read)
                chunk = fh.read(1 << 16)
                if not chunk:
                    pos = size
                    break
                hit = chunk.find(b"\n")
                if hit >= 0:
                    pos += hit + 1
                    break
                pos += len(chunk)
            if pos >= size:
                break
            cuts.append(pos)
            pos += target_bytes
    cuts.append(size)
    return list(zip(cuts[:-1], cuts[1:], strict=True))


class _Window:
    """A read-only file object over bytes ``[start, end)`` of a file."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        self.fh = open(path, "rb", buffering=0)  # noqa: SIM115 -- closed by __exit__
        self.fh.seek(start)
        self.left = end - start

    def readinto(self, view) -> int:
        if self.left <= 0:
            return 0
        n = self.fh.readinto(view[: min(len(view), self.left)])
        self.left -= n or 0
        return n or 0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.fh.close()


def open_binary(path: Path):
    """Open plain or gzip input (by magic bytes, not by name)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb", buffering=0)


def iter_raw_blocks(path: Path, block_bytes: int | None = None) -> Iterator[memoryview]:
    """Yield blocks of whole lines, read straight into fresh buffers (no concatenation)."""
    block_bytes = block_bytes or BLOCK_BYTES
    rest = b""
    key = str(Path(path).resolve())
    hasher = _HASHERS.get(key)
    if hasher is not None and (hasher.seen or hasher.complete):
        hasher = None  # read twice by one build: the first pass already hashed it
    window = _RANGE.get()
    if window is not None and window[0] != key:
        window = None
    if window is not None:
        hasher = None  # a part of the file: its digest is not the file's

        def opener():
            return _Window(path, window[1], window[2])
    else:

        def opener():
            return open_binary(path)

    try:
        with opener() as fh:
            while True:
                # np.empty: an uninitialised buffer (a bytearray would be zero-filled first)
                buf = np.empty(len(rest) + block_bytes, dtype=np.uint8)
                view = memoryview(buf)
                view[: len(rest)] = rest
                filled = len(rest)
                while filled < len(buf):  # gzip and pipes may return short reads
                    n = fh.readinto(view[filled:])
                    if not n:
                        break
                    if hasher is not None:
                        hasher.update(view[filled : filled + n])
                    filled += n
                if filled == len(rest):
                    if hasher is not None:
                        hasher.complete = True
                    break
                cut = _last_newline(buf, filled)
                if cut < 0:
                    rest = bytes(view[:filled])
                    continue
                rest = bytes(view[cut + 1 : filled])
                yield view[: cut + 1]
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise InputError(f"{path}: unreadable or truncated compressed input ({exc})") from None
    if rest:
        yield memoryview(rest + b"\n")


def _last_newline(buf: np.ndarray, end: int) -> int:
    """Position of the last ``\\n`` in ``buf[:end]`` (searching back from the end), or -1."""
    step = 1 << 16
    hi = end
    while hi > 0:
        lo = max(0, hi - step)
        hits = np.flatnonzero(buf[lo:hi] == 10)
        if hits.size:
            return lo + int(hits[-1])
        hi = lo
    return -1


def parse_block(
    path: Path,
    raw,
    columns: list[str],
    min_columns: int | None = None,
    include: list[str] | None = None,
) -> Block:
    """Parse one block of whole lines into binary columns, lines numbered from 1.

    Args:
        path: the file (for messages).
        raw: the block's bytes.
        columns: names of all columns of the format.
        min_columns: rows with between ``min_columns`` and ``len(columns)`` fields are kept,
            the missing trailing columns null (optional columns such as a weight).
        include: columns to materialise (default all); the others are skipped by Arrow.
    """
    handled: dict[int, int] = {}  # line -> field count (0: blank), rows given to the handler

    def on_invalid(row: pacsv.InvalidRow) -> str:
        handled[row.number] = row.actual_columns if row.text.strip() else 0
        return "skip"

    include = include or columns
    try:
        table = pacsv.read_csv(
            pa.py_buffer(raw),
            read_options=pacsv.ReadOptions(
                column_names=columns, use_threads=False, block_size=max(1 << 20, len(raw) + 1)
            ),
            parse_options=pacsv.ParseOptions(
                delimiter="\t",
                quote_char=False,
                escape_char=False,
                double_quote=False,
                ignore_empty_lines=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.binary() for c in include},
                include_columns=include,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except Exception:  # noqa: BLE001 - Arrow cannot report some rows (e.g. non-UTF-8 text)
        return _parse_block_slowly(path, raw, columns, min_columns, include)
    if any(n is None for n in handled):  # cannot happen single-threaded; stay exact anyway
        return _parse_block_slowly(path, raw, columns, min_columns, include)

    n_lines = table.num_rows + len(handled)
    lines = np.arange(1, n_lines + 1, dtype=np.int64)
    if handled:
        lines = lines[~np.isin(lines, np.fromiter(handled, dtype=np.int64))]
    table, lines = _drop_blank_rows(table, lines)

    width = len(columns)
    lowest = min_columns if min_columns is not None else width
    rejected = [
        (ln, f"wrong column count (expected {width}, got {n})")
        for ln, n in sorted(handled.items())
        if n and not lowest <= n <= width
    ]
    short = sorted(ln for ln, n in handled.items() if lowest <= n < width)
    if short:  # re-read those lines (rare) and append them with their line numbers
        text = bytes(raw).split(b"\n")
        rows = [text[ln - 1].rstrip(b"\r").split(b"\t") for ln in short]
        extra = pa.table(
            {
                c: pa.array([r[i] if i < len(r) else None for r in rows], pa.binary())
                for i, c in enumerate(columns)
                if c in include
            }
        )
        table = pa.concat_tables([table, extra.select(table.column_names)])
        lines = np.concatenate([lines, np.asarray(short, dtype=np.int64)])
    return Block(str(path), 1, n_lines, table, lines, rejected)


def _drop_blank_rows(table: pa.Table, lines: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """Arrow reads an empty line as a row of empty values: drop rows with every field empty."""
    if table.num_rows == 0:
        return table, lines
    empty = None
    for column in table.columns:
        is_empty = pc.equal(pc.binary_length(column), 0)
        empty = is_empty if empty is None else pc.and_(empty, is_empty)
    if not pc.any(empty).as_py():
        return table, lines
    keep = pc.invert(empty)
    return table.filter(keep), lines[keep.to_numpy(zero_copy_only=False)]


def _parse_block_slowly(
    path: Path, raw, columns: list[str], min_columns: int | None, include: list[str]
) -> Block:
    """Exact pure-Python parse of a block Arrow rejected (rare: a malformed non-UTF-8 row)."""
    width = len(columns)
    lowest = min_columns if min_columns is not None else width
    rows: list[list[bytes | None]] = []
    lines: list[int] = []
    rejected: list[tuple[int, str]] = []
    text = bytes(raw).split(b"\n")
    if text and text[-1] == b"":
        text.pop()
    for number, line in enumerate(text, start=1):
        fields = line.rstrip(b"\r").split(b"\t")
        if all(not f.strip() for f in fields):
            continue  # blank line
        if lowest <= len(fields) <= width:
            rows.append(fields + [None] * (width - len(fields)))
            lines.append(number)
        else:
            rejected.append((number, f"wrong column count (expected {width}, got {len(fields)})"))
    table = pa.table(
        {
            c: pa.array([r[i] for r in rows], pa.binary())
            for i, c in enumerate(columns)
            if c in include
        }
    )
    return Block(str(path), 1, len(text), table, np.asarray(lines, dtype=np.int64), rejected)


def read_blocks(
    path: Path,
    columns: list[str],
    transform: Callable[[Block, LineIssues], object],
    issues: LineIssues,
    *,
    min_columns: int | None = None,
    include: list[str] | None = None,
    threads: int | None = None,
    block_bytes: int | None = None,
    progress: bool = False,
) -> list:
    """Parse ``path`` block by block on a thread pool and return ``transform``'s results in order.

    ``transform(block, issues)`` runs on the worker thread with a per-block issue collector;
    rejected lines and the transform's own findings are merged into ``issues`` in file order,
    so the report (and ``--strict``'s first error) does not depend on thread timing. At most
    ``2 * threads`` blocks are in flight: memory stays bounded however large the file.
    """

    def work(raw, local: LineIssues) -> tuple[object, int]:
        block = parse_block(path, raw, columns, min_columns, include)
        for line, reason in block.rejected:
            local.add(path, line, reason)
        return transform(block, local), block.n_lines

    return map_raw_blocks(
        path, work, issues, threads=threads, block_bytes=block_bytes, progress=progress
    )


def map_raw_blocks(
    path: Path,
    work: Callable[[memoryview, LineIssues], tuple[object, int]],
    issues: LineIssues,
    *,
    threads: int | None = None,
    block_bytes: int | None = None,
    progress: bool = False,
    on_merged: Callable[[object, LineIssues, int], None] | None = None,
) -> list:
    """Run ``work(raw, local_issues) -> (result, n_lines)`` on every block of whole lines of
    ``path`` on a thread pool; return the results in file order.

    Issues found in a block (lines numbered from 1 in it) are merged into ``issues`` in file
    order, shifted to file lines. ``on_merged(result, local, line_offset)``, if given, is
    called on the main thread before each block is merged (it may raise to stop reading).
    """
    threads = threads or min(4, os.cpu_count() or 1)
    results: list = []
    bar = _progress(path, progress)

    def run(raw):
        local = LineIssues(strict=False, keep=10_000)
        result, n_lines = work(raw, local)
        local.first.sort(key=lambda issue: issue.line or 0)
        return result, local, n_lines, len(raw)

    line_offset = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool, _closing(bar):
        pending: collections.deque = collections.deque()

        def drain_one() -> None:
            nonlocal line_offset
            result, local, n_lines, size = pending.popleft().result()
            if on_merged is not None:
                on_merged(result, local, line_offset)
            issues.merge(local, line_offset=line_offset)
            line_offset += n_lines
            results.append(result)
            if bar is not None:
                bar.update(size)

        for raw in iter_raw_blocks(path, block_bytes):
            pending.append(pool.submit(run, raw))
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

    with open(path, "rb") as fh:
        compressed = fh.read(2) == b"\x1f\x8b"
    return tqdm(
        total=None if compressed else path.stat().st_size,
        unit="B",
        unit_scale=True,
        desc=f"reading {path.name}",
        leave=False,
        disable=None,
    )  # None: terminals only


def decode_utf8(
    block: Block, column: pa.Array, issues: LineIssues, what: str
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
    for line in block.line_of(np.flatnonzero(~keep)):
        issues.add(block.path, int(line), f"invalid UTF-8 in {what}")
    return pa.array(out, pa.string()), keep
