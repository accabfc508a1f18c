"""Results: their shape, the markdown table, the JSON file and the charts."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Raw per-run metrics, in the units they are measured in (seconds, bytes).
RUN_METRICS = ("time", "update", "encodeTime", "docSize", "parseTime")
TIME_METRICS = {"time", "encodeTime", "parseTime"}
# Rows of the table, in crdt-benchmarks' order; "update" is named per case.
ROWS = ("time", "update", "encodeTime", "docSize", "parseTime", "memUsed")
COLORS = {"crdtsync": "#d62728", "pycrdt": "#1f77b4", "loro": "#2ca02c", "python": "#7f7f7f"}


@dataclass
class SystemResult:
    runs: list[dict[str, float | None]] = field(default_factory=list)
    ok: bool = True
    error: str | None = None
    mem_traced: int | None = None  # tracemalloc, pure-Python systems only
    mem_rss: int | None = None  # RSS growth in a child process
    mem_error: str | None = None

    def median(self, metric: str) -> float | None:
        if metric == "memUsed":
            mem = self.mem_traced if self.mem_traced is not None else self.mem_rss
            return None if mem is None else float(max(mem, 0))
        values = [v for run in self.runs if (v := run.get(metric)) is not None]
        return statistics.median(values) if values else None

    def to_json(self) -> dict[str, Any]:
        return {
            "median": {metric: self.median(metric) for metric in ROWS},
            "runs": self.runs,
            "ok": self.ok,
            "error": self.error,
            "memUsed": {"tracemalloc": self.mem_traced, "rss": self.mem_rss},
            "memError": self.mem_error,
        }


@dataclass
class CaseResult:
    id: str
    title: str
    update_metric: str  # "avgUpdateSize" or "updateSize"
    runs: int
    systems: dict[str, SystemResult] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)  # system -> why

    @property
    def label(self) -> str:
        return f"[{self.id}] {self.title}"

    def row_name(self, metric: str) -> str:
        return self.update_metric if metric == "update" else metric

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "updateMetric": self.update_metric,
            "runs": self.runs,
            "systems": {name: r.to_json() for name, r in self.systems.items()},
            "notApplicable": self.not_applicable,
        }


@dataclass
class Report:
    meta: dict[str, Any]
    systems: list[str]  # the systems that ran, in column order
    cases: list[CaseResult]
    skipped: dict[str, str] = field(default_factory=dict)  # system -> why it did not run
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "systems": self.systems,
            "skipped": self.skipped,
            "notes": self.notes,
            "cases": [case.to_json() for case in self.cases],
        }


# ---- formatting ------------------------------------------------------------------------------


def format_value(metric: str, value: float) -> str:
    if metric in TIME_METRICS:
        ms = value * 1e3
        if ms >= 100:
            return f"{ms:,.0f} ms"
        return f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"
    if metric == "memUsed":
        for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if value >= scale:
                return f"{value / scale:.1f} {unit}"
        return f"{value:.0f} B"
    return f"{round(value):,} bytes"


def format_ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs <= 0 or ours < 0:
        return ""
    return f"{ours / theirs:.2f}x"


def cell(case: CaseResult, system: str, metric: str) -> str:
    if system in case.not_applicable:
        return "n/a"
    result = case.systems.get(system)
    if result is None:
        return ""
    if result.error is not None and not result.runs:
        return "error"
    value = result.median(metric)
    if value is None:
        if metric == "memUsed" and result.mem_error:
            return "error"
        return "-"
    text = format_value(metric, value)
    return text if result.ok else f"{text} (wrong)"


def markdown(report: Report) -> str:
    systems = report.systems
    peers = [s for s in systems if s != "crdtsync"] if "crdtsync" in systems else []
    header = [f"N = {report.meta.get('N', '?')}", *systems, *[f"crdtsync / {p}" for p in peers]]
    lines = [
        "| " + " | ".join(header) + " |",
        "| :- | " + " | ".join("-:" for _ in header[1:]) + " |",
    ]
    for case in report.cases:
        for metric in ROWS:
            cells = [f"{case.label} ({case.row_name(metric)})"]
            cells += [cell(case, system, metric) for system in systems]
            ours = case.systems.get("crdtsync")
            for peer in peers:
                theirs = case.systems.get(peer)
                ok = ours is not None and theirs is not None and peer not in case.not_applicable
                cells.append(
                    format_ratio(ours.median(metric), theirs.median(metric))
                    if ok and ours is not None and theirs is not None
                    else ""
                )
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def environment_lines(meta: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())
    return [
        f"- machine: {meta.get('cpu', '?')}, {meta.get('nproc', '?')} cores, "
        f"{meta.get('platform', '?')}",
        f"- Python {meta.get('python', '?')}; {versions}",
        f"- crdtsync commit {meta.get('commit', '?')}; N = {meta.get('N')}, "
        f"seed {meta.get('seed')}, {meta.get('mode')} run, "
        f"median of up to {meta.get('runs')} runs per case (systems alternate); "
        f"{meta.get('date', '')}",
    ]


def notes_lines(report: Report) -> list[str]:
    lines = list(report.notes)
    for name, why in report.skipped.items():
        lines.append(f"{name} skipped: {why}")
    for case in report.cases:
        for name, result in case.systems.items():
            if result.error is not None:
                lines.append(f"{case.id} {name}: ERROR {result.error}")
            elif not result.ok:
                lines.append(f"{case.id} {name}: WRONG RESULT (content differs from the oracle)")
            if result.mem_error is not None:
                lines.append(f"{case.id} {name}: memUsed not measured ({result.mem_error})")
        for name, why in case.not_applicable.items():
            if why and name != "python":
                lines.append(f"{case.id} {name}: n/a, {why}")
    return [f"- {line}" for line in lines]


#: The cases the load table compares: one document state, and the same edits made 10 times.
LOAD_CASES = ("B4", "B4x10")


def load_markdown(report: Report) -> str:
    """The load table: loading each of LOAD_CASES' states (parseTime, which includes
    reading the text back) and the memory the loaded document holds, per system, with how
    each grows from B4 to B4x10 (10x the edits: 10x is linear). Empty without them."""
    by_id = {case.id: case for case in report.cases}
    cases = [by_id[name] for name in LOAD_CASES if name in by_id]
    if not cases:
        return ""
    systems = report.systems
    lines = [
        "| load | " + " | ".join(systems) + " |",
        "| :- | " + " | ".join("-:" for _ in systems) + " |",
    ]
    for metric in ("parseTime", "memUsed"):
        for case in cases:
            cells = [cell(case, system, metric) for system in systems]
            lines.append(f"| {case.id} {metric} | " + " | ".join(cells) + " |")
        if len(cases) == 2:
            growth = []
            for system in systems:
                one, ten = (case.systems.get(system) for case in cases)
                if one is None or ten is None:
                    growth.append("")
                else:
                    growth.append(format_ratio(ten.median(metric), one.median(metric)))
            lines.append(
                f"| {cases[1].id} / {cases[0].id} ({metric}) | " + " | ".join(growth) + " |"
            )
    return "\n".join(lines) + "\n"


def full_markdown(report: Report, wall_s: float | None = None) -> str:
    parts = ["# crdtsync benchmarks", "", *environment_lines(report.meta)]
    if wall_s is not None:
        parts.append(f"- wall time of this run: {wall_s:.0f} s")
    parts += ["", markdown(report)]
    loads = load_markdown(report)
    if loads:
        parts += ["## Load", "", loads]
    parts += [*notes_lines(report), ""]
    return "\n".join(parts)


# ---- charts ----------------------------------------------------------------------------------


def charts(report: Report, out_dir: Path, dpi: int = 80) -> list[Path]:
    """time.png, docsize.png and parsetime.png (the load time): one horizontal bar per
    system and case, log scale.

    Raises ImportError when matplotlib is missing.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    specs = (
        ("time", "time (ms, log scale)", 1e3),
        ("docSize", "docSize (bytes, log scale)", 1.0),
        ("parseTime", "parseTime: load and read back (ms, log scale)", 1e3),
    )
    for metric, xlabel, scale in specs:
        cases = [c for c in report.cases if any(r.median(metric) for r in c.systems.values())]
        if not cases:
            continue
        systems = report.systems
        height = 0.8 / max(len(systems), 1)
        fig, ax = plt.subplots(figsize=(8, 0.12 * len(cases) * max(len(systems), 2) + 1.2))
        for k, system in enumerate(systems):
            ys, xs = [], []
            for i, case in enumerate(cases):
                result = case.systems.get(system)
                value = result.median(metric) if result is not None else None
                if value is not None and value > 0:
                    ys.append(i + k * height - 0.4 + height / 2)
                    xs.append(value * scale)
            ax.barh(ys, xs, height=height, label=system, color=COLORS.get(system))
        ax.set_yticks(range(len(cases)), [c.id.removeprefix("T:") for c in cases], fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", which="major", linewidth=0.5, alpha=0.5)
        ax.legend(loc="lower right", fontsize=8)
        title = f"{metric} per case (N = {report.meta.get('N')}; lower is better)"
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        path = out_dir / f"{metric.lower()}.png"
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        written.append(path)
    return written


def print_table(text: str, results: Any, json_path: Path | None) -> int:
    """The end of a standalone benchmark script: print its table (after a blank line)
    and, if asked, write its results as JSON; the exit status."""
    print()
    print(text)
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=2))
    return 0
