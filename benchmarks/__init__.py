"""Benchmarks: measured performance, printed as JSON lines."""
