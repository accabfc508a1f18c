"""Smoke test of ``python -m benchmarks.nested``: both cases at tiny sizes on every system
that imports, with the checks the benchmark makes (replicas equal after the merge, the
loaded document equal to them, the merged structure what the edits imply). The checks are
themselves checked: a merge that drops a delta, and merged structures with one thing wrong,
must be reported. Figures are never asserted. About 3 s."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import nested
from benchmarks.nested import CaseInput, CrdtsyncDoc, case_input, problems, run_case

SIZES = {"N1": 40, "N2": 200}
SYSTEMS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            importlib.util.find_spec(name) is None, reason=f"{name} is not installed"
        ),
    )
    for name in nested.SYSTEMS
]


def inputs(case_id: str) -> CaseInput:
    [case] = [c for c in nested.CASES if c.id == case_id]
    return case_input(case, nested.SEED, SIZES[case_id])


@pytest.mark.parametrize("case_id", list(SIZES))
def test_inputs_have_concurrent_edits(case_id: str) -> None:
    inp = inputs(case_id)
    assert inp.ops_a and inp.ops_b
    assert inp.both_texts > 0  # some text is edited on both replicas
    if case_id == "N2":
        assert inp.both_values > 0  # some field is written on both replicas


@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize("case_id", list(SIZES))
def test_case_converges(system: str, case_id: str) -> None:
    inp = inputs(case_id)
    result = run_case(system, inp)
    assert result.problems == []
    assert set(result.metrics) == {*nested.STAGES, *nested.SIZES}
    assert result.metrics["delta A->B"] > 0 and result.metrics["delta B->A"] > 0
    # The state loads into a replica whose structure passes the checks too.
    _doc, loaded = nested.load(system, inp.root, result.state)
    assert problems(inp, loaded) == []


class DropsTheMerge(CrdtsyncDoc):
    """A replica that takes the initial sync and then ignores every update."""

    taken = 0

    def apply_update(self, update: bytes) -> None:
        self.taken += 1
        if self.taken == 1:
            super().apply_update(update)


def test_a_lost_delta_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(nested.DOCS, "crdtsync", DropsTheMerge)
    found = run_case("crdtsync", inputs("N1")).problems
    # B takes the initial sync and drops A's delta; A's first update is B's delta, which
    # it takes: A is complete, B lacks A's edits.
    assert "A and B differ after the merge" in found
    assert not any(p.startswith("A: ") for p in found)
    assert any(p.startswith("B: ") for p in found)


def merged(case_id: str) -> tuple[CaseInput, dict[str, Any]]:
    inp = inputs(case_id)
    doc = nested.create("crdtsync", inp.root, 1)
    doc.apply_update(run_case("crdtsync", inp).state)
    return inp, doc.to_py()


def test_wrong_structures_are_reported() -> None:
    inp, good = merged("N1")
    assert problems(inp, good) == []
    i, name = next(key for key in inp.texts if len(set(good["cells"][key[0]][key[1]][:2])) == 2)

    def broken(change: Any) -> dict[str, Any]:
        doc = copy.deepcopy(good)
        change(doc["cells"])
        return doc

    def swap_two(cells: list[Any]) -> None:
        text = cells[i][name]
        cells[i][name] = text[1] + text[0] + text[2:]

    wrong = {
        "a character more": lambda cells: cells[i].__setitem__(name, cells[i][name] + "x"),
        "a character less": lambda cells: cells[i].__setitem__(name, cells[i][name][1:]),
        "two characters swapped": swap_two,
        "a metadata value": lambda cells: cells[0]["metadata"].__setitem__("collapsed", None),
        "a metadata key more": lambda cells: cells[0]["metadata"].__setitem__("x", 1),
        "a plain value": lambda cells: cells[0].__setitem__("cell_type", "markdown"),
        "a cell less": lambda cells: cells.pop(),
        "two cells swapped": lambda cells: cells.insert(0, cells.pop(1)),
    }
    for what, change in wrong.items():
        assert problems(inp, broken(change)), what
    assert problems(inp, {**good, "nbformat": 3})


def test_wrong_lists_are_reported() -> None:
    inp, good = merged("N2")
    assert problems(inp, good) == []
    (i, name), (pushed_a, pushed_b) = next(iter(inp.appended.items()))
    for change in ("drop", "duplicate", "reverse"):
        doc = copy.deepcopy(good)
        values = doc["cards"][i][name]
        if change == "drop":
            values.pop()
        elif change == "duplicate":
            values.append(values[-1])
        else:
            values.reverse()
            values.append("extra")  # a one-item list reversed is itself
        assert problems(inp, doc), change


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nested.json"
    code = nested.main(["--size", "20", "--runs", "2", "--systems", "crdtsync", "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "| [N1] merge |" in table and "| [N2] memUsed |" in table
    data = json.loads(out.read_text())
    for case_id in ("N1", "N2"):
        result = data["cases"][case_id]["systems"]["crdtsync"]
        assert len(result["runs"]) == 2 and result["problems"] == []
        assert result["memUsed"]["tracemalloc"] > 0 and result["memUsed"]["rss"] is not None
