"""Relation templates (:mod:`kelm.evaluation.templates`): every CN-100K relation has its own
sentence, inverse relations swap head and tail, other names get the generic sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from kelm.evaluation.templates import (
    TEMPLATES,
    has_template,
    relation_key,
    relation_words,
    verbalize,
)

CN100K_RELATIONS = [
    "AtLocation",
    "CapableOf",
    "Causes",
    "CausesDesire",
    "CreatedBy",
    "DefinedAs",
    "DesireOf",
    "Desires",
    "HasA",
    "HasFirstSubevent",
    "HasLastSubevent",
    "HasPainCharacter",
    "HasPainIntensity",
    "HasPrerequisite",
    "HasProperty",
    "HasSubevent",
    "InheritsFrom",
    "InstanceOf",
    "IsA",
    "LocatedNear",
    "LocationOfAction",
    "MadeOf",
    "MotivatedByGoal",
    "NotCapableOf",
    "NotDesires",
    "NotHasA",
    "NotHasProperty",
    "NotIsA",
    "NotMadeOf",
    "PartOf",
    "ReceivesAction",
    "RelatedTo",
    "SymbolOf",
    "UsedFor",
]
MERGED = Path(__file__).resolve().parents[2] / "kelm" / "resources" / "conceptnet_relations.yaml"


def test_conceptnet_style_sentences() -> None:
    assert verbalize("restroom", "AtLocation", "rest area") == (
        "You are likely to find restroom in rest area."
    )
    assert verbalize("bus", "UsedFor", "travel") == "Bus is used for travel."
    assert verbalize("dog", "IsA", "animal") == "Dog is a kind of animal."
    assert verbalize("wheel", "PartOf", "car") == "Wheel is part of car."
    assert verbalize("ice", "HasProperty", "cold") == "Ice is cold."
    assert verbalize("dog", "CapableOf", "bark") == "Dog can bark."
    assert verbalize("fire", "Causes", "heat") == "Fire causes heat."
    assert verbalize("cook", "HasPrerequisite", "food") == "Cook requires food."
    assert verbalize("eat", "MotivatedByGoal", "survive") == (
        "You would eat because you want survive."
    )
    assert verbalize("cat", "Desires", "milk") == "Cat wants milk."
    assert verbalize("cat", "NotDesires", "bath") == "Cat does not want bath."


def test_every_cn100k_and_merged_relation_has_its_own_template() -> None:
    import yaml

    merged = list(yaml.safe_load(MERGED.read_text(encoding="utf-8")))
    for name in CN100K_RELATIONS + merged:
        assert has_template(name), name
        assert has_template(f"~{name}"), name
        sentence = verbalize("aaa", name, "bbb")
        assert sentence.endswith(".") and sentence[0].isupper()
        assert "aaa" in sentence.lower() and "bbb" in sentence
    for template in TEMPLATES.values():
        assert template.count("{h}") == 1 and template.count("{t}") == 1


def test_inverse_relation_states_the_stored_edge() -> None:
    # a path read from "house" to "dog" over the edge dog AtLocation house
    assert verbalize("house", "~AtLocation", "dog") == verbalize("dog", "AtLocation", "house")
    assert verbalize("house", "~custom_rel", "dog") == "Dog custom rel house."


@pytest.mark.parametrize(
    ("name", "key", "words"),
    [
        ("AtLocation", "atlocation", "at location"),
        ("/r/HasA", "hasa", "has a"),
        ("located_in", "locatedin", "located in"),
        ("partOfSpeech", "partofspeech", "part of speech"),
        ("http://schema.org/birthPlace", "http://schema.org/birthplace", "birth place"),
        ("HTTPLink", "httplink", "http link"),
    ],
)
def test_relation_names(name: str, key: str, words: str) -> None:
    assert relation_key(name) == key
    assert relation_words(name) == words


def test_generic_fallback_and_node_phrases() -> None:
    assert not has_template("bornIn")
    assert verbalize("ada_lovelace", "bornIn", "london") == "Ada lovelace born in london."
    assert verbalize("a", "", "b") == "A is related to b."
    assert verbalize("new  york_city", "IsA", "city") == "New york city is a kind of city."
