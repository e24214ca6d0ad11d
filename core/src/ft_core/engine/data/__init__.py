"""Datasets: registry, file readers, formats, loading and caching."""
