"""The ``kelm_linker`` spaCy component.

Registered with ``@Language.factory`` and, through the ``spacy_factories`` entry point, found
by spaCy as soon as kelm is installed::

    nlp = spacy.blank("en")
    nlp.add_pipe("kelm_linker", config={"graph": "graphs/cn100k", "mode": "concept"})
    doc = nlp("Where would you put a lantern?")
    for span in doc.spans["kelm"]:
        print(span.text, span._.kelm_names)

Results:

* ``doc.spans[span_key]`` (default ``"kelm"``): one span per match, label ``CONCEPT`` or
  ``ENTITY``. Concept mode keeps overlapping matches; entity mode keeps the longest
  non-overlapping mentions.
* ``span._.kelm_node_ids`` / ``kelm_names`` / ``kelm_scores``: the span's nodes, best first
  (concept mode: every node whose name has the span's lemma key, score 1.0; entity mode: the
  candidate list ranked by prior and context, :mod:`kelm.linking.disambiguation`),
  ``span._.kelm_node_id`` / ``kelm_name``: the best one. Entity mode also sets
  ``span._.kelm_priors`` (each candidate's prior) and ``span._.kelm_context`` (its context
  cosine, ``None`` when the context is not scored).
* ``doc._.kelm_node_ids`` / ``doc._.kelm_names``: concept mode: all nodes of all spans;
  entity mode: the best candidate of each span; sorted by node id, without repeats.

Lemmas: ``lemmas="lookup"`` (default) looks the lower-cased token up in spaCy's English
lookup table, so it works in ``spacy.blank("en")`` with no lemmatizer in the pipeline;
``lemmas="pipeline"`` uses ``token.lemma_`` from the components before the linker (e.g.
``en_core_web_sm``). The node-name index is built on first use (or by ``nlp.initialize()``)
and cached on disk, see :mod:`kelm.linking.concept_index`.
"""

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import minibatch

from kelm.errors import KelmError
from kelm.linking.linker import Linker, Mention
from kelm.linking.options import DEFAULT_BLACKLIST, DEFAULT_CONTEXT_WINDOW, LinkerOptions

SPAN_EXTENSIONS = (
    "kelm_node_ids",
    "kelm_names",
    "kelm_scores",
    "kelm_node_id",
    "kelm_name",
    "kelm_priors",
    "kelm_context",
)
DOC_EXTENSIONS = ("kelm_node_ids", "kelm_names")
LABELS = {"concept": "CONCEPT", "entity": "ENTITY"}


def register_extensions() -> None:
    """Declare the Doc and Span extension attributes (idempotent)."""
    for name in SPAN_EXTENSIONS:
        if not Span.has_extension(name):
            Span.set_extension(name, default=None)
    for name in DOC_EXTENSIONS:
        if not Doc.has_extension(name):
            Doc.set_extension(name, default=None)


@Language.factory(
    "kelm_linker",
    default_config={
        "graph": None,
        "mode": "concept",
        "lemmas": "lookup",
        "max_ngram": 5,
        "prune_stopwords": True,
        "blacklist": None,
        "prune_pronouns": True,
        "priors": None,
        "context_weight": None,
        "context_window": DEFAULT_CONTEXT_WINDOW,
        "pos_filter": True,
        "encoder": None,
        "span_key": "kelm",
        "cache_dir": None,
    },
)
def make_kelm_linker(
    nlp: Language,
    name: str,
    graph: str | None,
    mode: str,
    lemmas: str,
    max_ngram: int,
    prune_stopwords: bool,
    blacklist: list[str] | None,
    prune_pronouns: bool,
    priors: str | None,
    context_weight: float | None,
    context_window: int,
    pos_filter: bool,
    encoder: str | None,
    span_key: str,
    cache_dir: str | None,
) -> "KelmLinker":
    """Create the linker component (see the module docstring for the settings).

    Args:
        graph: graph index directory (``kelm graph build``); required.
        mode: ``concept`` or ``entity``.
        lemmas: ``lookup`` or ``pipeline``.
        max_ngram: longest indexed name, in tokens.
        prune_stopwords: drop names made only of stopwords, blacklisted words and punctuation.
        blacklist: words never used as concepts (default: the QA-GNN grounding blacklist).
        prune_pronouns: concept mode: drop names that start or end with a pronoun.
        priors: entity mode: TSV of ``alias, node name, count`` alias frequencies.
        context_weight: entity mode: weight of the context score against the prior (``None``:
            the default when the sentence encoder is installed, else 0).
        context_window: entity mode: tokens of context on each side of a mention.
        pos_filter: entity mode: drop candidates of another part of speech (tagged docs).
        encoder: entity mode: sentence encoder folder (default: the bundled MiniLM).
        span_key: the ``doc.spans`` key to write.
        cache_dir: index cache directory (default ``$KELM_CACHE/linker``).
    """
    if not graph:
        raise KelmError(
            'kelm_linker needs a graph: nlp.add_pipe("kelm_linker", '
            'config={"graph": "<index directory>"})'
        )
    options = LinkerOptions(
        mode=mode,
        lemmas=lemmas,
        max_ngram=max_ngram,
        prune_stopwords=prune_stopwords,
        blacklist=tuple(DEFAULT_BLACKLIST if blacklist is None else blacklist),
        prune_pronouns=prune_pronouns,
        priors=priors,
        context_weight=context_weight,
        context_window=context_window,
        pos_filter=pos_filter,
        encoder=encoder,
    )
    return KelmLinker(nlp, name, graph, options, span_key=span_key, cache_dir=cache_dir)


