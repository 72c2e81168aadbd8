"""ConceptNet 5 assertions: ``conceptnet-assertions-5.7.0.csv`` (plain or gzip).

Five tab-separated columns, no quoting (the JSON column holds double quotes)::

    /a/[/r/IsA/,/c/en/dog/n/,/c/en/animal/]  /r/IsA  /c/en/dog/n  /c/en/animal  {..., "weight": 1.0}

A node is named by the term segment of its URI: ``/c/en/ice_cream/n/wn/food`` -> ``ice cream``
(part of speech and sense dropped, ``_`` -> space, lower case). Relations lose ``/r/`` and are
lower-cased, then (by default) merged into the 17 groups of the commonsense-QA literature,
shipped as ``kelm/resources/conceptnet_relations.yaml``; relations in no group are left out.

Speed: the file is read in parallel blocks (:mod:`kelm.graph.sources._blocks`). Each block is
first cut down with prefix tests on the raw binary columns, which drop the ~70% non-English rows
of the real dump at almost no cost. The rest is vectorised over dictionaries of unique values:
a block of 100k lines has a few dozen relation URIs, a few dozen spellings of the JSON's tail
(where the weight is) and some ten thousand distinct node URIs, so the per-row work is a hash
and a gather.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kelm.errors import InputError
from kelm.graph.sources._blocks import Block, open_binary, read_blocks
from kelm.graph.sources.base import TRIPLE_SCHEMA, BuildOptions, LineIssues, SourceOutput

COLUMNS = ["edge", "relation", "head", "tail", "info"]
EXTERNAL_URL = b"/r/ExternalURL"  # the one relation whose tails are web addresses, not concepts

# The term segment of a concept URI: /c/<language>/<term>[/<pos>[/<sense>...]].
_TERM = r"^/c/[^/]+/(?P<term>[^/]+)"
# The weight as JSON writes a number. ConceptNet's JSON keys are sorted, so "weight" comes last
# and is found in a short tail of the column; _WEIGHT_ANYWHERE is the fallback for other files.
_NUMBER = rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_WEIGHT_AT_END = re.compile(rb'"weight"\s*:\s*(' + _NUMBER + rb")\s*\}\s*$")
_WEIGHT_ANYWHERE = r'"weight"\s*:\s*(?P<w>' + _NUMBER.decode() + r")\s*[,}]"
_WEIGHT_TAILS = (16, 40)  # tail lengths tried in turn: '"weight": 1.0}' is 14 bytes

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
        return {member: (gid, rev) for gid, members in enumerate(self.groups.values())
                for member, rev in members}


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
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the relation mapping ({exc})") from None
    return parse_relation_map(text, str(path))


def parse_relation_map(text: str, where: str) -> RelationMap:
    """Parse and check a mapping's YAML text; ``where`` names it in error messages."""
    import yaml

    def fail(reason: str) -> InputError:
        return InputError(f"{where}: not a valid relation mapping ({reason}); expected "
                          "'merged_name: [member, \"*reversed_member\", ...]' per line")

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        hint = "; quote reversed members: \"*hasa\"" if "alias" in problem else ""
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
        rmap = load_relation_map(options.relation_map) if options.relation_map \
            else default_relation_map()
    _check_format(path)

    def transform(block: Block, local: LineIssues) -> tuple[pa.Table, int]:
        return _to_triples(block, local, options, rmap), block.n_lines

    parts = read_blocks(path, COLUMNS, transform, issues)
    out = SourceOutput(triples=[t for t, _ in parts if t.num_rows],
                       relation_order=rmap.order if rmap else None)
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
    except (EOFError, OSError) as exc:
        raise InputError(f"{path}: unreadable or truncated compressed input ({exc})") from None
    if not line.strip():
        raise InputError(f"{path}: not a ConceptNet assertions file (no data lines)")
    fields = line.rstrip(b"\r\n").split(b"\t")
    if len(fields) != 5:
        raise InputError(f"{path}: not a ConceptNet assertions file (first line has "
                         f"{len(fields)} column(s); {expected})")
    if not (fields[0].startswith(b"/a/[") and fields[1].startswith(b"/r/")
            and fields[4].lstrip().startswith(b"{")):
        raise InputError(f"{path}: not a ConceptNet assertions file (first line does not look "
                         f"like an assertion; {expected})")


