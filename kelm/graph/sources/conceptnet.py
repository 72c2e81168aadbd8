"""ConceptNet 5 assertions: ``conceptnet-assertions-5.7.0.csv`` (plain or gzip).

Five tab-separated columns, no quoting (the JSON column holds double quotes)::

    /a/[/r/IsA/,/c/en/dog/n/,/c/en/animal/]  /r/IsA  /c/en/dog/n  /c/en/animal  {..., "weight": 1.0}

A node is named by the term segment of its URI: ``/c/en/ice_cream/n/wn/food`` -> ``ice cream``
(part of speech and sense dropped, ``_`` -> space, lower case). Relations lose ``/r/`` and are
lower-cased, then (by default) merged into the 17 groups of the commonsense-QA literature,
shipped as ``kelm/resources/conceptnet_relations.yaml``; relations in no group are left out.

Lines dropped by the language or relation filter are only checked for their column count and
for URI prefixes (a head, or a non-``/r/ExternalURL`` tail, that is not ``/c/...``); the lines
that make edges are checked fully (term present, valid UTF-8, numeric weight). Malformed lines
are skipped and reported with their exact line numbers (or fatal with ``strict``).

Speed: the file is read in parallel blocks (:mod:`kelm.graph.sources._blocks`), and each block
is handled with a few dozen vectorised calls, no per-row Python. First the prefix tests, on
each value's first 8 bytes read as one integer, drop the ~70% non-English rows of the real dump
at almost no cost; then relations are mapped on the dictionary of the block's relation URIs (a
few dozen), node names are cut out of the column bytes with numpy, and weights are parsed from
the last bytes of the JSON, whose distinct spellings (a handful per block) are parsed once each.
"""

from __future__ import annotations

import functools
import math
import re
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kelm._io import read_small_text
from kelm.errors import InputError
from kelm.graph.sources._blocks import Block, open_binary, read_blocks
from kelm.graph.sources.base import TRIPLE_SCHEMA, BuildOptions, LineIssues, SourceOutput

COLUMNS = ["edge", "relation", "head", "tail", "info"]
# Blocks of 8 MiB: measured to cost about a third less CPU per byte than _blocks' default of
# 32 MiB (reading and copying the bigger buffers is slower), and still ~28k lines each.
BLOCK_BYTES = 8 << 20
EXTERNAL_URL = b"/r/ExternalURL"  # the one relation whose tails are web addresses, not concepts

# The weight as JSON writes a number. ConceptNet's JSON keys are sorted, so "weight" comes last
# and is found in a short tail of the column; _WEIGHT_ANYWHERE is the fallback for other files.
_NUMBER = rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_WEIGHT_AT_END = re.compile(rb'"weight"\s*:\s*(' + _NUMBER + rb")\s*\}\s*$")
_WEIGHT_ANYWHERE = r'"weight"\s*:\s*(?P<w>' + _NUMBER.decode() + r")\s*[,}]"
_WEIGHT_TAILS = (16, 40)  # tail widths tried in turn (multiples of 8): '"weight": 1.0}' is 14

_CONCEPT = int.from_bytes(b"/c/", "little")
_ENGLISH = int.from_bytes(b"/c/en/", "little")
_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)

_EMPTY = TRIPLE_SCHEMA.empty_table()


# ------------------------------------------------------------------------ relation mapping
@dataclass(frozen=True)
class RelationMap:
    """Merged relation groups: ``groups[name]`` lists ``(member, reversed)`` pairs."""

    groups: dict[str, list[tuple[str, bool]]]
    source: str

    @property
    def order(self) -> list[str]:
        """Group names in file order: they fix the relation ids of the index."""
        return list(self.groups)

    @functools.cached_property
    def members(self) -> dict[str, tuple[int, bool]]:
        """ConceptNet relation name -> (group id, reversed)."""
        return {
            member: (gid, rev)
            for gid, members in enumerate(self.groups.values())
            for member, rev in members
        }


@functools.lru_cache(maxsize=1)
def default_relation_map() -> RelationMap:
    """The 17 merged relation groups of MHGRN (Feng et al. 2020) shipped with kelm."""
    resource = resources.files("kelm") / "resources" / "conceptnet_relations.yaml"
    return parse_relation_map(resource.read_text(encoding="utf-8"), "conceptnet_relations.yaml")


