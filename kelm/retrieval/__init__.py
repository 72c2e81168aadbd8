"""Retrieval: per-statement subgraphs (QA-GNN / MHGRN) and question-answer paths (KagNet).

* :func:`retrieve` - grounded JSONL -> shards on disk (``kelm retrieve``), cached by key;
* :class:`RetrievalStore` - read the shards back as PyG ``Data`` and path lists;
* :class:`Retriever` - one statement at a time, in memory;
* :mod:`~kelm.retrieval.subgraph`, :mod:`~kelm.retrieval.paths` - the definitions and their
  networkx references; :mod:`~kelm.retrieval.scoring` - relevance scorers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RetrievalStore", "RetrieveOptions", "Retriever", "retrieve"]

_EXPORTS = {
    "RetrievalStore": "kelm.retrieval.store",
    "RetrieveOptions": "kelm.retrieval.retrieve",
    "Retriever": "kelm.retrieval.retrieve",
    "retrieve": "kelm.retrieval.retrieve",
}


def __getattr__(name: str) -> Any:  # lazy: keep `import kelm.retrieval` cheap
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kelm.retrieval' has no attribute {name!r}")
