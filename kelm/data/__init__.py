"""Datasets: QA readers, corpora, downloads."""
