"""The suite's report: the load table compares B4 with B4x10 for every system."""

from __future__ import annotations

from benchmarks.report import CaseResult, Report, SystemResult, full_markdown, load_markdown


def _case(case_id: str, parse: dict[str, float], mem: dict[str, int]) -> CaseResult:
    case = CaseResult(case_id, "Apply real-world editing dataset", "avgUpdateSize", 1)
    for system, seconds in parse.items():
        case.systems[system] = SystemResult(runs=[{"parseTime": seconds}], mem_rss=mem[system])
    return case


def test_the_load_table_shows_both_states_and_their_growth() -> None:
    b4 = _case("B4", {"crdtsync": 0.1, "loro": 0.001}, {"crdtsync": 4_000_000, "loro": 750_000})
    b4x10 = _case(
        "B4x10", {"crdtsync": 1.05, "loro": 0.0045}, {"crdtsync": 40_000_000, "loro": 6_000_000}
    )
    report = Report(meta={"N": 6000}, systems=["crdtsync", "loro"], cases=[b4, b4x10])
    text = load_markdown(report)
    assert "| B4 parseTime | 100 ms | 1.00 ms |" in text
    assert "| B4x10 parseTime | 1,050 ms | 4.50 ms |" in text
    assert "| B4x10 / B4 (parseTime) | 10.50x | 4.50x |" in text
    assert "| B4x10 / B4 (memUsed) | 10.00x | 8.00x |" in text
    assert "## Load" in full_markdown(report)


def test_no_load_table_without_the_b4_cases() -> None:
    other = _case("B1.1", {"crdtsync": 0.1}, {"crdtsync": 1})
    report = Report(meta={}, systems=["crdtsync"], cases=[other])
    assert load_markdown(report) == ""
    assert "## Load" not in full_markdown(report)
