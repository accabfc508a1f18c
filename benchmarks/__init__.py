"""Benchmarks for crdtsync: the crdt-benchmarks cases, editing traces and a merge.

Run ``python -m benchmarks`` (``--quick`` for a one-minute subset, ``--help`` for options);
``benchmarks/b4.py`` replays one trace with per-system detail and a ``--profile`` mode.
"""
