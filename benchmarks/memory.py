"""memUsed: the memory a document holds once loaded from its encoding and read back.

crdt-benchmarks measures the JavaScript heap before and after loading the encoded document.
Here there are two measures:

- ``tracemalloc`` (in this process), for the pure-Python systems (crdtsync and the plain
  Python floor): every Python allocation made while loading and still alive afterwards.
- RSS growth in a fresh child process, for every system: the only measure that sees the
  Rust heaps of pycrdt and loro. The child imports the library and loads a tiny document
  first, so that one-time costs are not billed to the document. RSS moves in 4 KiB pages and
  allocators keep freed memory, so small documents read as noise (or 0).

Run as ``python -m benchmarks.memory SYSTEM KIND STATE_FILE`` it is that child: it prints
``{"rss": bytes}``.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.systems import ALL_SYSTEMS, Kind, System
from benchmarks.traces import REPO_ROOT


def current_rss() -> int:
    """This process's resident set size in bytes (Linux; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def traced_load(load_and_read: Callable[[], tuple[Any, Any]]) -> int:
    """Python memory still held after ``load_and_read()`` (which returns the loaded
    document and what was read back), with the read-back dropped (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        doc, content = load_and_read()
        del content
        gc.collect()
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del doc
    return held


def traced_bytes(system: System, state: bytes, kind: Kind) -> int:
    """Python memory held by a replica loaded from ``state`` (tracemalloc)."""

    def load_and_read() -> tuple[Any, Any]:
        replica = system.load(state, kind)
        return replica, replica.read(kind)

    return traced_load(load_and_read)


def child_rss(module_args: list[str], state: bytes, timeout: float = 600) -> int:
    """The ``rss`` a child ``python -m <module_args> STATE_FILE`` prints as JSON, with
    ``state`` in that file (raises on failure)."""
    with tempfile.TemporaryDirectory(prefix="crdtsync-bench-") as tmp:
        path = Path(tmp) / "state.bin"
        path.write_bytes(state)
        proc = subprocess.run(
            [sys.executable, "-m", *module_args, str(path)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed: {proc.stderr.strip()[-500:]}")
    return int(json.loads(proc.stdout.strip().splitlines()[-1])["rss"])


def rss_bytes(system: System, state: bytes, kind: Kind, timeout: float = 600) -> int:
    """RSS growth of a fresh child process that loads ``state`` (raises on failure)."""
    return child_rss(["benchmarks.memory", system.name, kind], state, timeout)


def print_rss_growth(load: Callable[[], tuple[Any, Any]]) -> int:
    """In a memory child, after its warm-up: print ``{"rss": bytes}``, the RSS growth of
    ``load()``, which returns the loaded document and the content read back (dropped
    before measuring: only the document counts)."""
    gc.collect()
    before = current_rss()
    doc, content = load()
    del content
    gc.collect()
    after = current_rss()
    print(json.dumps({"rss": after - before}))
    del doc
    return 0


def child_main(argv: list[str]) -> int:
    name, kind, state_file = argv
    system = ALL_SYSTEMS[name]
    reason = system.unavailable()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 2
    state = Path(state_file).read_bytes()
    # Warm up: the first document pays for lazy imports, caches and interned names.
    warm = system.create(1)
    if kind == "text":
        warm.insert_text(0, "warm")
    elif kind == "array":
        warm.insert_array(0, [1, "warm"])
    else:
        warm.set_map("warm", {"a": 1})
    system.load(warm.encode_state(), kind).read(kind)
    del warm

    def load() -> tuple[Any, Any]:
        replica = system.load(state, kind)
        return replica, replica.read(kind)

    return print_rss_growth(load)


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
