"""benchmarks/insert_costs.py: every step it times is timed, and put back afterwards."""

from __future__ import annotations

from benchmarks import insert_costs
from crdtsync import _ids, _rga


def test_each_step_is_timed_and_the_engine_is_left_as_it_was() -> None:
    before = {(cls, name): cls.__dict__[name] for cls, name in insert_costs.STEPS}
    per_insert = insert_costs.costs(3000, 200)
    assert set(per_insert) == {"all"} | {name for _, name in insert_costs.STEPS}
    assert all(t > 0 for t in per_insert.values())
    # (each step runs inside insert_local, which runs inside the whole insert)
    assert per_insert["insert_local"] <= per_insert["all"]
    assert per_insert["locate"] <= per_insert["insert_local"]
    assert all(cls.__dict__[name] is f for (cls, name), f in before.items())
    assert _rga.Sequence.__dict__["locate"] is before[(_rga.Sequence, "locate")]
    assert _ids.IdIndex.__dict__["add"] is before[(_ids.IdIndex, "add")]
