"""crdt-benchmarks "B4": replay a real editing trace, one transaction and one update per edit.

The trace is Martin Kleppmann's automerge-paper history (259,778 single-character patches),
the standard workload of dmonad/crdt-benchmarks. Every system replays it from an empty
document; each edit is its own transaction and the update it emits is captured, as a real
editor that broadcasts every keystroke would. Then the whole state is encoded, loaded into a
fresh document, and the text is compared with the trace's ``endContent``.

Systems: ``crdtsync`` (this library), ``pycrdt`` (Yrs), ``loro`` and ``str`` (plain Python
string slicing: no CRDT at all, the floor for any pure-Python replay).

Usage (from the repository root)::

    .venv/bin/python benchmarks/b4.py                      # all systems, one run each
    .venv/bin/python benchmarks/b4.py --runs 3             # median of 3, systems alternate
    .venv/bin/python benchmarks/b4.py --only crdtsync,str  # a subset
    .venv/bin/python benchmarks/b4.py --limit 20000        # a prefix of the trace (quick)
    .venv/bin/python benchmarks/b4.py --profile            # crdtsync under cProfile, top 25
    .venv/bin/python benchmarks/b4.py --json benchmarks/results/b4.json

Columns: *replay* is the wall time of creating the document and applying every edit
(including capturing the emitted updates); *encode* is producing the whole state
(crdtsync ``get_update()``, pycrdt ``get_update()``, loro ``export(ExportMode.Snapshot())``,
``str.encode``); *load* is building a fresh document from that state and reading its text
back (reading is included so that lazy decoding cannot look free).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.util
import json
import platform
import pstats
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

# Running ``python benchmarks/b4.py`` puts benchmarks/ (not the repo root) on sys.path; make
# the in-tree crdtsync importable even without ``pip install -e .``.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# The trace format, loader and plain-string oracle are shared with the suite (``python -m
# benchmarks``), which runs this case too as "B4" beside the other crdt-benchmarks cases.
from benchmarks.traces import DEFAULT_TRACE, Trace, load_trace, replay_str  # noqa: E402

SYSTEMS = ("crdtsync", "pycrdt", "loro", "str")
# Which importable module each system needs; ``str`` needs nothing.
SYSTEM_MODULES = {"crdtsync": "crdtsync", "pycrdt": "pycrdt", "loro": "loro"}


@dataclass
class Result:
    system: str
    replay_s: float
    updates: int
    update_bytes: int
    encode_s: float
    state_bytes: int
    load_s: float
    ok: bool
    note: str = ""
    # With --verify-updates: seconds to apply every captured update, in order, to a fresh
    # document (what a peer receiving the edit stream pays).
    apply_s: float | None = None

    @property
    def avg_update(self) -> float:
        return self.update_bytes / self.updates if self.updates else 0.0

    def add_note(self, note: str) -> None:
        self.note = f"{self.note}; {note}" if self.note else note


# --------------------------------------------------------------------------------------------
# One runner per system. Each does the same four steps; the timed regions are kept tight and
# the checks happen outside them.
# --------------------------------------------------------------------------------------------


def run_str(trace: Trace, verify: bool = False) -> Result:
    t0 = time.perf_counter()
    s = replay_str(trace.start, trace.txns)
    replay = time.perf_counter() - t0

    t0 = time.perf_counter()
    state = s.encode("utf-8")
    encode = time.perf_counter() - t0

    t0 = time.perf_counter()
    loaded = state.decode("utf-8")
    load = time.perf_counter() - t0
    return finish("str", trace, replay, [], encode, state, load, s, loaded)


def run_crdtsync(trace: Trace, verify: bool = False) -> Result:
    import crdtsync

    # A fixed replica id keeps update sizes identical from run to run.
    doc = crdtsync.Doc(replica_id=1)
    text = doc.text("text")
    if trace.start:
        text.insert(0, trace.start)

    updates: list[bytes] = []
    keep = updates.append

    t0 = time.perf_counter()
    doc.on_update(lambda update, origin: keep(update))
    transaction = doc.transaction
    insert = text.insert
    delete = text.delete
    for txn in trace.txns:
        with transaction():
            for pos, ndel, ins in txn:
                if ndel:
                    delete(pos, ndel)
                if ins:
                    insert(pos, ins)
    replay = time.perf_counter() - t0
    final = str(text)

    t0 = time.perf_counter()
    state = doc.get_update()
    encode = time.perf_counter() - t0

    t0 = time.perf_counter()
    fresh = crdtsync.Doc(replica_id=2)
    fresh.apply_update(state)
    loaded = str(fresh.text("text"))
    load = time.perf_counter() - t0

    applied: tuple[float, str] | None = None
    if verify:
        t0 = time.perf_counter()
        remote = crdtsync.Doc(replica_id=3)
        apply = remote.apply_update
        for update in updates:
            apply(update)
        applied = time.perf_counter() - t0, str(remote.text("text"))
    return finish("crdtsync", trace, replay, updates, encode, state, load, final, loaded, applied)


def run_pycrdt(trace: Trace, verify: bool = False) -> Result:
    import pycrdt

    doc: Any = pycrdt.Doc()
    text: Any = doc.get("text", type=pycrdt.Text)
    if trace.start:
        text.insert(0, trace.start)

    updates: list[bytes] = []
    keep = updates.append

    t0 = time.perf_counter()
    # The event is only valid inside the callback, so the bytes are taken there.
    doc.observe(lambda event: keep(event.update))
    transaction = doc.transaction
    insert = text.insert
    for txn in trace.txns:
        with transaction():
            for pos, ndel, ins in txn:
                # pycrdt counts UTF-8 bytes, the trace counts code points: same on ASCII.
                if ndel:
                    del text[pos : pos + ndel]
                if ins:
                    insert(pos, ins)
    replay = time.perf_counter() - t0
    final = str(text)

    t0 = time.perf_counter()
    state: bytes = doc.get_update()
    encode = time.perf_counter() - t0

    t0 = time.perf_counter()
    fresh: Any = pycrdt.Doc()
    fresh.apply_update(state)
    loaded = str(fresh.get("text", type=pycrdt.Text))
    load = time.perf_counter() - t0

    applied: tuple[float, str] | None = None
    if verify:
        t0 = time.perf_counter()
        remote: Any = pycrdt.Doc()
        apply = remote.apply_update
        for update in updates:
            apply(update)
        applied = time.perf_counter() - t0, str(remote.get("text", type=pycrdt.Text))
    result = finish("pycrdt", trace, replay, updates, encode, state, load, final, loaded, applied)
    if not trace.end.isascii():
        result.add_note("non-ASCII trace: pycrdt indexes UTF-8 bytes")
    return result


def run_loro(trace: Trace, verify: bool = False) -> Result:
    import loro as loro_module

    # loro's stubs leave a few constructors untyped; keep mypy quiet without ignores.
    loro: Any = loro_module

    doc = loro.LoroDoc()
    text = doc.get_text("text")
    if trace.start:
        text.insert(0, trace.start)
        doc.commit()

    updates: list[bytes] = []
    keep = updates.append

    def on_local_update(update: bytes) -> bool:
        keep(update)
        return True  # stay subscribed

    t0 = time.perf_counter()
    subscription = doc.subscribe_local_update(on_local_update)
    commit = doc.commit
    insert = text.insert
    delete = text.delete
    for txn in trace.txns:
        for pos, ndel, ins in txn:
            if ndel:
                delete(pos, ndel)
            if ins:
                insert(pos, ins)
        commit()  # a loro transaction ends at commit(); that is what emits the update
    replay = time.perf_counter() - t0
    final = text.to_string()
    subscription.unsubscribe()

    # A snapshot (history + state) is loro's whole-document format, the one crdt-benchmarks
    # uses; ExportMode.Updates(empty) is history only and is reported in the note.
    t0 = time.perf_counter()
    state = doc.export(loro.ExportMode.Snapshot())
    encode = time.perf_counter() - t0

    t0 = time.perf_counter()
    fresh = loro.LoroDoc()
    fresh.import_(state)
    loaded = fresh.get_text("text").to_string()
    load = time.perf_counter() - t0

    applied: tuple[float, str] | None = None
    if verify:
        t0 = time.perf_counter()
        remote = loro.LoroDoc()
        apply = remote.import_
        for update in updates:
            apply(update)
        applied = time.perf_counter() - t0, remote.get_text("text").to_string()
    result = finish("loro", trace, replay, updates, encode, state, load, final, loaded, applied)
    history = doc.export(loro.ExportMode.Updates(loro.VersionVector()))
    result.add_note(f"history-only export: {len(history):,} B")
    return result


def finish(
    system: str,
    trace: Trace,
    replay: float,
    updates: list[bytes],
    encode: float,
    state: bytes,
    load: float,
    final: str,
    loaded: str,
    applied: tuple[float, str] | None = None,
) -> Result:
    """Check the texts and package the measurements."""
    result = Result(
        system=system,
        replay_s=replay,
        updates=len(updates),
        update_bytes=sum(map(len, updates)),
        encode_s=encode,
        state_bytes=len(state),
        load_s=load,
        ok=final == trace.end == loaded,
    )
    if not result.ok:
        result.add_note(
            f"final text {mismatch(trace.end, final)}; loaded text {mismatch(trace.end, loaded)}"
        )
    if applied is not None:
        result.apply_s, applied_text = applied
        if applied_text != trace.end:
            result.ok = False
            result.add_note(f"text rebuilt from the updates {mismatch(trace.end, applied_text)}")
    return result


RUNNERS: dict[str, Callable[[Trace, bool], Result]] = {
    "crdtsync": run_crdtsync,
    "pycrdt": run_pycrdt,
    "loro": run_loro,
    "str": run_str,
}


def mismatch(expected: str, got: str) -> str:
    if got == expected:
        return "ok"
    i = next(
        (i for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b),
        min(len(expected), len(got)),
    )
    return f"differs at {i} (len {len(got):,} vs {len(expected):,})"


def median_result(results: list[Result]) -> Result:
    """Each metric's median on its own: runs are noisy in different places."""

    def med(name: str) -> Any:
        return statistics.median(getattr(r, name) for r in results)

    first = results[0]
    applies = [r.apply_s for r in results if r.apply_s is not None]
    return Result(
        system=first.system,
        replay_s=med("replay_s"),
        updates=first.updates,
        update_bytes=first.update_bytes,
        encode_s=med("encode_s"),
        state_bytes=first.state_bytes,
        load_s=med("load_s"),
        ok=all(r.ok for r in results),
        note="; ".join(dict.fromkeys(r.note for r in results if r.note)),
        apply_s=statistics.median(applies) if applies else None,
    )


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------

