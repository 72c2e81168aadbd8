"""Lemma sources: spaCy's lookup table, or the lemmatizer of the pipeline before the linker."""

from __future__ import annotations

import pytest
import spacy

from kelm.errors import KelmError
from kelm.linking.lemmas import KeyEncoder, lookup_lemma
from kelm.linking.linker import Linker
from kelm.linking.options import LinkerOptions


def test_pipeline_lemmas_need_a_lemmatizer(graph, tmp_path):
    with pytest.raises(KelmError, match="lemmatizer"):
        Linker(graph, spacy.blank("en"), LinkerOptions(lemmas="pipeline"), cache_dir=tmp_path)


def test_pipeline_lemmas(graph, tmp_path, names_of):
    nlp = spacy.blank("en")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.initialize()
    linker = Linker(graph, nlp, LinkerOptions(lemmas="pipeline"), cache_dir=tmp_path)
    # the pipeline's lookup lemmatizer is case-sensitive: "Dogs" stays "dogs"
    assert names_of(linker, nlp("Dogs and dogs were running")) == [
        ("dogs", ["dog"]),
        ("running", ["run"]),
    ]


def test_lookup_lemmas_and_key_ids(nlp):
    assert lookup_lemma("creamer") == "cream" and lookup_lemma("zzqx") == "zzqx"
    encoder = KeyEncoder({"dog": 0, "run": 1}, "lookup")
    assert encoder.encode(nlp("Dogs running fast")).tolist() == [0, 1, -1]
    assert encoder.encode(nlp("dog Dogs"), surface=True).tolist() == [0, -1]
