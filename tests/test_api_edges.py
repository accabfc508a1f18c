"""Edges of the public API a new user hits: ``get_update(since)`` types, bool indices,
``apply_delta`` validation."""

from __future__ import annotations

from typing import Any

import pytest
from crdt_helpers import budget, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync import DecodeError, VersionVector, apply_delta

# ---- get_update(since) -----------------------------------------------------------------


def pair() -> tuple[crdtsync.Doc, crdtsync.Doc]:
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.text("t").insert(0, "shared")
    b.apply_update(a.get_update())
    a.text("t").insert(6, " text")
    a.counter("c").increment()
    return a, b


def test_get_update_takes_an_encoded_version_vector() -> None:
    a, b = pair()
    expected = a.get_update(b.version)
    encoded = b.version.encode()
    for since in (encoded, bytearray(encoded), memoryview(encoded)):
        assert a.get_update(since) == expected
    assert a.get_update(dict(b.version)) == expected
    b.apply_update(a.get_update(encoded))
    assert str(b.text("t")) == "shared text" and b.counter("c").value == 1
    assert a.get_update(VersionVector().encode()) == a.get_update()


@pytest.mark.parametrize(
    "since",
    [{1: "a"}, {"a": 1}, {1: 1.0}, {1: None}, {True: 1}, {1: True}, 5, "abc", [1, 2], 1.5, {1}],
)
def test_get_update_refuses_other_since_values_with_type_error(since: Any) -> None:
    a, _ = pair()
    with pytest.raises(TypeError):
        a.get_update(since)


@pytest.mark.parametrize("since", [{1: -1}, {-1: 1}, {2**64: 1}])
def test_get_update_refuses_out_of_range_entries_with_value_error(since: Any) -> None:
    a, _ = pair()
    with pytest.raises(ValueError):
        a.get_update(since)


@pytest.mark.parametrize("data", [b"", b"\xc1\x01", b"\xc1\x01\x91\x01", b"garbage"])
def test_get_update_refuses_bytes_that_are_no_version_vector(data: bytes) -> None:
    a, _ = pair()
    with pytest.raises(DecodeError):
        a.get_update(data)


# ---- bools are not indices --------------------------------------------------------------


class Index:
    """An integer type that is not int (as numpy's are): accepted through __index__."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __index__(self) -> int:
        return self.n


def sequence_doc() -> crdtsync.Doc:
    doc = crdtsync.Doc(1)
    doc.text("t").insert(0, "hello")
    doc.list("l").extend([1, 2, 3])
    return doc


def bool_index_calls(doc: crdtsync.Doc) -> list[Any]:
    t, lst = doc.text("t"), doc.list("l")
    calls: list[Any] = []
    for flag in (True, False):
        calls += [
            lambda f=flag: t.insert(f, "x"),
            lambda f=flag: t.delete(f),
            lambda f=flag: t.delete(0, f),
            lambda f=flag: t[f],
            lambda f=flag: t[f:3],
            lambda f=flag: t[0:f],
            lambda f=flag: t[::f],
            lambda f=flag: lst.insert(f, 9),
            lambda f=flag: lst.delete(f),
            lambda f=flag: lst.delete(0, f),
            lambda f=flag: lst[f],
            lambda f=flag: lst[f:2],
            lambda f=flag: lst.__delitem__(f),
            lambda f=flag: lst.__delitem__(slice(f, 2)),
            lambda f=flag: doc.counter("c").increment(f),
            lambda f=flag: doc.counter("c").decrement(f),
        ]
    return calls


def test_bools_are_refused_as_indices_and_lengths() -> None:
    doc = sequence_doc()
    sent: list[bytes] = []
    doc.on_update(lambda u, o: sent.append(u))
    before = snapshot(doc), doc.version
    for i, call in enumerate(bool_index_calls(doc)):
        with pytest.raises(TypeError, match="bool"):
            call()
        assert (snapshot(doc), doc.version) == before, i
    assert sent == []


def test_other_integer_types_still_work() -> None:
    doc = sequence_doc()
    t, lst = doc.text("t"), doc.list("l")
    t.insert(Index(5), "!")
    assert t[Index(5)] == "!" and str(t) == "hello!"
    t.delete(Index(0), Index(1))
    lst.insert(Index(0), 0)
    assert lst[Index(-1)] == 3
    del lst[Index(0)]
    assert list(lst) == [1, 2, 3] and str(t) == "ello!"
    with pytest.raises(TypeError):
        t.insert(1.0, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        lst["0"]  # type: ignore[call-overload]


# ---- apply_delta ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "delta",
    [
        [{"retain": 6}],
        [{"retain": 2}, {"delete": 4}],
        [{"delete": 6}],
        [{"bold": 1}],
        [{}],
        [{"retain": 1, "delete": 1}],
        [{"retain": "1"}],
        [{"retain": True}],
        [{"retain": 0}],
        [{"delete": -1}],
        [{"retain": 1.0}],
        [{"insert": 5}],
        [{"insert": ""}],
        [{"insert": ["x"]}],
        ["retain"],
        [("retain", 1)],
        {"retain": 1},
        "retain",
    ],
)
def test_apply_delta_refuses_bad_deltas_with_value_error(delta: Any) -> None:
    with pytest.raises(ValueError):
        apply_delta("hello", delta)


def test_apply_delta_on_lists_takes_list_inserts() -> None:
    assert apply_delta([1, 2], [{"retain": 2}, {"insert": [3]}]) == [1, 2, 3]
    with pytest.raises(ValueError):
        apply_delta([1, 2], [{"insert": "3"}])
    with pytest.raises(ValueError):
        apply_delta([1, 2], [{"retain": 3}])
    with pytest.raises(TypeError):
        apply_delta(("a", "b"), [{"retain": 1}])


ops = st.one_of(
    st.tuples(st.just("retain"), st.integers(1, 4)),
    st.tuples(st.just("delete"), st.integers(1, 4)),
    st.tuples(st.just("insert"), st.text("xyz", min_size=1, max_size=3)),
)


@settings(max_examples=budget(100))
@given(value=st.text("abcdef", max_size=10), raw=st.lists(ops, max_size=6))
def test_apply_delta_applies_what_fits_and_refuses_what_does_not(
    value: str, raw: list[tuple[str, Any]]
) -> None:
    delta = [{name: arg} for name, arg in raw]
    consumed = sum(arg for name, arg in raw if name != "insert")
    if consumed > len(value):
        with pytest.raises(ValueError, match="past the end"):
            apply_delta(value, delta)
        return
    expected, i = "", 0
    for name, arg in raw:
        if name == "insert":
            expected += arg
        else:
            expected += value[i : i + arg] if name == "retain" else ""
            i += arg
    assert apply_delta(value, delta) == expected + value[i:]
    assert apply_delta(list(value), [{k: list(v) if k == "insert" else v} for k, v in raw]) == list(
        expected + value[i:]
    )


def test_event_deltas_replay_with_apply_delta() -> None:
    doc = crdtsync.Doc(1)
    text = doc.text("t")
    shadow = [""]
    text.observe(lambda e: shadow.__setitem__(0, apply_delta(shadow[0], e.delta)))
    text.insert(0, "hello world")
    with doc.transaction():
        text.delete(0, 6)
        text.insert(5, "!")
        text.insert(0, ">> ")
    assert shadow[0] == str(text) == ">> world!"
