"""Dots held as runs: the live-dots fact of a set is read into runs and checked against them."""

from __future__ import annotations

from crdt_helpers import budget
from hypothesis import given, settings
from hypothesis import strategies as st

from crdtsync._dotruns import DotRuns, dot_runs, is_normal, normalized
from crdtsync._encoding import _Reader, _Tables

REPLICAS = [30, 10, 20]  # table order differs from id order, as on the wire
dots = st.lists(st.tuples(st.sampled_from(REPLICAS), st.integers(1, 12)), max_size=30)


@given(dots)
@settings(max_examples=budget(60))
def test_pairs_in_any_order_read_as_the_sorted_maximal_runs(pairs):
    flat = [x for r, c in pairs for x in (REPLICAS.index(r), c)]
    runs = _Reader(REPLICAS, []).dot_runs(flat)
    assert runs == dot_runs(sorted(set(pairs)))
    assert runs == normalized((r, c, 1) for r, c in pairs)
    assert is_normal(runs)
    assert [(r, c + k) for r, c, n in runs for k in range(n)] == sorted(set(pairs))
    for j in range(len(runs) - 1):  # maximal: no two runs touch
        a, b = runs[j], runs[j + 1]
        assert a[0] != b[0] or a[1] + a[2] < b[1]


@given(dots)
@settings(max_examples=budget(40))
def test_runs_written_as_pairs_read_back(pairs):
    runs = dot_runs(sorted(set(pairs)))
    tables = _Tables()
    flat = tables.dot_run_pairs(runs)
    assert _Reader(list(tables.replicas), []).dot_runs(flat) == runs


# Live dots as a few runs (one run per replica is the common case: one branch of its own).
run_lists = st.lists(
    st.tuples(st.sampled_from(REPLICAS), st.integers(1, 10), st.integers(1, 4)), max_size=4
)


@given(
    live_runs=run_lists,
    held=dots,
    version=st.dictionaries(st.sampled_from(REPLICAS), st.integers(0, 12)),
)
@settings(max_examples=budget(60))
def test_membership_and_dead_dots_match_a_plain_set(live_runs, held, version):
    live = {(r, c + k) for r, c, n in live_runs for k in range(n)}
    held = held + [(r, x) for r, c, n in live_runs for x in (c - 1, c, c + n - 1, c + n)]
    runs = DotRuns(live_runs)
    for dot in held:
        assert (dot in runs) == (dot in live)
    expected = [d for d in held if d[1] <= version.get(d[0], 0) and d not in live]
    assert runs.dead(held, version) == expected
