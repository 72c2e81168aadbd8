"""What a linker index contains: :class:`LinkerOptions` (all of it part of the cache key).

The options are plain data; the rules they switch live in :mod:`kelm.linking.lexicon` (which
names are indexed) and :mod:`kelm.linking.lemmas` (how tokens become keys).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kelm.errors import KelmError

MODES = ("concept", "entity")
LEMMA_SOURCES = ("lookup", "pipeline")

#: Words too vague to be useful concepts (the QA-GNN grounding blacklist, ``_`` as spaces).
DEFAULT_BLACKLIST = (
    "-pron-",
    "actually",
    "likely",
    "possibly",
    "want",
    "make",
    "my",
    "someone",
    "sometimes people",
    "sometimes",
    "would",
    "want to",
    "one",
    "something",
    "everybody",
    "somebody",
    "could",
    "could be",
)


@dataclass(frozen=True)
class LinkerOptions:
    """Everything that changes what the index contains; all of it is part of the cache key.

    Args:
        mode: ``concept`` (lemma n-gram grounding) or ``entity`` (alias table with priors).
        lemmas: ``lookup``: lemmas from spaCy's English lookup table (``spacy-lookups-data``)
            applied to the lower-cased token, whatever the pipeline; ``pipeline``: the
            lower-cased ``token.lemma_`` that the pipeline's own lemmatizer assigns.
        max_ngram: longest name (in tokens) that is indexed.
        prune_stopwords: leave out names made only of stopwords, blacklisted words and
            punctuation.
        blacklist: words and names never used as concepts (lower-case).
        prune_pronouns: concept mode: leave out names that start or end with a pronoun.
        priors: entity mode: a TSV file ``alias<TAB>node name<TAB>count`` of alias frequencies.
    """

    mode: str = "concept"
    lemmas: str = "lookup"
    max_ngram: int = 5
    prune_stopwords: bool = True
    blacklist: tuple[str, ...] = DEFAULT_BLACKLIST
    prune_pronouns: bool = True
    priors: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise KelmError(f"linker mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.lemmas not in LEMMA_SOURCES:
            raise KelmError(
                f"linker lemmas must be one of {', '.join(LEMMA_SOURCES)}, not {self.lemmas!r}"
            )
        if not 1 <= int(self.max_ngram) <= 16:
            raise KelmError(f"linker max_ngram must be between 1 and 16, not {self.max_ngram}")
        object.__setattr__(self, "blacklist", tuple(w.lower() for w in self.blacklist))
        if self.priors is not None:
            if self.mode != "entity":
                raise KelmError("linker priors apply to entity mode only")
            if not Path(self.priors).is_file():
                raise KelmError(f"{self.priors}: priors file not found")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["blacklist"] = list(self.blacklist)
        return d
