"""Unit tests for Counter (PN-counter)."""

from __future__ import annotations

import pytest
from crdt_helpers import budget, distinct_ids, fresh_from, sync_all
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync


def test_type_is_exported():
    assert isinstance(crdtsync.Doc().counter("x"), crdtsync.Counter)


def test_basic_operations():
    c = crdtsync.Doc(1).counter("c")
    assert c.value == 0
    c.increment()
    assert c.value == 1
    c.increment(10)
    c.decrement()
    c.decrement(3)
    assert c.value == 7
    c.decrement(20)
    assert c.value == -13
    assert isinstance(c.value, int)


@pytest.mark.parametrize("bad", ["1", None, [1], 1.5])
def test_bad_amounts_rejected(bad):
    doc = crdtsync.Doc(1)
    c = doc.counter("c")
    c.increment(2)
    v = doc.version
    with pytest.raises((TypeError, ValueError)):
        c.increment(bad)
    with pytest.raises((TypeError, ValueError)):
        c.decrement(bad)
    assert c.value == 2
    assert doc.version == v


def test_large_amounts():
    doc = crdtsync.Doc(1)
    c = doc.counter("c")
    c.increment(2**40)
    c.increment(2**40)
    c.decrement(5)
    assert c.value == 2**41 - 5
    assert fresh_from(doc.get_update()).counter("c").value == 2**41 - 5


@given(
    ids=distinct_ids(3),
    ops=st.lists(
        st.tuples(st.integers(0, 2), st.booleans(), st.integers(1, 1000)), min_size=1, max_size=30
    ),
    syncs=st.lists(st.integers(0, 29), max_size=5),
)
@settings(max_examples=budget(50))
def test_concurrent_counts_sum(ids, ops, syncs):
    docs = [crdtsync.Doc(i) for i in ids]
    total = 0
    for k, (who, inc, n) in enumerate(ops):
        c = docs[who].counter("c")
        if inc:
            c.increment(n)
            total += n
        else:
            c.decrement(n)
            total -= n
        if k in syncs:
            sync_all(docs[:2])
    sync_all(docs)
    for d in docs:
        assert d.counter("c").value == total
    assert fresh_from(docs[2].get_update()).counter("c").value == total


def test_repeated_delivery_does_not_double_count():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    ups = []
    a.on_update(lambda u, o: ups.append(u))
    a.counter("c").increment(5)
    a.counter("c").increment(7)
    for _ in range(3):
        for u in ups:
            b.apply_update(u)
        b.apply_update(a.get_update())
    assert b.counter("c").value == 12