HEADER = (
    "| system | replay (s) | updates | update bytes | avg update (B) | encode (ms) "
    "| state (B) | load (ms) | text ok |"
)


def format_row(r: Result) -> str:
    # A system that emits no updates (plain str) gets dashes rather than misleading zeros.
    if r.updates:
        update_cells = f"{r.updates:,} | {r.update_bytes:,} | {r.avg_update:.1f}"
    else:
        update_cells = "- | - | -"
    return (
        f"| {r.system} | {r.replay_s:.3f} | {update_cells} | {r.encode_s * 1e3:.1f} "
        f"| {r.state_bytes:,} | {r.load_s * 1e3:.1f} | {'yes' if r.ok else 'NO'} |"
    )


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def format_ratio_row(a: Result, b: Result) -> str:
    return (
        f"| {a.system} / {b.system} | {ratio(a.replay_s, b.replay_s)} | "
        f"| {ratio(a.update_bytes, b.update_bytes)} | {ratio(a.avg_update, b.avg_update)} "
        f"| {ratio(a.encode_s, b.encode_s)} | {ratio(a.state_bytes, b.state_bytes)} "
        f"| {ratio(a.load_s, b.load_s)} | |"
    )


def print_table(medians: dict[str, Result]) -> None:
    print(HEADER)
    print("|" + "---|" * HEADER.count(" | ") + "---|")
    for r in medians.values():
        print(format_row(r))
    ours = medians.get("crdtsync")
    if ours is not None:
        for peer in ("pycrdt", "loro"):
            if peer in medians:
                print(format_ratio_row(ours, medians[peer]))
    print()
    for r in medians.values():
        if r.note:
            print(f"- {r.system}: {r.note}")
    applied = [f"{r.system} {r.apply_s:.3f} s" for r in medians.values() if r.apply_s is not None]
    if applied:
        print(f"- applying every update, in order, to a fresh doc: {', '.join(applied)}")


