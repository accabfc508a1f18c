"""Where the time of the M1 merge goes, stage by stage, for crdtsync alone.

M1 (see ``cases.py``): two replicas of a 10,000-character text each make 10,000 random
single-character edits offline; the suite times computing both diffs and applying them. This
script takes one direction (replica B's diff applied to replica A) apart: building the state
entries, encoding, compressing, decoding, the readiness check and integration, the last also
split by kind of change (live inserts, deletes of characters A holds, runs that arrive
already deleted). Each figure is the best of ``--runs`` fresh set-ups. Last, the bare
minimum of Python work one remote insert inside a run needs, for comparison.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.merge_stages            # best of 6
    .venv/bin/python -m benchmarks.merge_stages --runs 3
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import Callable
from time import perf_counter
from typing import Any

import crdtsync
from benchmarks.cases import SEED, merge_case, merge_replicas
from benchmarks.systems import Crdtsync
from crdtsync import _encoding as enc
from crdtsync._integrate import check_ready, integrate
from crdtsync._state import state_update


def replicas() -> tuple[crdtsync.Doc, crdtsync.Doc]:
    """A and B after their offline edits, as the suite's M1 makes them."""
    a, b = merge_replicas(Crdtsync(), *merge_case(SEED).prepare())
    return a.doc, b.doc


def stages() -> dict[str, float]:
    """Seconds per stage for one fresh pair."""
    a, b = replicas()
    gc.collect()
    times: dict[str, float] = {}

    def timed(name: str, work: Callable[[], Any]) -> Any:
        t0 = perf_counter()
        out = work()
        times[name] = perf_counter() - t0
        return out

    entries = timed("state_update (entries above A's version)", lambda: state_update(b, a.version))
    raw = timed("encode_update (msgpack)", lambda: enc.encode_update(entries))
    data = timed("deflate", lambda: enc.deflate_update(raw))
    update = timed("decode and validate", lambda: enc.decode_update(data))
    tops = timed("check_ready", lambda: check_ready(a, update))
    timed("integrate (all)", lambda: integrate(a, data, update, tops, None))
    return times


def integration_by_kind() -> dict[str, float]:
    """Integration of the same diff again, one change at a time, split by kind."""
    a, b = replicas()
    update = enc.decode_update(b.get_update(a.version))
    (segment,) = update.segments
    seq = a.text("text")._seq
    inserts = sorted((e for e in segment.entries if e[0] == enc.INS), key=lambda e: e[3])
    times = {"live inserts": 0.0, "runs arriving deleted": 0.0, "deletes (facts)": 0.0}
    gc.collect()
    gc.disable()
    try:
        for e in inserts:  # Lamport order, as integrate places them
            live = e[7] is None
            t0 = perf_counter()
            seq.integrate(segment.replica, e[1], e[3], e[4], e[5] if live else None, e[6],
                          e[7], False)  # fmt: skip
            kind = "live inserts" if live else "runs arriving deleted"
            times[kind] += perf_counter() - t0
        t0 = perf_counter()
        for fact in update.facts:
            for r, c, n in fact[3]:
                seq.delete_range(r, c, n, fact[2], True, None)
        times["deletes (facts)"] = perf_counter() - t0
    finally:
        gc.enable()
    counts = {
        "live inserts": sum(e[7] is None for e in inserts),
        "runs arriving deleted": sum(e[7] is not None for e in inserts),
        "deletes (facts)": len(update.facts),
    }
    return {f"{kind} ({counts[kind]:,})": t for kind, t in times.items()}


def bare_insert_floor(n: int = 200_000) -> float:
    """Seconds for the least Python work a remote insert inside a run needs: one bisect for
    the origin's run, two ``Run`` objects (the cut-off part and the new run), two insertions
    into a block's list and two into an id-index list (undone each time, so sizes stay put).
    """
    from bisect import bisect_right

    from crdtsync._ids import IdIndex
    from crdtsync._rga import Run, Sequence

    seq = Sequence(IdIndex(), True)
    starts = list(range(0, 2048, 4))
    block: list[Any] = [None] * 32
    t0 = perf_counter()
    for i in range(n):
        j = bisect_right(starts, 1000)
        right = Run(seq, 1, 5, 5, (1, 4), "x", 1)
        new = Run(seq, 2, i + 1, 7, (1, 4), "y", 1)
        block.insert(16, right)
        block.insert(16, new)
        starts.insert(j, 1001)
        starts.insert(j, 1001)
        del block[16:18], starts[j : j + 2]
    return (perf_counter() - t0) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=6, help="fresh set-ups; best is shown")
    args = parser.parse_args()
    for title, measure in (("one direction of M1", stages), ("integration", integration_by_kind)):
        best: dict[str, float] = {}
        for _ in range(args.runs):
            for name, t in measure().items():
                best[name] = min(best.get(name, t), t)
        print(f"{title}, best of {args.runs} (ms):")
        for name, t in best.items():
            print(f"  {name:45s} {t * 1e3:7.1f}")
        if title == "one direction of M1":
            total = sum(t for name, t in best.items() if name != "integrate (all)")
            print(f"  {'total':45s} {(total + best['integrate (all)']) * 1e3:7.1f}")
    floor = min(bare_insert_floor() for _ in range(3))
    print(f"bare minimum of one remote insert inside a run: {floor * 1e6:.2f} µs")


if __name__ == "__main__":
    main()