def load_relation_map(path: str | Path) -> RelationMap:
    """A user mapping file ``{merged_name: [member, "*reversed_member", ...]}``.

    Raises:
        InputError: the file is unreadable or not a valid mapping (one line naming the file).
    """
    text = read_small_text(path, what="relation mapping", error=InputError)
    return parse_relation_map(text, str(path))


def parse_relation_map(text: str, where: str) -> RelationMap:
    """Parse and check a mapping's YAML text; ``where`` names it in error messages.

    Each key is a merged relation, its value the ConceptNet relations merged into it (``IsA``,
    ``/r/IsA`` or ``isa``); ``"*name"`` reverses that relation's edges. A group's own name is
    one of its members even when it is not listed.
    """
    import yaml

    def fail(reason: str) -> InputError:
        return InputError(
            f"{where}: not a valid relation mapping ({reason}); expected "
            "'merged_name: [member, \"*reversed_member\", ...]' per line"
        )

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        hint = '; quote reversed members: "*hasa"' if "alias" in problem else ""
        raise fail(f"YAML error{at}: {problem}{hint}") from None
    if not isinstance(data, dict) or not data:
        raise fail("the file must hold a non-empty mapping")
    groups: dict[str, list[tuple[str, bool]]] = {}
    owner: dict[str, str] = {}
    for raw_name, raw_members in data.items():
        name = _relation_name(raw_name)
        if not name:
            raise fail(f"bad group name {raw_name!r}")
        if name in groups:
            raise fail(f"group {name!r} given twice")
        if isinstance(raw_members, str):
            raw_members = [raw_members]
        if raw_members is None:
            raw_members = []
        if not isinstance(raw_members, list):
            raise fail(f"members of {name!r} must be a list of relation names")
        members: list[tuple[str, bool]] = []
        for raw in raw_members:
            reverse = isinstance(raw, str) and raw.strip().startswith("*")
            member = _relation_name(raw.strip()[1:] if reverse else raw)
            if not member:
                raise fail(f"bad member {raw!r} in group {name!r}")
            members.append((member, reverse))
        if name not in {m for m, _ in members}:
            members.insert(0, (name, False))  # a group's own name is one of its members
        for member, _ in members:
            if owner.get(member) == name:
                raise fail(f"relation {member!r} listed twice in group {name!r}")
            if member in owner:
                raise fail(f"relation {member!r} is in both {owner[member]!r} and {name!r}")
            owner[member] = name
        groups[name] = members
    return RelationMap(groups, where)


def _relation_name(value: object) -> str:
    """``/r/IsA``, ``IsA`` or ``isa`` -> ``isa``; ``""`` for anything that is not a name."""
    if not isinstance(value, str):
        return ""
    value = value.strip()
    value = value[3:] if value.startswith("/r/") else value
    if not value or "*" in value or any(c.isspace() for c in value):
        return ""
    return value.lower()


# ------------------------------------------------------------------------ reading
def read_conceptnet(path: Path, options: BuildOptions, issues: LineIssues) -> SourceOutput:
    """Read a ConceptNet 5 assertions file (``.csv`` or ``.csv.gz``) into triples.

    Raises:
        InputError: the file is not a ConceptNet assertions file, is truncated, the relation
            mapping is invalid, or (``strict``) a line is malformed.
    """
    path = Path(path)
    rmap = None
    if options.merge_relations:
        rmap = (
            load_relation_map(options.relation_map)
            if options.relation_map
            else default_relation_map()
        )
    _check_format(path)

    def transform(block: Block, local: LineIssues) -> tuple[pa.Table, int]:
        return _to_triples(block, local, options, rmap), block.n_lines

    # The edge URI column is never used: Arrow skips materialising it.
    parts = read_blocks(
        path,
        COLUMNS,
        transform,
        issues,
        include=COLUMNS[1:],
        block_bytes=BLOCK_BYTES,
        progress=options.progress,
    )
    out = SourceOutput(
        triples=[t for t, _ in parts if t.num_rows], relation_order=rmap.order if rmap else None
    )
    out.lines_read = sum(n for _, n in parts)
    return out


