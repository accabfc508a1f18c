"""Smoke test of benchmarks/editor.py at a tiny size (for crashes and wrong stacks: every
undo and redo it times must change the document)."""

from __future__ import annotations

import pytest

from benchmarks import editor


def test_the_editor_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    editor.main(["--size", "500", "--ops", "5"])
    out = capsys.readouterr().out
    assert "| undo delete |" in out and "memory per step" in out


def test_each_timed_undo_changes_the_text() -> None:
    system = editor._Crdtsync(300)
    before = str(system.text)
    system.insert(3)
    system.undo()
    assert str(system.text) == before
    system.redo()
    assert len(system.text) == 301
