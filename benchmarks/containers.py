"""Container cases: an LWWMap and an ORSet of 10k and 100k elements.

``python benchmarks/containers.py`` (or ``python -m benchmarks.containers``) runs, on
crdtsync, pycrdt and loro in one process, alternating the systems run by run:

- **map**: N distinct keys (``"k0"``, ``"k1"``, ...) set to ints in one transaction
  (*build*); the state encoded (*encode*); that state loaded into a fresh document and read
  back as a dict (*load*: crdtsync ``dict(m)``, pycrdt ``Map.to_py()``, loro
  ``LoroMap.get_value()``), and *apply*, the part of it before the read (``apply_update``,
  loro ``import_``: loro loads lazily, pycrdt's ``to_py`` is most of its load); the
  memory the loaded document holds (*mem*).
- **set**: N distinct str elements added to an ORSet in one transaction, the same
  metrics (crdtsync reads back ``set(s)``). Neither pycrdt nor loro has a set type: they
  store the same N elements as the keys of a ``pycrdt.Map`` / ``LoroMap``, each mapped to
  ``True``, which is what an application would do with them.
- **map-txn**, **set-txn** (10k only): the same N writes or adds, one transaction each,
  every emitted update handed to a listener (the interactive case); build time only.

*mem* is, for crdtsync (pure Python), the memory tracemalloc sees held by the loaded
document (as ``benchmarks/memory.py`` measures memUsed); for every system, *rss* is the RSS
growth of a fresh child process loading the state (the only measure that sees pycrdt's and
loro's Rust heaps). Memory is measured once per system and size, times are medians of
``--runs`` runs. The ratio columns are crdtsync's value over each peer's.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.memory import child_rss, print_rss_growth, traced_load  # noqa: E402
from benchmarks.report import format_ratio, print_table  # noqa: E402
from benchmarks.systems import ALL_SYSTEMS  # noqa: E402

SIZES = (10_000, 100_000)
TXN_SIZES = (10_000,)
SYSTEMS = ("crdtsync", "pycrdt", "loro")
#: The case, whether it builds in one transaction per element, and the sizes it runs at.
CASES: dict[str, tuple[str, bool, Sequence[int]]] = {
    "map": ("map", False, SIZES),
    "set": ("set", False, SIZES),
    "map-txn": ("map", True, TXN_SIZES),
    "set-txn": ("set", True, TXN_SIZES),
}
TIME_METRICS = ("build", "encode", "load", "apply")
METRICS = (*TIME_METRICS, "state", "mem", "rss")


def _key(i: int) -> str:
    return f"k{i}"


def _element(i: int) -> str:
    return f"e{i}"


# ---- one adapter per system: (create, fill, encode, load) ----------------------------------


def _container(system: str, doc: Any, kind: str) -> Any:
    if system == "crdtsync":
        return doc.map("c") if kind == "map" else doc.set("c")
    if system == "pycrdt":
        import pycrdt

        return doc.get("c", type=pycrdt.Map)
    return doc.get_map("c")


def _create(system: str, on_update: Callable[[bytes], None] | None = None, number: int = 1) -> Any:
    """A new empty document of ``system``, its ``number``-th (which fixes its replica id)."""
    return ALL_SYSTEMS[system].create(number, on_update).doc  # type: ignore[attr-defined]


def _fill(system: str, doc: Any, kind: str, n: int, one_txn: bool) -> None:
    """Write the case's N keys (map) or add its N elements (set)."""
    c = _container(system, doc, kind)
    if system == "loro":
        commit = doc.commit
        insert = c.insert
        for i in range(n):
            insert(*((_key(i), i) if kind == "map" else (_element(i), True)))
            if not one_txn:
                commit()
        commit()
        return
    if one_txn:
        with doc.transaction():
            _fill_plain(system, c, kind, n)
    else:
        _fill_plain(system, c, kind, n)


def _fill_plain(system: str, c: Any, kind: str, n: int) -> None:
    if kind == "map":
        for i in range(n):
            c[_key(i)] = i
    elif system == "crdtsync":
        add = c.add
        for i in range(n):
            add(_element(i))
    else:
        for i in range(n):
            c[_element(i)] = True


def _encode(system: str, doc: Any) -> bytes:
    if system == "loro":
        import loro

        return doc.export(loro.ExportMode.Snapshot())  # type: ignore[no-any-return]
    return doc.get_update()  # type: ignore[no-any-return]


def _load(system: str, kind: str, state: bytes, took: list[float] | None = None) -> tuple[Any, Any]:
    """A fresh document loaded from ``state`` and what was read back from it; the time
    the load took before reading goes into ``took``."""
    doc = _create(system, number=2)
    t0 = perf_counter()
    if system == "loro":
        doc.import_(state)
    else:
        doc.apply_update(state)
    if took is not None:
        took.append(perf_counter() - t0)
    if system == "loro":
        return doc, doc.get_map("c").get_value()
    c = _container(system, doc, kind)
    if system == "pycrdt":
        return doc, c.to_py()
    return doc, dict(c) if kind == "map" else set(c)


def _check(kind: str, system: str, content: Any, n: int) -> None:
    assert len(content) == n, (system, kind, len(content), n)
    if kind == "map":
        assert content[_key(n - 1)] == n - 1
    else:
        assert _element(n - 1) in content


# ---- measuring ---------------------------------------------------------------------------


