"""The lemma n-gram index, the alias table and the on-disk cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import spacy

from kelm.errors import KelmError
from kelm.graph.build import build_index
from kelm.graph.index import GraphIndex
from kelm.graph.sources.base import BuildOptions
from kelm.linking import matcher
from kelm.linking.matcher import ConceptIndex, Linker, LinkerOptions, NgramTable

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "linking"


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> GraphIndex:
    out = tmp_path_factory.mktemp("tiny") / "graph"
    build_index([FIXTURES / "tiny.tsv"], out, BuildOptions(format="tsv"), progress=False)
    return GraphIndex.load(out)


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


@pytest.fixture(scope="module")
def linker(graph, nlp, tmp_path_factory) -> Linker:
    return Linker(graph, nlp, cache_dir=tmp_path_factory.mktemp("cache"))


def names_of(linker: Linker, doc) -> list[tuple[str, list[str]]]:
    return [
        (doc[m.start : m.end].text, [linker.names[n] for n in m.node_ids])
        for m in linker.mentions([doc])[0]
    ]


# ---------------------------------------------------------------------------------- table
def test_table_finds_all_windows_within_segments():
    table = NgramTable.build([(1,), (1, 2), (2, 3, 4)], [[10], [11], [12]], [[1.0]] * 3, 5)
    ids = np.array([1, 2, 3, 4, 1, 2, 3, 4], dtype=np.int64)
    segment = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    starts, lengths, keys = table.find(ids, segment)
    found = [
        (int(s), int(n), int(table.nodes[table.indptr[k]]))
        for s, n, k in zip(starts, lengths, keys, strict=True)
    ]
    # (1, 2) across the segment boundary at 4/5 is not a match; overlaps are kept
    assert found == [(0, 1, 10), (0, 2, 11), (1, 3, 12), (4, 1, 10), (5, 3, 12)]


def test_table_unknown_tokens_break_ngrams():
    table = NgramTable.build([(1, 2)], [[7]], [[1.0]], 3)
    starts, _, _ = table.find(np.array([1, -1, 2, 1, 2]), np.zeros(5, dtype=np.int64))
    assert starts.tolist() == [3]


def test_table_verifies_tokens_not_only_hashes():
    table = NgramTable.build([(1, 2)], [[7]], [[1.0]], 3)
    table.tokens[0, 1] = 5  # same hash as (1, 2), different key: must not match any more
    starts, _, _ = table.find(np.array([1, 2]), np.zeros(2, dtype=np.int64))
    assert starts.size == 0


def test_table_empty_inputs():
    table = NgramTable.build([(1,)], [[0]], [[1.0]], 2)
    assert table.find(np.zeros(0, np.int64), np.zeros(0, np.int64))[0].size == 0
    empty = NgramTable.build([], [], [], 2)
    assert empty.find(np.array([1, 2]), np.zeros(2, np.int64))[0].size == 0


def test_key_nodes_flattens():
    table = NgramTable.build([(1,), (2,)], [[4, 5], [6]], [[1.0, 1.0], [1.0]], 2)
    k1 = table.find(np.array([1]), np.zeros(1, np.int64))[2]
    owner, nodes = table.key_nodes(np.concatenate([k1, k1]))
    assert owner.tolist() == [0, 0, 1, 1] and nodes.tolist() == [4, 5, 4, 5]


# ---------------------------------------------------------------------------------- concepts
def test_lemmatised_multiword_and_overlapping_matches(linker, nlp):
    doc = nlp("The Dogs were running to the bus stop near a big cat.")
    assert names_of(linker, doc) == [
        ("Dogs", ["dog"]),
        ("running", ["run"]),
        ("bus", ["bus"]),
        ("bus stop", ["bus stop"]),
        ("stop", ["stop"]),
        ("big cat", ["big cat"]),
        ("cat", ["cat"]),
    ]


def test_pruning(linker):
    indexed = {linker.key_string(k) for k in range(len(linker.table))}
    assert {"dog", "bus stop", "go to big shop", "new york city"} <= indexed
    # stopwords only, blacklisted, pronoun at an edge, punctuation, longer than 5 tokens
    for pruned in (
        "be",
        "it",
        "the",
        "make",
        "his uniform",
        "-",
        "go to the big new shop",
        "x y z w v u",
    ):
        assert pruned not in indexed


def test_shared_key_resolved_by_surface(linker, nlp):
    # the lookup table lemmatises "creamer" to "cream": both nodes share the key
    assert names_of(linker, nlp("cream and creamer")) == [
        ("cream", ["cream"]),
        ("creamer", ["creamer"]),
    ]
    assert names_of(linker, nlp("creams")) == [("creams", ["cream"])]


def test_no_match_texts(linker, nlp):
    for text in ("", "   ", "😀🎉", "日本語のテキスト", "it is the", "- - -"):
        assert linker.mentions([nlp(text)]) == [[]]


def test_long_text(linker, nlp):
    text = "the dog " * 12_500  # 100,000 characters
    doc = nlp(text)
    found = linker.mentions([doc])[0]
    assert len(found) == 12_500 and all(doc[m.start].text == "dog" for m in found)


def test_batch_keeps_documents_apart(linker, nlp):
    docs = [nlp("big"), nlp("cat"), nlp("big cat")]
    assert [[m.node_ids for m in ms] for ms in linker.mentions(docs)] == [
        [],
        [[linker.graph.node_id("cat")]],
        [[linker.graph.node_id("big cat")], [linker.graph.node_id("cat")]],
    ]


# ---------------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    "kwargs", [{"mode": "fuzzy"}, {"lemmas": "stem"}, {"max_ngram": 0}, {"priors": "nope.tsv"}]
)
def test_bad_options(kwargs):
    with pytest.raises(KelmError):
        LinkerOptions(**kwargs)


def test_pipeline_lemmas_need_a_lemmatizer(graph, tmp_path):
    with pytest.raises(KelmError, match="lemmatizer"):
        Linker(graph, spacy.blank("en"), LinkerOptions(lemmas="pipeline"), cache_dir=tmp_path)


def test_pipeline_lemmas(graph, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.initialize()
    linker = Linker(graph, nlp, LinkerOptions(lemmas="pipeline"), cache_dir=tmp_path)
    # the pipeline's lookup lemmatizer is case-sensitive: "Dogs" stays "dogs"
    assert names_of(linker, nlp("Dogs and dogs were running")) == [
        ("dogs", ["dog"]),
        ("running", ["run"]),
    ]


# ---------------------------------------------------------------------------------- cache
def test_cache_is_reused_and_pickle_free(graph, nlp, tmp_path, monkeypatch):
    first = Linker(graph, nlp, cache_dir=tmp_path)
    files = sorted(p.name for p in next(tmp_path.iterdir()).iterdir())
    assert files and all(f.endswith((".npy", ".json")) for f in files)
    for f in files:
        if f.endswith(".npy"):
            np.load(next(tmp_path.iterdir()) / f, allow_pickle=False)

    def no_build(*args, **kwargs):
        raise AssertionError("index rebuilt although cached")

    monkeypatch.setattr(ConceptIndex, "build", no_build)
    second = Linker(graph, nlp, cache_dir=tmp_path)
    assert second.index.vocab == first.index.vocab
    assert np.array_equal(second.table.hashes, first.table.hashes)


def test_cache_key_covers_options(graph, nlp, tmp_path):
    Linker(graph, nlp, cache_dir=tmp_path)
    Linker(graph, nlp, LinkerOptions(max_ngram=3), cache_dir=tmp_path)
    Linker(graph, nlp, LinkerOptions(blacklist=("dog",)), cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 3


def test_corrupt_cache_is_rebuilt(graph, nlp, tmp_path):
    Linker(graph, nlp, cache_dir=tmp_path)
    directory = next(tmp_path.iterdir())
    (directory / "table.hashes.npy").write_bytes(b"garbage")
    linker = Linker(graph, nlp, cache_dir=tmp_path)
    assert names_of(linker, nlp("a dog")) == [("dog", ["dog"])]


def test_key_records_graph_and_lemma_source(graph, nlp):
    key = matcher.cache_key(graph, nlp, LinkerOptions())
    assert key["graph_checksum"] == graph.checksum
    assert key["lemma_source"]["lookup"].startswith("spacy-lookups-data==")
    assert key["options"]["max_ngram"] == 5


# ---------------------------------------------------------------------------------- entities
@pytest.fixture(scope="module")
def entity_graph(tmp_path_factory) -> GraphIndex:
    """Synset-like nodes with aliases: two senses of "Paris" (the city has more edges)."""
    from kelm.graph import build as build_module
    from kelm.graph.sources.tabular import read_tsv

    root = tmp_path_factory.mktemp("entity")
    tsv = root / "kg.tsv"
    tsv.write_text(
        "paris.n.01\tpart_of\tfrance.n.01\nparis.n.01\tinstance_of\tcity.n.01\n"
        "paris.n.01\thas_part\tlouvre.n.01\nparis.n.02\tinstance_of\thero.n.01\n"
        "new_york.n.01\tinstance_of\tcity.n.01\n"
    )

    def reader(path, options, issues):
        out = read_tsv(path, options, issues)
        out.aliases.append(
            pa.table(
                {
                    "node": [
                        "paris.n.01",
                        "paris.n.02",
                        "france.n.01",
                        "new_york.n.01",
                        "new_york.n.01",
                        "city.n.01",
                    ],
                    "alias": ["Paris", "Paris", "France", "New York", "Big Apple", "cities"],
                }
            )
        )
        return out

    original = build_module.get_source
    build_module.get_source = lambda fmt: reader
    try:
        build_index([tsv], root / "graph", BuildOptions(format="tsv"), progress=False)
    finally:
        build_module.get_source = original
    return GraphIndex.load(root / "graph")


def test_entity_candidates_ranked_by_degree(entity_graph, nlp, tmp_path):
    linker = Linker(entity_graph, nlp, LinkerOptions(mode="entity"), cache_dir=tmp_path)
    doc = nlp("Paris is bigger than New York and other cities.")
    found = linker.mentions([doc])[0]
    spans = [(doc[m.start : m.end].text, [linker.names[n] for n in m.node_ids]) for m in found]
    assert spans == [
        ("Paris", ["paris.n.01", "paris.n.02"]),
        ("New York", ["new_york.n.01"]),
        ("cities", ["city.n.01"]),
    ]
    paris = found[0]
    assert paris.scores[0] > paris.scores[1] and abs(sum(paris.scores) - 1.0) < 1e-6


def test_entity_longest_mention_wins(entity_graph, nlp, tmp_path):
    linker = Linker(entity_graph, nlp, LinkerOptions(mode="entity"), cache_dir=tmp_path)
    doc = nlp("the big apple")
    found = linker.mentions([doc])[0]
    assert [(m.start, m.end, linker.names[m.node_ids[0]]) for m in found] == [
        (1, 3, "new_york.n.01")
    ]


def test_entity_priors_file_overrides_degree(entity_graph, nlp, tmp_path):
    priors = tmp_path / "priors.tsv"
    priors.write_text("Paris\tparis.n.02\t30\nParis\tparis.n.01\t10\nParis\tunknown.n.01\t5\n")
    options = LinkerOptions(mode="entity", priors=str(priors))
    linker = Linker(entity_graph, nlp, options, cache_dir=tmp_path / "cache")
    paris = linker.mentions([nlp("Paris")])[0][0]
    assert [linker.names[n] for n in paris.node_ids] == ["paris.n.02", "paris.n.01"]
    assert paris.scores == pytest.approx([0.75, 0.25])


def test_entity_priors_file_errors(entity_graph, nlp, tmp_path):
    priors = tmp_path / "priors.tsv"
    priors.write_text("Paris\tparis.n.01\tmany\n")
    with pytest.raises(KelmError, match=r"priors.tsv:1: count"):
        Linker(
            entity_graph,
            nlp,
            LinkerOptions(mode="entity", priors=str(priors)),
            cache_dir=tmp_path / "cache",
        )
