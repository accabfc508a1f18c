"""How far encoding a text state is from pycrdt's, against the least a Python encoder does.

B1.4's edits (6,000 single characters inserted at random places by one replica) leave a
text of about 6,000 runs. This script times, best of ``--runs``:

- crdtsync's ``get_update()`` of the whole document;
- a loop that only reads seven fields of every run (replica, counter, Lamport time,
  origin, content, length, deleted) and does nothing with them: the floor of any encoder
  that visits the runs as Python objects;
- pycrdt's ``get_update()`` of the same edits.

If the bare walk alone is over 2x pycrdt's whole encode, no encoder of this engine can meet
the encodeTime target (docs/performance.md, the scale targets). Needs pycrdt (the
``bench`` extra).

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.encode_floor
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import Callable
from time import perf_counter

from benchmarks.cases import SEED, Gen, _random_text_inserts, apply_text_op
from benchmarks.systems import Crdtsync, Pycrdt


def best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = perf_counter()
        work()
        best = min(best, perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--edits", type=int, default=6000)
    args = parser.parse_args()
    # The suite's own B1.4 edits (cases.b1_cases), on the suite's replicas.
    ops, expected = _random_text_inserts(Gen(f"{SEED}:B1.4"), args.edits, 1, 1)
    ours_doc, theirs_doc = Crdtsync().create(1), Pycrdt().create(1)
    for op in ops:
        apply_text_op(ours_doc, op)
        apply_text_op(theirs_doc, op)
    assert ours_doc.text() == theirs_doc.text() == expected
    runs = list(ours_doc.doc.text("text")._seq.runs())  # type: ignore[attr-defined]

    def walk() -> None:
        for r in runs:
            r.replica, r.counter, r.lamport, r.origin, r.content, r.length, r.deleted  # noqa: B018

    gc.disable()
    ours = best_of(args.runs, ours_doc.encode_state)
    floor = best_of(args.runs, walk)
    theirs = best_of(args.runs, theirs_doc.encode_state)
    gc.enable()
    print(f"{len(runs):,} runs, best of {args.runs}:")
    print(f"  crdtsync get_update()        {ours * 1e3:7.2f} ms  ({ours / theirs:.1f}x pycrdt)")
    print(f"  reading 7 fields of each run {floor * 1e3:7.2f} ms  ({floor / theirs:.1f}x pycrdt)")
    print(f"  pycrdt get_update()          {theirs * 1e3:7.3f} ms")


if __name__ == "__main__":
    main()