class KelmLinker:
    """Links docs to graph nodes; results on ``doc.spans`` and Doc/Span extensions."""

    def __init__(
        self,
        nlp: Language,
        name: str,
        graph: str | Path,
        options: LinkerOptions,
        *,
        span_key: str = "kelm",
        cache_dir: str | Path | None = None,
    ) -> None:
        from kelm.graph.index import GraphIndex

        register_extensions()
        self.nlp = nlp
        self.name = name
        self.options = options
        self.span_key = span_key
        self.cache_dir = cache_dir
        # Loaded now, so that a missing or unsupported graph fails in add_pipe, not later.
        self.graph = GraphIndex.load(graph)
        self._linker: Linker | None = None
        self._names: list[str] | None = None

    @property
    def linker(self) -> Linker:
        """The index, built or loaded on first use: the components before this one must
        exist (and, for a loaded pipeline, be loaded) before node names can be analysed."""
        if self._linker is None:
            names = self.nlp.pipe_names
            before = names[: names.index(self.name)] if self.name in names else names
            self._linker = Linker(
                self.graph, self.nlp, self.options, pipes=before, cache_dir=self.cache_dir
            )
        return self._linker

    def initialize(self, get_examples: Any = None, *, nlp: Language | None = None) -> None:
        """Build (or load) the index now rather than on the first doc."""
        _ = self.linker

    def node_names(self, ids: Iterable[int]) -> list[str]:
        if self._names is None:
            self._names = self.graph.names.to_list()
        return [self._names[i] for i in ids]

    def __call__(self, doc: Doc) -> Doc:
        self.set_annotations([doc], self.linker.mentions([doc]))
        return doc

    def pipe(self, stream: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        """Link docs in batches (one vectorised n-gram lookup per batch)."""
        for batch in minibatch(stream, size=batch_size):
            self.set_annotations(batch, self.linker.mentions(batch))
            yield from batch

    def set_annotations(self, docs: list[Doc], mentions: list[list[Mention]]) -> None:
        label = LABELS[self.options.mode]
        for doc, found in zip(docs, mentions, strict=True):
            spans = []
            for m in found:
                span = Span(doc, m.start, m.end, label=label)
                names = self.node_names(m.node_ids)
                span._.kelm_node_ids = m.node_ids
                span._.kelm_names = names
                span._.kelm_scores = m.scores
                span._.kelm_node_id = m.node_ids[0]
                span._.kelm_name = names[0]
                span._.kelm_priors = m.priors
                span._.kelm_context = m.context
                spans.append(span)
            doc.spans[self.span_key] = spans
            if self.options.mode == "concept":
                ids = sorted({n for m in found for n in m.node_ids})
            else:
                ids = sorted({m.node_ids[0] for m in found})
            doc._.kelm_node_ids = ids
            doc._.kelm_names = self.node_names(ids)


def spans_json(doc: Doc, span_key: str = "kelm") -> dict[str, Any]:
    """``{"text", "spans": [{"start", "end", "text", "node_ids", "names"}]}`` with character
    offsets (what ``kelm link --json`` prints). Entity-mode spans also list their
    ``candidates``, best first: ``{"node_id", "name", "score", "prior", "context"}`` (the
    combined score, the prior and the context cosine, ``null`` when the context is not
    scored)."""
    spans = doc.spans.get(span_key, [])
    out = []
    for s in spans:
        item: dict[str, Any] = {
            "start": s.start_char,
            "end": s.end_char,
            "text": s.text,
            "node_ids": list(s._.kelm_node_ids),
            "names": list(s._.kelm_names),
        }
        if s._.kelm_priors is not None:
            context = s._.kelm_context or [None] * len(s._.kelm_priors)
            item["candidates"] = [
                {"node_id": n, "name": name, "score": sc, "prior": p, "context": c}
                for n, name, sc, p, c in zip(
                    s._.kelm_node_ids,
                    s._.kelm_names,
                    s._.kelm_scores,
                    s._.kelm_priors,
                    context,
                    strict=True,
                )
            ]
        out.append(item)
    return {"text": doc.text, "spans": out}


def link_text(
    graph: str | Path,
    text: str,
    *,
    mode: str = "concept",
    pipeline: str | None = None,
    cache_dir: str | Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Link one text (what ``kelm link`` does): the :func:`spans_json` of its doc.

    Args:
        graph: graph index directory.
        text: the text; any length up to the pipeline's ``max_length``.
        mode: ``concept`` or ``entity``.
        pipeline: an installed spaCy pipeline whose lemmas (and, entity mode, tags) to use
            (default: blank English with lookup lemmas).
        cache_dir: index cache directory.
        options: further ``kelm_linker`` settings (``context_weight``, ``context_window``,
            ``pos_filter``, ``encoder``, ``priors``).
    """
    from kelm.linking.ground import make_nlp

    # Checked here first: spaCy refuses a config with NaN in it before the factory can.
    LinkerOptions(mode=mode, **options)
    nlp = make_nlp(pipeline)
    if len(text) > nlp.max_length:
        raise KelmError(
            f"text of {len(text):,} characters exceeds the spaCy pipeline's "
            f"max_length ({nlp.max_length:,})"
        )
    config = {
        "graph": str(graph),
        "mode": mode,
        "lemmas": "pipeline" if pipeline else "lookup",
        "cache_dir": str(cache_dir) if cache_dir else None,
        **options,
    }
    nlp.add_pipe("kelm_linker", config=config)
    return spans_json(nlp(text))