def _check_format(path: Path) -> None:
    """Fail early, in one line, when the file is not a ConceptNet assertions file."""
    expected = "expected 5 tab-separated columns: /a/[...] edge URI, /r/ relation, head, tail, JSON"
    try:
        with open_binary(path) as fh:
            line = b""
            for _ in range(100):  # skip leading blank lines
                line = fh.readline(1 << 16)
                if not line or line.strip():
                    break
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(f"{path}: unreadable or truncated compressed input ({exc})") from None
    if not line.strip():
        raise InputError(f"{path}: not a ConceptNet assertions file (no data lines)")
    fields = line.rstrip(b"\r\n").split(b"\t")
    if len(fields) != 5:
        raise InputError(
            f"{path}: not a ConceptNet assertions file (first line has "
            f"{len(fields)} column(s); {expected})"
        )
    if not (
        fields[0].startswith(b"/a/[")
        and fields[1].startswith(b"/r/")
        and fields[4].lstrip().startswith(b"{")
    ):
        raise InputError(
            f"{path}: not a ConceptNet assertions file (first line does not look "
            f"like an assertion; {expected})"
        )


def _one(column: pa.ChunkedArray) -> pa.Array:
    array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return array.fill_null(b"") if array.null_count else array


def _np(mask) -> np.ndarray:
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A binary array's value offsets (``len + 1``, int64) and data bytes, without copying."""
    _, offsets_buf, data_buf = array.buffers()
    dtype = np.int64 if pa.types.is_large_binary(array.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=dtype)[array.offset : array.offset + len(array) + 1]
    if data_buf is not None and data_buf.size:
        data = np.frombuffer(data_buf, dtype=np.uint8)
    else:
        data = np.zeros(8, dtype=np.uint8)
    return offsets.astype(np.int64), data


def _heads_of(column: pa.Array) -> np.ndarray:
    """Each value's first 8 bytes as a little-endian uint64, zero past the value's end."""
    offsets, data = _buffers(column)
    padded = np.concatenate([data, np.zeros(8, dtype=np.uint8)])
    words = np.ndarray((padded.shape[0] - 7,), dtype="<u8", buffer=padded, strides=(1,))
    lengths = np.minimum(offsets[1:] - offsets[:-1], 8)
    return words[offsets[:-1]] & _LOW_BYTES[lengths]


