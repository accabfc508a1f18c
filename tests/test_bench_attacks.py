"""Smoke test of ``python -m benchmarks.attacks``: one cheap attack, ``--quick``, against a
real ``crdtsync serve`` process. It checks that the harness runs end to end and that its
JSON holds what the table is made of; it takes about 5 s and is cut off at 20 s. The
figures themselves are measured, never asserted: see benchmarks/README.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_clock_ceiling_attack_quick(tmp_path: Path) -> None:
    out = tmp_path / "attacks.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.attacks", "--quick", "--only", "clock-ceiling",
         "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| clock-ceiling |" in done.stdout
    [result] = json.loads(out.read_text())
    assert result["attack"] == "clock-ceiling" and result["server_alive"]
    outcome = result["outcome"]
    assert set(outcome["codes"].values()) == {4400}  # each forged clock refused
    assert outcome["room_writable"] and outcome["room_clients_stayed"]
    assert result["victim_stayed"] and result["victim_edit_ms"]["samples"] > 0
    rss = result["rss_mb"]
    assert 0 < rss["before"] <= rss["peak"]
