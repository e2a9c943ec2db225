"""Benchmark harness: the torch reference and every bundle variant, each in a fresh process, in one run."""
