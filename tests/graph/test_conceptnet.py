"""The ConceptNet 5 assertions reader, on hand-made fixtures in the official 5-column format."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from kelm.errors import InputError
from kelm.graph.build import build_index
from kelm.graph.index import GraphIndex
from kelm.graph.sources import conceptnet
from kelm.graph.sources.base import BuildOptions, LineIssues
from kelm.graph.sources.conceptnet import (
    default_relation_map,
    load_relation_map,
    read_conceptnet,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "conceptnet"
GOOD = FIXTURES / "good.csv"
MALFORMED = FIXTURES / "malformed.csv"

# What good.csv gives with the defaults (English only, merged relations), before the build
# merges duplicates and drops self loops.
EXPECTED = {
    ("dog", "isa", "animal", 2.0),
    ("ice cream", "atlocation", "freezer", 1.0),
    ("wheel", "partof", "car", 3.464),  # car HasA wheel, reversed
    ("pass exam", "causes", "study", 1.0),  # study MotivatedByGoal pass_exam, reversed
    ("new york", "relatedto", "city", 0.5),
    ("dog", "relatedto", "domestic dog", 2.0),  # Synonym
    ("dog", "isa", "animal", 0.5),  # the same edge again, from WordNet
    ("run", "relatedto", "run", 1.0),  # /c/en/run/v -> /c/en/run/n
    ("café", "isa", "éclair shop", 1.0),
    ("fork", "usedfor", "eat", 0.75),  # "weight" first in the JSON
    ("hot", "antonym", "cold", 2.828),  # 2.8280000000000003
    ("hot", "antonym", "warm", 1.0),  # DistinctFrom
    ("wing", "partof", "bird", 2.0),
}


def read(path: Path, keep: int = 100, **options) -> tuple[list[tuple], LineIssues, object]:
    issues = LineIssues(keep=keep)
    out = read_conceptnet(path, BuildOptions(**options), issues)
    table = pa.concat_tables(out.triples) if out.triples else None
    rows = (
        []
        if table is None
        else [
            (r["head"], r["relation"], r["tail"], round(r["weight"], 3)) for r in table.to_pylist()
        ]
    )
    return rows, issues, out


def test_english_edges_names_and_merged_relations():
    rows, issues, out = read(GOOD)
    assert len(rows) == len(EXPECTED)
    assert set(rows) == EXPECTED
    assert issues.total == 0  # other languages, ExternalURL, FormOf, dbpedia: dropped, not bad
    assert out.lines_read == 18
    assert out.relation_order == default_relation_map().order
    names = {r[0] for r in rows} | {r[2] for r in rows}
    assert "chien" not in names and "dogs" not in names and "beatles" not in names


def test_weights_are_float32():
    _, _, out = read(GOOD)
    table = pa.concat_tables(out.triples)
    assert table.schema.field("weight").type == pa.float32()
    weights = table["weight"].to_numpy()
    assert np.isclose(weights, 2.828, atol=1e-3).sum() == 1


def test_gzip_input_gives_the_same_triples():
    assert read(FIXTURES / "good.csv.gz")[0] == read(GOOD)[0]


def test_without_merging_relations_keeps_every_name_and_direction():
    rows, issues, out = read(GOOD, merge_relations=False)
    assert out.relation_order is None
    assert ("car", "hasa", "wheel", 3.464) in rows
    assert ("study", "motivatedbygoal", "pass exam", 1.0) in rows
    assert ("dogs", "formof", "dog", 1.0) in rows
    assert ("beatles", "dbpedia/genre", "rock music", 0.5) in rows
    assert ("hot", "distinctfrom", "warm", 1.0) in rows
    assert issues.total == 0


def test_all_languages_on_request():
    rows, _, _ = read(GOOD, english_only=False, merge_relations=False)
    assert ("chien", "synonym", "dog", 1.0) in rows
    assert ("chien", "isa", "animal", 1.0) in rows
    assert not [r for r in rows if r[1] == "externalurl"]  # its tails are URLs, not concepts


def test_default_mapping_is_the_17_groups():
    rmap = default_relation_map()
    assert len(rmap.order) == 17
    assert rmap.order[0] == "atlocation" and rmap.order[-1] == "receivesaction"
    assert rmap.members["hasa"] == (rmap.order.index("partof"), True)
    assert rmap.members["motivatedbygoal"] == (rmap.order.index("causes"), True)
    assert rmap.members["synonym"] == (rmap.order.index("relatedto"), False)
    assert rmap.members["isa"] == (rmap.order.index("isa"), False)


def test_user_relation_map_overrides_the_default(tmp_path: Path):
    mapping = tmp_path / "relations.yaml"
    mapping.write_text('kind_of: [isa, "*hasa"]\nsimilar: [synonym, /r/RelatedTo]\n')
    rows, issues, out = read(GOOD, relation_map=str(mapping))
    assert out.relation_order == ["kind_of", "similar"]
    assert set(rows) == {
        ("dog", "kind_of", "animal", 2.0),
        ("dog", "kind_of", "animal", 0.5),
        ("café", "kind_of", "éclair shop", 1.0),
        ("wheel", "kind_of", "car", 3.464),
        ("wing", "kind_of", "bird", 2.0),
        ("new york", "similar", "city", 0.5),
        ("dog", "similar", "domestic dog", 2.0),
        ("run", "similar", "run", 1.0),
    }
    assert issues.total == 0


@pytest.mark.parametrize(
    "text",
    [
        "partof: [partof, *hasa]\n",  # unquoted * is a YAML alias
        "- isa\n- partof\n",  # a list, not a mapping
        "",  # empty
        "isa: [isa]\nkind: [isa]\n",  # one relation in two groups
        "isa: {a: 1}\n",  # members not a list
        "isa: [is a]\n",  # not a relation name
        "isa: [isa\n",  # broken YAML
    ],
)
def test_malformed_relation_map_is_a_one_line_input_error(tmp_path: Path, text: str):
    mapping = tmp_path / "bad.yaml"
    mapping.write_text(text)
    with pytest.raises(InputError) as err:
        read(GOOD, relation_map=str(mapping))
    message = str(err.value)
    assert str(mapping) in message and "\n" not in message


@pytest.mark.parametrize("fmt", ["cn100k", "tsv", "conceptnet"])
def test_build_checks_the_relation_map_whatever_the_format(tmp_path: Path, fmt: str):
    """An invalid mapping used to be ignored by the formats that do not merge relations."""
    source = tmp_path / "triples.txt"
    source.write_text("IsA\tdog\tanimal\t1\n" if fmt == "cn100k" else "dog\tisa\tanimal\n")
    if fmt == "conceptnet":
        source = GOOD
    bad = tmp_path / "bad.yaml"
    bad.write_text("isa: [isa, 3]\n")
    options = BuildOptions(format=fmt, relation_map=str(bad))
    with pytest.raises(InputError, match=r"bad\.yaml: not a valid relation mapping \(bad member 3"):
        build_index([source], tmp_path / "g", options, progress=False)
    good = tmp_path / "good.yaml"
    good.write_text("isa: [isa]\n")
    if fmt != "conceptnet":  # a valid mapping would change nothing: refused, not ignored
        options = BuildOptions(format=fmt, relation_map=str(good))
        with pytest.raises(InputError, match="applies to --format conceptnet only"):
            build_index([source], tmp_path / "g", options, progress=False)
    else:
        options = BuildOptions(format=fmt, relation_map=str(good), merge_relations=False)
        with pytest.raises(InputError, match="--no-merge-relations"):
            build_index([source], tmp_path / "g", options, progress=False)
    assert not (tmp_path / "g").exists()


def test_missing_relation_map_file(tmp_path: Path):
    with pytest.raises(InputError, match="no such file"):
        load_relation_map(tmp_path / "nope.yaml")


MALFORMED_LINES = {
    2: "wrong column count",
    3: "bad URI in head",  # /c/en/ with an empty term
    4: "bad URI in tail",  # "pet"
    5: "invalid UTF-8 in head",
    6: "non-numeric",  # "weight": "heavy"
    7: "missing",  # no weight at all
    9: "bad URI in head",  # a non-English row is checked too
}  # line 10 is blank: skipped silently


def test_malformed_lines_are_skipped_and_counted_with_their_line_numbers():
    rows, issues, out = read(MALFORMED)
    assert set(rows) == {
        ("dog", "isa", "animal", 2.0),
        ("wheel", "partof", "car", 1.0),
        ("cat", "isa", "animal", 1.0),
    }
    assert issues.total == len(MALFORMED_LINES)
    assert [i.line for i in issues.first] == sorted(MALFORMED_LINES)
    for issue in issues.first:
        assert issue.path == str(MALFORMED)
        assert MALFORMED_LINES[issue.line] in issue.reason
    assert out.lines_read == 11


def test_line_numbers_are_exact_across_blocks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    data = GOOD.read_bytes() + MALFORMED.read_bytes() + GOOD.read_bytes()
    path = tmp_path / "three.csv"
    path.write_bytes(data)
    whole, whole_issues, _ = read(path)
    monkeypatch.setattr(conceptnet, "BLOCK_BYTES", 700)  # a few lines per block
    rows, issues, out = read(path)
    assert rows == whole
    assert [i.line for i in issues.first] == [18 + n for n in sorted(MALFORMED_LINES)]
    assert [i.line for i in issues.first] == [i.line for i in whole_issues.first]
    assert out.lines_read == 18 + 11 + 18


def test_strict_fails_on_the_first_malformed_line(tmp_path: Path):
    with pytest.raises(InputError, match=r"malformed\.csv:2: wrong column count"):
        build_index([MALFORMED], tmp_path / "idx", BuildOptions(strict=True), progress=False)
    path = tmp_path / "late.csv"
    path.write_bytes(GOOD.read_bytes() + MALFORMED.read_bytes().splitlines(keepends=True)[5])
    with pytest.raises(InputError, match=r"late\.csv:19: missing or non-numeric"):
        build_index([path], tmp_path / "idx", BuildOptions(strict=True), progress=False)
    assert not (tmp_path / "idx").exists()


@pytest.mark.parametrize(
    "content",
    [
        "IsA\tdog\tanimal\n",  # a CN-100K file
        "RelatedTo\tcat\tpet\t1\n",
        "the quick brown fox\njumps over the lazy dog\n",
        "a\tb\tc\td\te\n",  # 5 columns, but not assertions
        "\n\n",
    ],
)
def test_other_formats_are_a_clear_error(tmp_path: Path, content: str):
    path = tmp_path / "train.txt"
    path.write_text(content)
    with pytest.raises(InputError, match="not a ConceptNet assertions file") as err:
        read(path)
    assert str(path) in str(err.value)


def test_truncated_gzip_is_an_input_error(tmp_path: Path):
    data = gzip.compress(GOOD.read_bytes() * 20)
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        read(path)
    with pytest.raises(InputError, match="truncated"):
        build_index([path], tmp_path / "idx", BuildOptions(), progress=False)


def test_build_index_from_conceptnet(tmp_path: Path):
    report = build_index([GOOD], tmp_path / "cn", BuildOptions(), progress=False)
    index = GraphIndex.load(tmp_path / "cn")
    assert report.counts["lines_read"] == 18
    assert report.counts["duplicates_merged"] == 1 and report.counts["self_loops_dropped"] == 1
    assert index.num_edges == len(EXPECTED) - 2
    used = {r for _, r, _, _ in EXPECTED}  # ids follow the mapping's order
    order = [r for r in default_relation_map().order if r in used]
    assert index.relations[: index.num_relations] == order

    def out_edges(name: str) -> set[tuple[str, str, float]]:
        nodes, rels, weights = index.neighbors(name, direction="out")
        return {
            (index.node_name(n), index.relations[r], round(float(w), 3))
            for n, r, w in zip(nodes, rels, weights, strict=True)
        }

    assert out_edges("wheel") == {("car", "partof", 3.464)}
    assert out_edges("dog") == {("animal", "isa", 2.0), ("domestic dog", "relatedto", 2.0)}
    assert out_edges("pass exam") == {("study", "causes", 1.0)}
    nodes, rels, _ = index.neighbors("car", direction="in")
    assert [(index.node_name(n), index.relations[r]) for n, r in zip(nodes, rels, strict=True)] == [
        ("wheel", "~partof")
    ]
    assert "ice cream" in index and "éclair shop" in index and "chien" not in index


def test_blank_lines_are_skipped_silently_and_keep_line_numbers(tmp_path: Path):
    lines = MALFORMED.read_bytes().splitlines(keepends=True)
    path = tmp_path / "blanks.csv"
    path.write_bytes(lines[0] + b"\n" + b"   \n" + lines[5] + b"\n" + lines[2])
    rows, issues, out = read(path)
    assert rows == [("dog", "isa", "animal", 2.0)]
    assert [(i.line, i.reason.split(" (")[0]) for i in issues.first] == [
        (4, 'missing or non-numeric "weight" in the JSON column'),
        (6, "bad URI in head"),
    ]
    assert out.lines_read == 6
