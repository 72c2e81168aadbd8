"""Re-exports the tiny training inputs of ``tests/training/training_fixtures.py``; builds a
graph index from a list of edges.

A plain module (imported by the tests), not a conftest: ``tests/conftest.py`` owns that name.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from training_fixtures import (  # noqa: E402
    QUESTIONS,
    one_line_error,
    qa_record,
    tiny_config,
    train_run,
    write_qa,
)

from kelm.graph.build import build_index  # noqa: E402
from kelm.graph.index import GraphIndex  # noqa: E402
from kelm.graph.sources.base import BuildOptions  # noqa: E402

__all__ = [
    "QUESTIONS",
    "index_of_edges",
    "one_line_error",
    "qa_record",
    "tiny_config",
    "train_run",
    "write_qa",
]


def index_of_edges(root: Path, edges: list[tuple[str, str, str]]) -> GraphIndex:
    """The graph index of ``(head, relation, tail)`` edges, built under ``root`` (a TSV)."""
    tsv = root / "edges.tsv"
    tsv.write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in edges), encoding="utf-8")
    build_index([tsv], root / "graph", BuildOptions(format="tsv"), progress=False)
    return GraphIndex.load(root / "graph")
