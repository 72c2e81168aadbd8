"""The linker's index over a graph (:class:`ConceptIndex`): built from the graph's names or
aliases, cached on disk.

The index is an :class:`~kelm.linking.ngram_table.NgramTable` whose keys are the lemma id
sequences of the entries of :mod:`kelm.linking.lexicon` (in ``entity`` mode each alias under
its lemma form and its lower-cased surface form). In ``concept`` mode, when several names
share a key (the lookup table lemmatises ``creamer`` to ``cream`` and ``men`` to ``man``),
the linker keeps the nodes named like the matched text, else the one named like the key, else
all (see :meth:`kelm.linking.linker.Linker.resolve`); in ``entity`` mode each key's nodes are
ranked by prior.

The index is built once per (graph checksum, tokenizer, lemma source, options) and cached on
disk as ``.npy`` arrays plus a JSON manifest (never pickle), by default under
``$KELM_CACHE/linker/<key>/`` (``~/.cache/kelm/linker/<key>/``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kelm._io import (
    publish_dir,
    remove_stale_staging,
    sha256_file,
    staging_dir,
    verify_file,
    write_json,
)
from kelm.graph.strings import StringColumn
from kelm.linking.lemmas import KeyEncoder, analyse, check_lemma_source, lemma_source_identity
from kelm.linking.lexicon import alias_entries, concept_entries, keep_name, rank_nodes, read_priors
from kelm.linking.ngram_table import NgramTable
from kelm.linking.options import LinkerOptions

if TYPE_CHECKING:
    from spacy.language import Language

    from kelm.graph.index import GraphIndex

log = logging.getLogger(__name__)

#: Version of the index layout *and* of the keying/pruning rules: part of the cache key, so
#: bump it whenever either changes and every cached index is rebuilt.
INDEX_VERSION = 2


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
            concept_entries(graph) if options.mode == "concept" else alias_entries(graph, options)
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
            if not keep_name(lowers, lemma_keys, options):
                continue
            variants = [lemma_keys]
            if options.mode == "entity" and lowers != lemma_keys:
                variants.append(lowers)  # entity aliases also match their exact wording
            for variant in variants:
                key = tuple(vocab.setdefault(s, len(vocab)) for s in variant)
                grouped.setdefault(key, {}).setdefault(node, set()).add(" ".join(lowers))
        keys = list(grouped)
        priors = read_priors(options, graph, nlp)
        scored = [rank_nodes(graph, grouped[k], priors) for k in keys]
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
            files = {f: sha256_file(staged / f) for f in _files()}
            write_json(
                staged / "manifest.json",
                {
                    "kind": "kelm-linker-index",
                    "index_version": INDEX_VERSION,
                    "key": key,
                    "seed": self.table.seed,
                    "meta": self.meta,
                    "files": files,
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
        """The cached index in ``directory`` if it is complete, intact (every file matches the
        sha256 its manifest records, hashed once per process) and was built for ``key``."""
        if not (directory / "manifest.json").is_file():
            return None
        try:
            manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
            if manifest.get("key") != key or manifest.get("index_version") != INDEX_VERSION:
                return None
            files = manifest.get("files")
            if not isinstance(files, dict):
                raise ValueError("no file checksums (written by an older kelm)")
            for name in _files():
                verify_file(
                    directory / name, files.get(name), what="linker index", error=ValueError
                )
            vocab = StringColumn(
                np.load(directory / "vocab.data.npy", allow_pickle=False),
                np.load(directory / "vocab.offsets.npy", allow_pickle=False),
            ).to_list()
            arrays = {
                name: np.load(directory / f"table.{name}.npy", allow_pickle=False)
                for name in NgramTable.ARRAYS
            }
        except (OSError, ValueError, AttributeError) as exc:
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


def _files() -> list[str]:
    """The array files of a cached index (their sha256 are in its manifest)."""
    return ["vocab.data.npy", "vocab.offsets.npy"] + [f"table.{n}.npy" for n in NgramTable.ARRAYS]


def cache_key(
    graph: GraphIndex, nlp: Language, options: LinkerOptions, pipes: Sequence[str] = ()
) -> dict[str, Any]:
    """Everything the index depends on: graph, kelm index layout, lemma source, options (not
    the ranking settings, :meth:`~kelm.linking.options.LinkerOptions.index_dict`)."""
    opts = options.index_dict()
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