def _one(column: pa.ChunkedArray) -> pa.Array:
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _np(mask) -> np.ndarray:
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _to_triples(block: Block, issues: LineIssues, options: BuildOptions,
                rmap: RelationMap | None) -> pa.Table:
    table = block.table
    if table.num_rows == 0:
        return _EMPTY
    head, tail = _one(table["head"]), _one(table["tail"])
    relation = _one(table["relation"])
    found: list[tuple[int, str]] = []  # (row, reason), reported in line order at the end

    # 1. Prefix tests over every row (a few memcmp per row): ends that are no concept URI are
    #    malformed, wherever they are; then the language filter drops most rows.
    head_concept = _np(pc.starts_with(head, "/c/"))
    tail_concept = _np(pc.starts_with(tail, "/c/"))
    bad_head = ~head_concept
    bad_tail = ~tail_concept
    if bad_tail.any():
        bad_tail &= ~_np(pc.equal(relation, pa.scalar(EXTERNAL_URL, pa.binary())))
    for rows, what in ((np.flatnonzero(bad_head), "head"),
                       (np.flatnonzero(bad_tail & ~bad_head), "tail")):
        found += [(int(r), f"bad URI in {what} (expected /c/<language>/<term>)") for r in rows]
    if options.english_only:
        keep = _np(pc.starts_with(head, "/c/en/")) & _np(pc.starts_with(tail, "/c/en/"))
    else:
        keep = head_concept & tail_concept
    rows = np.flatnonzero(keep)
    if not rows.size:
        _report(block, issues, found)
        return _EMPTY
    take = pa.array(rows)
    head, tail, relation = head.take(take), tail.take(take), relation.take(take)
    info = _one(table["info"]).take(take)
    n = rows.shape[0]
    problem = np.zeros(n, dtype=np.int8)  # index into reasons; 0 = fine
    reasons = [""]

    def flag(mask: np.ndarray, reason: str) -> None:
        mask = mask & (problem == 0)
        if mask.any():
            reasons.append(reason)
            problem[mask] = len(reasons) - 1

    # 2. Relations, on the dictionary of the block's relation URIs.
    rel_enc = pc.dictionary_encode(relation)
    rel_codes = rel_enc.indices.to_numpy()
    names, rel_group, rel_reverse, rel_bad = _relations(rel_enc.dictionary.to_pylist(), rmap)
    flag(rel_bad[rel_codes] == 1, "bad relation URI (expected /r/<name>)")
    flag(rel_bad[rel_codes] == 2, "invalid UTF-8 in relation")

    # 3. Node names, on the dictionary of the block's node URIs.
    ends = pc.dictionary_encode(pa.concat_arrays([head, tail]))
    node_names, node_bad = _node_names(ends.dictionary)
    codes = ends.indices.to_numpy()
    head_codes, tail_codes = codes[:n], codes[n:]
    for side, side_codes in (("head", head_codes), ("tail", tail_codes)):
        flag(node_bad[side_codes] == 1, f"bad URI in {side} (expected /c/<language>/<term>)")
        flag(node_bad[side_codes] == 2, f"invalid UTF-8 in {side}")

    # 4. Weights, from the JSON column.
    weight = _weights(info)
    flag(np.isnan(weight), 'missing or non-numeric "weight" in the JSON column')

    bad_rows = np.flatnonzero(problem)
    found += [(int(r), reasons[p]) for r, p in zip(rows[bad_rows].tolist(),
                                                  problem[bad_rows].tolist(), strict=True)]
    _report(block, issues, found)

    group = rel_group[rel_codes]
    reverse = rel_reverse[rel_codes]
    sel = np.flatnonzero((problem == 0) & (group >= 0))
    if not sel.size:
        return _EMPTY
    heads = np.where(reverse, tail_codes, head_codes)[sel]
    tails = np.where(reverse, head_codes, tail_codes)[sel]
    return pa.table({
        "head": node_names.take(pa.array(heads)),
        "relation": pa.array(names, pa.string()).take(pa.array(group[sel])),
        "tail": node_names.take(pa.array(tails)),
        "weight": pa.array(weight[sel], pa.float32()),
    }, schema=TRIPLE_SCHEMA)


