"""RDF graphs: N-Triples (parallel blocks, :mod:`.ntriples`), Turtle and RDF/XML (parsed whole).

Node names are URIs (full strings) and blank nodes (``_:<file>.<label>``, where ``<file>`` is
a short digest of the input file, so blank nodes of different files never merge). Triples whose
object is a URI or blank node become edges of weight 1.0; the relation is the predicate's local
name (``http://xmlns.com/foaf/0.1/knows`` -> ``knows``) unless two predicates of the file share
it, then a prefixed name (``foaf:knows``) or the full URI. ``rdf:type`` is always ``type``.

Literals never become nodes:

* ``skos:prefLabel``, ``rdfs:label`` and ``skos:altLabel`` give the node label (preferred
  label, else ``rdfs:label``; English or untagged values first) and aliases (every label value,
  lower-cased, whitespace-normalised);
* ``skos:definition`` and ``rdfs:comment`` give the node text (the first English one);
* every other literal becomes a node attribute (``key`` = predicate short name, ``value`` =
  lexical form) with ``literals="keep"``, and is ignored with ``"drop"``.

A subject that only has literals is still a node.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kelm.errors import InputError
from kelm.graph.sources._blocks import open_binary
from kelm.graph.sources.base import TRIPLE_SCHEMA, BuildOptions, LineIssues, SourceOutput
from kelm.graph.sources.ntriples import read_ntriples
from kelm.graph.sources.rdf_terms import (  # noqa: F401 -- re-exported: the rules of RDF reading
    GIVE_UP_AFTER,
    LABELS,
    RDF_TYPE,
    RDFS,
    SKOS,
    TEXTS,
    _best_per_node,
    _default_prefixes,
    _file_tag,
    _lang_rank,
    _prefix_map,
    _short_names,
)

BATCH_ROWS = 100_000
_EXTENSIONS = {
    ".nt": "nt",
    ".ntriples": "nt",
    ".ttl": "turtle",
    ".turtle": "turtle",
    ".n3": "turtle",  # N3 without formulas is Turtle; rdflib's N3 mode needs another store
    ".rdf": "xml",
    ".owl": "xml",
    ".xml": "xml",
}


def read_rdf(path: Path, options: BuildOptions, issues: LineIssues) -> SourceOutput:
    """Read one RDF file; the syntax is chosen by extension (after ``.gz``), gzip by magic
    bytes. Unknown extensions are read as N-Triples.

    Raises:
        InputError: a Turtle or RDF/XML syntax error, an N-Triples file without a single valid
            statement, unreadable compressed input, or (``strict``) a malformed line.
    """
    path = Path(path)
    syntax = rdf_syntax(path)
    if syntax == "nt":
        return read_ntriples(path, options, issues)
    return _read_graph(path, syntax, options)


def rdf_syntax(path: Path) -> str:
    """``nt``, ``turtle`` or ``xml`` from the file name (``.gz`` ignored)."""
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return _EXTENSIONS.get(Path(name).suffix, "nt")


# ---------------------------------------------------------------------- collecting statements
class _Collector:
    """Receives statements and keeps them in Arrow batches of at most ``BATCH_ROWS`` rows."""

    def __init__(self, keep_literals: bool) -> None:
        self.keep_literals = keep_literals
        self.predicates: set[str] = set()
        self.seq = 0
        self.statements = 0
        self._reset()
        self.edges: list[pa.Table] = []
        self.label_tables: list[pa.Table] = []
        self.alias_tables: list[pa.Table] = []
        self.text_tables: list[pa.Table] = []
        self.attr_tables: list[pa.Table] = []
        self.node_arrays: list[pa.Array] = []

    def _reset(self) -> None:
        self.e_head: list[str] = []
        self.e_rel: list[str] = []
        self.e_tail: list[str] = []
        self.l_node: list[str] = []
        self.l_rank: list[int] = []
        self.l_seq: list[int] = []
        self.l_value: list[str] = []
        self.a_node: list[str] = []
        self.a_alias: list[str] = []
        self.t_node: list[str] = []
        self.t_rank: list[int] = []
        self.t_seq: list[int] = []
        self.t_value: list[str] = []
        self.k_node: list[str] = []
        self.k_pred: list[str] = []
        self.k_value: list[str] = []
        self.subjects: list[str] = []
        self.rows = 0

    def edge(self, subject: str, predicate: str, obj: str) -> None:
        self.statements += 1
        self.predicates.add(predicate)
        self.e_head.append(subject)
        self.e_rel.append(predicate)
        self.e_tail.append(obj)
        self.rows += 1
        if self.rows >= BATCH_ROWS:
            self.flush()

    def literal(self, subject: str, predicate: str, value: str, lang: str | None) -> None:
        self.statements += 1
        self.subjects.append(subject)
        self.seq += 1
        if predicate in LABELS:
            alias = " ".join(value.split()).lower()
            if alias:
                self.a_node.append(subject)
                self.a_alias.append(alias)
            rank = LABELS[predicate]
            label = value.strip()
            if rank is not None and label:
                # English, then untagged labels beat any other language; within each, the
                # preferred label beats rdfs:label.
                lang_rank = _lang_rank(lang)
                self.l_node.append(subject)
                self.l_rank.append(4 * (lang_rank == 2) + 2 * rank + (lang_rank == 1))
                self.l_seq.append(self.seq)
                self.l_value.append(label)
        elif predicate in TEXTS:
            text = value.strip()
            if text:
                self.t_node.append(subject)
                self.t_rank.append(_lang_rank(lang) * 2 + TEXTS[predicate])
                self.t_seq.append(self.seq)
                self.t_value.append(text)
        elif self.keep_literals:
            self.predicates.add(predicate)
            self.k_node.append(subject)
            self.k_pred.append(predicate)
            self.k_value.append(value)
        self.rows += 1
        if self.rows >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.e_head:
            n = len(self.e_head)
            self.edges.append(
                pa.table(
                    {
                        "head": pa.array(self.e_head, pa.string()),
                        "relation": pa.array(self.e_rel, pa.string()),
                        "tail": pa.array(self.e_tail, pa.string()),
                        "weight": pa.array(np.ones(n, np.float32)),
                    }
                )
            )
        if self.l_node:
            self.label_tables.append(
                pa.table(
                    {
                        "node": pa.array(self.l_node, pa.string()),
                        "rank": pa.array(self.l_rank, pa.int8()),
                        "seq": pa.array(self.l_seq, pa.int64()),
                        "label": pa.array(self.l_value, pa.string()),
                    }
                )
            )
        if self.a_node:
            self.alias_tables.append(
                pa.table(
                    {
                        "node": pa.array(self.a_node, pa.string()),
                        "alias": pa.array(self.a_alias, pa.string()),
                    }
                )
            )
        if self.t_node:
            self.text_tables.append(
                pa.table(
                    {
                        "node": pa.array(self.t_node, pa.string()),
                        "rank": pa.array(self.t_rank, pa.int8()),
                        "seq": pa.array(self.t_seq, pa.int64()),
                        "text": pa.array(self.t_value, pa.string()),
                    }
                )
            )
        if self.k_node:
            self.attr_tables.append(
                pa.table(
                    {
                        "node": pa.array(self.k_node, pa.string()),
                        "key": pa.array(self.k_pred, pa.string()),
                        "value": pa.array(self.k_value, pa.string()),
                    }
                )
            )
        if self.subjects:
            self.node_arrays.append(pc.unique(pa.array(self.subjects, pa.string())))
        self._reset()

    def output(self, prefixes: dict[str, str], lines_read: int) -> SourceOutput:
        self.flush()
        names = _short_names(self.predicates, prefixes)
        full = pa.array(sorted(names), pa.string())
        short = pa.array([names[u] for u in sorted(names)], pa.string())

        def rename(column: pa.ChunkedArray) -> pa.Array:
            return short.take(pc.index_in(column, value_set=full))

        triples = [
            t.set_column(1, "relation", rename(t["relation"])).cast(TRIPLE_SCHEMA)
            for t in self.edges
        ]
        attributes = [t.set_column(1, "key", rename(t["key"])) for t in self.attr_tables]
        out = SourceOutput(
            triples=triples,
            nodes=self.node_arrays,
            labels=_best_per_node(self.label_tables, "label"),
            aliases=self.alias_tables,
            texts=_best_per_node(self.text_tables, "text"),
            attributes=attributes,
        )
        out.lines_read = lines_read
        return out


# ---------------------------------------------------------------------- Turtle and others
def _read_graph(path: Path, syntax: str, options: BuildOptions) -> SourceOutput:
    from rdflib import BNode, Graph, Literal, URIRef
    from rdflib.plugins.parsers.notation3 import BadSyntax

    try:
        with open_binary(path) as fh:
            data = fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(f"{path}: unreadable or truncated compressed input ({exc})") from None
    name = {"turtle": "Turtle", "xml": "RDF/XML"}[syntax]
    # SimpleMemory iterates in insertion (= file) order; Memory's order depends on str hashes,
    # which would make the blank node numbering below differ between runs.
    graph = Graph(store="SimpleMemory", bind_namespaces="rdflib")
    base = path.resolve().as_uri()
    try:
        graph.parse(data=data, format=syntax, publicID=base)
    except BadSyntax as exc:
        raise InputError(f"{path}:{exc.lines + 1}: {name} syntax error ({exc._why})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: invalid UTF-8, not a {name} file") from None
    except Exception as exc:  # rdflib's XML and other parsers raise many kinds of errors
        line = getattr(exc, "getLineNumber", None)
        where = f"{path}:{line()}" if callable(line) else str(path)
        raise InputError(f"{where}: {name} syntax error ({exc})") from None
    lines = data.count(b"\n") + (not data.endswith(b"\n"))
    del data

    tag = _file_tag(path)
    blank: dict[object, str] = {}

    def node(term) -> str:
        if isinstance(term, BNode):
            key = blank.get(term)
            if key is None:  # numbered by first appearance: rdflib's own ids are random
                key = blank[term] = f"_:{tag}.b{len(blank)}"
            return key
        return str(term)

    collector = _Collector(options.literals == "keep")
    for s, p, o in graph:
        if not isinstance(s, (URIRef, BNode)) or not isinstance(p, URIRef):
            continue  # not graph data (generalised RDF)
        if isinstance(o, Literal):
            collector.literal(node(s), str(p), str(o), o.language)
        elif isinstance(o, (URIRef, BNode)):
            collector.edge(node(s), str(p), node(o))
    prefixes = _default_prefixes()
    prefixes.update(_prefix_map(graph.namespaces()))
    return collector.output(prefixes, lines)