def environment_line(systems: Sequence[str]) -> str:
    parts = [f"CPython {platform.python_version()}", platform.machine()]
    for name in systems:
        if name in SYSTEM_MODULES:
            try:
                parts.append(f"{name} {metadata.version(name)}")
            except metadata.PackageNotFoundError:
                parts.append(f"{name} (in tree)")
    return ", ".join(parts)


def available(name: str) -> str | None:
    """None if the system can run here, else why not (so a missing peer is a note)."""
    module = SYSTEM_MODULES.get(name)
    if module is None:
        return None
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    if name == "crdtsync":
        try:
            import crdtsync

            crdtsync.Doc  # noqa: B018 - the core may still be under construction
        except Exception as exc:  # noqa: BLE001 - report any import failure as a skip
            return f"crdtsync is not usable yet ({type(exc).__name__}: {exc})"
    return None


def profile_crdtsync(trace: Trace, out: Path | None) -> int:
    reason = available("crdtsync")
    if reason is not None:
        print(f"cannot profile: {reason}", file=sys.stderr)
        return 1
    profiler = cProfile.Profile()
    profiler.enable()
    result = run_crdtsync(trace, False)
    profiler.disable()
    print(f"crdtsync on {trace.name}, {trace.patch_count:,} patches, under cProfile")
    print("(cProfile roughly doubles the times; compare functions, not totals)\n")
    print(HEADER)
    print("|" + "---|" * HEADER.count(" | ") + "---|")
    print(format_row(result))
    if result.note:
        print(f"- {result.note}")
    print()
    stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
    stats.sort_stats(pstats.SortKey.TIME).print_stats(25)
    if out is not None:
        stats.dump_stats(out)
        print(f"profile written to {out} (open with snakeviz or pstats)")
    return 0 if result.ok else 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="crdt-benchmarks B4: replay an editing trace, one update per edit."
    )
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE, help="gzipped JSON trace")
    parser.add_argument("--runs", type=int, default=1, help="runs per system; median reported")
    parser.add_argument(
        "--only",
        default=",".join(SYSTEMS),
        help=f"comma-separated systems to run, from {','.join(SYSTEMS)} (default: all)",
    )
    parser.add_argument("--limit", type=int, help="replay only the first N transactions")
    parser.add_argument(
        "--profile", action="store_true", help="run only crdtsync under cProfile, top 25 tottime"
    )
    parser.add_argument("--profile-out", type=Path, help="with --profile: save pstats here")
    parser.add_argument(
        "--verify-updates",
        action="store_true",
        help="also apply every captured update to a fresh doc: checks them, times a peer",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.systems = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(args.systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.trace.exists():
        print(f"trace not found: {args.trace} (pass --trace PATH)", file=sys.stderr)
        return 2
    trace = load_trace(args.trace, args.limit)
    if args.profile:
        return profile_crdtsync(trace, args.profile_out)

    systems: list[str] = []
    skipped: dict[str, str] = {}
    for name in args.systems:
        reason = available(name)
        if reason is None:
            systems.append(name)
        else:
            skipped[name] = reason

    print(f"# B4: {trace.name}, {trace.patch_count:,} patches in {len(trace.txns):,} txns")
    print(f"{environment_line(systems)}; {args.runs} run(s), systems alternating, median shown\n")

    raw: dict[str, list[Result]] = {name: [] for name in systems}
    failed: dict[str, str] = {}
    for run in range(args.runs):
        # Rotate the order each run so no system always goes first (warm caches, heap state).
        k = run % len(systems) if systems else 0
        for name in systems[k:] + systems[:k]:
            if name in failed:
                continue
            gc.collect()  # don't bill one system for the previous one's garbage
            try:
                result = RUNNERS[name](trace, args.verify_updates)
            except Exception as exc:  # noqa: BLE001 - one broken system must not hide the rest
                failed[name] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
                continue
            raw[name].append(result)
            print(
                f"[run {run + 1}/{args.runs}] {name:<8} {result.replay_s:8.3f} s"
                f"{'' if result.ok else '  TEXT MISMATCH'}",
                file=sys.stderr,
            )

    medians = {name: median_result(rs) for name, rs in raw.items() if rs}
    print_table(medians)
    for name, reason in skipped.items():
        print(f"- skipped {name}: {reason}")
    for name, reason in failed.items():
        print(f"- FAILED {name}: {reason}")

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "trace": trace.name,
            "patches": trace.patch_count,
            "environment": environment_line(systems),
            "median": {k: asdict(v) for k, v in medians.items()},
            "runs": {k: [asdict(r) for r in rs] for k, rs in raw.items()},
            "skipped": skipped,
            "failed": failed,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")

    all_ok = not failed and all(r.ok for r in medians.values())
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
