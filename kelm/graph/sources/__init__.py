"""Readers for each input format; each returns a :class:`~kelm.graph.sources.base.SourceOutput`."""
