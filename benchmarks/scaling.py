"""Scaling cases: does the cost of one edit stay flat as documents and rooms grow?

``python -m benchmarks --scaling`` (or ``python benchmarks/scaling.py``) runs, on crdtsync,
pycrdt and loro in one process, alternating the systems run by run:

- **typing**: a text of N characters (pasted in one insert), then 2,000 characters typed
  at its end, one transaction each; the time per character.
- **random**: a text grown to N characters by words of 4-12 characters inserted at random
  places (so it is made of many runs, as edited text is), then 2,000 single characters
  inserted at random places, one transaction each; the time per insert.
- **append**: N values appended to a list within one transaction; the time per append.
- **replicas**: R replicas each type 100 characters into their own empty text; a new
  replica applies their R states in the order of their replica ids, ascending and then
  descending (one of the two makes every replica's first character skip all the others
  before it); the time per replica of the slower order.
- **merge**: M1 at size N (see ``cases.py``): two replicas of an N-character text each
  make N random single-character edits offline, then each applies the other's diff (both
  diffs computed, both applied, both texts read); the time per edit merged (of 2N).

Each row reports the median of ``--runs`` runs and, for each system, the ratio of the
per-op time at each size to the per-op time at the smallest size: flat is 1.0.
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any, cast

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cases import SEED, MergeInput, merge_both, merge_case, merge_replicas  # noqa: E402
from benchmarks.report import print_table  # noqa: E402
from benchmarks.systems import ALL_SYSTEMS, System  # noqa: E402

TYPED = 2000  # characters typed, or single characters inserted, per timed run
SIZES = (10_000, 100_000, 1_000_000)
APPENDS = (10_000, 100_000, 1_000_000)
REPLICAS = (100, 400, 1000)
MERGES = (10_000, 30_000, 100_000)
CHARS_PER_REPLICA = 100


def _typing(system: System, n: int) -> float:
    doc = system.create(1)
    doc.insert_text(0, "a" * n)
    gc.collect()
    t0 = perf_counter()
    for i in range(TYPED):
        doc.insert_text(n + i, "b")
    elapsed = perf_counter() - t0
    assert len(doc.text()) == n + TYPED
    return elapsed / TYPED


def words_text(system: System, n: int, rnd: random.Random) -> tuple[Any, int]:
    """A replica whose text is at least ``n`` characters of words inserted at random
    places in one transaction (about n / 8 runs), and its length."""
    doc = system.create(1)
    length = 0
    with doc.transact():
        while length < n:
            word = "w" * rnd.randint(4, 12)
            doc.insert_text(rnd.randint(0, length), word)
            length += len(word)
    return doc, length


def _random(system: System, n: int) -> float:
    rnd = random.Random(n)
    doc, length = words_text(system, n, rnd)
    gc.collect()
    places = [rnd.randint(0, length + i) for i in range(TYPED)]
    t0 = perf_counter()
    for at in places:
        doc.insert_text(at, "x")
    elapsed = perf_counter() - t0
    assert len(doc.text()) == length + TYPED
    return elapsed / TYPED


def _append(system: System, n: int) -> float:
    doc = system.create(1)
    gc.collect()
    t0 = perf_counter()
    with doc.transact():
        for i in range(n):
            doc.insert_array(i, [i])
    elapsed = perf_counter() - t0
    assert len(doc.array()) == n
    return elapsed / n


def _replicas(system: System, r: int) -> float:
    states: list[tuple[int, bytes]] = []
    for k in range(r):
        doc = system.create(k + 2)
        with doc.transact():
            for i in range(CHARS_PER_REPLICA):
                doc.insert_text(i, "x")
        states.append((system.replica_id(k + 2), doc.encode_state()))
    states.sort()
    worst = 0.0
    # Replica ids ascending and descending: one of them is the worst order for the
    # library's tie-break between concurrent inserts at one place.
    for order in (states, states[::-1]):
        merged = system.create(1)
        gc.collect()
        t0 = perf_counter()
        for _, state in order:
            merged.apply_update(state)
        text = merged.text()
        worst = max(worst, perf_counter() - t0)
        assert len(text) == r * CHARS_PER_REPLICA
    return worst / r


def _merge(system: System, n: int) -> float:
    base, edits_a, edits_b = cast(MergeInput, merge_case(SEED, n, n).prepare())
    elapsed, _, text_a, text_b = merge_both(*merge_replicas(system, base, edits_a, edits_b))
    assert text_a == text_b
    return elapsed / (2 * n)


CASES: dict[str, tuple[Callable[[System, int], float], Sequence[int], str]] = {
    "typing": (_typing, SIZES, "us/char typed at the end of N chars"),
    "random": (_random, SIZES, "us/insert at random places in N chars of words"),
    "append": (_append, APPENDS, "us/append, N appends in one transaction"),
    "replicas": (_replicas, REPLICAS, "us/replica, R replicas' 100 chars merged (worse order)"),
    "merge": (_merge, MERGES, "us/edit, two replicas' N offline edits each merged (M1 at N)"),
}


def _expected_s(done: dict[int, float | None], case: str, size: int) -> float:
    """Seconds one run at ``size`` should take, from the largest size done (0: none yet;
    infinite: that one was sat out too). Per-op time is assumed to grow with the size."""
    if not done:
        return 0.0
    last = max(done)
    per_op = done[last]
    if per_op is None:
        return float("inf")
    ops = TYPED if case in ("typing", "random") else 2 * size if case == "merge" else size
    return per_op * 1e-6 * ops * size / last


def _expected_wall(done: dict[int, float], size: int) -> float:
    """Seconds a whole run (set-up included: a text built by N random edits costs some
    systems N^2) at ``size`` should take, from the wall times of the sizes done so far:
    the last one's, grown as fast as it grew from the one before (at least linearly)."""
    if not done:
        return 0.0
    sizes = sorted(done)
    last = sizes[-1]
    power = 1.0
    if len(sizes) > 1 and 0 < done[sizes[-2]] < done[last]:
        power = max(1.0, math.log(done[last] / done[sizes[-2]]) / math.log(last / sizes[-2]))
    return float(done[last] * (size / last) ** power)


