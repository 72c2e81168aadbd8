"""The WordNet source: NLTK synset names, lemmas, glosses, pointers, errors; and the real data."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from kelm.errors import InputError
from kelm.graph.build import build_index
from kelm.graph.index import GraphIndex
from kelm.graph.sources.base import BuildOptions, LineIssues
from kelm.graph.sources.wordnet import SynsetRecord, find_wordnet_dir, iter_synsets, read_wordnet

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "wordnet"
KELM_DATA = Path(
    os.environ.get("KELM_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data")
)
REAL_WORDNET = KELM_DATA / "kg" / "wordnet_nltk"

FIXTURE_SYNSETS = {
    "entity.n.01",
    "animal.n.01",
    "canine.n.02",
    "domestic_animal.n.01",
    "dog.n.01",
    "cat.n.01",
    "canine.n.01",
    "bark.v.01",
    "run.v.01",
    "good.a.01",
    "full.s.01",
    "bad.a.01",
    "canine.a.01",
    "well.r.01",
}


def build(src: Path, out: Path, **options) -> GraphIndex:
    report = build_index([src], out, BuildOptions(format="wordnet", **options), progress=False)
    return GraphIndex.load(report.out)


def out_edges(index: GraphIndex, name: str, relation: str | None = None) -> set[str]:
    nodes, _, _ = index.neighbors(name, relations=[relation] if relation else None, direction="out")
    return {index.node_name(n) for n in nodes}


def copy_fixture(tmp_path: Path) -> Path:
    target = tmp_path / "dict"
    shutil.copytree(FIXTURE, target)
    return target


# ---------------------------------------------------------------------- the fixture
@pytest.fixture(scope="module")
def small(tmp_path_factory) -> GraphIndex:
    return build(FIXTURE, tmp_path_factory.mktemp("wn") / "index")


def test_synset_names_follow_nltk(small):
    assert set(small.names.to_list()) == FIXTURE_SYNSETS
    # canine.n.02 is the animal: the sense number is the position in index.noun, not in the
    # data file (where the animal comes first).
    assert out_edges(small, "dog.n.01", "hypernym") == {"canine.n.02", "domestic_animal.n.01"}
    assert small.aliases(small.node_id("canine.n.01")) == ["canine", "canine tooth", "eyetooth"]


def test_labels_aliases_and_gloss(small):
    dog = small.node_id("dog.n.01")
    assert small.node_label(dog) == "dog"
    assert sorted(small.aliases(dog)) == ["canis familiaris", "dog", "domestic dog"]
    assert small.node_text(dog) == (
        "a member of the genus Canis that has been domesticated by "
        'man since prehistoric times; "the dog barked all night"'
    )
    animal = small.node_id("domestic_animal.n.01")
    assert small.node_label(animal) == "domestic animal"
    adjective = small.node_id("canine.a.01")  # "canine(a)" in the file: the marker is dropped
    assert small.node_label(adjective) == "canine"
    assert small.aliases(adjective) == ["canine"]
    assert set(small.lookup("canine")) == {
        small.node_id(n) for n in ("canine.n.01", "canine.n.02", "canine.a.01")
    }
    assert set(small.lookup("good")) == {small.node_id("good.a.01"), small.node_id("full.s.01")}


def test_relations(small):
    assert out_edges(small, "animal.n.01", "hyponym") == {
        "canine.n.02",
        "domestic_animal.n.01",
        "cat.n.01",
    }
    assert out_edges(small, "good.a.01", "antonym") == {"bad.a.01"}
    assert out_edges(small, "good.a.01", "similar_to") == {"full.s.01"}
    assert out_edges(small, "canine.a.01", "pertainym") == {"canine.n.02"}  # \ from an adjective
    assert out_edges(small, "well.r.01", "derived_from") == {"good.a.01"}  # \ from an adverb
    assert out_edges(small, "dog.n.01", "derivation") == {"bark.v.01"}  # a lexical pointer
    assert small.num_edges == 22
    # The fixed WordNet order (hypernym first), not alphabetical
    assert small.relations[: small.num_relations] == [
        "hypernym",
        "hyponym",
        "antonym",
        "similar_to",
        "derivation",
        "pertainym",
        "derived_from",
    ]
    _, _, weights = small.neighbors("dog.n.01")
    assert set(weights.tolist()) == {1.0}


def test_isolated_synsets_are_nodes(small):
    for name in ("run.v.01", "canine.n.01"):
        assert small.neighbors(name)[0].size == 0
        assert small.node_text(small.node_id(name))


def test_nltk_layout(tmp_path):
    nltk_data = tmp_path / "nltk_data"
    shutil.copytree(FIXTURE, nltk_data / "corpora" / "wordnet")
    assert find_wordnet_dir(nltk_data) == nltk_data / "corpora" / "wordnet"
    out = read_wordnet(nltk_data, BuildOptions(format="wordnet"), LineIssues())
    assert set(out.nodes[0].to_pylist()) == FIXTURE_SYNSETS


def test_iter_synsets_names_and_text_as_the_graph_reader(small):
    records = list(iter_synsets(FIXTURE))
    assert len(records) == len(FIXTURE_SYNSETS)
    assert {r.name for r in records} == set(small.names.to_list()) == FIXTURE_SYNSETS
    assert records[0].pos == "n" and records[-1].pos == "r"  # file order: noun ... adv
    by_name = {r.name: r for r in records}
    dog = by_name["dog.n.01"]
    assert dog == SynsetRecord(
        "dog.n.01", "n", ("dog", "domestic_dog", "Canis_familiaris"), dog.gloss
    )
    assert dog.gloss == small.node_text(small.node_id("dog.n.01"))
    assert by_name["domestic_animal.n.01"].label == "domestic animal"
    assert by_name["canine.a.01"].lemmas == ("canine",)  # the "(a)" marker is dropped
    assert by_name["full.s.01"].pos == "s"


def test_iter_synsets_skips_and_reports_malformed_lines(tmp_path):
    folder = copy_fixture(tmp_path)
    data = folder / "data.noun"
    lines = data.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace(" | ", " ")  # entity: no gloss separator
    data.write_text("".join(lines))
    issues = LineIssues()
    names = {r.name for r in iter_synsets(folder, issues)}
    assert names == FIXTURE_SYNSETS - {"entity.n.01"}
    assert [(Path(i.path).name, i.line, i.reason) for i in issues.first] == [
        ("data.noun", 4, "no gloss separator '|'")
    ]
    with pytest.raises(InputError, match="not a directory"):
        next(iter_synsets(FIXTURE / "data.noun"))


# ---------------------------------------------------------------------- errors
def test_missing_files(tmp_path):
    folder = copy_fixture(tmp_path)
    (folder / "data.adv").unlink()
    (folder / "index.verb").unlink()
    with pytest.raises(
        InputError,
        match=r"dict: not a WordNet 3\.0 database directory, "
        r"missing data\.adv, index\.verb",
    ):
        build(folder, tmp_path / "index")


def test_not_a_directory(tmp_path):
    with pytest.raises(InputError, match="not a directory"):
        read_wordnet(FIXTURE / "data.noun", BuildOptions(format="wordnet"), LineIssues())
    with pytest.raises(InputError, match="missing data.noun"):
        read_wordnet(tmp_path, BuildOptions(format="wordnet"), LineIssues())


def test_malformed_lines(tmp_path):
    folder = copy_fixture(tmp_path)
    data = folder / "data.noun"
    lines = data.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace(" | ", " ")  # entity: no gloss separator
    lines.append("00099999 05 n 0z broken 0 000 | word count not hexadecimal  \n")
    data.write_text("".join(lines))
    issues = LineIssues()
    out = read_wordnet(folder, BuildOptions(format="wordnet"), issues)
    assert [(Path(i.path).name, i.line, i.reason) for i in issues.first] == [
        ("data.noun", 4, "no gloss separator '|'"),
        ("data.noun", len(lines), "malformed synset line"),
        # animal's hypernym pointer now points to the missing entity synset
        ("data.noun", 5, "pointer to unknown synset 00000173 n"),
    ]
    assert set(out.nodes[0].to_pylist()) == FIXTURE_SYNSETS - {"entity.n.01"}
    with pytest.raises(InputError, match=r"data\.noun:4: no gloss separator"):
        read_wordnet(folder, BuildOptions(format="wordnet", strict=True), LineIssues(strict=True))


# ---------------------------------------------------------------------- the real WordNet 3.0
@pytest.fixture(scope="module")
def real(tmp_path_factory) -> GraphIndex:
    if not (REAL_WORDNET / "corpora" / "wordnet" / "data.noun").is_file():
        pytest.skip(f"WordNet data not found under {REAL_WORDNET} (set KELM_DATA)")
    start = time.perf_counter()
    index = build(REAL_WORDNET, tmp_path_factory.mktemp("wordnet") / "index")
    print(f"built WordNet in {time.perf_counter() - start:.1f} s: {index.manifest['counts']}")
    return index


@pytest.mark.shared
def test_real_wordnet(real):
    assert real.num_nodes == 117_659
    assert real.manifest["counts"]["malformed_lines"] == 0
    dog = real.node_id("dog.n.01")
    assert real.node_label(dog) == "dog"
    assert {"canine.n.02", "domestic_animal.n.01"} <= out_edges(real, "dog.n.01", "hypernym")
    assert real.node_text(dog).startswith("a member of the genus Canis")
    for name in ("entity.n.01", "bank.n.01", "good.a.01", "run.v.01", "full.s.06", "well.r.01"):
        assert name in real
    assert real.node_text(real.node_id("entity.n.01")).startswith("that which is perceived")
    assert real.node_label(real.node_id("bank.n.01")) == "bank"
