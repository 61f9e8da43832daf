"""Benchmarks with their raw baselines: ``python -m bench.pipeline`` (``make bench``)."""
