"""Benchmarks for crdtsync (run the scripts in this folder directly; see each module)."""
