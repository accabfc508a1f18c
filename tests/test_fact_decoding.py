"""The inline decoding of one-range delete facts (the commonest fact of a merge) against
the general fact decoder: whatever a body holds, decoding it must give what
``_decode_fact`` gives fact by fact, or refuse it as that would."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from crdt_helpers import budget
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync import _encoding as enc

TOP = enc.MAX_COUNTER

#: Replicas 7 and 8; roots: a text, a map, a list.
TABLES: list[Any] = [[7, 8], ["tt", "mm", "ll"]]
SEGMENTS: list[Any] = [[1, 1, 1, None, "x"]]  # (one insert by replica 8, so a body has a segment)


def reference(facts: list[Any]) -> list[tuple[Any, ...]] | type[Exception]:
    """What the general decoder makes of ``facts`` (or the exception class it raises)."""
    roots = [("t", "t"), ("m", "m"), ("l", "l")]
    rd = enc._Reader(TABLES[0], roots)
    try:
        return [enc._decode_fact(raw, rd) for raw in facts]
    except enc._Invalid:
        return crdtsync.DecodeError


def decoded(facts: list[Any]) -> list[tuple[Any, ...]] | type[Exception]:
    body = [*TABLES, SEGMENTS, facts]
    try:
        return enc.decode_update(enc.PREFIX + msgpack.packb(body)).facts
    except crdtsync.DecodeError:
        return crdtsync.DecodeError


#: Values around every bound a field of a delete fact has, and values of the wrong type.
EDGES = [0, 1, 2, 3, -1, TOP - 1, TOP, TOP + 1, True, False, 0.0, 1.0, None, "0", [0]]


def _field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(valid, valid, st.sampled_from(EDGES))  # (mostly valid: the fast shape)


def a_delete_fact() -> st.SearchStrategy[list[Any]]:
    counter = st.one_of(st.integers(1, 9), st.integers(TOP - 9, TOP))
    flat = st.one_of(
        st.tuples(_field(st.integers(0, 1)), _field(counter), _field(st.integers(1, 9))).map(list),
        st.lists(st.sampled_from(EDGES), max_size=7),
        st.sampled_from(EDGES),
    )
    return st.tuples(
        _field(st.just(enc.FACT_DELETE)),
        _field(st.sampled_from([0, 2])),
        _field(st.integers(0, 1)),
        _field(counter),
        flat,
    ).map(list)


def test_the_fast_shape_decodes_as_the_general_way() -> None:
    fact = [enc.FACT_DELETE, 0, 1, 5, [0, 3, 2]]
    expected = [(enc.FACT_DELETE, ("t", "t"), (8, 5), [(7, 3, 2)])]
    assert reference([fact]) == expected
    assert decoded([fact]) == expected


@pytest.mark.parametrize(
    "fact",
    [
        [enc.FACT_DELETE, 1, 1, 5, [0, 3, 2]],  # a map cannot take a delete
        [enc.FACT_DELETE, 3, 1, 5, [0, 3, 2]],  # no such root
        [enc.FACT_DELETE, 0, 2, 5, [0, 3, 2]],  # no such replica (deleter)
        [enc.FACT_DELETE, 0, 1, 5, [2, 3, 2]],  # no such replica (target)
        [enc.FACT_DELETE, 0, 1, 0, [0, 3, 2]],  # counters start at 1
        [enc.FACT_DELETE, 0, 1, 5, [0, 0, 2]],
        [enc.FACT_DELETE, 0, 1, 5, [0, 3, 0]],  # an empty range
        [enc.FACT_DELETE, 0, 1, 5, [0, TOP, 2]],  # past the clock ceiling
        [False, 0, 1, 5, [0, 3, 2]],  # a bool is no tag (False == 0)
        [0.0, 0, 1, 5, [0, 3, 2]],  # nor a float
        [enc.FACT_DELETE, 0, 1, 5.0, [0, 3, 2]],
        [enc.FACT_DELETE, 0, 1, 5, [0, 3, 2.0]],
        [enc.FACT_DELETE, 0, 1, 5, [0, 3.0, 2]],
        [enc.FACT_DELETE, 0, 1, 5, [False, 3, 2]],
        [enc.FACT_DELETE, 0, 1, 5, [0, 3, True]],
        [enc.FACT_DELETE, False, 1, 5, [0, 3, 2]],
    ],
)
def test_what_the_general_way_refuses_is_refused(fact: list[Any]) -> None:
    assert reference([fact]) is crdtsync.DecodeError
    assert decoded([fact]) is crdtsync.DecodeError


def test_a_list_root_and_the_last_counter_are_taken() -> None:
    fact = [enc.FACT_DELETE, 2, 0, TOP, [1, TOP, 1]]
    assert decoded([fact]) == reference([fact]) == [(0, ("l", "l"), (7, TOP), [(8, TOP, 1)])]


@settings(max_examples=budget(300))
@given(st.lists(a_delete_fact(), min_size=1, max_size=4))
def test_any_delete_shaped_fact_decodes_as_the_general_way(facts: list[Any]) -> None:
    assert decoded(facts) == reference(facts)
