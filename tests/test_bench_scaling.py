"""benchmarks/scaling.py runs every case and reports per-op times with their ratios."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import scaling
from benchmarks.systems import ALL_SYSTEMS


def test_the_scaling_cases_run_and_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scaling, "TYPED", 50)
    monkeypatch.setitem(scaling.CASES, "replicas", (scaling._replicas, (5, 10), "us/replica"))
    monkeypatch.setitem(scaling.CASES, "merge", (scaling._merge, (100, 300), "us/edit"))
    results = scaling.run(list(scaling.CASES), [ALL_SYSTEMS["crdtsync"]], runs=1, limit=10_000)
    assert set(results) == {"typing", "random", "append", "replicas", "merge"}
    for res in results.values():
        assert all(us is not None and us > 0 for us in res["us"]["crdtsync"].values())
    text = scaling.table(results)
    assert "| replicas | 10 |" in text and "(1.00x)" in text


def test_a_system_over_the_budget_sits_out_the_larger_sizes() -> None:
    assert scaling._expected_s({}, "typing", 100) == 0.0
    assert scaling._expected_s({10: None}, "typing", 100) == float("inf")
    # 100 us per op at size 10 predicts 100 us * 10 (growth) * TYPED ops at size 100.
    expected = 100e-6 * 10 * scaling.TYPED
    assert scaling._expected_s({10: 100.0}, "typing", 100) == pytest.approx(expected)


def test_the_suite_entry_forwards_its_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from benchmarks import run as runner

    seen: list[list[str]] = []
    monkeypatch.setattr(scaling, "main", lambda argv: seen.append(list(argv)) or 0)
    runner.main(
        [
            "--scaling",
            "--systems",
            "crdtsync",
            "--runs",
            "2",
            "--budget",
            "7.5",
            "--out",
            str(tmp_path),
        ]
    )
    argv = seen[0]
    assert argv[argv.index("--budget") + 1] == "7.5"
    assert argv[argv.index("--runs") + 1] == "2"
    assert argv[argv.index("--json") + 1] == str(tmp_path / "scaling.json")
    assert argv[argv.index("--chart") + 1] == str(tmp_path / "scaling.png")
    runner.main(["--scaling", "--no-charts", "--out", str(tmp_path)])
    assert "--chart" not in seen[1]


def test_the_chart_draws_every_case(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = {
        "typing": {"unit": "us/char", "sizes": [10, 100], "us": {"crdtsync": {10: 2.0, 100: 2.1}}},
        "replicas": {
            "unit": "us/replica",
            "sizes": [5, 10],
            "us": {"crdtsync": {5: 9.0, 10: None}, "loro": {5: 30.0, 10: 60.0}},
        },
    }
    path = scaling.chart(results, tmp_path / "scaling.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_whose_whole_time_grows_fast_sits_out_the_larger_sizes() -> None:
    # Set-up included: 1 s at 10k and 4 s at 20k grew as N^2, so 40k predicts 16 s.
    assert scaling._expected_wall({}, 40_000) == 0.0
    assert scaling._expected_wall({10_000: 1.0}, 40_000) == pytest.approx(4.0)
    assert scaling._expected_wall({10_000: 1.0, 20_000: 4.0}, 40_000) == pytest.approx(16.0)
    # Growing slower than linearly still predicts linear growth.
    assert scaling._expected_wall({10_000: 1.0, 20_000: 1.1}, 40_000) == pytest.approx(2.2)
