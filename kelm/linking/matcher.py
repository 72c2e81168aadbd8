"""The n-gram index behind the linker: node names (and aliases) keyed by token lemma sequences.

A node name is tokenised and lemmatised with the same spaCy tokenizer and lemmas as the text
will be; its *key* is the sequence of lemma ids. Text is matched by hashing every lemma n-gram
of a whole batch of documents at once (numpy, one pass per n-gram length) and looking the
hashes up in the sorted hash array of the keys, then verifying the candidate windows token by
token, so a hash collision can never produce a wrong match. No spaCy ``Matcher`` is involved.

Two kinds of index share that machinery:

* ``concept`` mode (ConceptNet / CN-100K grounding): one key per node name (``_`` read as a
  space), pruned the way the commonsense-QA grounding literature (KagNet, MHGRN, QA-GNN)
  prunes: names longer than ``max_ngram`` tokens, names made only of stopwords or blacklisted
  words, and names starting or ending with a pronoun are left out. When several names share a
  key (the lookup table lemmatises ``creamer`` to ``cream`` and ``men`` to ``man``), a match
  keeps the nodes named like the matched text, else the one named like the key, else all.
* ``entity`` mode (RDF / WordNet): an alias table. Every node name, label and alias is indexed
  under its lower-cased surface form and its lemma form; each (alias, node) pair carries a
  prior: the alias frequency from a ``priors`` file when one is given, else the node degree.

The index is built once per (graph checksum, tokenizer, lemma source, options) and cached on
disk as ``.npy`` arrays plus a JSON manifest (never pickle), by default under
``$KELM_CACHE/linker/<key>/`` (``~/.cache/kelm/linker/<key>/``).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import math
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kelm._io import publish_dir, remove_stale_staging, sha256_file, staging_dir, write_json
from kelm.errors import KelmError
from kelm.graph.strings import StringColumn

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

    from kelm.graph.index import GraphIndex

log = logging.getLogger(__name__)

#: Version of the index layout *and* of the keying/pruning rules: part of the cache key, so
#: bump it whenever either changes and every cached index is rebuilt.
INDEX_VERSION = 2
MODES = ("concept", "entity")
LEMMA_SOURCES = ("lookup", "pipeline")

#: NLTK's English stopword list (179 words), which the grounding literature prunes with.
#: Written out here so that kelm does not depend on nltk and its data download.
_STOPWORD_TEXT = """
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself
yourselves he him his himself she she's her hers herself it it's its itself they them their
theirs themselves what which who whom this that that'll these those am is are was were be been
being have has had having do does did doing a an the and but if or because as until while of at
by for with about against between into through during before after above below to from up down
in out on off over under again further then once here there when where why how all any both
each few more most other some such no nor not only own same so than too very s t can will just
don don't should should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't
doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't
needn needn't shan shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

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

#: A concept that starts or ends with one of these is a fragment ("his uniform", "feed it").
_PRONOUN_TEXT = "my you it its your i he she his her they them their our we"
PRONOUNS = frozenset(_PRONOUN_TEXT.split())

# 64-bit FNV-1a style mixing of lemma ids into one n-gram hash (uint64 arithmetic wraps).
_PRIME = np.uint64(0x100000001B3)
_SEEDS = (0xCBF29CE484222325, 0x9E3779B97F4A7C15, 0xD6E8FEB86659FD93, 0x2545F4914F6CDD1D)


# ---------------------------------------------------------------------------------- options
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


# ---------------------------------------------------------------------------------- lemmas
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


