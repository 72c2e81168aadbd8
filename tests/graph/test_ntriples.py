"""The fast N-Triples reader: vectorised plain lines, rdflib's grammar for the rest."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from kelm.graph.sources import _blocks, ntriples, rdf
from kelm.graph.sources.base import BuildOptions, LineIssues

WD = "http://www.wikidata.org/entity/"
WDT = "http://www.wikidata.org/prop/direct/"
XSD = "http://www.w3.org/2001/XMLSchema#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"


def sample_lines(n: int, seed: int = 0) -> list[str]:
    """Truthy-like statements in every form the reader must handle, plain ones mostly."""
    rng = random.Random(seed)
    words = ["alpha", "Beta gamma", "naïve café", "東京", "x  y", "a\tb", "q<r>", "{}|^`"]
    lines = []
    for i in range(n):
        s = f"<{WD}Q{rng.randrange(50)}>"
        p = f"<{WDT}P{rng.randrange(8)}>"
        kind = rng.randrange(12)
        if kind < 5:
            o = f"<{WD}Q{rng.randrange(50)}>"
        elif kind == 5:
            o = f'"{rng.choice(words)}"@{rng.choice(["en", "de-CH", "zh-Hant-TW"])}'
        elif kind == 6:
            o = f'"{rng.randrange(10**6)}"^^<{XSD}integer>'
        elif kind == 7:
            o = f'"{rng.choice(words)}"'
        elif kind == 8:  # escapes: the exact path
            o = rng.choice(['"say \\"hi\\""@en', '"tab\\there"', '"\\u00e9t\\u00e9"', '"a\\\\b"'])
        elif kind == 9:  # blank nodes
            s = f"_:b{rng.randrange(5)}"
            o = f"<{WD}Q{rng.randrange(50)}>"
        elif kind == 10:  # other spacing and a comment after the dot
            lines.append(f"{s}\t{p}  <{WD}Q{i % 7}> .  # note")
            continue
        else:
            o = f"<{WD}Q{rng.randrange(50)}>"
            lines.append(f"  {s} {p} {o} .\r")
            continue
        lines.append(f"{s} {p} {o} .")
        if i % 97 == 0:
            lines.append("# a comment")
        if i % 89 == 0:
            lines.append("")
    return lines


def rdflib_statements(path: Path) -> tuple[set, set]:
    from rdflib import BNode, Graph, Literal

    graph = Graph()
    graph.parse(path, format="nt")
    edges, literals = set(), set()
    for s, p, o in graph:
        s = "_:" if isinstance(s, BNode) else str(s)  # rdflib's blank node ids are random
        if isinstance(o, Literal):
            literals.add((s, str(p), str(o)))
        else:
            edges.add((s, str(p), str(o)))
    return edges, literals


def reader_statements(part: ntriples.NTriplesPart) -> tuple[set, set]:
    def untag(name: str) -> str:  # blank nodes compared as such (see rdflib_statements)
        return "_:" if name.startswith("_:") else name

    edges = {
        (untag(h), r, untag(t))
        for table in part.edges
        for h, r, t in zip(
            *(table[c].to_pylist() for c in ("head", "relation", "tail")), strict=True
        )
    }
    literals = {
        (untag(n), k, v)
        for table in part.attributes
        for n, k, v in zip(*(table[c].to_pylist() for c in ("node", "key", "value")), strict=True)
    }
    return edges, literals


@pytest.mark.parametrize("block_bytes", [None, 300])
def test_agrees_with_rdflib_on_a_sample(tmp_path, monkeypatch, block_bytes):
    path = tmp_path / "sample.nt"
    path.write_text("\n".join(sample_lines(2000)) + "\n", encoding="utf-8")
    if block_bytes:  # many small blocks: lines are numbered across them
        monkeypatch.setattr(_blocks, "BLOCK_BYTES", block_bytes)
        real = _blocks.map_raw_blocks

        def small(*args, **kwargs):
            kwargs["block_bytes"] = block_bytes
            return real(*args, **kwargs)

        monkeypatch.setattr(ntriples, "map_raw_blocks", small)
    issues = LineIssues()
    part = ntriples.parse_ntriples(path, BuildOptions(format="rdf"), issues)
    assert issues.total == 0
    assert part.statements == 2000
    assert reader_statements(part) == rdflib_statements(path)
    assert part.lines_read == path.read_text().count("\n")


def test_most_plain_lines_take_the_fast_path():
    lines = [ln for ln in sample_lines(500) if ln and not ln.startswith("#")]
    fast = [ln for ln in lines if ntriples._FAST_LINE_PY.match(ln.strip(" \t\r\n"))]
    assert 0.5 < len(fast) / len(lines) < 0.9  # both paths are exercised
    assert not any("\\" in ln or ln.startswith("_:") or "# note" in ln for ln in fast)


def test_label_seq_is_the_file_line(tmp_path):
    label = "http://www.w3.org/2000/01/rdf-schema#label"
    path = tmp_path / "labels.nt"
    path.write_text(
        f'<{WD}Q1> <{label}> "first"@en .\n'
        f"<{WD}Q1> <{WDT}P1> <{WD}Q2> .\n"
        f'<{WD}Q1> <{label}> "sec\\"ond"@en .\n'  # the exact path
        f'<{WD}Q1> <{label}> "third"@en .\n'
    )
    part = ntriples.parse_ntriples(path, BuildOptions(format="rdf"), LineIssues())
    rows = pa.concat_tables(part.labels).sort_by("seq").to_pylist()
    assert [(r["label"], r["seq"]) for r in rows] == [
        ("first", 1),
        ('sec"ond', 3),
        ("third", 4),
    ]


def test_byte_ranges_cover_every_line_once(tmp_path):
    path = tmp_path / "lines.nt"
    lines = sample_lines(300, seed=1)
    path.write_text("\n".join(lines) + "\n")
    ranges = _blocks.line_ranges(path, 1000)
    assert len(ranges) > 5
    assert ranges[0][0] == 0 and ranges[-1][1] == path.stat().st_size
    statements = 0
    read = 0
    for start, end in ranges:
        with _blocks.reading_range(path, start, end):
            part = ntriples.parse_ntriples(path, BuildOptions(format="rdf"), LineIssues())
        statements += part.statements
        read += part.lines_read
    assert statements == 300
    assert read == len(lines)


def small_blocks(monkeypatch, block_bytes: int) -> None:
    real = _blocks.map_raw_blocks

    def small(*args, **kwargs):
        kwargs["block_bytes"] = block_bytes
        return real(*args, **kwargs)

    monkeypatch.setattr(ntriples, "map_raw_blocks", small)


def test_nearly_plain_lines_agree_with_the_exact_parser(tmp_path):
    """Lines a character off the plain form take rdflib's line parser, and plain lines with
    other trailing whitespace the fast path: statements and issues are the exact parser's."""
    start = f"<{WD}Q1> <{WDT}P1> "
    lines = [
        start + f"<{WD}Q2> .",
        start + f"<{WD}Q2> .  ",  # trailing whitespace: still plain
        start + f"<{WD}Q2> .\t\r",
        start + '"x y"@en .\r',
        start + '"tab\there" .',  # a raw tab in a literal
        start + f'"7"^^<{XSD}integer> . ',
        start + f"<{WD}Q{{2}}> .",  # a brace in an IRI
        start + "<Q2> .",  # no scheme
        start + "<1h:x> .",  # a scheme starting with a digit
        start + '"x"^^<http://ex.org/é> .',  # a datatype IRI beyond ASCII
        start + '"x"@1en .',
        start + '"x"@en- .',
        start + '"x"@en^^<http://ex.org/t> .',
        start + '"a"b" .',
        start + '"x" "y" .',
        start + f"<{WD}Q2>  .",  # two spaces before the dot
        start + f"<{WD}Q2> . # note",
        " " + start + f"<{WD}Q2> .",  # a leading space
        start + '"say \\"hi\\""@en .',
    ]
    path = tmp_path / "near.nt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stripped = [ln.strip(" \t\r\n") for ln in lines]
    fast = [bool(ntriples._FAST_LINE_PY.match(ln)) for ln in stripped]
    assert 5 <= sum(fast) < len(lines)  # both paths are exercised

    issues = LineIssues(keep=100)
    part = ntriples.parse_ntriples(path, BuildOptions(format="rdf"), issues)
    expected_issues = LineIssues(keep=100)
    rows = np.arange(len(lines))
    edges, lits, bad = ntriples._parse_slowly(
        path, pa.array(stripped), rows, None, rdf._file_tag(path), expected_issues
    )
    assert 0 < len(bad) < len(lines)
    assert [(i.line, i.reason) for i in issues.first] == [
        (i.line, i.reason) for i in expected_issues.first
    ]
    assert part.malformed == len(bad)
    assert part.statements == edges.num_rows + lits.num_rows
    got_edges = pa.concat_tables(part.edges).select(["head", "relation", "tail"])
    assert got_edges.to_pylist() == edges.cast(got_edges.schema).to_pylist()
    got_attrs = pa.concat_tables(part.attributes).to_pylist()
    assert got_attrs == [
        {"node": r["node"], "key": r["pred"], "value": r["value"]} for r in lits.to_pylist()
    ]


