"""Benchmarks and comparisons; not part of the installed package."""
