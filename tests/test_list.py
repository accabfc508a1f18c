"""Unit tests for List (RGA of values)."""

from __future__ import annotations

import pytest
from crdt_helpers import budget, fresh_from, sync_pair, tag, values
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync


def make(items=()) -> crdtsync.List:
    doc = crdtsync.Doc(1)
    lst = doc.list("l")
    lst.extend(list(items))
    return lst


def test_type_is_exported():
    assert isinstance(crdtsync.Doc().list("x"), crdtsync.List)


def test_basic_operations():
    lst = make()
    assert list(lst) == [] and len(lst) == 0
    lst.append(1)
    lst.append("two")
    lst.insert(0, 0)
    lst.extend([3.5, None])
    assert list(lst) == [0, 1, "two", 3.5, None]
    assert len(lst) == 5
    assert lst[2] == "two"
    assert lst[-1] is None
    assert lst[-5] == 0
    del lst[1]
    assert list(lst) == [0, "two", 3.5, None]
    del lst[-1]
    assert list(lst) == [0, "two", 3.5]
    assert [x for x in lst] == [0, "two", 3.5]  # iteration
    lst.insert(3, "end")
    assert list(lst) == [0, "two", 3.5, "end"]


def test_extend_empty_and_iterables():
    lst = make([1])
    lst.extend([])
    assert list(lst) == [1]
    lst.extend(iter([2, 3]))
    lst.extend((4,))
    assert list(lst) == [1, 2, 3, 4]


@pytest.mark.parametrize("index", [-1, 4, 10])
def test_insert_out_of_range(index):
    lst = make([1, 2, 3])
    with pytest.raises(IndexError):
        lst.insert(index, "x")
    assert list(lst) == [1, 2, 3]


@pytest.mark.parametrize("index", [3, 4, -4, 100])
def test_getitem_and_delitem_out_of_range(index):
    lst = make([1, 2, 3])
    with pytest.raises(IndexError):
        lst[index]
    with pytest.raises(IndexError):
        del lst[index]
    assert list(lst) == [1, 2, 3]


def test_empty_list_index_errors():
    lst = make()
    with pytest.raises(IndexError):
        lst[0]
    with pytest.raises(IndexError):
        del lst[0]
    with pytest.raises(IndexError):
        lst[-1]


class Unencodable:
    pass


BAD_VALUES = [
    object(),
    Unencodable(),
    {1, 2},
    frozenset(),
    1j,
    lambda: None,
    [1, object()],
    {"k": {"nested": [Unencodable()]}},
    {"k": {3}},
    ["ok", [1.5, 1j]],
    type,
]


@pytest.mark.parametrize("bad", BAD_VALUES, ids=lambda v: type(v).__name__)
def test_bad_values_raise_type_error(bad):
    doc = crdtsync.Doc(1)
    lst = doc.list("l")
    lst.append("keep")
    seen = []
    doc.on_update(lambda u, o: seen.append(u))
    v = doc.version
    with pytest.raises(TypeError):
        lst.append(bad)
    with pytest.raises(TypeError):
        lst.insert(0, bad)
    with pytest.raises(TypeError):
        lst.extend(["fine", bad])
    assert list(lst) == ["keep"]
    assert seen == [] and doc.version == v


GOOD_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    1.5,
    -0.0,
    float("inf"),
    "",
    "text😀",
    b"",
    b"\x00\xff",
    [],
    {},
    [1, [2, [3, []]]],
    {"a": {"b": [None, b"x", 1.0]}},
]


def test_value_types_round_trip_exactly():
    doc = crdtsync.Doc(1)
    lst = doc.list("l")
    lst.extend(GOOD_VALUES)
    assert tag(list(lst)) == tag(GOOD_VALUES)
    copy = fresh_from(doc.get_update())
    assert tag(list(copy.list("l"))) == tag(GOOD_VALUES)
    # bool stays bool, int stays int, float stays float
    assert type(copy.list("l")[1]) is bool
    assert type(copy.list("l")[3]) is int
    assert type(copy.list("l")[7]) is float


def test_caller_mutation_does_not_leak_into_document():
    doc = crdtsync.Doc(1)
    lst = doc.list("l")
    v = [1, {"k": [2]}]
    lst.append(v)
    v.append(99)
    v[1]["k"].append(3)
    assert list(lst) == [[1, {"k": [2]}]]
    got = lst[0]
    got.append("mutated")
    assert list(lst) == [[1, {"k": [2]}]]
    assert list(fresh_from(doc.get_update()).list("l")) == [[1, {"k": [2]}]]


@given(st.lists(values, max_size=6))
@settings(max_examples=budget(60))
def test_arbitrary_values_round_trip(vals):
    doc = crdtsync.Doc(5)
    lst = doc.list("l")
    lst.extend(vals)
    assert tag(list(lst)) == tag(vals)
    copy = fresh_from(doc.get_update())
    assert tag(list(copy.list("l"))) == tag(vals)


@pytest.mark.parametrize("depth", [40, 1000, 5000])
def test_deeply_nested_value_fails_cleanly(depth):
    """Accept and replicate it, or refuse it with TypeError/ValueError (not RecursionError)."""
    value: list = []
    cur = value
    for _ in range(depth):
        cur.append([])
        cur = cur[0]
    doc = crdtsync.Doc(1)
    lst = doc.list("l")
    try:
        lst.append(value)
    except (TypeError, ValueError):
        assert list(lst) == []
        return
    assert list(fresh_from(doc.get_update()).list("l")) == [value]


def test_big_int_is_either_rejected_or_kept():
    doc = crdtsync.Doc(1)
    lst = doc.list("l")
    for big in (2**64, -(2**63) - 1, 10**40):
        try:
            lst.append(big)
        except (TypeError, ValueError, OverflowError):
            continue
        # accepted: must replicate exactly
        assert list(fresh_from(doc.get_update()).list("l"))[-1] == big
    assert tag(list(fresh_from(doc.get_update()).list("l"))) == tag(list(lst))


def test_concurrent_appends_converge():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.list("l").extend([1, 2, 3])
    sync_pair(a, b)
    a.list("l").append("a")
    b.list("l").append("b")
    del a.list("l")[0]
    b.list("l").insert(1, "mid")
    sync_pair(a, b)
    la, lb = list(a.list("l")), list(b.list("l"))
    assert la == lb
    assert la[:3] == ["mid", 2, 3]
    assert sorted(la[3:]) == ["a", "b"]