def _timed(body: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    gc.collect()
    t0 = perf_counter()
    out = body(*args)
    return perf_counter() - t0, out


def one_run(system: str, case: str, n: int) -> tuple[dict[str, float], bytes]:
    """One run of ``case`` at size ``n``: its times (seconds) and sizes, and the state."""
    kind, per_txn, _ = CASES[case]
    sent: list[bytes] = []
    # (The replica holds loro's subscription: it must live as long as the document.)
    replica = ALL_SYSTEMS[system].create(1, sent.append if per_txn else None)
    doc = replica.doc  # type: ignore[attr-defined]
    build, _ = _timed(_fill, system, doc, kind, n, not per_txn)
    metrics = {"build": build}
    if per_txn:
        assert len(sent) >= n, (system, case, len(sent))
        return metrics, b""
    encode, state = _timed(_encode, system, doc)
    del doc, replica
    took: list[float] = []
    load, (loaded, content) = _timed(_load, system, kind, state, took)
    _check(kind, system, content, n)
    del loaded, content
    metrics.update(encode=encode, load=load, apply=took[0], state=float(len(state)))
    return metrics, state


def memory(system: str, case: str, state: bytes, rss: bool = True) -> dict[str, float]:
    """``mem`` (crdtsync: tracemalloc) and ``rss`` (a child process) of a loaded state."""
    kind = CASES[case][0]
    out: dict[str, float] = {}
    if system == "crdtsync":
        out["mem"] = float(traced_load(lambda: _load(system, kind, state)))
    if rss:
        args = ["benchmarks.containers", "--memory-child", system, kind]
        out["rss"] = float(child_rss(args, state))
    return out


def memory_child(system: str, kind: str, state_file: str) -> int:
    """Print the RSS growth of loading the state in ``state_file`` (a fresh process)."""
    state = Path(state_file).read_bytes()
    warm = _create(system)  # imports, caches and first-call costs are not the document's
    _fill(system, warm, kind, 10, True)
    _load(system, kind, _encode(system, warm))
    del warm
    return print_rss_growth(lambda: _load(system, kind, state))


def run(
    cases: Sequence[str],
    systems: Sequence[str],
    runs: int,
    limit: int | None = None,
    rss: bool = True,
) -> dict[str, Any]:
    """Every case at every size (up to ``limit``): ``{case: {"sizes": [...], "values":
    {size: {system: {metric: median}}}}}``, times in seconds, sizes and memory in bytes."""
    results: dict[str, Any] = {}
    for case in cases:
        sizes = [s for s in CASES[case][2] if limit is None or s <= limit]
        if not sizes:
            continue
        for system in systems:  # a warm-up (imports, first-call costs), not timed
            one_run(system, case, min(sizes[0], 1000))
        values: dict[int, dict[str, dict[str, float]]] = {}
        for n in sizes:
            samples: dict[str, list[dict[str, float]]] = {s: [] for s in systems}
            states: dict[str, bytes] = {}
            for k in range(runs):
                # Alternate, and rotate who goes first, so that drift hits every system alike.
                for system in [*systems[k % len(systems) :], *systems[: k % len(systems)]]:
                    metrics, states[system] = one_run(system, case, n)
                    samples[system].append(metrics)
            row: dict[str, dict[str, float]] = {}
            for system in systems:
                got = samples[system]
                med = {m: statistics.median(s[m] for s in got) for m in got[0]}
                if states[system]:
                    med.update(memory(system, case, states[system], rss))
                row[system] = med
            values[n] = row
            print(f"{case} {n:,}: " + "; ".join(_summary(s, row[s]) for s in systems), flush=True)
        results[case] = {"sizes": sizes, "values": values}
    return results


def _summary(system: str, metrics: dict[str, float]) -> str:
    return f"{system} " + ", ".join(_fmt(m, v) for m, v in metrics.items())


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric in TIME_METRICS:
        ms = value * 1e3
        return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.1f} ms"
    if metric in ("mem", "rss"):
        return f"{value / 1e6:.1f} MB"
    return f"{value / 1e3:,.0f} kB"


def table(results: dict[str, Any]) -> str:
    """A markdown table: one row per case, size and metric, a ratio column per peer."""
    systems = _systems(results)
    peers = [s for s in systems if s != "crdtsync"] if "crdtsync" in systems else []
    head = ["case", "N", "metric", *systems, *(f"crdtsync / {p}" for p in peers)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case, res in results.items():
        for n in res["sizes"]:
            row = res["values"][n]
            metrics = [m for m in METRICS if any(m in row[s] for s in systems)]
            for metric in metrics:
                got = {s: row[s].get(metric) for s in systems}
                ours = got.get("crdtsync")
                if metric == "mem":  # only crdtsync's is traced: compare with the peers' RSS
                    theirs = {p: row[p].get("rss") for p in peers}
                else:
                    theirs = {p: got[p] for p in peers}
                cells = [_fmt(metric, got[s]) for s in systems]
                ratios = [format_ratio(ours, theirs[p]) for p in peers]
                lines.append(f"| {case} | {n:,} | {metric} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


def _systems(results: dict[str, Any]) -> list[str]:
    first = next(iter(results.values()))
    return list(first["values"][first["sizes"][0]])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/containers.py", description=__doc__)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-size", type=int, help="skip sizes above this (a quick look)")
    parser.add_argument("--no-rss", action="store_true", help="skip the child-process RSS")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        return memory_child(*args.memory_child)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    systems = []
    for name in args.systems.split(","):
        why = ALL_SYSTEMS[name].unavailable() if name in SYSTEMS else f"not one of {SYSTEMS}"
        if why is not None:
            print(f"skipping {name}: {why}", file=sys.stderr)
            continue
        systems.append(name)
    results = run(args.cases.split(","), systems, args.runs, args.max_size, not args.no_rss)
    return print_table(table(results), results, args.json)


if __name__ == "__main__":
    sys.exit(main())
