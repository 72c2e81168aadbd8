"""Token lemmas for the linker: the lemma source (spaCy's lookup table or the pipeline's
lemmatizer), its identity for cache keys, and the mapping of tokens to index key ids.

A node name is tokenised and lemmatised with the same spaCy tokenizer and lemmas as the text
will be, so that a name and the text that mentions it get the same key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from kelm.errors import KelmError

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

_LOOKUP_TABLE: Any = None


def lookup_table() -> Any:
    """spaCy's English ``lemma_lookup`` table from ``spacy-lookups-data`` (loaded once)."""
    global _LOOKUP_TABLE
    if _LOOKUP_TABLE is None:
        from spacy.lookups import load_lookups

        try:
            _LOOKUP_TABLE = load_lookups("en", ["lemma_lookup"]).get_table("lemma_lookup")
        except (ValueError, KeyError) as exc:
            raise KelmError(
                f"English lemma lookup table unavailable; install spacy-lookups-data ({exc})"
            ) from None
    return _LOOKUP_TABLE


def lookup_lemma(lower: str) -> str:
    """Lookup lemma of a lower-cased token (the token itself when the table lacks it)."""
    return lookup_table().get(lower, lower)


def spacy_available() -> bool:
    """Whether spaCy can be imported: grounding and linking need it, reading their cached
    results does not."""
    try:
        import spacy  # noqa: F401
    except ImportError:
        return False
    return True


def lemma_source_identity(nlp: Language, lemmas: str, pipes: Sequence[str]) -> dict[str, Any]:
    """What determines the keys besides the graph: spaCy, tokenizer rules and lemma source."""
    import spacy

    tokenizer = nlp.tokenizer.to_bytes(exclude=["vocab"])  # vocab strings grow with use
    ident: dict[str, Any] = {
        "spacy": spacy.__version__,
        "lang": nlp.lang,
        "tokenizer_sha256": hashlib.sha256(tokenizer).hexdigest(),
        "lemmas": lemmas,
    }
    if lemmas == "lookup":
        import spacy_lookups_data

        ident["lookup"] = f"spacy-lookups-data=={spacy_lookups_data.__version__}:en:lemma_lookup"
    else:
        meta = nlp.meta
        ident["pipeline"] = f"{meta.get('lang')}_{meta.get('name')}=={meta.get('version')}"
        ident["components"] = list(pipes)
    return ident


def check_lemma_source(nlp: Language, lemmas: str, pipes: Sequence[str]) -> None:
    """``pipeline`` lemmas need a component before the linker that assigns ``token.lemma``."""
    if lemmas != "pipeline":
        return
    if not any("token.lemma" in nlp.get_pipe_meta(name).assigns for name in pipes):
        raise KelmError(
            "linker lemmas='pipeline' needs a pipeline with a lemmatizer before the "
            "linker (e.g. en_core_web_sm); use lemmas='lookup' with spacy.blank('en')"
        )


def analyse(
    nlp: Language, texts: Iterable[str], pipes: Sequence[str], batch_size: int = 1000
) -> Iterator[Doc]:
    """Tokenise ``texts`` and run the named components over them (not the whole pipeline:
    the linker itself and anything after it must not run on node names)."""
    docs: Iterable[Doc] = nlp.tokenizer.pipe(texts, batch_size=batch_size)
    for name in pipes:
        proc = nlp.get_pipe(name)
        docs = proc.pipe(docs, batch_size=batch_size) if hasattr(proc, "pipe") else map(proc, docs)
    return iter(docs)


class KeyEncoder:
    """Maps spaCy tokens to key ids of an index vocabulary (``-1``: in no key).

    Token strings are reached through their 64-bit StringStore hashes (``doc.to_array``), and
    every hash is resolved once and memoised, so encoding costs one dict lookup per token.
    """

    def __init__(self, vocab: dict[str, int], lemmas: str) -> None:
        self.vocab = vocab
        self.lemmas = lemmas
        self._lemma_memo: dict[int, int] = {}
        self._surface_memo: dict[int, int] = {}

    def lemma_key(self, lower: str, lemma: str) -> str:
        """The key string of a token from its lower-cased text and pipeline lemma."""
        if self.lemmas == "lookup":
            return lookup_lemma(lower)
        return lemma.lower()

    def encode(self, doc: Doc, surface: bool = False) -> np.ndarray:
        """Key ids of the tokens of ``doc``: lemma keys, or lower-cased text when ``surface``."""
        from spacy.attrs import LEMMA, LOWER

        use_lower = surface or self.lemmas == "lookup"
        hashes = doc.to_array(LOWER if use_lower else LEMMA).tolist()
        memo = self._surface_memo if surface else self._lemma_memo
        try:
            return np.array([memo[h] for h in hashes], dtype=np.int64)
        except KeyError:
            strings = doc.vocab.strings
            for h in hashes:
                if h not in memo:
                    text = strings[h] if h else ""
                    if not surface:
                        text = lookup_lemma(text) if self.lemmas == "lookup" else text.lower()
                    memo[h] = self.vocab.get(text, -1) if text.strip() else -1
            return np.array([memo[h] for h in hashes], dtype=np.int64)
