"""The RDF source: N-Triples (streamed) and Turtle, labels/aliases/texts/attributes, errors."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from kelm.errors import InputError
from kelm.graph.build import build_index
from kelm.graph.index import GraphIndex
from kelm.graph.sources import rdf, rdf_terms
from kelm.graph.sources.base import BuildOptions, LineIssues

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rdf"
PEOPLE_NT = FIXTURES / "people.nt"
PEOPLE_TTL = FIXTURES / "people.ttl"
MALFORMED = FIXTURES / "malformed.nt"

EX = "http://example.org/"
FOAF = "http://xmlns.com/foaf/0.1/"


def build(tmp_path: Path, *inputs: Path, name: str = "index", **options) -> GraphIndex:
    opts = BuildOptions(format="rdf", **options)
    report = build_index(list(inputs), tmp_path / name, opts, progress=False)
    index = GraphIndex.load(report.out)
    index.report = report  # type: ignore[attr-defined]
    return index


def edges(index: GraphIndex) -> set[tuple[str, str, str]]:
    heads, rels, tails, _ = index.edges()
    return {
        (index.node_name(h), index.relations[r], index.node_name(t))
        for h, r, t in zip(heads.tolist(), rels.tolist(), tails.tolist(), strict=True)
    }


def blank(name: str) -> str:
    """Blank node names differ between syntaxes; the fixtures have a single blank node."""
    return "_:blank" if name.startswith("_:") else name


def summary(index: GraphIndex) -> dict:
    """Everything the reader contributed, with blank node names untagged."""
    nodes = {}
    for i in range(index.num_nodes):
        nodes[blank(index.node_name(i))] = (
            index.node_label(i) if index._labels[i] else "",
            sorted(index.aliases(i)),
            index.node_text(i),
            index.attributes(i),
        )
    return {"nodes": nodes, "edges": {(blank(h), r, blank(t)) for h, r, t in edges(index)}}


# ---------------------------------------------------------------------- N-Triples
def test_ntriples_nodes_edges_and_relation_names(tmp_path):
    index = build(tmp_path, PEOPLE_NT)
    place = next(n for n in index.names.to_list() if n.startswith("_:"))
    assert edges(index) == {
        (EX + "alice", "type", FOAF + "Person"),
        (EX + "bob", "type", FOAF + "Person"),
        (EX + "alice", "foaf:knows", EX + "bob"),  # two predicates end in "knows"
        (EX + "alice", "http://example.org/vocab/knows", EX + "carol"),  # no known prefix
        (EX + "bob", "based_near", place),
    }
    assert sorted(index.names.to_list()) == sorted(
        [EX + "alice", EX + "bob", EX + "carol", EX + "dave", FOAF + "Person", place]
    )
    assert index.manifest["counts"]["malformed_lines"] == 0
    assert index.manifest["counts"]["lines_read"] == 20
    assert set(index.relations[: index.num_relations]) == {
        "type",
        "foaf:knows",
        "http://example.org/vocab/knows",
        "based_near",
    }
    assert index.neighbors(EX + "alice", direction="out")[2].tolist() == [1.0, 1.0, 1.0]


def test_labels_aliases_and_texts(tmp_path):
    index = build(tmp_path, PEOPLE_NT)
    alice = index.node_id(EX + "alice")
    assert index.node_label(alice) == "Alice Smith"  # English prefLabel beats @de and rdfs:label
    assert sorted(index.aliases(alice)) == ["ali s.", "alice", "alice schmidt", "alice smith"]
    assert index.node_text(alice) == "A person who knows Bob."  # the English comment
    bob = index.node_id(EX + "bob")
    assert index.node_label(bob) == "Bob"  # rdfs:label when there is no prefLabel
    assert index.aliases(bob) == ["bob"]
    carol = index.node_id(EX + "carol")
    assert index.node_text(carol) == "Carol, a friend of Alice."  # skos:definition
    assert index.node_label(carol) == EX + "carol"  # no label: the name
    assert index.lookup("ali s.") == [alice]
    assert index.lookup("springfield") == [
        index.node_id(n) for n in index.names.to_list() if n.startswith("_:")
    ]


def test_literals_kept_as_attributes_never_nodes(tmp_path):
    index = build(tmp_path, PEOPLE_NT, literals="keep")
    assert index.attributes(index.node_id(EX + "alice")) == {"age": ["42"]}
    dave = index.node_id(EX + "dave")  # a subject with literals only is still a node
    assert index.attributes(dave) == {"name": ["Dave \u00c9toile"], "nick": ["dave"]}
    assert index.neighbors(dave)[0].size == 0
    place = next(i for i in range(index.num_nodes) if index.node_name(i).startswith("_:"))
    assert index.attributes(place) == {"name": ['Springfield, "Oregon"']}
    for literal in ("42", "Alice Smith", "alice", "Dave \u00c9toile", "Bob", "Springfield"):
        assert literal not in index
    assert index.manifest["counts"]["attributes"] == 4


def test_literals_dropped(tmp_path):
    index = build(tmp_path, PEOPLE_NT, literals="drop")
    assert index.manifest["counts"]["attributes"] == 0
    assert index.attributes(index.node_id(EX + "alice")) == {}
    assert EX + "dave" in index  # still a node
    alice = index.node_id(EX + "alice")
    assert index.node_label(alice) == "Alice Smith"  # labels and texts are not attributes
    assert index.node_text(alice) == "A person who knows Bob."


def test_turtle_gives_the_same_graph(tmp_path):
    nt = build(tmp_path, PEOPLE_NT, name="nt")
    ttl = build(tmp_path, PEOPLE_TTL, name="ttl")
    assert summary(ttl) == summary(nt)


def test_gzip_by_magic_bytes(tmp_path):
    expected = summary(build(tmp_path, PEOPLE_NT, name="plain"))
    for source, name in [
        (PEOPLE_NT, "people.nt.gz"),
        (PEOPLE_TTL, "people.ttl.gz"),
        (PEOPLE_NT, "gzipped-but-named.nt"),
    ]:
        target = tmp_path / name
        target.write_bytes(gzip.compress(source.read_bytes()))
        assert summary(build(tmp_path, target, name=name + ".index")) == expected


def test_truncated_gzip(tmp_path):
    target = tmp_path / "people.nt.gz"
    target.write_bytes(gzip.compress(PEOPLE_NT.read_bytes())[:-30])
    with pytest.raises(InputError, match="truncated"):
        rdf.read_rdf(target, BuildOptions(format="rdf"), LineIssues())


def test_blank_nodes_are_per_file_and_stable(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = tmp_path / "a" / "one.nt"
    two = tmp_path / "b" / "two.nt"
    one.write_text(f"<{EX}x> <{EX}p> _:b .\n_:b <{EX}q> <{EX}y> .\n")
    two.write_text(f"<{EX}z> <{EX}p> _:b .\n")
    index = build(tmp_path, one, two)
    blanks = [n for n in index.names.to_list() if n.startswith("_:")]
    assert len(blanks) == 2  # same label, different files: different nodes
    # The name depends on the file's content, not on where it lies.
    shutil.copy(one, tmp_path / "copy.nt")
    copy = build(tmp_path, tmp_path / "copy.nt", name="copy")
    assert edges(copy) == {e for e in edges(index) if EX + "z" not in e}


def test_turtle_build_is_deterministic(tmp_path):
    text = "@prefix e: <http://e.org/> .\n" + "".join(
        f'e:s{i} e:p [ e:q [ e:r e:o{i} ] ], _:x{i} .\n_:x{i} e:name "n{i}" .\n' for i in range(20)
    )
    (tmp_path / "g.ttl").write_text(text)
    first = build(tmp_path, tmp_path / "g.ttl", name="first")
    second = build(tmp_path, tmp_path / "g.ttl", name="second")
    assert first.checksum == second.checksum
    assert first.num_nodes == 20 * 4 + 20  # s, two anonymous nodes, o per row; _:x nodes


def test_rdf_xml(tmp_path):
    target = tmp_path / "tiny.rdf"
    target.write_text(
        '<?xml version="1.0"?>\n'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"\n'
        '         xmlns:rdfs="http://www.w3.org/2000/01/rdf-schema#"\n'
        '         xmlns:foaf="http://xmlns.com/foaf/0.1/">\n'
        f'  <foaf:Person rdf:about="{EX}alice">\n'
        "    <rdfs:label>Alice</rdfs:label>\n"
        f'    <foaf:knows rdf:resource="{EX}bob"/>\n'
        "  </foaf:Person>\n"
        "</rdf:RDF>\n"
    )
    index = build(tmp_path, target)
    assert edges(index) == {
        (EX + "alice", "type", FOAF + "Person"),
        (EX + "alice", "knows", EX + "bob"),
    }
    assert index.node_label(index.node_id(EX + "alice")) == "Alice"


# ---------------------------------------------------------------------- malformed input
def test_malformed_lines_are_counted_with_line_numbers(tmp_path):
    index = build(tmp_path, MALFORMED)
    assert edges(index) == {(EX + "a", "p", EX + "b"), (EX + "b", "p", EX + "c")}
    malformed = index.manifest["malformed"]
    assert malformed["total"] == 3
    assert [(i["line"], i["reason"]) for i in malformed["first"]] == [
        (2, "bad URI"),
        (3, "not an N-Triples statement"),
        (4, "not an N-Triples statement"),
    ]
    assert all(i["path"] == str(MALFORMED) for i in malformed["first"])


def test_invalid_utf8_and_bad_escapes(tmp_path):
    target = tmp_path / "bytes.nt"
    target.write_bytes(
        f"<{EX}a> <{EX}p> <{EX}b> .\n".encode()
        + f'<{EX}a> <{EX}name> "caf'.encode()
        + b'\xe9" .\n'
        + f'<{EX}a> <{EX}name> "\\uD800" .\n'.encode()
        + f"<{EX}a> <{EX}p> <{EX}has space> .\n".encode()
        + f"<{EX}a> <{EX}p> <relative> .\n".encode()
        + b"# a comment\n\n"
        + f'<{EX}a> <{EX}name> "ok"@en .'.encode()
    )  # no final newline
    issues = LineIssues()
    out = rdf.read_rdf(target, BuildOptions(format="rdf"), issues)
    assert [(i.line, i.reason) for i in issues.first] == [
        (2, "invalid UTF-8"),
        (3, "bad escape sequence"),
        (4, "bad URI"),
        (5, "bad URI"),
    ]
    assert out.lines_read == 8
    assert [row["value"] for t in out.attributes for row in t.to_pylist()] == ["ok"]


def test_strict_names_file_and_line(tmp_path):
    with pytest.raises(InputError, match=r"malformed\.nt:2: bad URI"):
        build(tmp_path, MALFORMED, strict=True)
    assert not (tmp_path / "index").exists()


def test_wrong_format_raises(tmp_path):
    csv = tmp_path / "assertions.csv"
    csv.write_text(
        "/a/[/r/IsA/,/c/en/dog/,/c/en/animal/]\t/r/IsA\t/c/en/dog\t/c/en/animal\t{}\n" * 5
    )
    with pytest.raises(InputError, match=r"assertions\.csv: no valid N-Triples statements"):
        build(tmp_path, csv)


def test_wrong_format_gives_up_early(tmp_path, monkeypatch):
    monkeypatch.setattr(rdf_terms, "GIVE_UP_AFTER", 10)
    bad = tmp_path / "big.nt"
    bad.write_text("not rdf at all\n" * 50 + f"<{EX}a> <{EX}p> <{EX}b> .\n")
    issues = LineIssues()
    with pytest.raises(InputError, match="first 10 statements malformed"):
        rdf.read_rdf(bad, BuildOptions(format="rdf"), issues)
    assert issues.total == 10  # stopped reading


def test_turtle_syntax_error_names_file_and_line(tmp_path):
    target = tmp_path / "broken.ttl"
    target.write_text("@prefix e: <http://e.org/> .\ne:a e:p e:b .\ne:a e:p e:c e:d .\n")
    with pytest.raises(InputError, match=r"broken\.ttl:3: Turtle syntax error") as exc:
        build(tmp_path, target)
    assert "\n" not in str(exc.value)


def test_turtle_invalid_utf8(tmp_path):
    target = tmp_path / "latin1.ttl"
    target.write_bytes(b'<http://e.org/a> <http://e.org/p> "caf\xe9" .\n')
    with pytest.raises(InputError, match=r"latin1\.ttl: invalid UTF-8"):
        build(tmp_path, target)


# ---------------------------------------------------------------------- relation names
def test_short_names_are_unambiguous_and_deterministic():
    prefixes = {FOAF: "foaf", "http://schema.org/": "schema"}
    predicates = [
        FOAF + "knows",
        "http://schema.org/knows",
        "http://other.org/knows",
        rdf.RDF_TYPE,
        "http://purl.org/dc/terms/type",
        EX + "vocab#name",
        "http://example.org/ends/with/",
    ]
    names = rdf._short_names(predicates, prefixes)
    assert names == {
        FOAF + "knows": "foaf:knows",
        "http://schema.org/knows": "schema:knows",
        "http://other.org/knows": "http://other.org/knows",
        rdf.RDF_TYPE: "type",
        "http://purl.org/dc/terms/type": "http://purl.org/dc/terms/type",
        EX + "vocab#name": "name",
        "http://example.org/ends/with/": "http://example.org/ends/with/",
    }
    assert rdf._short_names(list(reversed(predicates)), prefixes) == names


@pytest.mark.parametrize(
    ("name", "syntax"),
    [
        ("a.nt", "nt"),
        ("a.NT.gz", "nt"),
        ("a.ttl", "turtle"),
        ("a.ttl.gz", "turtle"),
        ("a.n3", "turtle"),
        ("a.owl", "xml"),
        ("a.csv", "nt"),
        ("noext", "nt"),
    ],
)
def test_syntax_by_extension(name, syntax):
    assert rdf.rdf_syntax(Path(name)) == syntax
