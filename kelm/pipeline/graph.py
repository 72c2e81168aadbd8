"""The graph of a run: one loaded :class:`~kelm.graph.index.GraphIndex` and the cache where its
pipeline results live (grounded statements, retrievals, linker index, node-name embeddings)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kelm._io import sha256_file
from kelm.errors import InputError
from kelm.pipeline.entities import StatementMentions, cached_link_entities

if TYPE_CHECKING:
    from kelm.config import GraphSourceConfig
    from kelm.data.qa import QAItem
    from kelm.graph.index import GraphIndex
    from kelm.retrieval.retrieve import RetrieveOptions
    from kelm.retrieval.store import RetrievalStore

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$KELM_CACHE/training`` (``~/.cache/kelm/training``)."""
    from kelm.paths import cache_dir

    return cache_dir() / "training"


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class GraphResources:
    """A loaded graph index plus the cache where its pipeline results live.

    The index is loaded (and its arrays checked against their checksums) once; grounding,
    retrieval and entity linking all use this one object, and the spaCy pipeline they
    tokenise with is loaded once per pipeline name (:meth:`nlp`).
    """

    path: Path
    index: GraphIndex
    cache: Path
    _nlps: dict[str | None, Any] = field(default_factory=dict, repr=False, compare=False)

    def nlp(self, pipeline: str | None = None) -> Any:
        """The spaCy pipeline ``pipeline`` (default blank English), loaded on first use and
        kept: the explorer grounds one question at a time, and building even a blank English
        pipeline (its tokenizer's special cases) took longer than the model's forward pass.
        Only grounding and linking tokenise with it; nothing adds components to it."""
        if pipeline not in self._nlps:
            from kelm.linking.ground import make_nlp

            self._nlps[pipeline] = make_nlp(pipeline)
        return self._nlps[pipeline]

    @classmethod
    def open(
        cls,
        source: GraphSourceConfig,
        cache_dir: str | Path | None = None,
        *,
        progress: bool = False,
    ) -> GraphResources:
        """Load ``source.index``, or build the index from ``source.source`` into the cache
        (once, keyed on the files' checksums and format).

        Args:
            source: which graph.
            cache_dir: the cache (default :func:`default_cache_dir`).
            progress: progress bars of an index build.

        Raises:
            KelmError: missing or corrupt index, unreadable sources.
        """
        from kelm.graph.index import GraphIndex

        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        if source.index:
            path = Path(source.index)
        else:
            files = [source.source] if isinstance(source.source, str) else list(source.source or [])
            for src in files:
                if not Path(src).exists():
                    raise InputError(f"{src}: graph source file not found (graph.source)")
            key = _digest(
                {
                    "format": source.format,
                    "sources": [sha256_file(s) if Path(s).is_file() else str(s) for s in files],
                }
            )
            path = cache / "graphs" / f"{source.format}-{key[:16]}"
            if not (path / "manifest.json").is_file():
                from kelm.graph import build_index
                from kelm.graph.sources.base import BuildOptions

                log.info("building graph index %s from %s", path, ", ".join(map(str, files)))
                build_index(files, path, BuildOptions(format=source.format), progress=progress)
        return cls(path, GraphIndex.load(path), cache)

    def grounded_path(self, items: Sequence[QAItem], pipeline: str | None = None) -> Path:
        """Where :meth:`retrieve` keeps the grounded statements of ``items`` (keyed on the
        graph, the items' content and the spaCy pipeline)."""
        from kelm.linking.ground import items_sha256

        name = f"{self.index.checksum[:16]}-{items_sha256(items)[:20]}-{pipeline or 'blank'}"
        return self.cache / "grounded" / f"{name}.jsonl"

    def retrieve(
        self,
        items: Sequence[QAItem],
        options: RetrieveOptions,
        *,
        pipeline: str | None = None,
        progress: bool = False,
    ) -> RetrievalStore:
        """Ground the statements of ``items`` and retrieve their subgraphs and paths (both
        cached: the grounded file is keyed on the graph, the items' content and the linker
        pipeline, the retrieval on the grounded file and ``options``), and open the results.

        Args:
            items: the questions (in memory; any source format).
            options: the retrieval settings.
            pipeline: installed spaCy pipeline for grounding (default blank English).
            progress: progress bars.
        """
        from kelm.linking.ground import ground_file
        from kelm.linking.lemmas import spacy_available
        from kelm.retrieval.retrieve import retrieve
        from kelm.retrieval.store import RetrievalStore

        grounded = self.grounded_path(items, pipeline)
        grounded.parent.mkdir(parents=True, exist_ok=True)
        ground_file(
            self.index,
            items,
            grounded,
            pipeline=pipeline,
            progress=progress,
            cache_dir=self.cache / "linker",
            nlp=self.nlp(pipeline) if spacy_available() else None,
        )
        key = _digest({"grounded": grounded.name, "options": asdict(options)})
        out = self.cache / "retrieval" / key[:20]
        retrieve(
            self.index, grounded, out, options, cache_dir=self.cache / "scorer", progress=progress
        )
        return RetrievalStore(out)

    def link_entities(
        self, items: Sequence[QAItem], *, pipeline: str | None = None, progress: bool = False
    ) -> list[StatementMentions]:
        """:func:`~kelm.pipeline.entities.link_entities` with this graph and the cache's linker
        index, the result cached in the cache's ``entities/``
        (:func:`~kelm.pipeline.entities.cached_link_entities`)."""
        from kelm.linking.lemmas import spacy_available

        return cached_link_entities(
            items,
            self.index,
            self.cache / "entities",
            pipeline=pipeline,
            cache_dir=self.cache / "linker",
            progress=progress,
            nlp=self.nlp(pipeline) if spacy_available() else None,
        )


__all__ = ["GraphResources", "default_cache_dir"]
