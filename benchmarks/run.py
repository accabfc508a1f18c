"""The benchmark runner: ``python -m benchmarks`` (or ``python benchmarks/run.py``).

Runs the crdt-benchmarks cases (B1-B4), the other editing traces and a two-replica merge on
crdtsync, pycrdt (Yrs), loro and plain Python, alternating the systems run by run, and
writes the median of each metric as a markdown table (also to stdout), a JSON file and two
PNG charts into ``benchmarks/results/``. See ``benchmarks/cases.py`` for what each case and
metric means.

    python -m benchmarks                     # the full suite (about 5 minutes on 2 cores)
    python -m benchmarks --quick             # a representative subset, about a minute
    python -m benchmarks --only B1,B4        # groups, ids or patterns (B1.*, traces, merge)
    python -m benchmarks --systems crdtsync,loro --runs 3
    python -m benchmarks --list              # the cases and their ids
    python -m benchmarks --scaling           # per-op time as documents grow (scaling.py)
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

# ``python benchmarks/run.py`` puts benchmarks/ (not the repository root) on sys.path.
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import memory  # noqa: E402
from benchmarks.cases import SEED, Case, N, Outcome, all_cases  # noqa: E402
from benchmarks.progress import Progress  # noqa: E402
from benchmarks.report import CaseResult, Report, SystemResult, charts, full_markdown  # noqa: E402
from benchmarks.systems import ALL_SYSTEMS, System  # noqa: E402
from benchmarks.traces import REPO_ROOT, TRACES_DIR  # noqa: E402

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
FULL_RUNS = 5
QUICK_RUNS = 3
VERSIONED = ("crdtsync", "pycrdt", "loro", "msgpack", "matplotlib")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="crdt-benchmarks B1-B4, editing traces and a merge, on crdtsync and peers.",
    )
    parser.add_argument("--quick", action="store_true", help="a subset that takes about a minute")
    parser.add_argument(
        "--only",
        help="comma-separated cases: ids (B1.4, B4x10, T:clownschool_flat, M1), groups (B1, B2, "
        "B3, B4, traces, merge) or patterns (B1.1*)",
    )
    parser.add_argument(
        "--systems",
        default=",".join(ALL_SYSTEMS),
        help=f"comma-separated systems (default: {','.join(ALL_SYSTEMS)})",
    )
    parser.add_argument(
        "--runs",
        type=int,
        help=f"runs per case, median reported (default {FULL_RUNS}, {QUICK_RUNS} with --quick; "
        "B4 runs at most 3 times and B4x10 once, both once with --quick)",
    )
    parser.add_argument("--n", type=int, default=N, help=f"crdt-benchmarks' N (default {N})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"input seed (default {SEED})")
    parser.add_argument("--traces", type=Path, default=TRACES_DIR, help="the traces folder")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder")
    parser.add_argument("--no-memory", action="store_true", help="skip memUsed")
    parser.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="the scaling cases instead (benchmarks/scaling.py: per-op time at 10k-1M "
        "characters and 100-1000 replicas); with --systems, --runs, --out and --budget",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=60.0,
        help="with --scaling: seconds one run of a larger size may be expected to take",
    )
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    args.system_names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(args.system_names) - set(ALL_SYSTEMS))
    if unknown:
        parser.error(
            f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(ALL_SYSTEMS)}"
        )
    return args


def select_cases(cases: list[Case], only: str | None, quick: bool) -> list[Case]:
    if not only:
        return [c for c in cases if c.quick] if quick else cases
    tokens = [t.strip().lower() for t in only.split(",") if t.strip()]
    chosen = [
        c
        for c in cases
        if any(
            t in (c.id.lower(), c.group.lower()) or fnmatch.fnmatch(c.id.lower(), t) for t in tokens
        )
    ]
    if not chosen:
        ids = ", ".join(c.id for c in cases)
        raise SystemExit(f"--only {only!r} matches no case; the cases are: {ids}")
    return chosen


def runs_for(case: Case, runs: int, quick: bool) -> int:
    if case.max_runs is None:
        return runs
    return 1 if quick else min(runs, case.max_runs)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def busy_cores(interval: float = 0.5) -> float | None:
    """How many cores other processes keep busy right now (this one sleeps meanwhile).

    Linux: from two samples of /proc/stat; elsewhere the one-minute load average.
    """

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):
            return None
    elapsed = total1 - total0
    if elapsed <= 0:
        return None
    return (1 - (idle1 - idle0) / elapsed) * (os.cpu_count() or 1)


class CpuMeter:
    """How many cores other processes used, on average, while the suite ran (Linux).

    Machine-wide busy time from /proc/stat minus this process's own CPU time and that of
    its children (the memory measurements): what competed with the timings.
    """

    def __init__(self) -> None:
        self._start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        return time.monotonic(), busy, own

    def others(self) -> float | None:
        end = self._read()
        if self._start is None or end is None or end[0] <= self._start[0]:
            return None
        wall = end[0] - self._start[0]
        other = (end[1] - self._start[1]) - (end[2] - self._start[2])
        return max(other, 0.0) / wall


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "crdtsync"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{out} (crdtsync/ modified)" if dirty else out


def environment(args: argparse.Namespace, runs: int, load: float | None) -> dict[str, object]:
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "N": args.n,
        "seed": args.seed,
        "runs": runs,
        "mode": "quick" if args.quick else "full",
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
        "platform": f"{platform.system()} {platform.machine()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": versions,
        "commit": git_commit(),
        "busy_cores_at_start": None if load is None else round(load, 2),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def record(outcome: Outcome) -> dict[str, float | None]:
    return {
        "time": outcome.time_s,
        "update": outcome.update_size,
        "encodeTime": outcome.encode_s,
        "docSize": float(outcome.doc_size),
        "parseTime": outcome.parse_s,
    }


def measure_memory(system: System, case: Case, state: bytes, result: SystemResult) -> None:
    try:
        if system.pure_python:  # tracemalloc sees all of its memory
            result.mem_traced = memory.traced_bytes(system, state, case.kind)
        result.mem_rss = memory.rss_bytes(system, state, case.kind)
    except Exception as exc:  # noqa: BLE001 - a failed measurement is a note, not a crash
        result.mem_error = f"{type(exc).__name__}: {exc}"


def run_case(
    case: Case,
    systems: list[System],
    runs: int,
    with_memory: bool,
    progress: Progress,
) -> CaseResult:
    result = CaseResult(case.id, case.title, case.update_metric, runs)
    active: list[System] = []
    for system in systems:
        if system.is_crdt or case.floor:
            active.append(system)
            result.systems[system.name] = SystemResult()
        else:
            why = case.floor_note or "the plain-Python floor does not merge"
            result.not_applicable[system.name] = why
    states: dict[str, bytes] = {}
    for run in range(runs):
        # Rotate the order each run so that no system always goes first.
        k = run % len(active) if active else 0
        for system in active[k:] + active[:k]:
            outcome_of = result.systems[system.name]
            if outcome_of.error is not None:
                progress.advance()
                continue
            progress.show(case.id, f"{system.name} run {run + 1}/{runs}")
            try:
                case.prepare()  # cached: builds the inputs on the first call only
                # Don't bill a system for the previous one's garbage, and keep the harness's
                # own objects (inputs, traces, results) out of the collector's way: a pure-
                # Python library would otherwise pay for traversing them.
                gc.collect()
                gc.freeze()
                try:
                    outcome = case.body(system)
                finally:
                    gc.unfreeze()
            except Exception as exc:  # noqa: BLE001 - one broken system must not hide the rest
                outcome_of.error = f"{type(exc).__name__}: {exc}"
                progress.message(f"{case.id} {system.name} failed:\n{traceback.format_exc()}")
            else:
                outcome_of.runs.append(record(outcome))
                outcome_of.ok = outcome_of.ok and outcome.ok
                states[system.name] = outcome.state
            progress.advance()
    if with_memory:
        for system in active:
            state = states.pop(system.name, None)
            if state is not None:
                progress.show(case.id, f"{system.name} memUsed")
                measure_memory(system, case, state, result.systems[system.name])
            progress.advance()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.scaling:
        from benchmarks import scaling

        forwarded = ["--systems", ",".join(args.system_names), "--json"]
        forwarded.append(str(args.out / "scaling.json"))
        if args.runs:
            forwarded += ["--runs", str(args.runs)]
        forwarded += ["--budget", str(args.budget)]
        if not args.no_charts:
            forwarded += ["--chart", str(args.out / "scaling.png")]
        args.out.mkdir(parents=True, exist_ok=True)
        return scaling.main(forwarded)
    cases = all_cases(args.n, args.seed, args.traces)
    if args.list:
        for case in cases:
            print(f"{case.id:<24} {case.title}{'  (quick)' if case.quick else ''}")
        return 0
    selected = select_cases(cases, args.only, args.quick)
    runs = args.runs or (QUICK_RUNS if args.quick else FULL_RUNS)

    systems: list[System] = []
    skipped: dict[str, str] = {}
    for name in args.system_names:
        reason = ALL_SYSTEMS[name].unavailable()
        if reason is None:
            systems.append(ALL_SYSTEMS[name])
        else:
            skipped[name] = reason
            print(f"note: {name} skipped: {reason}", file=sys.stderr)
    if not systems:
        print("no system can run", file=sys.stderr)
        return 2

    notes = [
        "memUsed: memory held by a replica loaded from docSize bytes and read back; "
        "tracemalloc for crdtsync and python, RSS growth in a fresh child process for "
        "pycrdt and loro (RSS moves in 4 KiB pages: small documents read as noise).",
        "python is the plain-Python floor: the same edits on a str or list, no updates, no "
        "merging (n/a where the case is about merging).",
    ]
    busy = busy_cores()
    if busy is not None and busy > 0.3:
        warning = (
            f"the machine was busy when this run started (other processes used {busy:.1f} "
            "cores): the times are likely inflated"
        )
        notes.append(warning)
        print(f"warning: {warning}", file=sys.stderr)
    if not any(c.group == "B4" for c in cases):
        notes.append(f"B4, B4x10 and the traces skipped: no traces in {args.traces}")
    per_case_runs = [runs_for(c, runs, args.quick) for c in selected]

    def width(case: Case) -> int:
        return sum(1 for s in systems if s.is_crdt or case.floor)

    total = sum(r * width(c) for c, r in zip(selected, per_case_runs, strict=True))
    if not args.no_memory:
        total += sum(width(c) for c in selected)
    progress = Progress(total, enabled=not args.no_progress)

    started = time.monotonic()
    meter = CpuMeter()
    results = [
        run_case(case, systems, case_runs, not args.no_memory, progress)
        for case, case_runs in zip(selected, per_case_runs, strict=True)
    ]
    wall = time.monotonic() - started
    progress.close()

    report = Report(
        meta=environment(args, runs, busy),
        systems=[s.name for s in systems],
        cases=results,
        skipped=skipped,
        notes=notes,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_charts:
        try:
            for path in charts(report, args.out):
                print(f"wrote {path}", file=sys.stderr)
        except ImportError:
            report.notes.append("charts skipped: matplotlib is not installed")
    report.meta["wall_s"] = round(wall, 1)
    others = meter.others()
    if others is not None:
        report.meta["other_cores_during_run"] = round(others, 2)
        if others > 0.2:
            report.notes.append(
                f"other processes used {others:.1f} of {os.cpu_count()} cores on average "
                "during this run: the times may be inflated"
            )
    text = full_markdown(report, wall)
    (args.out / "results.md").write_text(text, encoding="utf-8")
    (args.out / "results.json").write_text(
        json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8"
    )
    print(text)
    print(f"wrote {args.out / 'results.md'} and {args.out / 'results.json'}", file=sys.stderr)
    failed = any(r.error or not r.ok for case in results for r in case.systems.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