def test_labels_follow_python_string_rules(tmp_path, monkeypatch):
    """Aliases, labels and texts are those of the statement-by-statement collector (Python's
    split, strip and lower: Unicode whitespace, special casings), on both paths."""
    values = [
        "Plain Label",
        "  padded\u3000",
        "a \t  B",
        "ΟΔΟΣ",
        "İstanbul",
        "x\x1cY",
        "\u2003",
        "",
    ]
    values += ["STRASSE ǅ", "Ünïcode\u00a0Name"]
    predicates = [RDFS + "label", SKOS + "prefLabel", SKOS + "altLabel", SKOS + "definition"]
    predicates += [RDFS + "comment"]
    tags = [None, "en", "EN-gb", "de"]
    reference = rdf._Collector(keep_literals=True)
    lines = []
    for i, (value, pred, tag) in enumerate(itertools.product(values, predicates, tags)):
        node = f"{WD}Q{i % 7}"
        literal = '"' + value + '"' + (f"@{tag}" if tag else "")
        if i % 5 == 0:  # the same value escaped: the exact path
            literal = literal.replace("\t", "\\t")
            literal = literal.replace("a", "\\u0061", 1)
        lines.append(f"<{node}> <{pred}> {literal} .")
        reference.literal(node, pred, value, tag)
    reference.flush()
    path = tmp_path / "labels.nt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    small_blocks(monkeypatch, 2000)  # several blocks, each with both paths
    part = ntriples.parse_ntriples(path, BuildOptions(format="rdf"), LineIssues())
    assert part.statements == len(lines)

    def rows(tables: list[pa.Table], columns: list[str]) -> list[dict]:
        table = pa.concat_tables(tables).select(columns)
        return sorted(table.to_pylist(), key=lambda r: (r.get("seq", 0), str(r)))

    assert rows(part.aliases, ["node", "alias"]) == rows(reference.alias_tables, ["node", "alias"])
    columns = ["node", "rank", "seq", "label"]
    assert rows(part.labels, columns) == rows(reference.label_tables, columns)
    columns = ["node", "rank", "seq", "text"]
    assert rows(part.texts, columns) == rows(reference.text_tables, columns)


def test_blocks_of_only_comments_and_blank_lines(tmp_path, monkeypatch):
    path = tmp_path / "comments.nt"
    path.write_text("# one\n\n  \n# two\n" + f"<{WD}Q1> <{WDT}P1> <{WD}Q2> .\n# three\n")
    small_blocks(monkeypatch, 8)
    part = ntriples.parse_ntriples(path, BuildOptions(format="rdf"), LineIssues())
    assert (part.statements, part.malformed, part.lines_read) == (1, 0, 6)
    path.write_text("# only a comment\n")
    part = ntriples.parse_ntriples(path, BuildOptions(format="rdf"), LineIssues())
    assert (part.statements, part.malformed, part.lines_read) == (0, 0, 1)


def test_python_whitespace_is_str_isspace():
    assert set(ntriples.PY_WHITESPACE) == {chr(c) for c in range(0x110000) if chr(c).isspace()}
