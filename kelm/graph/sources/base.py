"""What every graph source produces, and how it reports malformed lines.

A source reads one input file and returns a :class:`SourceOutput`: Arrow tables of
``(head, relation, tail, weight)`` triples plus optional node metadata. Everything after
that (vocabularies, CSR, manifest) is shared by all formats, in :mod:`kelm.graph.build`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from kelm.errors import InputError


def concat_as(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """``tables`` as one table of ``schema`` (columns selected and cast); empty ones add no
    chunk, and none at all give the schema's empty table."""
    full = [t.select(schema.names).cast(schema) for t in tables if t.num_rows]
    return pa.concat_tables(full) if full else schema.empty_table()


TRIPLE_SCHEMA = pa.schema(
    [
        ("head", pa.string()),
        ("relation", pa.string()),
        ("tail", pa.string()),
        ("weight", pa.float32()),
    ]
)


@dataclass
class BuildOptions:
    """Options that change what a build produces. All of them are recorded in the manifest.

    Args:
        format: input format (``conceptnet``, ``cn100k``, ``tsv``, ``rdf``, ``wordnet``).
        strict: make the first malformed line fatal instead of skipping it.
        relation_map: YAML file overriding the ConceptNet relation merge mapping.
        merge_relations: ConceptNet only; ``False`` keeps the original relation names.
        english_only: ConceptNet only; keep edges whose both ends are ``/c/en/``.
        keep_self_loops: keep edges whose head equals their tail.
        keep_duplicates: keep repeated ``(head, relation, tail)`` edges (default: merge them,
            keeping the largest weight).
        literals: RDF only; ``keep`` non-label literals as node attributes, or ``drop`` them.
        lowercase: lower-case node names (``tsv``/``cn100k``; ConceptNet always lower-cases).
    """

    format: str = "conceptnet"
    strict: bool = False
    relation_map: str | None = None
    merge_relations: bool = True
    english_only: bool = True
    keep_self_loops: bool = False
    keep_duplicates: bool = False
    literals: str = "keep"
    lowercase: bool = False
    # Not part of what is built (left out of the manifest): whether readers show progress bars.
    progress: bool = field(default=False, compare=False)

    def to_dict(self) -> dict:
        """The options that shape the index (recorded in its manifest)."""
        out = dataclasses.asdict(self)
        out.pop("progress")
        return out


@dataclass
class SourceOutput:
    """What one input file contributes to an index.

    ``triples`` tables follow :data:`TRIPLE_SCHEMA`. Node metadata tables are keyed by the node
    name used in the triples: ``labels`` (node, label), ``aliases`` (node, alias), ``texts``
    (node, text), ``attributes`` (node, key, value). ``nodes`` lists nodes that must exist even
    without edges (e.g. isolated WordNet synsets). ``relation_order`` fixes the relation ids.
    """

    triples: list[pa.Table] = field(default_factory=list)
    nodes: list[pa.Array] = field(default_factory=list)
    labels: list[pa.Table] = field(default_factory=list)
    aliases: list[pa.Table] = field(default_factory=list)
    texts: list[pa.Table] = field(default_factory=list)
    attributes: list[pa.Table] = field(default_factory=list)
    relation_order: list[str] | None = None
    lines_read: int = 0

    def extend(self, other: SourceOutput) -> None:
        self.triples += other.triples
        self.nodes += other.nodes
        self.labels += other.labels
        self.aliases += other.aliases
        self.texts += other.texts
        self.attributes += other.attributes
        self.lines_read += other.lines_read
        if other.relation_order:
            seen = list(self.relation_order or [])
            seen += [r for r in other.relation_order if r not in seen]
            self.relation_order = seen


class Source(Protocol):
    def __call__(self, path: Path, options: BuildOptions, issues: LineIssues) -> SourceOutput: ...


@dataclass
class _Issue:
    path: str
    line: int | None
    reason: str


class LineIssues:
    """Counts malformed input lines and keeps the first few for the report.

    With ``strict=True`` the first one raises :class:`InputError` naming file and line.
    """

    def __init__(self, strict: bool = False, keep: int = 5) -> None:
        self.strict = strict
        self.keep = keep
        self.counts: dict[str, int] = {}
        self.first: list[_Issue] = []

    def add(self, path: str | Path, line: int | None, reason: str) -> None:
        path = str(path)
        where = f"{path}:{line}" if line is not None else path
        if self.strict:
            raise InputError(f"{where}: {reason} (--strict)")
        self.counts[path] = self.counts.get(path, 0) + 1
        if len(self.first) < self.keep:
            self.first.append(_Issue(path, line, reason))

    def merge(self, other: LineIssues, line_offset: int = 0) -> None:
        """Add the issues collected by ``other`` (e.g. one block's, whose lines are counted
        from the block's start: ``line_offset`` shifts them to file lines), in order."""

        def shifted(issue: _Issue) -> _Issue:
            line = issue.line + line_offset if issue.line is not None else None
            return _Issue(issue.path, line, issue.reason)

        if self.strict and other.first:
            first = shifted(other.first[0])
            self.add(first.path, first.line, first.reason)
        for path, n in other.counts.items():
            self.counts[path] = self.counts.get(path, 0) + n
        room = self.keep - len(self.first)
        if room > 0:
            self.first.extend(shifted(i) for i in other.first[:room])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> list[str]:
        """One line per file with skipped lines, then the first few issues."""
        lines = [f"skipped {n:,} malformed line(s) in {p}" for p, n in self.counts.items()]
        for issue in self.first:
            where = f"{issue.path}:{issue.line}" if issue.line is not None else issue.path
            lines.append(f"  {where}: {issue.reason}")
        return lines

    def to_dict(self) -> dict:
        return {
            "total": self.total,
            "per_file": dict(self.counts),
            "first": [dataclasses.asdict(i) for i in self.first],
        }
