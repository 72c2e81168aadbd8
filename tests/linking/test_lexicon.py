"""What the graph contributes to the index: pruned concept names, entity aliases ranked by
degree or by a priors file."""

from __future__ import annotations

import pytest

from kelm.errors import KelmError
from kelm.linking.linker import Linker
from kelm.linking.options import LinkerOptions


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


def test_entity_candidates_ranked_by_degree(entity_graph, nlp, tmp_path):
    options = LinkerOptions(mode="entity", context_weight=0)  # the prior alone
    linker = Linker(entity_graph, nlp, options, cache_dir=tmp_path)
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


def test_entity_priors_file_overrides_degree(entity_graph, nlp, tmp_path):
    priors = tmp_path / "priors.tsv"
    priors.write_text("Paris\tparis.n.02\t30\nParis\tparis.n.01\t10\nParis\tunknown.n.01\t5\n")
    options = LinkerOptions(mode="entity", priors=str(priors), context_weight=0)
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
