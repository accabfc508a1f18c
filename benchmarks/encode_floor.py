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
import random
from collections.abc import Callable
from time import perf_counter

import crdtsync


def best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = perf_counter()
        work()
        best = min(best, perf_counter() - t0)
    return best


def main() -> None:
    import pycrdt

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--edits", type=int, default=6000)
    args = parser.parse_args()
    rng = random.Random(42)
    doc = crdtsync.Doc(1)
    text = doc.text("text")
    peer = pycrdt.Doc()
    peer_text = peer.get("text", type=pycrdt.Text)
    for _ in range(args.edits):
        pos, char = rng.randint(0, len(text)), chr(rng.randint(97, 122))
        text.insert(pos, char)
        peer_text.insert(pos, char)
    assert str(text) == str(peer_text)
    runs = list(text._seq.runs())

    def walk() -> None:
        for r in runs:
            r.replica, r.counter, r.lamport, r.origin, r.content, r.length, r.deleted  # noqa: B018

    gc.disable()
    ours = best_of(args.runs, doc.get_update)
    floor = best_of(args.runs, walk)
    theirs = best_of(args.runs, peer.get_update)
    gc.enable()
    print(f"{len(runs):,} runs, best of {args.runs}:")
    print(f"  crdtsync get_update()        {ours * 1e3:7.2f} ms  ({ours / theirs:.1f}x pycrdt)")
    print(f"  reading 7 fields of each run {floor * 1e3:7.2f} ms  ({floor / theirs:.1f}x pycrdt)")
    print(f"  pycrdt get_update()          {theirs * 1e3:7.3f} ms")


if __name__ == "__main__":
    main()
