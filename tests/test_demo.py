"""``crdtsync demo`` (crdtsync/_demo.py): replicas converge over the faulty network, the todo
list's concurrently ticked and renamed item ends up as one item with both changes, and the
demo fails loudly when either does not hold. (test_packaging.py runs it on closed pipes.)"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from crdtsync import _demo
from crdtsync._demo import DemoConfig, Simulation, run_demo


def demo(**options: object) -> tuple[int, str]:
    out = io.StringIO()
    config = DemoConfig(progress=False, **options)  # type: ignore[arg-type]
    status = run_demo(config, out=out, err=io.StringIO())
    return status, out.getvalue()


def test_converges_with_the_tick_and_the_rename_in_one_item() -> None:
    status, out = demo(replicas=3, edits=60, seed=5)
    assert status == 0, out
    assert "replica 1 ticks it done and replica 2 renames it 'buy oat milk'" in out
    assert "[{'done': True, 'title': 'buy oat milk'}]  on 3 of 3 replica(s)" in out
    assert "one item with both changes, everywhere" in out
    assert re.search(r"all 3 replicas converged \(checksum [0-9a-f]{12}\)\n\Z", out), out
    # Every replica shows its todo list, and the final document is printed as plain Python.
    assert out.count("  todos     ") == 3
    assert "replica 1's doc.to_py() (long strings shortened):" in out
    assert "'todos': [" in out and "'settings': {" in out


def test_the_scene_edits_are_concurrent_and_land_in_the_same_item() -> None:
    sim = Simulation.create(DemoConfig(replicas=2, edits=1, loss=0.0, progress=False))
    sim.opening_scene()
    ticker, renamer = sim.replicas
    # Made before anything was delivered: neither replica has seen the other's edit...
    assert ticker.doc.to_py()["todos"] == [{"title": "buy milk", "done": True}]
    assert renamer.doc.to_py()["todos"] == [{"title": "buy oat milk", "done": False}]
    assert not ticker.doc.version <= renamer.doc.version
    assert not renamer.doc.version <= ticker.doc.version
    # ...and once they are, both hold one item with both.
    for update in (ticker.doc.get_update(), renamer.doc.get_update()):
        ticker.doc.apply_update(update)
        renamer.doc.apply_update(update)
    for replica in sim.replicas:
        assert replica.doc.to_py()["todos"] == [{"title": "buy oat milk", "done": True}]
        assert replica.todos[0] is replica.showcase


def test_random_edits_reach_inside_the_todo_items() -> None:
    sim = Simulation.create(DemoConfig(replicas=2, edits=150, seed=3, progress=False))
    sim.opening_scene()
    sim.run_edits(_demo.Progress(io.StringIO(), enabled=False))
    sim.heal(_demo.Progress(io.StringIO(), enabled=False))
    assert sim.converged()
    todos = sim.replicas[0].doc.to_py()["todos"]
    assert len(todos) > 1
    titles = [item["title"] for item in todos]
    assert any(word in title.split() for title in titles for word in _demo.TODO_WORDS)
    assert any(item["done"] for item in todos if item["title"] != "buy oat milk")
    assert all(set(item) == {"title", "done"} for item in todos)


def test_same_seed_same_run_and_output() -> None:
    first, second = demo(seed=11, edits=40), demo(seed=11, edits=40)
    strip = re.compile(r"^time: .*$", re.M)
    assert strip.sub("", first[1]) == strip.sub("", second[1])
    assert first[0] == 0


def test_one_replica_or_no_edits_means_no_scene() -> None:
    for options in ({"replicas": 1, "edits": 20}, {"replicas": 3, "edits": 0}):
        status, out = demo(**options)
        assert status == 0, out
        assert "nobody touches it" in out
        assert "[{'done': False, 'title': 'buy milk'}]" in out


def test_divergence_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    # No anti-entropy after a lossy run: the replicas stay apart, and the demo says so.
    monkeypatch.setattr(Simulation, "heal", lambda self, progress: 0)
    status, out = demo(replicas=3, edits=40, loss=0.5)
    assert status == 1
    assert "FAILED: replicas did not converge after 0 anti-entropy rounds" in out
    assert "converged (checksum" not in out


def test_a_lost_edit_in_the_scene_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Were the rename lost (here: the demo expects another one), the check must catch it.
    monkeypatch.setattr(_demo, "SHOWCASE_RENAMED", "buy soy milk")
    status, out = demo(replicas=2, edits=10)
    assert status == 1
    assert "FAILED: the todo scene's item is not one item" in out
    assert "one item with both changes" not in out


def test_cli_options_reach_the_demo() -> None:
    argv = ["demo", "--seed", "4", "--replicas", "2", "--edits", "15", "--loss", "0.2"]
    argv += ["--dup", "0.1", "--max-latency", "3", "--no-progress"]
    proc = subprocess.run(
        [sys.executable, "-m", "crdtsync", *argv],
        cwd=Path(__file__).resolve().parents[1],  # this checkout's crdtsync
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("crdtsync demo: 2 replicas x 15 edits, seed 4\n")
    assert "latency 1-3 ticks" in proc.stdout and "loss 20%, duplicates 10%" in proc.stdout
    assert proc.stderr == ""  # --no-progress
