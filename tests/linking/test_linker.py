"""The linker at run time: lemmatised, overlapping concept matches; longest entity mentions."""

from __future__ import annotations

from kelm.linking.linker import Linker
from kelm.linking.options import LinkerOptions


def test_lemmatised_multiword_and_overlapping_matches(linker, nlp, names_of):
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


def test_shared_key_resolved_by_surface(linker, nlp, names_of):
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


def test_entity_longest_mention_wins(entity_graph, nlp, tmp_path):
    linker = Linker(entity_graph, nlp, LinkerOptions(mode="entity"), cache_dir=tmp_path)
    doc = nlp("the big apple")
    found = linker.mentions([doc])[0]
    assert [(m.start, m.end, linker.names[m.node_ids[0]]) for m in found] == [
        (1, 3, "new_york.n.01")
    ]
