"""Undo/redo on a large text: what an UndoManager costs, side by side with pycrdt and loro.

``python -m benchmarks.editor`` builds a 100,000-character Text (random typing in chunks of
100), then, with an undo manager on it that makes every edit its own step:

- **edit**: the time of a one-character insert at a random place, with and without a
  manager (crdtsync only: the recording overhead);
- **undo / redo**: the time of undoing (redoing) one such insert, and one delete of 10
  characters, each the latest step;
- **memory per step**: for crdtsync, the Python memory the manager's stacks hold per
  step (tracemalloc), for one-character inserts and for 10-character deletes.

Times are medians over ``--ops`` operations (default 300), per operation in microseconds.
``--size`` sets the text's length; ``--quick`` is 20,000 characters and 100 operations.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import crdtsync

SEED = 7


def _chunks(size: int) -> list[tuple[int, str]]:
    rng = random.Random(SEED)
    out, length = [], 0
    while length < size:
        piece = "".join(rng.choice("abcdefghij klmnop") for _ in range(100))
        out.append((rng.randint(0, length), piece))
        length += len(piece)
    return out


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class _Crdtsync:
    name = "crdtsync"

    def __init__(self, size: int, managed: bool = True) -> None:
        self.doc = crdtsync.Doc(1)
        self.text = self.doc.text("t")
        for pos, piece in _chunks(size):
            self.text.insert(pos, piece)
        self.um = (
            crdtsync.UndoManager(self.text, capture_timeout=0, max_depth=10**6) if managed else None
        )

    def insert(self, pos: int) -> None:
        self.text.insert(pos, "x")

    def delete(self, pos: int, n: int) -> None:
        self.text.delete(pos, n)

    def undo(self) -> None:
        assert self.um is not None and self.um.undo()

    def redo(self) -> None:
        assert self.um is not None and self.um.redo()

    def length(self) -> int:
        return len(self.text)


class _Pycrdt:
    name = "pycrdt"

    def __init__(self, size: int) -> None:
        import pycrdt

        self.doc = pycrdt.Doc()
        self.text = self.doc.get("t", type=pycrdt.Text)
        for pos, piece in _chunks(size):
            self.text.insert(pos, piece)
        self.um = pycrdt.UndoManager(scopes=[self.text], capture_timeout_millis=0)

    def insert(self, pos: int) -> None:
        self.text.insert(pos, "x")

    def delete(self, pos: int, n: int) -> None:
        del self.text[pos : pos + n]

    def undo(self) -> None:
        assert self.um.undo()

    def redo(self) -> None:
        assert self.um.redo()

    def length(self) -> int:
        return len(self.text)


class _Loro:
    name = "loro"

    def __init__(self, size: int) -> None:
        import loro

        self.doc = loro.LoroDoc()
        self.text = self.doc.get_text("t")
        for pos, piece in _chunks(size):
            self.text.insert(pos, piece)
        self.doc.commit()
        self.um = loro.UndoManager(self.doc)
        self.um.set_merge_interval(0)
        self.um.set_max_undo_steps(10**6)

    def insert(self, pos: int) -> None:
        self.text.insert(pos, "x")
        self.doc.commit()

    def delete(self, pos: int, n: int) -> None:
        self.text.delete(pos, n)
        self.doc.commit()

    def undo(self) -> None:
        assert self.um.undo()

    def redo(self) -> None:
        assert self.um.redo()

    def length(self) -> int:
        return self.text.len_unicode


def _measure(system: Any, ops: int) -> dict[str, float]:
    rng = random.Random(SEED + 1)
    out: dict[str, float] = {}
    gc.collect()
    edits = [_timed(lambda: system.insert(rng.randint(0, system.length()))) for _ in range(ops)]
    out["edit"] = _median_us(edits)
    undos = [_timed(system.undo) for _ in range(ops)]
    out["undo insert"] = _median_us(undos)
    redos = [_timed(system.redo) for _ in range(ops)]
    out["redo insert"] = _median_us(redos)
    for _ in range(ops):
        system.delete(rng.randint(0, system.length() - 10), 10)
    undos = [_timed(system.undo) for _ in range(ops)]
    out["undo delete"] = _median_us(undos)
    redos = [_timed(system.redo) for _ in range(ops)]
    out["redo delete"] = _median_us(redos)
    return out


def _memory_per_step(size: int, ops: int) -> dict[str, float]:
    """Bytes per step that a crdtsync document with a manager holds beyond the same
    document after the same edits without one (tracemalloc): the manager's records."""

    def grown(managed: bool, kind: str) -> int:
        system = _Crdtsync(size, managed)
        rng = random.Random(SEED + 2)
        gc.collect()
        tracemalloc.start()
        try:
            for _ in range(ops):
                if kind == "insert":
                    system.insert(rng.randint(0, system.length()))
                else:
                    system.delete(rng.randint(0, system.length() - 10), 10)
            gc.collect()
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return held

    return {kind: (grown(True, kind) - grown(False, kind)) / ops for kind in ("insert", "delete")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    size, ops = (20_000, 100) if args.quick else (args.size, args.ops)
    systems: list[Any] = [_Crdtsync(size)]
    for cls in (_Pycrdt, _Loro):
        try:
            systems.append(cls(size))
        except ImportError:
            print(f"({cls.name} is not installed: skipped)")
    bare = _Crdtsync(size, managed=False)
    rng = random.Random(SEED + 1)
    no_manager = _median_us(
        [_timed(lambda: bare.insert(rng.randint(0, bare.length()))) for _ in range(ops)]
    )
    results = {s.name: _measure(s, ops) for s in systems}
    names = [s.name for s in systems]
    print(f"\nUndo/redo on a {size:,}-character Text, median of {ops} operations (us)\n")
    print(
        "| operation | "
        + " | ".join(names)
        + " | "
        + " | ".join(f"crdtsync/{n}" for n in names[1:])
        + " |"
    )
    print("|---" * (1 + 2 * len(names) - 1) + "|")
    for metric in results["crdtsync"]:
        row = [f"{results[n][metric]:.1f}" for n in names]
        ratios = [f"{results['crdtsync'][metric] / results[n][metric]:.2f}x" for n in names[1:]]
        print(f"| {metric} | " + " | ".join(row + ratios) + " |")
    print(f"\ncrdtsync one-character insert without an undo manager: {no_manager:.1f} us")
    memory = _memory_per_step(size, ops)
    print(
        "crdtsync undo stack memory per step: "
        + ", ".join(f"{kind} {value:.0f} bytes" for kind, value in memory.items())
    )


if __name__ == "__main__":
    main()
