"""Relation templates: graph triples as English sentences for causal-LM prompts.

One template per ConceptNet relation (CN-100K's 34 names, the other ConceptNet 5 relations,
and the 17 merged groups of ``kelm graph build --format conceptnet``, which are lower-cased
ConceptNet names), written in the style of ConceptNet's own sentence frames
(``AtLocation``: "You are likely to find {h} in {t}."). Relation names are matched without
case, a ``/r/`` prefix or underscores, so ``AtLocation``, ``atlocation`` and ``/r/AtLocation``
share one template. A relation without a template (a TSV or RDF graph's own predicate) gets
the generic sentence ``"{h} <relation in words> {t}."``: ``partOfSpeech`` ->
"x part of speech y.".

An inverse relation id (``~name``, how :mod:`kelm.graph` reports incoming edges) is
verbalised as the forward relation with head and tail swapped, so a path read against an
edge's direction still states the edge as the graph holds it.

Node names are written as the graph spells them, underscores as spaces (CN-100K's phrases are
lemmatised: "You are likely to find bus stop in street." is close to, not always, grammatical
English). The sentence's first letter is capitalised.
"""

from __future__ import annotations

import re

TEMPLATES_VERSION = 1
"""Part of every cache key over verbalised facts: bump it when a template changes."""

TEMPLATES: dict[str, str] = {
    # CN-100K (Li et al., 2016), ConceptNet 5's names
    "atlocation": "You are likely to find {h} in {t}.",
    "capableof": "{h} can {t}.",
    "causes": "{h} causes {t}.",
    "causesdesire": "{h} makes you want to {t}.",
    "createdby": "{h} is created by {t}.",
    "definedas": "{h} is defined as {t}.",
    "desireof": "{h} is desired by {t}.",
    "desires": "{h} wants {t}.",
    "hasa": "{h} has {t}.",
    "hasfirstsubevent": "The first thing you do when you {h} is {t}.",
    "haslastsubevent": "The last thing you do when you {h} is {t}.",
    "haspaincharacter": "{h} feels {t}.",
    "haspainintensity": "{h} hurts {t}.",
    "hasprerequisite": "{h} requires {t}.",
    "hasproperty": "{h} is {t}.",
    "hassubevent": "When you {h}, you {t}.",
    "inheritsfrom": "{h} inherits from {t}.",
    "instanceof": "{h} is an instance of {t}.",
    "isa": "{h} is a kind of {t}.",
    "locatednear": "{h} is located near {t}.",
    "locationofaction": "You {h} at {t}.",
    "madeof": "{h} is made of {t}.",
    "motivatedbygoal": "You would {h} because you want {t}.",
    "notcapableof": "{h} cannot {t}.",
    "notdesires": "{h} does not want {t}.",
    "nothasa": "{h} does not have {t}.",
    "nothasproperty": "{h} is not {t}.",
    "notisa": "{h} is not a kind of {t}.",
    "notmadeof": "{h} is not made of {t}.",
    "partof": "{h} is part of {t}.",
    "receivesaction": "{h} can be {t}.",
    "relatedto": "{h} is related to {t}.",
    "symbolof": "{h} is a symbol of {t}.",
    "usedfor": "{h} is used for {t}.",
    # the rest of ConceptNet 5 (and kelm's merged groups: antonym, hascontext)
    "antonym": "{h} is the opposite of {t}.",
    "distinctfrom": "{h} is not {t}.",
    "hascontext": "{h} is used in the context of {t}.",
    "similarto": "{h} is similar to {t}.",
    "synonym": "{h} means the same as {t}.",
    "formof": "{h} is a form of {t}.",
    "derivedfrom": "{h} is derived from {t}.",
    "etymologicallyrelatedto": "{h} has a common origin with {t}.",
    "etymologicallyderivedfrom": "{h} comes from the word {t}.",
    "entails": "{h} entails {t}.",
    "mannerof": "{h} is a way to {t}.",
    "obstructedby": "{h} can be prevented by {t}.",
    "notusedfor": "{h} is not used for {t}.",
}
"""Sentence frames by normalised relation name (:func:`relation_key`)."""

INVERSE_PREFIX = "~"


def relation_key(name: str) -> str:
    """The template key of a relation name: lower case, without ``/r/``, ``_`` or spaces."""
    key = name.strip()
    if key.startswith("/r/"):
        key = key[3:]
    return re.sub(r"[\s_]+", "", key).lower()


def relation_words(name: str) -> str:
    """A relation name in plain words, for the generic sentence: ``partOfSpeech`` -> ``part
    of speech``, ``/r/HasA`` -> ``has a``, ``located_in`` -> ``located in``."""
    name = name.strip()
    if name.startswith("/r/"):
        name = name[3:]
    name = name.rsplit("/", 1)[-1].rsplit("#", 1)[-1]  # an RDF predicate's local name
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    return " ".join(spaced.replace("_", " ").replace("-", " ").split()).lower()


def node_phrase(name: str) -> str:
    """A node name as it goes into a sentence: underscores as spaces, whitespace collapsed."""
    return " ".join(name.replace("_", " ").split())


def _capitalize(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:] if sentence else sentence


def has_template(relation: str) -> bool:
    """Whether a relation (forward or ``~`` inverse) has its own template."""
    return relation_key(relation.removeprefix(INVERSE_PREFIX)) in TEMPLATES


def verbalize(head: str, relation: str, tail: str) -> str:
    """One triple as a sentence (see the module docstring).

    Args:
        head: the head node's name.
        relation: the relation's name; ``~name`` reads the edge backwards (``tail name head``).
        tail: the tail node's name.

    Returns:
        The sentence, capitalised, ending with a full stop.
    """
    if relation.startswith(INVERSE_PREFIX):
        head, tail, relation = tail, head, relation[len(INVERSE_PREFIX) :]
    h, t = node_phrase(head), node_phrase(tail)
    template = TEMPLATES.get(relation_key(relation))
    if template is None:
        words = relation_words(relation) or "is related to"
        return _capitalize(f"{h} {words} {t}.")
    return _capitalize(template.format(h=h, t=t))


__all__ = [
    "INVERSE_PREFIX",
    "TEMPLATES",
    "TEMPLATES_VERSION",
    "has_template",
    "node_phrase",
    "relation_key",
    "relation_words",
    "verbalize",
]
