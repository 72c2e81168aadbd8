"""N-Triples, fast: blocks of lines parsed by vectorised Arrow calls; rdflib's for the rest.

Wikidata's truthy dump and most large N-Triples files are lines of one plain form::

    <IRI> <IRI> <IRI> .
    <IRI> <IRI> "literal without escapes"(@lang | ^^<IRI>)? .

A block of such lines is cut into lines with numpy (newline positions are the offsets of an
Arrow array over the block's own buffer), checked against one regular expression without
captures (RE2 matches those in a single pass), and split into terms at the positions of its
spaces and quotes: no Python per line. Every other line (escapes, blank nodes, other spacing,
comments after the dot, invalid UTF-8, errors) goes through the exact line parser of :mod:`.rdf`
(rdflib's grammar), so the statements and the issues are those of a line-by-line parse. Labels,
aliases and texts follow Python's string rules, vectorised where Arrow's are the same.

What a block yields is the raw material of :class:`~.base.SourceOutput` with the predicates
still full IRIs: their short names depend on every predicate of the input, so the caller
renames them once all blocks (or, in a distributed build, all partitions) are read. Label and
text candidates carry ``seq``, their line in the file, so the first one in file order wins
ties (a partition adds its own offset above the line bits).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kelm.errors import InputError
from kelm.graph.sources import rdf_terms as rdf
from kelm.graph.sources._blocks import map_raw_blocks
from kelm.graph.sources.base import (
    TRIPLE_SCHEMA,
    BuildOptions,
    LineIssues,
    SourceOutput,
    concat_as,
)

_IRI = r'[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20<>"{}|^`\\]*'
# Datatype IRIs: ASCII only (rdflib matches them with a pattern that excludes Unicode spaces).
_DATATYPE = r"[A-Za-z][A-Za-z0-9+.\-]*:[!#-;=?-\[\]_a-z~]*"
_LANG = r"[a-zA-Z]+(?:-[a-zA-Z0-9]+)*"
#: A line in the plain form (after stripping " \t\r\n"); anything else takes the exact path.
FAST_LINE = rf'^<{_IRI}> <{_IRI}> (?:<{_IRI}>|"[^"\\]*"(?:@{_LANG}|\^\^<{_DATATYPE}>)?) \.$'
_FAST_LINE_PY = re.compile(FAST_LINE)
# The same test on a raw line, newline included. The plain form starts its raw line (no
# leading whitespace), so "raw line = plain form + trailing whitespace" is exactly "stripped line
# in the plain form and raw line starting with '<'", and no trimmed copy of the block is needed.
_FAST_RAW_LINE = FAST_LINE[:-1] + r"[ \t\r\n]*$"
_TRIM = " \t\r\n"

_LITERAL_SCHEMA = pa.schema(
    [
        ("node", pa.string()),
        ("pred", pa.string()),
        ("value", pa.string()),
        ("lang", pa.string()),
        ("line", pa.int64()),
    ]
)


@dataclass
class NTriplesPart:
    """What some lines of N-Triples hold, predicates as full IRIs (see the module docstring)."""

    edges: list[pa.Table] = field(default_factory=list)
    nodes: list[pa.Array] = field(default_factory=list)
    labels: list[pa.Table] = field(default_factory=list)
    aliases: list[pa.Table] = field(default_factory=list)
    texts: list[pa.Table] = field(default_factory=list)
    attributes: list[pa.Table] = field(default_factory=list)
    predicates: set[str] = field(default_factory=set)
    statements: int = 0
    malformed: int = 0
    lines_read: int = 0
    first_issue: str = ""  # "line N: reason" of the first malformed line, for messages
    lead_malformed: int = 0  # malformed lines before the first statement

    def finish(self, names: dict[str, str]) -> SourceOutput:
        """The source output, predicates renamed by ``names`` (full IRI -> short name)."""
        full = pa.array(sorted(names), pa.string())
        short = pa.array([names[u] for u in sorted(names)], pa.string())

        def rename(column: pa.ChunkedArray | pa.Array) -> pa.Array:
            return short.take(pc.index_in(column, value_set=full))

        out = SourceOutput(
            triples=[
                t.set_column(1, "relation", rename(t["relation"])).cast(TRIPLE_SCHEMA)
                for t in self.edges
            ],
            nodes=list(self.nodes),
            labels=rdf._best_per_node(self.labels, "label"),
            aliases=list(self.aliases),
            texts=rdf._best_per_node(self.texts, "text"),
            attributes=[t.set_column(1, "key", rename(t["key"])) for t in self.attributes],
        )
        out.lines_read = self.lines_read
        return out


@dataclass
class _BlockResult:
    part: NTriplesPart
    n_lines: int
    lead_malformed: int  # malformed lines before the block's first statement


def read_ntriples(path: Path, options: BuildOptions, issues: LineIssues) -> SourceOutput:
    """Read one N-Triples file (plain or gzip) into a source output.

    Raises:
        InputError: no valid statement (early, after ``rdf.GIVE_UP_AFTER`` malformed lines
            without one), unreadable compressed input, or (``strict``) a malformed line.
    """
    part = parse_ntriples(path, options, issues, give_up=True)
    if part.malformed and not part.statements:
        raise InputError(rdf._no_statements(path, part.malformed, part.first_issue, early=False))
    return part.finish(rdf._short_names(part.predicates, rdf._default_prefixes()))


def parse_ntriples(
    path: Path,
    options: BuildOptions,
    issues: LineIssues,
    *,
    give_up: bool = False,
    seq_base: int = 0,
    threads: int | None = None,
) -> NTriplesPart:
    """Parse ``path`` (or the byte range that :func:`~._blocks.reading_range` sets) block by
    block; issues are merged into ``issues`` with line numbers counted from the range start.

    Args:
        give_up: raise as soon as ``rdf.GIVE_UP_AFTER`` malformed lines came before any
            statement (a file that is not N-Triples).
        seq_base: added to every label/text ``seq`` (a partition's place in the input).
    """
    path = Path(path)
    tag = rdf._file_tag(path)
    keep_literals = options.literals == "keep"
    total = NTriplesPart()
    state = {"first": "", "statements": 0, "malformed": 0, "lead": 0}

    def work(raw, local: LineIssues) -> tuple[_BlockResult, int]:
        result = _parse_block(path, raw, tag, keep_literals, local)
        return result, result.n_lines

    def on_merged(result: _BlockResult, local: LineIssues, offset: int) -> None:
        if not state["first"] and local.first:
            issue = local.first[0]
            state["first"] = f"line {issue.line + offset}: {issue.reason}"
        limit = rdf.GIVE_UP_AFTER
        if (
            give_up
            and not state["statements"]
            and state["malformed"] + result.lead_malformed >= limit
        ):
            # Stop at exactly the limit, as a line-by-line reader would.
            for issue in local.first[: limit - state["malformed"]]:
                issues.add(issue.path, issue.line + offset, issue.reason)
            raise InputError(rdf._no_statements(path, limit, state["first"], early=True))
        if not state["statements"]:
            state["lead"] += result.lead_malformed
        state["statements"] += result.part.statements
        state["malformed"] += result.part.malformed

    for result in map_raw_blocks(
        path,
        work,
        issues,
        threads=threads,
        block_bytes=4 << 20,
        progress=options.progress,
        on_merged=on_merged,
    ):
        _add(total, result.part, seq_base + total.lines_read)
    total.first_issue = state["first"]
    total.lead_malformed = state["lead"]
    return total


def _add(total: NTriplesPart, part: NTriplesPart, line_offset: int) -> None:
    """Append a block's output, shifting its ``seq`` (block lines) to file lines."""
    total.edges += part.edges
    total.nodes += part.nodes
    total.aliases += part.aliases
    total.attributes += part.attributes
    for mine, theirs in ((total.labels, part.labels), (total.texts, part.texts)):
        for t in theirs:
            seq = pc.add(t["seq"], pa.scalar(line_offset, pa.int64()))
            mine.append(t.set_column(t.schema.get_field_index("seq"), "seq", seq))
    total.predicates |= part.predicates
    total.statements += part.statements
    total.malformed += part.malformed
    total.lines_read += part.lines_read


# ---------------------------------------------------------------------- one block
def _lines(buf: np.ndarray, ends: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """The block's lines (each with its newline, at ``ends``) as an Arrow array over the block's
    buffer, and their offsets."""
    n = int(ends.shape[0])
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = ends + 1
    binary, _, dtype = _types_for(buf)
    array = pa.Array.from_buffers(
        binary, n, [None, pa.py_buffer(offsets.astype(dtype, copy=False)), pa.py_buffer(buf)]
    )
    return array, offsets


_SCRATCH = threading.local()


def _marks(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the newlines, spaces and quotes of ``buf``, in order, and those bytes.

    One comparison finds every byte up to the quote (0x22); the few others among them (tabs,
    "!", ...) are dropped afterwards. The mask goes into a buffer that each thread keeps for
    its next blocks: a fresh one per block costs more in page faults than the comparison.
    """
    n = buf.shape[0]
    mask = getattr(_SCRATCH, "mask", None)
    if mask is None or mask.shape[0] < n:
        mask = np.empty(n, dtype=bool)
        if n <= 1 << 26:  # a block of ordinary lines (a giant line's is not kept)
            _SCRATCH.mask = mask
    mask = mask[:n]
    np.less_equal(buf, 34, out=mask)
    marks = np.flatnonzero(mask)
    found = buf[marks]
    keep = (found == 10) | (found == 32) | (found == 34)
    if keep.all():
        return marks, found
    return marks[keep], found[keep]


def _types_for(buf: np.ndarray) -> tuple[pa.DataType, pa.DataType, type]:
    """Binary and string types, and offset dtype, of arrays over ``buf``: 32-bit offsets (the
    output's own ``string``, no cast) unless a block is over 2 GiB (a line that long)."""
    if buf.shape[0] < 2**31:
        return pa.binary(), pa.string(), np.int32
    return pa.large_binary(), pa.large_string(), np.int64


def _parse_block(
    path: Path, raw, tag: str, keep_literals: bool, issues: LineIssues
) -> _BlockResult:
    buf = np.frombuffer(raw, dtype=np.uint8)
    # Newlines, spaces and quotes, in order: the lines, and where a plain line's terms are.
    marks, marked = _marks(buf)
    newlines = np.flatnonzero(marked == 10)  # the line ends' places in ``marks``
    n_lines = int(newlines.shape[0])
    lines, line_offsets = _lines(buf, marks[newlines])
    try:
        text = lines.cast(_types_for(buf)[1])  # checks UTF-8 without copying
        bad_utf8 = None
    except pa.ArrowInvalid:  # some line is not UTF-8: find which (rare), the rest as usual
        bad_utf8 = np.zeros(n_lines, dtype=bool)
        values = []
        for i, line in enumerate(lines.to_pylist()):
            try:
                values.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                bad_utf8[i] = True
                values.append("")
        text = pa.array(values, pa.large_string())
    if bad_utf8 is None:
        fast = pc.match_substring_regex(text, _FAST_RAW_LINE).to_numpy(zero_copy_only=False)
        others = np.flatnonzero(~fast)
    else:  # the text was rebuilt from Python strings: every line takes the exact path
        fast = np.zeros(n_lines, dtype=bool)
        others = np.arange(n_lines)
    # Only the other lines are trimmed: blank lines and comments are skipped, the rest parsed
    # exactly (invalid UTF-8 is "" here, yet not skipped: it is reported).
    trimmed = pc.utf8_trim(text.take(pa.array(others)), _TRIM)
    skip = pc.or_(pc.equal(pc.binary_length(trimmed), 0), pc.starts_with(trimmed, "#"))
    skip = skip.to_numpy(zero_copy_only=False)
    if bad_utf8 is not None:
        skip &= ~bad_utf8
    slow_rows = others[~skip]

    edge_parts: list[pa.Table] = []
    lit_parts: list[pa.Table] = []
    fast_rows = np.flatnonzero(fast)
    if fast_rows.size:
        ls = line_offsets[fast_rows]
        ends = line_offsets[fast_rows + 1] - 1  # the newline
        # A line's first mark follows the previous line's newline, and its final " ." is the
        # mark before its own newline, unless more whitespace trails the "." (rare).
        first = np.concatenate([[0], newlines[:-1] + 1])[fast_rows]
        final = newlines[fast_rows] - 1
        odd = np.flatnonzero(buf[ends - 1] != 46)
        if odd.size:
            rest = pc.utf8_rtrim(text.take(pa.array(fast_rows[odd])), _TRIM)
            ends[odd] = ls[odd] + pc.binary_length(rest).to_numpy(zero_copy_only=False)
            final[odd] = np.searchsorted(marks, ends[odd] - 2)
        edge, lit = _split_fast(buf, marks, first, final, ls, ends, fast_rows + 1)
        edge_parts.append(edge)
        lit_parts.append(lit)
    malformed = 0
    bad = np.zeros(0, dtype=np.int64)
    starts = [int(fast_rows[0])] if fast_rows.size else []
    if slow_rows.size:
        slow_text = trimmed.filter(pa.array(~skip))
        edge, lit, bad_rows = _parse_slowly(path, slow_text, slow_rows, bad_utf8, tag, issues)
        bad = np.asarray(bad_rows, dtype=np.int64)
        malformed = int(bad.size)
        edge_parts.append(edge)
        lit_parts.append(lit)
        good = np.setdiff1d(slow_rows, bad)
        if good.size:  # a statement of the slow path may come before the first fast one
            starts.append(int(good[0]))
    lead = int((bad < min(starts)).sum()) if starts else malformed
    part = _block_output(edge_parts, lit_parts, keep_literals)
    part.malformed = malformed
    part.lines_read = n_lines
    return _BlockResult(part, n_lines, lead)


def _split_fast(
    buf: np.ndarray,
    marks: np.ndarray,
    first: np.ndarray,
    final: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    numbers: np.ndarray,
) -> tuple[pa.Table, pa.Table]:
    """Terms of lines in the plain form: edges (IRI objects) and literal statements.

    Line ``i`` is ``buf[starts[i]:ends[i]]`` without its trailing whitespace, and line
    ``numbers[i]`` of the block; ``marks`` are the positions of the block's newlines, spaces and
    quotes, of which ``marks[first[i]]`` is the line's first and ``marks[final[i]]`` the space
    of its final " .".

    No per-line copies: the block buffer is cut into 9 segments per line (``<``, subject,
    ``> <``, predicate, ``> ``, object or literal value, junk, language tag, rest up to the next
    line in the plain form), as one Arrow array over the buffer whose offsets are the cut
    points; each term is then a ``take`` of every 9th segment.
    """
    m = starts.shape[0]
    # IRIs hold no space nor quote, so a line's first two marks are the spaces after its
    # subject and predicate; nor does anything after a literal's closing quote (language tag,
    # datatype IRI), so the mark before the final " ." is that quote.
    sp1, sp2 = marks[first], marks[first + 1]
    iri = buf[sp2 + 1] == 60  # "<"
    lits = np.flatnonzero(~iri)
    q = marks[final[lits] - 1]
    has_lang = buf[q + 1] == 64  # "@"

    _, string, dtype = _types_for(buf)
    offsets = np.empty(9 * m + 1, dtype=dtype)
    cuts = offsets[:-1].reshape(m, 9)  # a view: the cuts are written in place
    cuts[:, 0] = starts
    cuts[:, 1] = starts + 1
    cuts[:, 2] = sp1 - 1
    cuts[:, 3] = sp1 + 2
    cuts[:, 4] = sp2 - 1
    cuts[:, 5] = sp2 + 2
    cuts[:, 6:] = (ends - 3)[:, None]  # an IRI object ends before "> ."; no language tag
    cuts[lits, 6] = q
    cuts[lits, 7] = np.where(has_lang, q + 2, q)
    cuts[lits, 8] = np.where(has_lang, ends[lits] - 2, q)
    offsets[-1] = buf.shape[0]
    # The block is valid UTF-8, and every cut is at an ASCII byte.
    segments = pa.Array.from_buffers(
        string, 9 * m, [None, pa.py_buffer(offsets), pa.py_buffer(buf)]
    )

    def term(k: int, rows: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
        return segments.take(pa.array(9 * rows + k, mask=missing))

    edges = np.flatnonzero(iri)
    edge_table = pa.table(
        {"head": term(1, edges), "relation": term(3, edges), "tail": term(5, edges)}
    )
    lit_table = pa.table(
        {
            "node": term(1, lits),
            "pred": term(3, lits),
            "value": term(5, lits),
            "lang": term(7, lits, missing=~has_lang),  # a null index takes a null
            "line": pa.array(numbers[lits]),
        }
    )
    return edge_table, lit_table


class _RowSink:
    __slots__ = ("edges", "lits", "line")

    def __init__(self) -> None:
        self.edges: list[tuple[str, str, str]] = []
        self.lits: list[tuple[str, str, str, str | None, int]] = []
        self.line = 0

    def triple(self, s: str, p: str, o) -> None:
        if isinstance(o, tuple):
            self.lits.append((s, p, o[0], o[1], self.line))
        else:
            self.edges.append((s, p, o))


def _parse_slowly(
    path: Path,
    text: pa.Array,
    rows: np.ndarray,
    bad_utf8: np.ndarray | None,
    tag: str,
    issues: LineIssues,
) -> tuple[pa.Table, pa.Table, list[int]]:
    """The exact line parser of :mod:`.rdf` on the given rows (``text``: their lines, stripped);
    returns the rows it rejected."""
    parser = rdf._LineParser(tag)
    sink = _RowSink()
    parser.sink = sink
    bad: list[int] = []
    lines = text.to_pylist()
    for row, line in zip(rows.tolist(), lines, strict=True):
        number = row + 1
        if bad_utf8 is not None and bad_utf8[row]:
            reason = "invalid UTF-8"
        else:
            sink.line = number
            parser.line = line
            try:
                parser.parseline()
                continue
            except rdf._BadURI:
                reason = "bad URI"
            except rdf._BadEscape:
                reason = "bad escape sequence"
            except rdf.ParseError:
                reason = "not an N-Triples statement"
        bad.append(row)
        issues.add(path, number, reason)
    edges = pa.table(
        {
            "head": pa.array([e[0] for e in sink.edges], pa.large_string()),
            "relation": pa.array([e[1] for e in sink.edges], pa.large_string()),
            "tail": pa.array([e[2] for e in sink.edges], pa.large_string()),
        }
    )
    lits = pa.table(
        {
            "node": pa.array([x[0] for x in sink.lits], pa.large_string()),
            "pred": pa.array([x[1] for x in sink.lits], pa.large_string()),
            "value": pa.array([x[2] for x in sink.lits], pa.large_string()),
            "lang": pa.array([x[3] for x in sink.lits], pa.large_string()),
            "line": pa.array([x[4] for x in sink.lits], pa.int64()),
        }
    )
    return edges, lits, bad


def _block_output(
    edge_parts: list[pa.Table], lit_parts: list[pa.Table], keep_literals: bool
) -> NTriplesPart:
    """Edges, and literals sorted out into labels, aliases, texts and attributes, as
    :class:`rdf._Collector` does statement by statement."""
    part = NTriplesPart()
    edges = concat_as(edge_parts, _EDGE_SCHEMA)
    lits = concat_as(lit_parts, _LITERAL_SCHEMA)
    part.statements = edges.num_rows + lits.num_rows
    if edges.num_rows:
        edges = edges.append_column("weight", pa.array(np.ones(edges.num_rows, dtype=np.float32)))
        part.edges.append(edges)
        part.predicates.update(pc.unique(edges["relation"]).to_pylist())
    if not lits.num_rows:
        return part
    part.nodes.append(pc.unique(lits["node"].combine_chunks()))
    pred = lits["pred"]
    is_label = pc.is_in(pred, value_set=_LABEL_PREDICATES)
    is_text = pc.is_in(pred, value_set=_TEXT_PREDICATES)
    if pc.any(is_label).as_py():
        _labels(part, lits.filter(is_label))
    if pc.any(is_text).as_py():
        _texts(part, lits.filter(is_text))
    if keep_literals:
        other = lits.filter(pc.invert(pc.or_(is_label, is_text)))
        if other.num_rows:
            part.attributes.append(
                pa.table({"node": other["node"], "key": other["pred"], "value": other["value"]})
            )
            part.predicates.update(pc.unique(other["pred"]).to_pylist())
    return part


_EDGE_SCHEMA = pa.schema([("head", pa.string()), ("relation", pa.string()), ("tail", pa.string())])
_LABEL_PREDICATES = pa.array(sorted(rdf.LABELS), pa.string())
_TEXT_PREDICATES = pa.array(sorted(rdf.TEXTS), pa.string())


#: What Python's ``str.split()`` and ``str.strip()`` take for whitespace (``str.isspace``).
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_WHITESPACE_RUN = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in PY_WHITESPACE) + "]+"


def _labels(part: NTriplesPart, rows: pa.Table) -> None:
    """Aliases and label candidates, with Python's string rules (``split``, ``lower``,
    ``strip``) so they are exactly those of the statement-by-statement collector."""
    node, pred, value, lang, line = _columns(rows)
    # " ".join(value.split()): every run of whitespace one space, none at the ends.
    alias = pc.utf8_trim(pc.replace_substring_regex(value, _WHITESPACE_RUN, " "), " ")
    alias = _lower(alias)
    keep = pc.not_equal(pc.binary_length(alias), 0)
    if pc.any(keep).as_py():
        part.aliases.append(pa.table({"node": node.filter(keep), "alias": alias.filter(keep)}))
    rank = _LABEL_RANKS[pc.index_in(pred, value_set=_LABEL_PREDICATES).to_numpy()]
    lang_rank = _lang_ranks(lang)
    label = pc.utf8_trim(value, PY_WHITESPACE)  # value.strip()
    keep = (rank >= 0) & (pc.binary_length(label).to_numpy(zero_copy_only=False) > 0)
    if keep.any():
        label_rank = 4 * (lang_rank == 2) + 2 * rank + (lang_rank == 1)
        mask = pa.array(keep)
        part.labels.append(
            pa.table(
                {
                    "node": node.filter(mask),
                    "rank": pa.array(label_rank[keep].astype(np.int8)),
                    "seq": line.filter(mask),
                    "label": label.filter(mask),
                }
            )
        )


def _texts(part: NTriplesPart, rows: pa.Table) -> None:
    node, pred, value, lang, line = _columns(rows)
    text = pc.utf8_trim(value, PY_WHITESPACE)  # value.strip()
    keep = pc.binary_length(text).to_numpy(zero_copy_only=False) > 0
    if keep.any():
        pred_rank = _TEXT_RANKS[pc.index_in(pred, value_set=_TEXT_PREDICATES).to_numpy()]
        text_rank = _lang_ranks(lang) * 2 + pred_rank
        mask = pa.array(keep)
        part.texts.append(
            pa.table(
                {
                    "node": node.filter(mask),
                    "rank": pa.array(text_rank[keep].astype(np.int8)),
                    "seq": line.filter(mask),
                    "text": text.filter(mask),
                }
            )
        )


# The rank of each of _LABEL_PREDICATES (-1: alias only) and _TEXT_PREDICATES.
_LABEL_RANKS = np.array(
    [-1 if rdf.LABELS[p] is None else rdf.LABELS[p] for p in sorted(rdf.LABELS)]
)
_TEXT_RANKS = np.array([rdf.TEXTS[p] for p in sorted(rdf.TEXTS)])


def _columns(rows: pa.Table) -> list[pa.Array]:
    rows = rows.combine_chunks()
    return [rows[c].combine_chunks() for c in ("node", "pred", "value", "lang", "line")]


def _lower(values: pa.Array) -> pa.Array:
    """``str.lower()`` of every value: Arrow's where a value is ASCII (the same rule), Python's
    for the others (Unicode's special casings, e.g. a final sigma, are Python's own)."""
    ascii_ = pc.string_is_ascii(values)
    lowered = pc.ascii_lower(values)
    if pc.all(ascii_).as_py():
        return lowered
    other = pc.invert(ascii_)
    python = pa.array([v.lower() for v in values.filter(other).to_pylist()], values.type)
    return pc.replace_with_mask(lowered, other, python)


def _lang_ranks(lang: pa.Array) -> np.ndarray:
    """``rdf._lang_rank`` of every language tag (null: none), computed once per distinct tag."""
    lang = pc.fill_null(lang, "")
    tags = pc.unique(lang)
    ranks = np.array([rdf._lang_rank(t) for t in tags.to_pylist()], dtype=np.int64)
    return ranks[pc.index_in(lang, value_set=tags).to_numpy()]
