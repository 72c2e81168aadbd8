"""Linking text to graph nodes: a spaCy component, statement grounding for QA, alignment.

* :mod:`kelm.linking.linker` — the runtime linker (:class:`~kelm.linking.linker.Linker`):
  docs in, :class:`~kelm.linking.linker.Mention` lists out.
* :mod:`kelm.linking.concept_index` — the lemma n-gram concept index and the alias table
  (:class:`~kelm.linking.concept_index.ConceptIndex`), cached on disk per graph and options;
  built from :mod:`kelm.linking.lexicon` (names, aliases, pruning, priors),
  :mod:`kelm.linking.lemmas` (lemma source, token keys) and
  :mod:`kelm.linking.ngram_table` (the vectorised n-gram lookup), as
  :mod:`kelm.linking.options` (:class:`~kelm.linking.options.LinkerOptions`) asks.
* :mod:`kelm.linking.disambiguation` — entity mode's ranking: part-of-speech filter, context
  score and the rule that combines it with the prior; the candidate texts' embeddings are
  cached by :mod:`kelm.linking.candidate_embeddings`, computed with
  :mod:`kelm.linking.sentence_encoder` (the bundled MiniLM).
* :mod:`kelm.linking.component` — the ``kelm_linker`` spaCy factory and its extensions.
* :mod:`kelm.linking.ground` — grounding (question, answer) statements and QA files.
* :mod:`kelm.linking.grounded_file` — the grounded file of a QA file: manifest, resumable
  writing, reuse (also without spaCy).
* :mod:`kelm.linking.align` — character spans to wordpiece token indices.

Importing this package is cheap; spaCy is imported by the submodules that need it.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "Linker": "kelm.linking.linker",
    "LinkerOptions": "kelm.linking.options",
    "ConceptIndex": "kelm.linking.concept_index",
    "Mention": "kelm.linking.linker",
    "KelmLinker": "kelm.linking.component",
    "link_text": "kelm.linking.component",
    "StatementLinker": "kelm.linking.ground",
    "ground_file": "kelm.linking.ground",
    "char_spans_to_tokens": "kelm.linking.align",
    "align_spans": "kelm.linking.align",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kelm.linking' has no attribute {name!r}")