def _to_triples(
    block: Block, issues: LineIssues, options: BuildOptions, rmap: RelationMap | None
) -> pa.Table:
    table = block.table
    if table.num_rows == 0:
        return _EMPTY
    head, tail = _one(table["head"]), _one(table["tail"])
    relation = _one(table["relation"])
    found: list[tuple[int, str]] = []  # (row, reason), reported in line order at the end

    # 1. Prefix tests over every row, on each value's first 8 bytes: ends that are no concept
    #    URI are malformed wherever they are; then the language filter drops most rows.
    head_word, tail_word = _heads_of(head), _heads_of(tail)
    head_concept = (head_word & 0xFFFFFF) == _CONCEPT
    tail_concept = (tail_word & 0xFFFFFF) == _CONCEPT
    bad_head = np.flatnonzero(~head_concept)
    if bad_head.size:  # Arrow parses a blank line as a row of empty values: not malformed
        blank = np.ones(bad_head.size, dtype=bool)
        for name in table.column_names:
            offsets, _ = _buffers(_one(table[name]))
            blank &= offsets[bad_head + 1] == offsets[bad_head]
        bad_head = bad_head[~blank]
    bad_tail = np.flatnonzero(head_concept & ~tail_concept)
    if bad_tail.size:  # /r/ExternalURL's tails are web addresses, not concepts
        external = pc.equal(relation.take(pa.array(bad_tail)), pa.scalar(EXTERNAL_URL, pa.binary()))
        bad_tail = bad_tail[~_np(external)]
    for bad, what in ((bad_head, "head"), (bad_tail, "tail")):
        found += [(int(r), f"bad URI in {what} (expected /c/<language>/<term>)") for r in bad]
    if options.english_only:
        six = 0xFFFFFFFFFFFF
        keep = ((head_word & six) == _ENGLISH) & ((tail_word & six) == _ENGLISH)
    else:
        keep = head_concept & tail_concept
    rows = np.flatnonzero(keep)

    # 2. Relations, on the dictionary of the kept rows' relation URIs (a few dozen values).
    #    Rows of relations outside the mapping are dropped here, before any further work.
    rel_enc = pc.dictionary_encode(relation.take(pa.array(rows)))
    names, rel_group, rel_reverse, rel_bad = _relations(rel_enc.dictionary.to_pylist(), rmap)
    rel_codes = rel_enc.indices.to_numpy()
    wanted = (rel_group[rel_codes] >= 0) | (rel_bad[rel_codes] > 0)
    rows, rel_codes = rows[wanted], rel_codes[wanted]
    n = rows.shape[0]
    if not n:
        _report(block, issues, found)
        return _EMPTY
    problem = np.zeros(n, dtype=np.int8)  # index into reasons; 0 = fine
    reasons = [""]

    def flag(mask: np.ndarray, reason: str) -> None:
        mask = mask & (problem == 0)
        if mask.any():
            reasons.append(reason)
            problem[mask] = len(reasons) - 1

    flag(rel_bad[rel_codes] == 1, "bad relation URI (expected /r/<name>)")
    flag(rel_bad[rel_codes] == 2, "invalid UTF-8 in relation")

    # 3. Node names, cut out of the head and tail columns' bytes (heads first, then tails).
    node_names, node_bad = _node_names([head, tail], rows)
    for side, part in (("head", node_bad[:n]), ("tail", node_bad[n:])):
        flag(part == 1, f"bad URI in {side} (expected /c/<language>/<term>)")
        flag(part == 2, f"invalid UTF-8 in {side}")

    # 4. Weights, from the end of the JSON column.
    weight = _weights(_one(table["info"]), rows)
    flag(np.isnan(weight), 'missing or non-numeric "weight" in the JSON column')

    bad_rows = np.flatnonzero(problem)
    found += [
        (int(r), reasons[p])
        for r, p in zip(rows[bad_rows].tolist(), problem[bad_rows].tolist(), strict=True)
    ]
    _report(block, issues, found)

    sel = np.flatnonzero(problem == 0)
    if not sel.size:
        return _EMPTY
    group = rel_group[rel_codes][sel]
    reverse = rel_reverse[rel_codes][sel]
    heads = np.where(reverse, sel + n, sel)  # positions in node_names
    tails = np.where(reverse, sel, sel + n)
    return pa.table(
        {
            "head": node_names.take(pa.array(heads)),
            "relation": pa.array(names, pa.string()).take(pa.array(group)),
            "tail": node_names.take(pa.array(tails)),
            "weight": pa.array(weight[sel], pa.float32()),
        },
        schema=TRIPLE_SCHEMA,
    )


def _report(block: Block, issues: LineIssues, found: list[tuple[int, str]]) -> None:
    if not found:
        return
    found.sort()
    lines = block.line_of(np.array([r for r, _ in found], dtype=np.int64))
    for line, (_, reason) in zip(lines.tolist(), found, strict=True):
        issues.add(block.path, int(line), reason)


