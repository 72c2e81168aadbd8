"""What RDF readers share: label and text predicates, relation short names, blank node tags,
and rdflib's N-Triples grammar fed one line at a time (the exact path of the N-Triples reader).
See :mod:`kelm.graph.sources.rdf` for the rules."""

from __future__ import annotations

import hashlib
import re
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

#: Give up on a file whose first this many statements are all malformed (wrong format).
GIVE_UP_AFTER = 1_000

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
# Label predicates and their rank (lower is preferred as the display label; None: alias only).
LABELS = {SKOS + "prefLabel": 0, RDFS + "label": 1, SKOS + "altLabel": None}
TEXTS = {SKOS + "definition": 0, RDFS + "comment": 1}
_VALID_IRI = re.compile(r'[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20<>"{}|^`\\]*\Z')
_PLAIN_IRIREF = re.compile(r'<([A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20<>"{}|^`\\]*)>')
_SURROGATE = re.compile("[\ud800-\udfff]")


def _file_tag(path: Path) -> str:
    """A short digest naming the file's blank nodes: of its size and first MiB, so it is the
    same on every machine and differs between (practically) any two different files."""
    digest = hashlib.sha1(str(path.stat().st_size).encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:8]


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