def _cell(us: float | None) -> str:
    return "-" if us is None else f"{us:.1f}"


def run(
    cases: Sequence[str],
    systems: Sequence[System],
    runs: int,
    limit: int | None,
    budget: float = 60.0,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in cases:
        body, sizes, unit = CASES[name]
        sizes = [s for s in sizes if limit is None or s <= limit]
        rows: dict[str, dict[int, float | None]] = {s.name: {} for s in systems}
        walls: dict[str, dict[int, float]] = {s.name: {} for s in systems}
        for system in systems:  # a warm-up (imports, first-call costs), not timed
            body(system, sizes[0])
        for size in sizes:
            # A system whose smaller sizes predict more than the budget here, by the time
            # per op or by the whole run's, sits it out.
            running = [
                s
                for s in systems
                if _expected_s(rows[s.name], name, size) <= budget
                and _expected_wall(walls[s.name], size) <= budget
            ]
            samples: dict[str, list[float]] = {s.name: [] for s in running}
            for _ in range(runs):
                for system in running:  # alternate, so that drift hits every system alike
                    t0 = perf_counter()
                    samples[system.name].append(body(system, size) * 1e6)
                    walls[system.name][size] = perf_counter() - t0
            for system in systems:
                got = samples.get(system.name)
                rows[system.name][size] = statistics.median(got) if got else None
            print(
                f"{name} {size}: "
                + ", ".join(f"{s.name} {_cell(rows[s.name][size])}" for s in systems)
                + f" ({unit})",
                flush=True,
            )
        results[name] = {"unit": unit, "sizes": sizes, "us": rows}
    return results


def table(results: dict[str, Any]) -> str:
    lines = ["| case | size | " + " | ".join(_systems(results)) + " |"]
    lines.append("|---|---|" + "---|" * len(_systems(results)))
    for name, res in results.items():
        first = res["sizes"][0]
        for size in res["sizes"]:
            cells = []
            for per in res["us"].values():
                if per[size] is None:
                    cells.append("skipped (over the time budget)")
                else:
                    cells.append(f"{per[size]:.1f} us ({per[size] / per[first]:.2f}x)")
            lines.append(f"| {name} | {size:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _systems(results: dict[str, Any]) -> list[str]:
    first = next(iter(results.values()))
    return list(first["us"])


def chart(results: dict[str, Any], path: Path, dpi: int = 80) -> Path:
    """``path`` (PNG): one panel per case, per-op time against size on log-log axes, a
    line per system (flat is what the cases look for). Raises ImportError without
    matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.report import COLORS

    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 3.0), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items(), strict=True):
        for system, per in res["us"].items():
            points = [(size, us) for size, us in per.items() if us is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", label=system, color=COLORS.get(system))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("replicas" if name == "replicas" else "size", fontsize=8)
        ax.set_ylabel(res["unit"].split(",")[0].split(" ")[0], fontsize=8)
        ax.grid(which="major", linewidth=0.5, alpha=0.5)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(
        "per-op time as documents and rooms grow (lower and flatter is better)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks --scaling", description=__doc__)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--systems", default="crdtsync,pycrdt,loro")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-size", type=int, help="skip sizes above this (a quick look)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--chart", type=Path, help="also draw the results here (PNG)")
    parser.add_argument(
        "--budget", type=float, default=60.0, help="seconds a run may be expected to take"
    )
    args = parser.parse_args(argv)
    systems = []
    for name in args.systems.split(","):
        system = ALL_SYSTEMS[name]
        why = system.unavailable() or (None if system.is_crdt else "not a CRDT: nothing to merge")
        if why is not None:
            print(f"skipping {name}: {why}", file=sys.stderr)
            continue
        systems.append(system)
    results = run(args.cases.split(","), systems, args.runs, args.max_size, args.budget)
    if args.chart is not None:
        try:
            print(f"wrote {chart(results, args.chart)}")
        except ImportError:
            print("chart skipped: matplotlib is not installed", file=sys.stderr)
    return print_table(table(results), results, args.json)


if __name__ == "__main__":
    sys.exit(main())
