"""RDF graphs: N-Triples (streamed line by line), Turtle and RDF/XML (parsed whole).

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
import hashlib
import re
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rdflib.plugins.parsers.ntriples import (
    ParseError,
    W3CNTriplesParser,
    r_literal,
    r_nodeid,
    r_uriref,
    unquote,
)

from kelm.errors import InputError
from kelm.graph.sources._blocks import open_binary
from kelm.graph.sources.base import TRIPLE_SCHEMA, BuildOptions, LineIssues, SourceOutput

BATCH_ROWS = 100_000
#: Give up on a file whose first this many statements are all malformed (wrong format).
GIVE_UP_AFTER = 1_000

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
# Label predicates and their rank (lower is preferred as the display label; None: alias only).
LABELS = {SKOS + "prefLabel": 0, RDFS + "label": 1, SKOS + "altLabel": None}
TEXTS = {SKOS + "definition": 0, RDFS + "comment": 1}

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
# An absolute IRI: a scheme, then no character N-Triples forbids in an IRIREF.
_VALID_IRI = re.compile(r'[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20<>"{}|^`\\]*\Z')
_PLAIN_IRIREF = re.compile(r'<([A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20<>"{}|^`\\]*)>')
_SURROGATE = re.compile("[\ud800-\udfff]")


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
        from kelm.graph.sources.ntriples import read_ntriples

        return read_ntriples(path, options, issues)
    return _read_graph(path, syntax, options)


def rdf_syntax(path: Path) -> str:
    """``nt``, ``turtle`` or ``xml`` from the file name (``.gz`` ignored)."""
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return _EXTENSIONS.get(Path(name).suffix, "nt")


def _file_tag(path: Path) -> str:
    """A short digest naming the file's blank nodes: of its size and first MiB, so it is the
    same on every machine and differs between (practically) any two different files."""
    digest = hashlib.sha1(str(path.stat().st_size).encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:8]


# ---------------------------------------------------------------------- collecting statements
def _lang_rank(lang: str | None) -> int:
    """English first, then untagged, then any other language."""
    if not lang:
        return 1
    lang = lang.lower()
    return 0 if lang == "en" or lang.startswith("en-") else 2


def _short_names(predicates: Iterable[str], prefixes: dict[str, str]) -> dict[str, str]:
    """Readable, unambiguous relation names for full predicate URIs (deterministic).

    The local name when no other predicate shares it, else ``prefix:local`` with a known
    prefix, else the full URI. ``rdf:type`` always keeps ``type``.
    """
    by_local: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for uri in sorted(set(predicates)):
        local = _local_name(uri)
        if not local:
            names[uri] = uri
        else:
            by_local.setdefault(local, []).append(uri)
    for local, uris in by_local.items():
        if len(uris) == 1:
            names[uris[0]] = local
            continue
        for uri in uris:
            if uri == RDF_TYPE:
                names[uri] = local
                continue
            prefix = prefixes.get(uri[: len(uri) - len(local)])
            names[uri] = f"{prefix}:{local}" if prefix else uri
    # A prefixed or local name must not equal another predicate's name.
    taken: dict[str, int] = {}
    for name in names.values():
        taken[name] = taken.get(name, 0) + 1
    return {
        uri: (uri if taken[name] > 1 and uri != RDF_TYPE else name) for uri, name in names.items()
    }


def _local_name(uri: str) -> str:
    for sep in ("#", "/", ":"):
        cut = uri.rfind(sep)
        if cut >= 0:
            return uri[cut + 1 :]
    return uri


def _default_prefixes() -> dict[str, str]:
    from rdflib import Graph

    return _prefix_map(Graph(bind_namespaces="rdflib").namespaces())


def _prefix_map(bindings: Iterable[tuple[str, object]]) -> dict[str, str]:
    """namespace -> prefix; the shortest (then alphabetically first) non-empty prefix wins."""
    best: dict[str, str] = {}
    for prefix, namespace in bindings:
        ns = str(namespace)
        if prefix and (ns not in best or (len(prefix), prefix) < (len(best[ns]), best[ns])):
            best[ns] = prefix
    return best


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


def _best_per_node(tables: list[pa.Table], field: str) -> list[pa.Table]:
    """One row per node: the lowest rank, then the first in the file."""
    if not tables:
        return []
    table = pa.concat_tables(tables).sort_by(
        [("node", "ascending"), ("rank", "ascending"), ("seq", "ascending")]
    )
    nodes = table["node"].combine_chunks()
    first = np.ones(len(nodes), dtype=bool)
    if len(nodes) > 1:
        first[1:] = pc.not_equal(nodes[1:], nodes[:-1]).to_numpy(zero_copy_only=False)
    return [table.filter(pa.array(first)).select(["node", field])]


# ---------------------------------------------------------------------- N-Triples
class _BadURI(ParseError):
    pass


class _BadEscape(ParseError):
    pass


class _LineParser(W3CNTriplesParser):
    """rdflib's N-Triples grammar, fed one line at a time, producing plain values: URIs as
    ``str``, blank nodes as ``_:<tag>.<label>`` and literals as ``(lexical, lang)`` tuples
    (no rdflib term objects, so no per-term validation warnings and less work)."""

    __slots__ = ("tag",)

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag

    def uriref(self):  # type: ignore[override]
        if not self.line.startswith("<"):
            return False
        match = _PLAIN_IRIREF.match(self.line)  # the common case: valid, no escapes
        if match is not None:
            self.line = self.line[match.end() :]
            return match.group(1)
        match = r_uriref.match(self.line)
        if match is None:
            raise _BadURI("bad URI")
        uri = _unescape(match.group(1))
        if not _VALID_IRI.match(uri):
            raise _BadURI("bad URI")
        self.line = self.line[match.end() :]
        return uri

    def nodeid(self, bnode_context=None):  # type: ignore[override]
        if not self.line.startswith("_"):
            return False
        match = r_nodeid.match(self.line)
        if match is None:
            raise ParseError("bad blank node label")
        self.line = self.line[match.end() :]
        return f"_:{self.tag}.{match.group(1)}"

    def literal(self):  # type: ignore[override]
        if not self.line.startswith('"'):
            return False
        match = r_literal.match(self.line)
        if match is None:
            raise ParseError("bad literal")
        value, lang, datatype = match.groups()
        if datatype is not None and not _VALID_IRI.match(_unescape(datatype)):
            raise _BadURI("bad URI")
        self.line = self.line[match.end() :]
        return (_unescape(value), lang)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    try:
        value = unquote(text)
    except (ValueError, OverflowError) as exc:
        raise _BadEscape("bad escape sequence") from exc
    if _SURROGATE.search(value):
        raise _BadEscape("bad escape sequence")
    return value


def _no_statements(path: Path, malformed: int, first_issue: str, early: bool) -> str:
    what = f"the first {malformed:,} statements" if early else f"all {malformed:,} statements"
    hint = ""
    if not path.name.lower().removesuffix(".gz").endswith((".nt", ".ntriples")):
        hint = " (read as N-Triples because of its extension; name Turtle files .ttl)"
    return (
        f"{path}: no valid N-Triples statements ({what} malformed, first at {first_issue})"
        f"; not an RDF file?{hint}"
    )


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
