"""Graph indices: build from ConceptNet, CN-100K, TSV, RDF or WordNet; load memory-mapped."""

from kelm.graph.index import FORMAT_VERSION, GraphIndex

__all__ = ["FORMAT_VERSION", "GraphIndex", "build_index"]


def build_index(*args, **kwargs):  # noqa: D103 - thin lazy re-export (pyarrow-heavy module)
    from kelm.graph.build import build_index as _build

    return _build(*args, **kwargs)
