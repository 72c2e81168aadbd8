"""N-Triples, fast: blocks of lines parsed by vectorised Arrow calls; rdflib's for the rest.

Wikidata's truthy dump and most large N-Triples files are lines of one plain form::

    <IRI> <IRI> <IRI> .
    <IRI> <IRI> "literal without escapes"(@lang | ^^<IRI>)? .

A block of such lines is cut into lines with numpy (newline positions are the offsets of an
Arrow array over the block's own buffer), checked against one regular expression without
captures (RE2 matches those in a single pass), and split into terms by ``split_pattern`` and
slicing: no Python per line. Every other line (escapes, blank nodes, other spacing, comments
after the dot, invalid UTF-8, errors) goes through the exact line parser of :mod:`.rdf`
(rdflib's grammar), so the statements and the issues are those of a line-by-line parse.

What a block yields is the raw material of :class:`~.base.SourceOutput` with the predicates
still full IRIs: their short names depend on every predicate of the input, so the caller
renames them once all blocks (or, in a distributed build, all partitions) are read. Label and
text candidates carry ``seq``, their line in the file, so the first one in file order wins
ties (a partition adds its own offset above the line bits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kelm.errors import InputError
from kelm.graph.sources import rdf_terms as rdf
from kelm.graph.sources._blocks import map_raw_blocks
from kelm.graph.sources.base import TRIPLE_SCHEMA, BuildOptions, LineIssues, SourceOutput

_IRI = r'[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20<>"{}|^`\\]*'
# Datatype IRIs: ASCII only (rdflib matches them with a pattern that excludes Unicode spaces).
_DATATYPE = r"[A-Za-z][A-Za-z0-9+.\-]*:[!#-;=?-\[\]_a-z~]*"
_LANG = r"[a-zA-Z]+(?:-[a-zA-Z0-9]+)*"
#: A line in the plain form (after stripping " \t\r\n"); anything else takes the exact path.
FAST_LINE = rf'^<{_IRI}> <{_IRI}> (?:<{_IRI}>|"[^"\\]*"(?:@{_LANG}|\^\^<{_DATATYPE}>)?) \.$'
_FAST_LINE_PY = re.compile(FAST_LINE)

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
def _lines(raw) -> tuple[pa.LargeBinaryArray, int, np.ndarray]:
    """The block's lines (each with its newline) as an Arrow array over the block's buffer."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    n = int(ends.shape[0])
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = ends + 1
    array = pa.Array.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(buf)]
    )
    return array, n, offsets


