"""Smoke test of benchmarks/load.py at a tiny size: 3 clients for 2 s in one room, and 3
rooms of 2 clients, through a real server process. It catches crashes and a harness that
stops converging; the figures themselves are measured, never asserted (see
benchmarks/README.md). The pycrdt-websocket runs are skipped without that package (the
``bench`` extra, not ``test``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import load


@pytest.mark.parametrize("system", ["crdtsync", "pycrdt-websocket"])
@pytest.mark.parametrize(
    "shape", [["--clients", "3"], ["--rooms", "3", "--clients-per-room", "2"]], ids=["one", "rooms"]
)
def test_load_tiny(system: str, shape: list[str], tmp_path: Path) -> None:
    if system == "pycrdt-websocket":
        pytest.importorskip("pycrdt.websocket")
    out = tmp_path / "load.json"
    argv = ["--system", system, *shape, "--rate", "5", "--seconds", "2", "--procs", "1",
            "--drain-timeout", "20", "--json", str(out)]  # fmt: skip
    assert load.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["all_equal"] and result["system"] == system
    assert result["latency_samples"] > 0 and result["edits"] == 10 * result["clients"]


@pytest.mark.parametrize("memory", [False, True], ids=["sqlite", "memory"])
def test_load_memory_keeps_rooms_in_memory(memory: bool, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    argv = ["--clients", "3", "--rate", "5", "--seconds", "2", "--procs", "1",
            "--drain-timeout", "20", "--json", str(out)]  # fmt: skip
    if memory:
        argv.append("--memory")
    assert load.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["all_equal"] and result["store"] == ("memory" if memory else "sqlite")
