"""Benchmarks, not tests: `python -m bench.core` (see bench/README.md)."""
