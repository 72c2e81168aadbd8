"""Shared linker fixtures: a tiny concept graph (``fixtures/linking/tiny.tsv``), a synset-like
entity graph with aliases, a blank English pipeline and a concept linker over the tiny graph."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
import spacy
from spacy.tokens import Doc

from kelm.graph.build import build_index
from kelm.graph.index import GraphIndex
from kelm.graph.sources.base import BuildOptions
from kelm.linking.linker import Linker

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


@pytest.fixture(scope="session")
def names_of() -> Callable[[Linker, Doc], list[tuple[str, list[str]]]]:
    """``names_of(linker, doc)``: (span text, node names) of each mention in ``doc``."""

    def names(linker: Linker, doc: Doc) -> list[tuple[str, list[str]]]:
        return [
            (doc[m.start : m.end].text, [linker.names[n] for n in m.node_ids])
            for m in linker.mentions([doc])[0]
        ]

    return names


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


@pytest.fixture(scope="module")
def wordnet_excerpt(tmp_path_factory) -> Path:
    """An index of ``fixtures/linking/wordnet_excerpt``: every WordNet 3.0 synset of bank,
    match, pitcher, sit, sat, strike, crane, mole, key, bat, seal, pen and trunk (with their
    glosses and NLTK names; pointers among them only)."""
    out = tmp_path_factory.mktemp("wordnet") / "graph"
    build_index([FIXTURES / "wordnet_excerpt"], out, BuildOptions(format="wordnet"), progress=False)
    return out


@pytest.fixture(scope="session")
def tagger():
    """The offline ``en_core_web_sm`` (tagger, lemmatizer), as ``kelm link --pipeline`` loads
    it."""
    from kelm.linking.ground import make_nlp

    return make_nlp("en_core_web_sm")
