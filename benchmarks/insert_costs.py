"""Where a random insert's time goes at 10k and at 1M characters, call by call.

The scaling case ``random`` (``benchmarks/scaling.py``) builds a text of N characters from
random word inserts, then times single-character inserts at random places. Its per-insert
time grows from 10k to 1M although every insert makes the same calls; this script shows
which calls grow. It wraps the sequence engine's steps in timers (``locate`` and the block
search inside it, ``split``, the id index's ``add``, ``_place``), makes ``--inserts`` inserts
into a fresh text of each size, and prints the time per insert spent in each. The wrappers
add their own cost to every figure alike, so compare the columns, not the totals with the
scaling case's.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.insert_costs
    .venv/bin/python -m benchmarks.insert_costs --sizes 10000,100000,1000000 --inserts 20000
"""

from __future__ import annotations

import argparse
import gc
import random
from collections.abc import Callable
from time import perf_counter
from typing import Any

import crdtsync
from benchmarks.scaling import words_text
from benchmarks.systems import Crdtsync
from crdtsync import _ids, _rga

#: (class, method) pairs timed; a method called inside another is counted in both.
STEPS = (
    (_rga.Sequence, "insert_local"),
    (_rga.Sequence, "locate"),
    (_rga.Sequence, "_find_block"),
    (_rga.Sequence, "split"),
    (_ids.IdIndex, "add"),
    (_rga.Sequence, "_place"),
)


def text_of(n: int, seed: int) -> tuple[crdtsync.Text, list[int]]:
    """A text of about ``n`` characters built as the scaling case builds it, and places."""
    rnd = random.Random(seed)
    replica, length = words_text(Crdtsync(), n, rnd)
    return replica.doc.text("text"), [rnd.randint(0, length + i) for i in range(20_000)]


def timed(spent: dict[str, float], cls: Any, name: str) -> Callable[[], None]:
    """Wrap ``cls.name`` so that its time adds up in ``spent``; return the undo."""
    original = cls.__dict__[name]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + perf_counter() - t0

    setattr(cls, name, wrapper)
    return lambda: setattr(cls, name, original)


def costs(n: int, inserts: int) -> dict[str, float]:
    """Microseconds per insert in each step, and in all, for a fresh text of ``n``."""
    text, places = text_of(n, n)
    spent: dict[str, float] = {}
    undo = [timed(spent, cls, name) for cls, name in STEPS]
    gc.collect()
    try:
        t0 = perf_counter()
        for at in places[:inserts]:
            text.insert(at, "x")
        total = perf_counter() - t0
    finally:
        for step in undo:
            step()
    return {"all": total * 1e6 / inserts} | {k: v * 1e6 / inserts for k, v in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000", help="comma-separated sizes")
    parser.add_argument("--inserts", type=int, default=20_000, help="inserts per size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    inserts = min(args.inserts, 20_000)
    rows = {n: costs(n, inserts) for n in sizes}
    names = list(rows[sizes[0]])
    print(f"µs per insert ({inserts:,} random single-character inserts, each step wrapped)")
    print("step".ljust(14) + "".join(f"{n:>12,}" for n in sizes) + "    growth")
    for name in names:
        cells = "".join(f"{rows[n].get(name, 0.0):12.2f}" for n in sizes)
        growth = rows[sizes[-1]].get(name, 0.0) - rows[sizes[0]].get(name, 0.0)
        print(name.ljust(14) + cells + f"   {growth:+7.2f}")


if __name__ == "__main__":
    main()
