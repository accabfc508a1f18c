"""benchmarks/containers.py runs every case and reports its metrics with ratios."""

from __future__ import annotations

import pytest

from benchmarks import containers
from benchmarks.systems import ALL_SYSTEMS


def test_the_container_cases_run_and_report(monkeypatch: pytest.MonkeyPatch) -> None:
    for case, (kind, per_txn, _sizes) in list(containers.CASES.items()):
        monkeypatch.setitem(containers.CASES, case, (kind, per_txn, (50, 200)))
    results = containers.run(list(containers.CASES), ["crdtsync"], runs=1, rss=False)
    assert set(results) == {"map", "set", "map-txn", "set-txn"}
    for case in ("map", "set"):
        metrics = results[case]["values"][200]["crdtsync"]
        assert set(metrics) == {"build", "encode", "load", "apply", "state", "mem"}
        assert all(v > 0 for v in metrics.values())
    assert set(results["set-txn"]["values"][50]["crdtsync"]) == {"build"}
    text = containers.table(results)
    assert "| set | 200 | mem |" in text and "| map-txn | 50 | build |" in text


@pytest.mark.skipif(ALL_SYSTEMS["pycrdt"].unavailable() is not None, reason="needs pycrdt")
def test_peers_and_the_memory_child_report_ratios(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(containers.CASES, "set", ("set", False, (100,)))
    results = containers.run(["set"], ["crdtsync", "pycrdt"], runs=1)
    row = results["set"]["values"][100]
    assert row["pycrdt"]["rss"] >= 0 and "mem" not in row["pycrdt"]
    assert "crdtsync / pycrdt" in containers.table(results)
