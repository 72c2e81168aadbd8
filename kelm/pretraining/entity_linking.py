"""Corpus text linked to graph nodes for pretraining: the ``kelm_linker`` spaCy component, one
entity per mention, mentions never overlapping (longest first)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kelm.errors import InputError

if TYPE_CHECKING:
    from kelm.graph.index import GraphIndex


class EntityLinker:
    """``kelm_linker`` on a spaCy pipeline: texts in, non-overlapping entity mentions out.

    Args:
        graph: graph index directory.
        mode: ``concept`` or ``entity``.
        pipeline: installed spaCy pipeline whose lemmas to use (default blank English with
            lookup lemmas).
        cache_dir: linker index cache (default ``$KELM_CACHE/linker``).
    """

    def __init__(
        self,
        graph: str | Path,
        mode: str = "concept",
        pipeline: str | None = None,
        *,
        cache_dir: str | Path | None = None,
    ) -> None:
        from kelm.linking.ground import make_nlp

        self.graph_path = Path(graph)
        self.mode = mode
        self.pipeline = pipeline
        self.nlp = make_nlp(pipeline)
        self.component = self.nlp.add_pipe(
            "kelm_linker",
            config={
                "graph": str(graph),
                "mode": mode,
                "lemmas": "pipeline" if pipeline else "lookup",
                "cache_dir": str(cache_dir) if cache_dir else None,
            },
        )

    @property
    def graph(self) -> GraphIndex:
        return self.component.graph

    def identity(self) -> dict[str, Any]:
        """What determines the mentions (part of the instance cache key)."""
        from kelm.linking.concept_index import INDEX_VERSION
        from kelm.linking.lemmas import lemma_source_identity

        options = self.component.options
        pipes = [p for p in self.nlp.pipe_names if p != self.component.name]
        return {
            "graph_checksum": self.graph.checksum,
            "options": options.to_dict(),
            "index_version": INDEX_VERSION,
            "pipeline": self.pipeline,
            "lemma_source": lemma_source_identity(self.nlp, options.lemmas, pipes),
        }

    def link(
        self, texts: Sequence[str], batch_size: int = 256
    ) -> tuple[list[list[tuple[int, int, int]]], int]:
        """Mentions of each text as ``(start_char, end_char, node_id)``, sorted, never
        overlapping (longest first, then leftmost), and the number of overlapping mentions
        dropped."""
        max_length = self.nlp.max_length
        too_long = next((t for t in texts if len(t) > max_length), None)
        if too_long is not None:
            raise InputError(
                f"a corpus unit of {len(too_long):,} characters exceeds the spaCy pipeline's "
                f"max_length ({max_length:,}); split it into lines"
            )
        out: list[list[tuple[int, int, int]]] = []
        dropped = 0
        for doc in self.nlp.pipe(texts, batch_size=batch_size):
            spans = sorted(
                doc.spans.get("kelm", []), key=lambda s: (-(s.end - s.start), s.start, s.end)
            )
            taken: set[int] = set()
            kept = []
            for span in spans:
                tokens = range(span.start, span.end)
                if taken.isdisjoint(tokens):
                    taken.update(tokens)
                    kept.append((span.start_char, span.end_char, int(span._.kelm_node_id)))
                else:
                    dropped += 1
            out.append(sorted(kept))
        return out, dropped


__all__ = ["EntityLinker"]