# ---------------------------------------------------------------------------------- n-grams
def _hash_rows(tokens: np.ndarray, lengths: np.ndarray, seed: int) -> np.ndarray:
    """The n-gram hash of each padded key row (same recurrence as :meth:`NgramTable.find`)."""
    h = np.full(tokens.shape[0], seed, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for col in range(tokens.shape[1]):
            live = lengths > col
            step = (h ^ (tokens[:, col].astype(np.uint64) + np.uint64(1))) * _PRIME
            h = np.where(live, step, h)
    return h


@dataclass
class NgramTable:
    """Keys (lemma id sequences) with their nodes and scores, sorted by n-gram hash.

    ``nodes[indptr[k]:indptr[k+1]]`` are the nodes of key ``k``, best first, with ``scores``.
    """

    hashes: np.ndarray  # uint64 [K], sorted, unique
    lengths: np.ndarray  # int16 [K]
    tokens: np.ndarray  # int32 [K, max_len], -1 padded
    indptr: np.ndarray  # int64 [K + 1]
    nodes: np.ndarray  # int32 [M]
    scores: np.ndarray  # float32 [M]
    seed: int = _SEEDS[0]

    ARRAYS = ("hashes", "lengths", "tokens", "indptr", "nodes", "scores")

    @property
    def max_len(self) -> int:
        return int(self.tokens.shape[1])

    def __len__(self) -> int:
        return int(self.hashes.shape[0])

    @classmethod
    def build(
        cls,
        keys: Sequence[tuple[int, ...]],
        nodes: Sequence[Sequence[int]],
        scores: Sequence[Sequence[float]],
        max_len: int,
    ) -> NgramTable:
        """Build from parallel lists: ``keys[k]`` maps to ``nodes[k]`` with ``scores[k]``."""
        n = len(keys)
        tokens = np.full((n, max_len), -1, dtype=np.int32)
        lengths = np.zeros(n, dtype=np.int16)
        for k, key in enumerate(keys):
            tokens[k, : len(key)] = key
            lengths[k] = len(key)
        for seed in _SEEDS:  # a 64-bit collision between two keys is unlikely; reseed if so
            hashes = _hash_rows(tokens, lengths, seed)
            if np.unique(hashes).shape[0] == n:
                break
        else:
            raise KelmError("n-gram index: could not find a collision-free hash seed")
        order = np.argsort(hashes, kind="stable")
        counts = np.array([len(nodes[k]) for k in order], dtype=np.int64)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        flat_nodes = np.fromiter((v for k in order for v in nodes[k]), np.int32, int(indptr[-1]))
        flat_scores = np.fromiter(
            (s for k in order for s in scores[k]), np.float32, int(indptr[-1])
        )
        return cls(
            hashes[order], lengths[order], tokens[order], indptr, flat_nodes, flat_scores, seed
        )

    def find(
        self, ids: np.ndarray, segment: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every window of ``ids`` that equals a key and lies inside one segment (document).

        Args:
            ids: key ids of the tokens of many documents, concatenated (``-1``: no key).
            segment: the document number of each token (non-decreasing).

        Returns:
            ``(starts, lengths, keys)`` sorted by start, then length.
        """
        total = ids.shape[0]
        found: list[tuple[np.ndarray, int, np.ndarray]] = []
        if total == 0 or len(self) == 0:
            return _empty_matches()
        h = np.full(total, self.seed, dtype=np.uint64)
        ok = ids >= 0
        ids_u = ids.astype(np.uint64) + np.uint64(1)
        with np.errstate(over="ignore"):
            for n in range(1, self.max_len + 1):
                m = total - n + 1
                if m <= 0:
                    break
                if n > 1:  # window [i, i+n) extends [i, i+n-1) by token i+n-1
                    ok = ok[:m] & (ids[n - 1 :] >= 0) & (segment[n - 1 :] == segment[:m])
                h = (h[:m] ^ ids_u[n - 1 :]) * _PRIME
                cand = np.flatnonzero(ok)
                if cand.size == 0:
                    break
                found_n = self._lookup(ids, h[cand], cand, n)
                if found_n is not None:
                    found.append(found_n)
        if not found:
            return _empty_matches()
        starts = np.concatenate([s for s, _, _ in found])
        lengths = np.concatenate([np.full(s.shape[0], n, np.int64) for s, n, _ in found])
        keys = np.concatenate([k for _, _, k in found])
        order = np.lexsort((lengths, starts))
        return starts[order], lengths[order], keys[order]

    def _lookup(
        self, ids: np.ndarray, hashes: np.ndarray, cand: np.ndarray, n: int
    ) -> tuple[np.ndarray, int, np.ndarray] | None:
        pos = np.minimum(np.searchsorted(self.hashes, hashes), len(self) - 1)
        hit = (self.hashes[pos] == hashes) & (self.lengths[pos] == n)
        if not hit.any():
            return None
        cand, pos = cand[hit], pos[hit]
        # Verify token by token: the hash only proposes, the ids decide.
        windows = np.lib.stride_tricks.sliding_window_view(ids, n)[cand]
        same = (self.tokens[pos, :n] == windows).all(axis=1)
        if not same.any():
            return None
        return cand[same], n, pos[same]

    def candidates(self, key: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.indptr[key], self.indptr[key + 1]
        return self.nodes[lo:hi], self.scores[lo:hi]

    def key_nodes(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flatten the nodes of many keys: ``(owner, node)`` where ``owner`` indexes ``keys``."""
        lo, hi = self.indptr[keys], self.indptr[keys + 1]
        counts = hi - lo
        owner = np.repeat(np.arange(keys.shape[0]), counts)
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        return owner, self.nodes[np.repeat(lo, counts) + offsets].astype(np.int64)


def _empty_matches() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    empty = np.zeros(0, dtype=np.int64)
    return empty, empty, empty


# ---------------------------------------------------------------------------------- index
@dataclass
class ConceptIndex:
    """A lemma n-gram index over a graph's node names (concept mode) or aliases (entity mode)."""

    options: LinkerOptions
    vocab: list[str]
    table: NgramTable
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def vocab_ids(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.vocab)}

    # -------------------------------------------------------------- building
    @classmethod
    def build(
        cls, graph: GraphIndex, nlp: Language, options: LinkerOptions, pipes: Sequence[str] = ()
    ) -> ConceptIndex:
        """Tokenise and lemmatise every name (and alias) of ``graph`` with ``nlp``.

        Args:
            graph: the graph index.
            nlp: the pipeline whose tokenizer (and, for ``lemmas='pipeline'``, components
                ``pipes``) the text will go through.
            options: what to index and how to prune.
            pipes: the components that run before the linker (``pipeline`` lemmas only).
        """
        entries = (
            _concept_entries(graph) if options.mode == "concept" else _alias_entries(graph, options)
        )
        texts = [text for text, _ in entries]
        encoder = KeyEncoder({}, options.lemmas)
        vocab: dict[str, int] = {}
        # key -> node -> the lower-cased aliases that produced it (for the entity priors)
        grouped: dict[tuple[int, ...], dict[int, set[str]]] = {}
        docs = analyse(nlp, texts, pipes if options.lemmas == "pipeline" else ())
        for (_, node), doc in zip(entries, docs, strict=True):
            lowers = [t.lower_ for t in doc]
            lemma_keys = [encoder.lemma_key(t.lower_, t.lemma_) for t in doc]
            if not _keep_name(lowers, lemma_keys, options):
                continue
            variants = [lemma_keys]
            if options.mode == "entity" and lowers != lemma_keys:
                variants.append(lowers)  # entity aliases also match their exact wording
            for variant in variants:
                key = tuple(vocab.setdefault(s, len(vocab)) for s in variant)
                grouped.setdefault(key, {}).setdefault(node, set()).add(" ".join(lowers))
        keys = list(grouped)
        priors = _read_priors(options, graph, nlp)
        scored = [_rank(graph, grouped[k], priors) for k in keys]
        node_lists = [[n for n, _ in pairs] for pairs in scored]
        score_lists = [[s for _, s in pairs] for pairs in scored]
        table = NgramTable.build(keys, node_lists, score_lists, options.max_ngram)
        meta = {
            "keys": len(keys),
            "nodes_indexed": len({n for ns in node_lists for n in ns}),
            "vocab": len(vocab),
        }
        return cls(options, list(vocab), table, meta)

    # -------------------------------------------------------------- disk cache
    def save(self, directory: Path, key: dict[str, Any]) -> None:
        """Write the arrays (``.npy``) and ``manifest.json`` into ``directory`` atomically."""
        remove_stale_staging(directory)
        staged = staging_dir(directory)
        try:
            column = StringColumn.from_list(self.vocab)
            np.save(staged / "vocab.data.npy", column.data, allow_pickle=False)
            np.save(staged / "vocab.offsets.npy", column.offsets, allow_pickle=False)
            for name in NgramTable.ARRAYS:
                np.save(staged / f"table.{name}.npy", getattr(self.table, name), allow_pickle=False)
            write_json(
                staged / "manifest.json",
                {
                    "kind": "kelm-linker-index",
                    "index_version": INDEX_VERSION,
                    "key": key,
                    "seed": self.table.seed,
                    "meta": self.meta,
                },
            )
            publish_dir(staged, directory)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise

    @classmethod
    def load(
        cls, directory: Path, key: dict[str, Any], options: LinkerOptions
    ) -> ConceptIndex | None:
        """The cached index in ``directory`` if it is complete and was built for ``key``."""
        if not (directory / "manifest.json").is_file():
            return None
        try:
            manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
            if manifest.get("key") != key or manifest.get("index_version") != INDEX_VERSION:
                return None
            vocab = StringColumn(
                np.load(directory / "vocab.data.npy", allow_pickle=False),
                np.load(directory / "vocab.offsets.npy", allow_pickle=False),
            ).to_list()
            arrays = {
                name: np.load(directory / f"table.{name}.npy", allow_pickle=False)
                for name in NgramTable.ARRAYS
            }
        except (OSError, ValueError, json.JSONDecodeError) as exc:
            log.warning("linker cache %s unreadable (%s); rebuilding", directory, exc)
            return None
        table = NgramTable(**arrays, seed=int(manifest["seed"]))
        return cls(options, vocab, table, manifest.get("meta", {}))

    @classmethod
    def load_or_build(
        cls,
        graph: GraphIndex,
        nlp: Language,
        options: LinkerOptions,
        pipes: Sequence[str] = (),
        cache_dir: str | Path | None = None,
    ) -> ConceptIndex:
        """Load the index from the cache, or build it and store it there."""
        check_lemma_source(nlp, options.lemmas, pipes)
        key = cache_key(graph, nlp, options, pipes)
        directory = cache_path(key, cache_dir)
        index = cls.load(directory, key, options)
        if index is not None:
            return index
        log.info("building linker index for %s in %s", graph.path, directory)
        index = cls.build(graph, nlp, options, pipes)
        try:
            index.save(directory, key)
        except OSError as exc:  # a read-only cache still gives a working linker
            log.warning("could not write linker cache %s (%s)", directory, exc)
        return index


def cache_key(
    graph: GraphIndex, nlp: Language, options: LinkerOptions, pipes: Sequence[str] = ()
) -> dict[str, Any]:
    """Everything the index depends on: graph, kelm index layout, lemma source, options."""
    opts = options.to_dict()
    if options.priors:
        opts["priors_sha256"] = sha256_file(options.priors)
    return {
        "index_version": INDEX_VERSION,
        "graph_checksum": graph.checksum,
        "lemma_source": lemma_source_identity(nlp, options.lemmas, pipes),
        "options": opts,
    }


def cache_path(key: dict[str, Any], cache_dir: str | Path | None = None) -> Path:
    """``<cache_dir>/<digest of key>``; default ``$KELM_CACHE/linker`` (``~/.cache/kelm``)."""
    from kelm.paths import cache_dir as default_cache

    root = Path(cache_dir) if cache_dir else default_cache() / "linker"
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return root.expanduser() / digest


# ---------------------------------------------------------------------------------- entries
def _concept_entries(graph: GraphIndex) -> list[tuple[str, int]]:
    """(text, node) per node name; ConceptNet writes multi-word names with ``_``."""
    return [(name.replace("_", " ").strip(), i) for i, name in enumerate(graph.names.to_list())]


def _alias_entries(graph: GraphIndex, options: LinkerOptions) -> list[tuple[str, int]]:
    """(text, node) for every node name, label and alias (from the documented index files)."""
    path = graph.path
    entries: dict[tuple[str, int], None] = {}

    def column(name: str) -> list[str]:
        return StringColumn(
            np.load(path / f"{name}.data.npy", mmap_mode="r"),
            np.load(path / f"{name}.offsets.npy", mmap_mode="r"),
        ).to_list()

    for i, name in enumerate(graph.names.to_list()):
        if "://" not in name:  # URIs are identifiers, not mentions; their labels are aliases
            entries[(name.replace("_", " ").strip(), i)] = None
    for i, label in enumerate(column("nodes.label")):
        if label:
            entries[(label.replace("_", " ").strip(), i)] = None
    alias_nodes = np.load(path / "aliases.node.npy", mmap_mode="r").tolist()
    for alias, node in zip(column("aliases.alias"), alias_nodes, strict=True):
        entries[(alias.replace("_", " ").strip(), int(node))] = None
    return [e for e in entries if e[0]]


def _keep_name(lowers: list[str], lemma_keys: list[str], options: LinkerOptions) -> bool:
    """The literature's pruning: length, names made only of stopwords, blacklisted words and
    punctuation, names with a pronoun at either end (concept mode)."""
    n = len(lowers)
    if n == 0 or n > options.max_ngram or any(not s.strip() for s in lowers):
        return False
    blacklist = set(options.blacklist)
    if " ".join(lowers) in blacklist or " ".join(lemma_keys) in blacklist:
        return False
    if options.prune_stopwords and all(
        low in STOPWORDS or lem in STOPWORDS or lem in blacklist or not _has_word(low)
        for low, lem in zip(lowers, lemma_keys, strict=True)
    ):
        return False
    return not (
        options.mode == "concept"
        and options.prune_pronouns
        and (lowers[0] in PRONOUNS or lowers[-1] in PRONOUNS)
    )


def _has_word(token: str) -> bool:
    """Whether a token has a letter or digit (``-``, ``?`` and ``...`` are never concepts)."""
    return any(c.isalnum() for c in token)


def _rank(
    graph: GraphIndex, aliases_of: dict[int, set[str]], priors: dict[tuple[str, int], float] | None
) -> list[tuple[int, float]]:
    """The nodes of one key, best first, with their scores.

    Concept mode (``priors is None`` and no degree wanted) ranks nothing: every node scores
    1.0. Entity mode scores P(node | alias): the alias frequencies of the priors file when it
    has any for these aliases, else node degree + 1, normalised over the candidates.
    """
    nodes = sorted(aliases_of)
    if priors is None:
        return [(n, 1.0) for n in nodes]
    freq = [max((priors.get((a, n), 0.0) for a in aliases_of[n]), default=0.0) for n in nodes]
    if not any(freq):
        degree = _degrees(graph)
        freq = [float(degree[n]) + 1.0 for n in nodes]
    total = sum(freq) or 1.0
    ranked = sorted(zip(nodes, (f / total for f in freq), strict=True), key=lambda p: -p[1])
    return [(n, float(s)) for n, s in ranked]


def _degrees(graph: GraphIndex) -> np.ndarray:
    cached = getattr(graph, "_kelm_linker_degree", None)
    if cached is None:
        cached = np.asarray(graph.degree(), dtype=np.int64)
        graph._kelm_linker_degree = cached  # type: ignore[attr-defined]
    return cached


def _read_priors(
    options: LinkerOptions, graph: GraphIndex, nlp: Language
) -> dict[tuple[str, int], float] | None:
    """Entity mode: ``{(lower-cased alias, node): count}`` from the priors file (empty without
    one, so that degree decides). Concept mode: ``None`` (no ranking)."""
    if options.mode == "concept":
        return None
    counts: dict[tuple[str, int], float] = {}
    if not options.priors:
        return counts
    path = options.priors
    with open(path, encoding="utf-8", newline="") as fh:
        for line_no, row in enumerate(csv.reader(fh, delimiter="\t"), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 3:
                raise KelmError(f"{path}:{line_no}: expected alias, node name, count")
            try:
                count = float(row[2])
            except ValueError:
                raise KelmError(f"{path}:{line_no}: count {row[2]!r} is not a number") from None
            if not math.isfinite(count) or count < 0:
                raise KelmError(f"{path}:{line_no}: count must be a non-negative number")
            if row[1] in graph:
                alias = " ".join(t.lower_ for t in nlp.tokenizer(row[0].strip()))
                counts[(alias, graph.node_id(row[1]))] = count
    return counts


# ---------------------------------------------------------------------------------- linker
@dataclass
class Mention:
    """A matched token span ``[start, end)`` and its nodes, best first, with scores."""

    start: int
    end: int
    node_ids: list[int]
    scores: list[float]


class Linker:
    """A concept/entity index bound to a spaCy pipeline: docs in, mentions out.

    Args:
        graph: the graph index.
        nlp: the pipeline that produces the docs (its tokenizer, and for ``pipeline`` lemmas
            the components ``pipes``, must be the ones the docs went through).
        options: index options.
        pipes: the components that run before the linker (default: all of ``nlp``).
        cache_dir: where the index is cached (default ``$KELM_CACHE/linker``).
    """

    def __init__(
        self,
        graph: GraphIndex,
        nlp: Language,
        options: LinkerOptions | None = None,
        *,
        pipes: Sequence[str] | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.graph = graph
        self.options = options or LinkerOptions()
        self.pipes = list(nlp.pipe_names if pipes is None else pipes)
        self.index = ConceptIndex.load_or_build(graph, nlp, self.options, self.pipes, cache_dir)
        self.table = self.index.table
        self.encoder = KeyEncoder(self.index.vocab_ids, self.options.lemmas)
        # Keys that several nodes share; concept mode resolves them by the matched text.
        self.shared = np.diff(self.table.indptr) > 1
        self._names: list[str] | None = None

    @property
    def names(self) -> list[str]:
        """All node names by id (read once)."""
        if self._names is None:
            self._names = self.graph.names.to_list()
        return self._names

    def key_string(self, key: int) -> str:
        """The lemma sequence of a key, space-separated."""
        length = int(self.table.lengths[key])
        return " ".join(self.index.vocab[t] for t in self.table.tokens[key, :length])

    def resolve(self, key: int, surface: str) -> tuple[list[int], list[float]]:
        """The nodes of a concept-mode match of ``key`` whose lower-cased, space-joined
        tokens are ``surface``: of the nodes sharing the key, those named ``surface``, else
        the one named like the key, else all of them."""
        nodes, scores = self.table.candidates(key)
        node_list, score_list = nodes.tolist(), scores.tolist()
        if len(node_list) < 2:
            return node_list, score_list
        for wanted in (surface, self.key_string(key)):
            keep = [i for i, n in enumerate(node_list) if self.names[n].replace("_", " ") == wanted]
            if keep:
                return [node_list[i] for i in keep], [score_list[i] for i in keep]
        return node_list, score_list

    def encode(self, docs: Sequence[Doc], surface: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Concatenated key ids of ``docs`` and the document number of each token."""
        parts = [self.encoder.encode(doc, surface) for doc in docs]
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        lengths = [p.shape[0] for p in parts]
        return np.concatenate(parts), np.repeat(np.arange(len(parts)), lengths)

    def find(
        self, docs: Sequence[Doc], surface: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """All key matches in ``docs``: ``(doc, start, end, key)`` arrays, token offsets
        relative to their doc, in document order."""
        ids, segment = self.encode(docs, surface)
        starts, lengths, keys = self.table.find(ids, segment)
        if starts.size == 0:
            return starts, starts, starts, starts
        doc_of = segment[starts]
        first = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum(np.bincount(segment, minlength=len(docs)), out=first[1:])
        local = starts - first[doc_of]
        return doc_of, local, local + lengths, keys

    def mentions(self, docs: Sequence[Doc]) -> list[list[Mention]]:
        """Concept mode: every match (overlaps kept). Entity mode: the longest non-overlapping
        matches, leftmost first, each with its ranked candidates."""
        docs = list(docs)
        out: list[list[Mention]] = [[] for _ in docs]
        if self.options.mode == "concept":
            for d, s, e, k in zip(*(a.tolist() for a in self.find(docs)), strict=True):
                surface = " ".join(t.lower_ for t in docs[d][s:e]) if self.shared[k] else ""
                out[d].append(Mention(s, e, *self.resolve(k, surface)))
            return out
        spans: list[dict[tuple[int, int], dict[int, float]]] = [{} for _ in docs]
        for surface in (False, True):
            for d, s, e, k in zip(*(a.tolist() for a in self.find(docs, surface)), strict=True):
                cands = spans[d].setdefault((s, e), {})
                for n, sc in zip(*self.table.candidates(k), strict=True):
                    cands[int(n)] = max(cands.get(int(n), 0.0), float(sc))
        for d, found in enumerate(spans):
            taken: set[int] = set()
            for (s, e), cands in sorted(
                found.items(), key=lambda kv: (kv[0][0] - kv[0][1], kv[0][0])
            ):
                if taken.isdisjoint(range(s, e)):
                    taken.update(range(s, e))
                    ranked = sorted(cands.items(), key=lambda p: (-p[1], p[0]))
                    out[d].append(Mention(s, e, [n for n, _ in ranked], [c for _, c in ranked]))
            out[d].sort(key=lambda m: m.start)
        return out