def _parse_block(
    path: Path, raw, tag: str, keep_literals: bool, issues: LineIssues
) -> _BlockResult:
    lines, n_lines, line_offsets = _lines(raw)
    buf = np.frombuffer(raw, dtype=np.uint8)
    try:
        text = lines.cast(pa.large_string())
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
    text = pc.utf8_trim(text, " \t\r\n")
    skip = pc.or_(pc.equal(pc.binary_length(text), 0), pc.starts_with(text, "#"))
    skip = skip.to_numpy(zero_copy_only=False)
    fast = pc.match_substring_regex(text, FAST_LINE).to_numpy(zero_copy_only=False)
    starts = line_offsets[:-1]
    if n_lines:
        # The plain form starts the raw line (no leading space), so the trimmed line is
        # ``buf[start : start + trimmed length]``.
        fast &= buf[np.minimum(starts, buf.shape[0] - 1)] == 60
    if bad_utf8 is not None:
        skip = skip & ~bad_utf8
        fast = fast & ~bad_utf8
    slow_rows = np.flatnonzero(~fast & ~skip)
    numbers = np.arange(1, n_lines + 1, dtype=np.int64)

    edge_parts: list[pa.Table] = []
    lit_parts: list[pa.Table] = []
    fast_rows = np.flatnonzero(fast)
    if fast_rows.size and bad_utf8 is None:
        ends = starts + pc.binary_length(text).to_numpy(zero_copy_only=False)
        edge, lit = _split_fast(buf, starts, ends, fast_rows, numbers)
        edge_parts.append(edge)
        lit_parts.append(lit)
    elif fast_rows.size:  # the text was rebuilt from Python strings: take the exact path
        slow_rows = np.flatnonzero(~skip)
        fast_rows = fast_rows[:0]
    malformed = 0
    bad = np.zeros(0, dtype=np.int64)
    starts = [int(fast_rows[0])] if fast_rows.size else []
    if slow_rows.size:
        edge, lit, bad_rows = _parse_slowly(path, text, slow_rows, bad_utf8, tag, issues)
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
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, rows: np.ndarray, numbers: np.ndarray
) -> tuple[pa.Table, pa.Table]:
    """Terms of lines in the plain form (``rows``; line ``i`` is ``buf[starts[i]:ends[i]]``
    without its newline and trailing whitespace): edges (IRI objects) and literal statements.

    No per-line copies: the block buffer is cut into 9 segments per line (``<``, subject,
    ``> <``, predicate, ``> ``, object or literal value, junk, language tag, rest), as one
    Arrow array over the buffer whose offsets are the cut points; each term is then a ``take``
    of every 9th segment.
    """
    n = starts.shape[0]
    ls, e = starts[rows], ends[rows]
    spaces = np.flatnonzero(buf == 32)
    first = np.searchsorted(spaces, ls)
    sp1, sp2 = spaces[first], spaces[first + 1]
    iri = buf[sp2 + 1] == 60  # "<"
    quotes = np.flatnonzero(buf == 34)
    # The closing quote of a literal: the line's last quote.
    q = quotes[np.maximum(np.searchsorted(quotes, e) - 1, 0)] if quotes.size else e
    has_lang = ~iri & (buf[np.minimum(q + 1, buf.shape[0] - 1)] == 64)  # "@"
    cuts = np.empty((n, 9), dtype=np.int64)
    cuts[:] = starts[:, None]  # lines not in the plain form: empty segments, then the line
    b = cuts[rows]
    b[:, 1] = ls + 1
    b[:, 2] = sp1 - 1
    b[:, 3] = sp1 + 2
    b[:, 4] = sp2 - 1
    b[:, 5] = sp2 + 2
    value_end = np.where(iri, e - 3, q)
    b[:, 6] = value_end
    b[:, 7] = np.where(has_lang, q + 2, value_end)
    b[:, 8] = np.where(has_lang, e - 2, value_end)
    cuts[rows] = b
    offsets = np.empty(9 * n + 1, dtype=np.int64)
    offsets[:-1] = cuts.reshape(-1)
    offsets[-1] = buf.shape[0]
    segments = pa.Array.from_buffers(
        pa.large_binary(), 9 * n, [None, pa.py_buffer(offsets), pa.py_buffer(buf)]
    ).view(pa.large_string())  # the block is valid UTF-8, and every cut is at an ASCII byte

    def term(k: int, which: np.ndarray) -> pa.Array:
        return segments.take(pa.array(9 * rows[which] + k))

    edges = np.flatnonzero(iri)
    lits = np.flatnonzero(~iri)
    edge_table = pa.table(
        {"head": term(1, edges), "relation": term(3, edges), "tail": term(5, edges)}
    )
    lang = term(7, lits)
    lang_mask = pa.array(~has_lang[lits])
    lit_table = pa.table(
        {
            "node": term(1, lits),
            "pred": term(3, lits),
            "value": term(5, lits),
            "lang": pc.if_else(lang_mask, pa.scalar(None, lang.type), lang),
            "line": pa.array(numbers[rows[lits]]),
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
    """The exact line parser of :mod:`.rdf` on the given rows; returns the rows it rejected."""
    parser = rdf._LineParser(tag)
    sink = _RowSink()
    parser.sink = sink
    bad: list[int] = []
    lines = text.take(pa.array(rows)).to_pylist()
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
    edges = pa.concat_tables([t.cast(_EDGE_SCHEMA) for t in edge_parts])
    lits = pa.concat_tables([t.cast(_LITERAL_SCHEMA) for t in lit_parts])
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


def _labels(part: NTriplesPart, rows: pa.Table) -> None:
    """Aliases and label candidates, with Python's string rules (``split``, ``lower``,
    ``strip``) so they are exactly those of the statement-by-statement collector."""
    a_node, a_alias = [], []
    l_node, l_rank, l_seq, l_value = [], [], [], []
    for node, pred, value, lang, line in zip(
        *(rows[c].to_pylist() for c in ("node", "pred", "value", "lang", "line")), strict=True
    ):
        alias = " ".join(value.split()).lower()
        if alias:
            a_node.append(node)
            a_alias.append(alias)
        rank = rdf.LABELS[pred]
        label = value.strip()
        if rank is not None and label:
            lang_rank = rdf._lang_rank(lang)
            l_node.append(node)
            l_rank.append(4 * (lang_rank == 2) + 2 * rank + (lang_rank == 1))
            l_seq.append(line)
            l_value.append(label)
    if a_node:
        part.aliases.append(
            pa.table(
                {"node": pa.array(a_node, pa.string()), "alias": pa.array(a_alias, pa.string())}
            )
        )
    if l_node:
        part.labels.append(
            pa.table(
                {
                    "node": pa.array(l_node, pa.string()),
                    "rank": pa.array(l_rank, pa.int8()),
                    "seq": pa.array(l_seq, pa.int64()),
                    "label": pa.array(l_value, pa.string()),
                }
            )
        )


def _texts(part: NTriplesPart, rows: pa.Table) -> None:
    t_node, t_rank, t_seq, t_value = [], [], [], []
    for node, pred, value, lang, line in zip(
        *(rows[c].to_pylist() for c in ("node", "pred", "value", "lang", "line")), strict=True
    ):
        text = value.strip()
        if text:
            t_node.append(node)
            t_rank.append(rdf._lang_rank(lang) * 2 + rdf.TEXTS[pred])
            t_seq.append(line)
            t_value.append(text)
    if t_node:
        part.texts.append(
            pa.table(
                {
                    "node": pa.array(t_node, pa.string()),
                    "rank": pa.array(t_rank, pa.int8()),
                    "seq": pa.array(t_seq, pa.int64()),
                    "text": pa.array(t_value, pa.string()),
                }
            )
        )
