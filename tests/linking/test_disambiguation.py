"""Entity mode's disambiguation: the part-of-speech filter, the rule that combines the prior
with the context score, the options and cache keys, the scores in ``kelm link --json``, and
the accuracy on hand-labelled ambiguous mentions (the real MiniLM and ``en_core_web_sm``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from spacy.tokens import Doc

from kelm.errors import KelmError
from kelm.graph.index import GraphIndex
from kelm.linking.component import link_text
from kelm.linking.concept_index import cache_key
from kelm.linking.disambiguation import (
    PRIOR_SMOOTHING,
    TEMPERATURE,
    combine,
    context_bounds,
    crosses_preposition,
    mention_pos,
    node_pos_codes,
)
from kelm.linking.linker import Linker
from kelm.linking.options import DEFAULT_CONTEXT_WEIGHT, LinkerOptions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "linking"
EXCERPT_LEMMAS = {"bank", "match", "pitcher", "sit", "strike", "crane", "mole", "key", "bat"}
EXCERPT_LEMMAS |= {"seal", "pen", "trunk"}


def tagged(nlp, words: list[str], pos: list[str] | None = None) -> Doc:
    """A doc of ``words`` with coarse tags ``pos`` (none: untagged), through no component."""
    return Doc(nlp.vocab, words=words, pos=pos)


def names(linker: Linker, doc: Doc) -> dict[str, list[str]]:
    return {
        doc[m.start : m.end].text: [linker.names[n] for n in m.node_ids]
        for m in linker.mentions([doc])[0]
    }


# ---------------------------------------------------------------------------- part of speech
def test_node_pos_codes() -> None:
    codes = node_pos_codes(["bank.n.01", "sit.v.10", "red.a.01", "big.s.02", "fast.r.01", "dog"])
    assert codes.tolist() == [1, 2, 3, 4, 5, 0]
    assert node_pos_codes(["http://x.org/a.n.01x", "mr.n.", "a.n.01.b"]).tolist() == [0, 0, 0]


def test_mention_pos(nlp) -> None:
    doc = tagged(nlp, ["He", "looked", "up", "the", "river", "bank"])
    assert mention_pos(doc, 1, 2) is None  # untagged
    pos = ["PRON", "VERB", "ADP", "DET", "NOUN", "NOUN"]
    doc = tagged(nlp, ["He", "looked", "up", "the", "river", "bank"], pos)
    assert mention_pos(doc, 1, 3) == "v"  # a phrasal verb: its first token
    assert mention_pos(doc, 4, 6) == "n"  # a compound: its last token
    assert mention_pos(doc, 2, 3) is None  # ADP has no WordNet counterpart
    adjective = tagged(nlp, ["quick", "fast"], ["ADJ", "ADV"])
    assert mention_pos(adjective, 0, 1) == "as" and mention_pos(adjective, 1, 2) == "r"


def test_crosses_preposition(nlp, tagger) -> None:
    """A span ending in a preposition that opens a phrase after it is no mention; a verb
    particle stays in its phrasal verb; untagged docs are left alone."""
    words = ["The", "ship", "sank", "in", "the", "storm"]
    doc = Doc(nlp.vocab, words=words, tags=["DT", "NN", "VBD", "IN", "DT", "NN"])
    assert crosses_preposition(doc, 2, 4)  # "sank in" | "the storm"
    assert not crosses_preposition(doc, 2, 3) and not crosses_preposition(doc, 4, 6)
    particle = Doc(nlp.vocab, words=["They", "gave", "up", "hope"], tags=["PRP", "VBD", "RP", "NN"])
    assert not crosses_preposition(particle, 1, 3)
    end = Doc(
        nlp.vocab, words=["what", "to", "look", "for", "?"], tags=["WP", "TO", "VB", "IN", "."]
    )
    assert not crosses_preposition(end, 2, 4)  # nothing of another phrase follows
    assert not crosses_preposition(tagged(nlp, words), 2, 4)  # untagged
    parsed = tagger("The old boat sank in the storm.")  # the real tagger says IN here
    assert crosses_preposition(parsed, 3, 5)


def test_pos_filter(wordnet_excerpt, nlp, tmp_path) -> None:
    graph = GraphIndex.load(wordnet_excerpt)
    options = LinkerOptions(mode="entity", context_weight=0)
    linker = Linker(graph, nlp, options, cache_dir=tmp_path)
    words = ["He", "struck", "a", "match"]
    untagged = names(linker, tagged(nlp, words))
    assert {n.split(".")[1] for n in untagged["match"]} == {"n", "v"}  # blank: as before
    found = names(linker, tagged(nlp, words, ["PRON", "VERB", "DET", "NOUN"]))
    assert found["match"] and all(".n." in n for n in found["match"])
    assert found["struck"] and all(".v." in n for n in found["struck"])
    assert set(found["match"]) < set(untagged["match"])
    # a tag without a WordNet counterpart filters nothing; a span none of whose candidates
    # agree with its tag is no mention
    odd = names(linker, tagged(nlp, words, ["PRON", "VERB", "DET", "NUM"]))
    assert set(odd["match"]) == set(untagged["match"])
    assert "match" not in names(linker, tagged(nlp, words, ["PRON", "VERB", "DET", "ADV"]))
    off = Linker(graph, nlp, LinkerOptions(mode="entity", context_weight=0, pos_filter=False))
    assert names(off, tagged(nlp, words, ["PRON", "VERB", "DET", "NOUN"])) == untagged


def test_pos_filter_skips_nodes_without_pos(graph, nlp, tmp_path) -> None:
    """Nodes whose names carry no part of speech (here ConceptNet-style) are never filtered
    out, whatever the tag."""
    linker = Linker(graph, nlp, LinkerOptions(mode="entity", context_weight=0), cache_dir=tmp_path)
    words = ["a", "dog", "barks"]
    assert names(linker, tagged(nlp, words, ["DET", "VERB", "VERB"]))["dog"] == ["dog"]
    assert names(linker, tagged(nlp, words)) == names(
        linker, tagged(nlp, words, ["DET", "ADV", "NOUN"])
    )


def test_context_bounds(nlp) -> None:
    doc = tagged(nlp, [f"w{i}" for i in range(40)])
    assert context_bounds(doc, 20, 21, 5) == (15, 26)
    assert context_bounds(doc, 2, 4, 5) == (0, 9)
    words = ["a", "b", ".", "c", "d", "e", "!", "f"]
    sents = Doc(nlp.vocab, words=words, sent_starts=[1, 0, 0, 1, 0, 0, 0, 1])
    assert context_bounds(sents, 4, 5, 24) == (3, 7)  # within the mention's sentence
    assert context_bounds(sents, 4, 5, 1) == (3, 6)
    # no sentence boundaries: up to the sentence-final punctuation on each side
    plain = tagged(nlp, words)
    assert context_bounds(plain, 4, 5, 24) == (3, 7)
    assert context_bounds(plain, 0, 1, 24) == (0, 3)
    assert context_bounds(plain, 7, 8, 24) == (7, 8)
    assert context_bounds(plain, 4, 5, 1) == (3, 6)


# ---------------------------------------------------------------------------- combination
def test_combine_rule() -> None:
    priors = np.array([0.6, 0.3, 0.1])
    cosines = np.array([0.1, 0.5, 0.2])
    # weight 0: the (renormalised) prior itself
    assert combine(priors * 4, cosines, 0.0) == pytest.approx(priors)
    assert combine(priors, None, 0.7) == pytest.approx(priors)
    # weight 1: the context alone, softmax(cos / T)
    e = np.exp(cosines / TEMPERATURE)
    assert combine(priors, cosines, 1.0) == pytest.approx(e / e.sum())
    # in between: softmax((1 - w) log p' + w cos / T), p' smoothed towards uniform
    w = 0.5
    smoothed = (priors + PRIOR_SMOOTHING / 3) / (1 + PRIOR_SMOOTHING)
    logits = (1 - w) * np.log(smoothed) + w * cosines / TEMPERATURE
    expected = np.exp(logits - logits.max())
    scores = combine(priors, cosines, w)
    assert scores == pytest.approx(expected / expected.sum())
    assert scores.sum() == pytest.approx(1.0) and int(np.argmax(scores)) == 1
    # the context overrides a prior in proportion to the weight
    assert combine(priors, cosines, 0.1)[0] > combine(priors, cosines, 0.5)[0]
    # a zero prior is smoothed, not a veto; all-zero priors are uniform
    assert combine(np.array([1.0, 0.0]), np.array([0.0, 0.6]), 0.5)[1] > 0.5
    assert combine(np.zeros(2), None, 0.0) == pytest.approx([0.5, 0.5])


# ---------------------------------------------------------------------------- options and keys
def test_context_weight_default_and_checks(monkeypatch) -> None:
    from kelm.linking import sentence_encoder

    assert LinkerOptions(mode="entity").context_weight == DEFAULT_CONTEXT_WEIGHT
    assert LinkerOptions(mode="entity", context_weight=0.25).context_weight == 0.25
    assert LinkerOptions().context_weight == 0.0  # concept mode: no context score
    monkeypatch.setattr(sentence_encoder, "encoder_available", lambda: False)
    assert LinkerOptions(mode="entity").context_weight == 0.0  # no encoder: the prior alone
    for bad in (-0.1, 1.5, math.nan, math.inf, True):
        with pytest.raises(KelmError, match="context_weight"):
            LinkerOptions(mode="entity", context_weight=bad)
    with pytest.raises(KelmError, match="entity mode only"):
        LinkerOptions(context_weight=0.5)
    with pytest.raises(KelmError, match="context_window"):
        LinkerOptions(mode="entity", context_window=0)
    with pytest.raises(KelmError, match="encoder folder not found"):
        LinkerOptions(mode="entity", encoder="/no/such/folder")


def test_cache_keys_and_the_weight(wordnet_excerpt, nlp, tmp_path) -> None:
    """Every key of linked results (they are keyed on ``to_dict()``) changes with the weight;
    the index, which the weight does not change, is shared between weights."""
    low = LinkerOptions(mode="entity", context_weight=0.2)
    high = LinkerOptions(mode="entity", context_weight=0.8)
    assert low.to_dict() != high.to_dict()
    assert low.to_dict()["context_weight"] == 0.2
    graph = GraphIndex.load(wordnet_excerpt)
    assert cache_key(graph, nlp, low) == cache_key(graph, nlp, high)
    window = LinkerOptions(mode="entity", context_weight=0.2, context_window=3)
    assert window.to_dict() != low.to_dict()
    # concept mode's keys are what they were before the entity ranking settings existed
    assert "context_weight" not in LinkerOptions().to_dict()
    assert LinkerOptions(**{**low.to_dict(), "blacklist": tuple(low.blacklist)}) == low
    # another weight reuses the index built for the first (no second build)
    Linker(graph, nlp, low, cache_dir=tmp_path)
    built = sorted(p.name for p in tmp_path.iterdir())
    Linker(graph, nlp, high, cache_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == built


# ---------------------------------------------------------------------------- output
def test_link_json_keeps_every_candidates_scores(wordnet_excerpt, tmp_path) -> None:
    text = "We sat on the river bank."
    result = link_text(wordnet_excerpt, text, mode="entity", cache_dir=tmp_path)
    bank = next(s for s in result["spans"] if s["text"] == "bank")
    candidates = bank["candidates"]
    assert [c["name"] for c in candidates] == bank["names"]
    assert [c["node_id"] for c in candidates] == bank["node_ids"]
    scores = [c["score"] for c in candidates]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0)
    assert sum(c["prior"] for c in candidates) == pytest.approx(1.0)
    assert all(-1.0 <= c["context"] <= 1.0 for c in candidates)
    assert bank["names"][0] == "bank.n.01"  # the river bank, not the financial institution
    json.dumps(result)  # plain JSON

    prior_only = link_text(
        wordnet_excerpt, text, mode="entity", cache_dir=tmp_path, context_weight=0.0
    )
    bank = next(s for s in prior_only["spans"] if s["text"] == "bank")
    assert all(c["context"] is None and c["score"] == c["prior"] for c in bank["candidates"])
    concept = link_text(wordnet_excerpt, text, cache_dir=tmp_path)
    assert all("candidates" not in s for s in concept["spans"])


# ---------------------------------------------------------------------------- accuracy
def excerpt_mentions() -> list[dict]:
    """The hand-labelled mentions of the dev set whose words the excerpt holds."""
    rows = [json.loads(line) for line in (FIXTURES / "wsd_dev.jsonl").read_text().splitlines()]
    return [r for r in rows if r["lemma"] in EXCERPT_LEMMAS]


def accuracy(linker: Linker, nlp, rows: list[dict]) -> float:
    texts = list(dict.fromkeys(r["text"] for r in rows))
    docs = dict(zip(texts, nlp.pipe(texts), strict=True))
    mentions = dict(zip(texts, linker.mentions(list(docs.values())), strict=True))
    right = 0
    for r in rows:
        doc = docs[r["text"]]
        for m in mentions[r["text"]]:
            span = doc[m.start : m.end]
            if span.start_char <= r["start"] and r["end"] <= span.end_char:
                right += linker.names[m.node_ids[0]] in r["gold"]
    return right / len(rows)


def test_context_beats_the_prior_on_ambiguous_mentions(wordnet_excerpt, tagger, tmp_path):
    """On the excerpt's 33 ambiguous mentions the prior (degree) is mostly wrong; the context
    score with the POS filter gets most of them right. Fails if the context is ignored."""
    rows = excerpt_mentions()
    assert len(rows) == 33
    graph = GraphIndex.load(wordnet_excerpt)
    results = {}
    for weight in (0.0, DEFAULT_CONTEXT_WEIGHT):
        options = LinkerOptions(mode="entity", lemmas="pipeline", context_weight=weight)
        linker = Linker(graph, tagger, options, cache_dir=tmp_path)
        results[weight] = accuracy(linker, tagger, rows)
    assert results[0.0] < 0.35
    assert results[DEFAULT_CONTEXT_WEIGHT] > 0.65