def _report(block: Block, issues: LineIssues, found: list[tuple[int, str]]) -> None:
    if not found:
        return
    found.sort()
    lines = block.line_of(np.array([r for r, _ in found], dtype=np.int64))
    for line, (_, reason) in zip(lines.tolist(), found, strict=True):
        issues.add(block.path, int(line), reason)


def _relations(uris: list[bytes], rmap: RelationMap | None
               ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Per relation URI: output names, group id (-1: dropped), reversed, problem (1 bad, 2 UTF-8)."""
    count = len(uris)
    group = np.full(count, -1, dtype=np.int64)
    reverse = np.zeros(count, dtype=bool)
    bad = np.zeros(count, dtype=np.int8)
    names: list[str] = list(rmap.order) if rmap else []
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
    if rmap is None:
        names = list(local)
    return names, group, reverse, bad


def _node_names(uris: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Names of unique node URIs, and per URI a problem code (1 bad URI, 2 invalid UTF-8)."""
    term = pc.extract_regex(uris, _TERM).field("term")
    bad = np.where(_np(pc.is_null(term)), 1, 0).astype(np.int8)
    try:
        text = term.cast(pa.string())
    except pa.ArrowInvalid:  # rare: decode one by one to find the culprits
        values = []
        for i, raw in enumerate(term.to_pylist()):
            try:
                values.append(raw.decode("utf-8") if raw is not None else None)
            except UnicodeDecodeError:
                bad[i] = 2
                values.append(None)
        text = pa.array(values, pa.string())
    names = pc.utf8_lower(pc.replace_substring(text, "_", " "))
    return names, bad


def _weights(info: pa.Array) -> np.ndarray:
    """The ``"weight"`` of each JSON value as float32; NaN where missing or not a number.

    The weight is looked for in the last few bytes of the JSON first (ConceptNet sorts keys, so
    it is last): those tails take a handful of distinct values per block, parsed once each.
    """
    n = len(info)
    out = np.full(n, np.nan, dtype=np.float64)
    todo = np.arange(n)
    for width in _WEIGHT_TAILS:
        part = info if todo.size == n else info.take(pa.array(todo))
        tails = pc.dictionary_encode(pc.binary_slice(part, -width))
        parsed = np.array([_weight_at_end(v) for v in tails.dictionary.to_pylist()],
                          dtype=np.float64)
        got = parsed[tails.indices.to_numpy()]
        out[todo] = got
        todo = todo[np.isnan(got)]
        if not todo.size:
            return out.astype(np.float32)
    # Keys in another order: search the whole JSON text of the remaining rows.
    found = pc.extract_regex(info.take(pa.array(todo)), _WEIGHT_ANYWHERE).field("w")
    values = pc.cast(found.cast(pa.string()), pa.float64()).to_numpy(zero_copy_only=False)
    out[todo] = np.where(np.isfinite(values), values, np.nan)
    return out.astype(np.float32)


def _weight_at_end(tail: bytes) -> float:
    match = _WEIGHT_AT_END.search(tail)
    if not match:
        return math.nan
    value = float(match.group(1))
    return value if math.isfinite(value) else math.nan
