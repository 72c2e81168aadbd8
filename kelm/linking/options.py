"""What a linker index contains and how entity mode ranks: :class:`LinkerOptions` (all of it
part of the cache key).

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

#: Entity mode's weight of the context score against the prior when none is given and the
#: sentence encoder is installed (see :mod:`kelm.linking.disambiguation` for the rule).
DEFAULT_CONTEXT_WEIGHT = 0.5
#: Tokens of context on each side of a mention (within its sentence when sentences are known).
DEFAULT_CONTEXT_WINDOW = 24
#: Entity mode's ranking settings: applied at link time to the candidates the index returns.
RANKING_OPTIONS = ("context_weight", "context_window", "pos_filter", "encoder")

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
    """Everything that changes what the linker finds; all of it is part of the cache key.

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
        context_weight: entity mode: weight ``w`` in ``[0, 1]`` of the context score against the
            prior (``0``: the prior alone, ``1``: the context alone; the rule is in
            :mod:`kelm.linking.disambiguation`). ``None``: :data:`DEFAULT_CONTEXT_WEIGHT` when
            the sentence encoder (``encoder``, else the bundled MiniLM) is there, else ``0``;
            concept mode: always ``0``.
        context_window: entity mode: tokens of context on each side of a mention, within its
            sentence when the pipeline marks sentences.
        pos_filter: entity mode: keep only the candidates whose part of speech (WordNet
            ``name.pos.NN`` nodes) agrees with the mention's tag, when the pipeline has a tagger.
        encoder: entity mode: the sentence encoder's model folder (``None``: the bundled
            all-MiniLM-L6-v2).
    """

    mode: str = "concept"
    lemmas: str = "lookup"
    max_ngram: int = 5
    prune_stopwords: bool = True
    blacklist: tuple[str, ...] = DEFAULT_BLACKLIST
    prune_pronouns: bool = True
    priors: str | None = None
    context_weight: float | None = None
    context_window: int = DEFAULT_CONTEXT_WINDOW
    pos_filter: bool = True
    encoder: str | None = None

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
        self._check_context()

    def _check_context(self) -> None:
        """Validate the context settings and resolve ``context_weight=None``."""
        if not 1 <= int(self.context_window) <= 256:
            raise KelmError(
                f"linker context_window must be between 1 and 256, not {self.context_window}"
            )
        weight = self.context_weight
        if weight is not None and not (
            isinstance(weight, int | float) and not isinstance(weight, bool) and 0 <= weight <= 1
        ):
            raise KelmError(f"linker context_weight must be between 0 and 1, not {weight!r}")
        if self.encoder is not None and not Path(self.encoder).is_dir():
            raise KelmError(f"{self.encoder}: encoder folder not found")
        if self.mode == "concept":
            if weight:
                raise KelmError("linker context_weight applies to entity mode only")
            weight = 0.0
        elif weight is None:
            from kelm.linking.sentence_encoder import encoder_available

            # The context is on wherever it can be; without the encoder the prior alone ranks,
            # as it did before the context score existed.
            weight = DEFAULT_CONTEXT_WEIGHT if self.encoder or encoder_available() else 0.0
        object.__setattr__(self, "context_weight", float(weight))

    def to_dict(self) -> dict[str, Any]:
        """All the options (what caches of linked results are keyed on); concept mode leaves
        out the entity-only ranking settings, which do nothing there, so that its keys are
        what they were before those settings existed."""
        d = dataclasses.asdict(self)
        d["blacklist"] = list(self.blacklist)
        if self.mode == "concept":
            for name in RANKING_OPTIONS:
                d.pop(name)
        return d

    def index_dict(self) -> dict[str, Any]:
        """The options the alias/n-gram index depends on (its cache key): all of them but the
        ranking settings, which apply at link time to whatever the index returns, so that
        another weight or window reuses the index instead of analysing every name again."""
        d = self.to_dict()
        for name in RANKING_OPTIONS:
            d.pop(name, None)
        return d