def _relations(
    uris: list[bytes], rmap: RelationMap | None
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Per relation URI: the output names, group id (-1: dropped), reversed, and problem
    (1 bad URI, 2 invalid UTF-8)."""
    count = len(uris)
    group = np.full(count, -1, dtype=np.int64)
    reverse = np.zeros(count, dtype=bool)
    bad = np.zeros(count, dtype=np.int8)
    local: dict[str, int] = {}
    for i, raw in enumerate(uris):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad[i] = 2
            continue
        name = _relation_name(text) if text.startswith("/r/") else ""
        if not name:
            bad[i] = 1
        elif rmap is not None:
            group[i], reverse[i] = rmap.members.get(name, (-1, False))
        else:
            group[i] = local.setdefault(name, len(local))
    return (list(rmap.order) if rmap else list(local)), group, reverse, bad


def _node_names(columns: list[pa.Array], rows: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """Node names of ``column[rows]`` for each column, one after the other, and a problem code
    per name (1 bad URI, 2 invalid UTF-8). The URIs are known to start with ``/c/``.

    The term of ``/c/<language>/<term>[/...]`` lies between the URI's third and fourth slash
    (or its end); the terms are gathered into one buffer, where ``_`` becomes a space and ASCII
    is lower-cased in place. Only names with other characters go through Unicode lower-casing.
    """
    starts, ends, datas = [], [], []
    base = 0
    for column in columns:
        offsets, data = _buffers(column)
        uri_start, uri_end = offsets[rows], offsets[rows + 1]
        slashes = np.flatnonzero(data == ord("/"))
        first = np.searchsorted(slashes, uri_start)  # the leading slash of each URI
        last = slashes.shape[0] - 1
        third = slashes[np.minimum(first + 2, last)]
        fourth = slashes[np.minimum(first + 3, last)]
        has_term = (first + 2 <= last) & (third < uri_end)
        term_end = np.where((first + 3 <= last) & (fourth < uri_end), fourth, uri_end)
        term_start = np.where(has_term, third + 1, term_end)
        starts.append(term_start + base)
        ends.append(term_end + base)
        datas.append(data)
        base += data.shape[0]
    start, end = np.concatenate(starts), np.concatenate(ends)
    data = np.concatenate(datas)
    lengths = end - start
    bad = np.where(lengths <= 0, 1, 0).astype(np.int8)
    lengths = np.maximum(lengths, 0)
    offsets = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    text = data[np.repeat(start - offsets[:-1], lengths) + np.arange(offsets[-1])]
    text[text == ord("_")] = ord(" ")
    np.add(text, 32, out=text, where=(text >= ord("A")) & (text <= ord("Z")))
    names = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), lengths.shape[0], [None, pa.py_buffer(offsets), pa.py_buffer(text)]
    )
    try:
        names = names.cast(pa.large_string())
    except pa.ArrowInvalid:  # rare: decode one by one to find the culprits
        values = []
        for i, raw in enumerate(names.to_pylist()):
            try:
                values.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                bad[i] = max(bad[i], 2)
                values.append("")
        names = pa.array(values, pa.large_string())
    if (text >= 0x80).any():
        names = pc.utf8_lower(names)
    return names.cast(pa.string()), bad


def _weights(info: pa.Array, rows: np.ndarray) -> np.ndarray:
    """The ``"weight"`` in the JSON of ``info[rows]`` as float32; NaN where missing or not a
    number.

    ConceptNet sorts the JSON keys, so the weight is at the end: the last 16 (then 40) bytes of
    each value are gathered from the column's buffer as fixed-width strings, which take a
    handful of distinct values per block, each parsed once. Values whose weight is not found
    there (other key orders, short values) are searched whole.
    """
    offsets, data = _buffers(info)
    value_start, value_end = offsets[rows], offsets[rows + 1]
    out = np.full(rows.shape[0], np.nan, dtype=np.float64)
    missing = np.ones(rows.shape[0], dtype=bool)
    # Every byte position's 8-byte word (unaligned): a tail of 8k bytes is k word gathers.
    words = np.ndarray((max(data.shape[0] - 7, 0),), dtype="<u8", buffer=data, strides=(1,))
    for width in _WEIGHT_TAILS:
        sel = np.flatnonzero(missing & (value_end - value_start >= width))
        if not sel.size:
            continue
        first = value_end[sel] - width
        tails = np.empty((sel.shape[0], width // 8), dtype="<u8")
        for k in range(width // 8):
            tails[:, k] = words[first + 8 * k]
        fixed = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(width), sel.shape[0], [None, pa.py_buffer(tails)]
        )
        encoded = pc.dictionary_encode(fixed)
        parsed = np.array(
            [_weight_at_end(v) for v in encoded.dictionary.to_pylist()], dtype=np.float64
        )
        got = parsed[encoded.indices.to_numpy()]
        out[sel] = got
        missing[sel] = np.isnan(got)
    rest = np.flatnonzero(missing)
    if rest.size:  # keys in another order, or short values: search the whole JSON text
        text = info.take(pa.array(rows[rest]))
        found = pc.extract_regex(text, _WEIGHT_ANYWHERE).flatten()[0]  # null where no match
        values = pc.cast(found.cast(pa.string()), pa.float64()).to_numpy(zero_copy_only=False)
        out[rest] = np.where(np.isfinite(values), values, np.nan)
    return out.astype(np.float32)


def _weight_at_end(tail: bytes) -> float:
    match = _WEIGHT_AT_END.search(tail)
    if not match:
        return math.nan
    value = float(match.group(1))
    return value if math.isfinite(value) else math.nan
