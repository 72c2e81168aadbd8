"""QA items -> grounded, retrieved, tokenised examples -> collated batches, in memory.

* :mod:`~kelm.pipeline.items` — read and check a QA file, the seeded held-out split;
* :mod:`~kelm.pipeline.graph` — :class:`GraphResources`: one loaded graph index per process and
  its cache (grounding and retrieval of in-memory items, entity linking);
* :mod:`~kelm.pipeline.entities` — statement mentions linked to nodes, aligned to wordpieces;
* :mod:`~kelm.pipeline.examples` — :class:`Example`, :func:`build_examples`;
* :mod:`~kelm.pipeline.prepare` — :func:`prepare_examples`, the one entry point of training,
  evaluation and distillation;
* :mod:`~kelm.pipeline.collate` — :class:`Collator`, examples -> padded batches;
* :mod:`~kelm.pipeline.node_embeddings` — node-name text embeddings (initial node tables).
"""

from kelm.pipeline.collate import Collator
from kelm.pipeline.examples import Example, build_examples
from kelm.pipeline.graph import GraphResources, default_cache_dir
from kelm.pipeline.items import read_items, split_items
from kelm.pipeline.prepare import prepare_examples

__all__ = [
    "Collator",
    "Example",
    "GraphResources",
    "build_examples",
    "default_cache_dir",
    "prepare_examples",
    "read_items",
    "split_items",
]
