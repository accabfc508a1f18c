"""VersionVector: read-only Mapping[int, int], partial order, join, encoding."""

from __future__ import annotations

from collections.abc import Mapping

import msgpack
import pytest
from crdt_helpers import budget
from hypothesis import given, settings
from hypothesis import strategies as st

from crdtsync import DecodeError, VersionVector

rids = st.one_of(st.integers(0, 10), st.integers(0, 2**64 - 1))
counters = st.one_of(st.integers(1, 100), st.integers(1, 2**62 - 1))
vectors = st.dictionaries(rids, counters, max_size=6).map(VersionVector)


def test_mapping_behaviour():
    v = VersionVector({1: 3, 2**64 - 1: 5})
    assert isinstance(v, Mapping)
    assert v[1] == 3
    assert v[2**64 - 1] == 5
    assert len(v) == 2
    assert set(v) == {1, 2**64 - 1}
    assert set(v.keys()) == {1, 2**64 - 1}
    assert dict(v.items()) == {1: 3, 2**64 - 1: 5}
    assert sorted(v.values()) == [3, 5]
    assert 1 in v and 7 not in v
    assert v.get(7, 0) == 0
    assert dict(v) == {1: 3, 2**64 - 1: 5}


def test_empty_and_default():
    assert len(VersionVector()) == 0
    assert VersionVector() == VersionVector({})
    assert VersionVector(None) == VersionVector()
    assert dict(VersionVector()) == {}


def test_read_only():
    v = VersionVector({1: 3})
    with pytest.raises(TypeError):
        v[1] = 4  # type: ignore[index]
    with pytest.raises(TypeError):
        del v[1]  # type: ignore[attr-defined]
    assert v[1] == 3


def test_constructor_copies_its_argument():
    src = {1: 3}
    v = VersionVector(src)
    src[1] = 100
    src[2] = 1
    assert dict(v) == {1: 3}


def test_absent_means_zero():
    assert VersionVector({1: 0}) <= VersionVector()
    assert VersionVector() <= VersionVector({1: 0})
    assert VersionVector({1: 0, 2: 4}) == VersionVector({2: 4})


def test_partial_order_examples():
    a = VersionVector({1: 2})
    b = VersionVector({2: 1})
    ab = VersionVector({1: 2, 2: 1})
    assert not a <= b and not b <= a
    assert a <= ab and b <= ab
    assert not ab <= a
    assert a <= a
    assert VersionVector() <= a
    assert VersionVector({1: 1}) <= a
    assert not VersionVector({1: 3}) <= a


def test_join_examples():
    a = VersionVector({1: 2, 3: 9})
    b = VersionVector({1: 5, 2: 1})
    j = a | b
    assert isinstance(j, VersionVector)
    assert dict(j) == {1: 5, 2: 1, 3: 9}
    assert dict(a) == {1: 2, 3: 9}  # operands unchanged
    assert a | VersionVector() == a


@given(vectors, vectors, vectors)
@settings(max_examples=budget(60))
def test_lattice_laws(a, b, c):
    j = a | b
    assert j == b | a
    assert (a | b) | c == a | (b | c)
    assert a | a == a
    assert a <= j and b <= j
    for k in set(a) | set(b):
        assert j.get(k, 0) == max(a.get(k, 0), b.get(k, 0))
    assert (a <= b) == (a | b == b)
    if a <= b and b <= a:
        assert a == b
    if a <= b and b <= c:
        assert a <= c


@given(vectors, vectors)
@settings(max_examples=budget(40))
def test_equality_is_by_content(a, b):
    assert (a == b) == (dict(a) == dict(b))
    assert VersionVector(dict(a)) == a


@given(vectors)
@settings(max_examples=budget(60))
def test_encode_decode_roundtrip(v):
    data = v.encode()
    assert isinstance(data, bytes)
    back = VersionVector.decode(data)
    assert isinstance(back, VersionVector)
    assert back == v
    assert dict(back) == dict(v)


GARBAGE = [
    b"",
    b"\x00",
    b"\xff" * 16,
    b"\xc1",  # never used in msgpack
    msgpack.packb("hello"),
    msgpack.packb([1, 2, 3, "x"]),
    msgpack.packb({"a": "b"}),
    msgpack.packb({1: -5}),
    msgpack.packb({1: "x"}),
    msgpack.packb({-1: 5}),
    msgpack.packb({1: 1.5}),
    msgpack.packb(None),
    msgpack.packb({1: [2]}),
]


@pytest.mark.parametrize("data", GARBAGE, ids=lambda d: d.hex()[:20] or "empty")
def test_decode_garbage_raises_decode_error(data):
    with pytest.raises(DecodeError):
        VersionVector.decode(data)


def test_decode_error_is_value_error():
    with pytest.raises(ValueError):
        VersionVector.decode(b"\xff\xfe\xfd")


def test_decode_truncated_and_extended():
    data = VersionVector({1: 300, 2**64 - 1: 2**40}).encode()
    for cut in range(len(data)):
        try:
            v = VersionVector.decode(data[:cut])
        except DecodeError:
            continue
        assert isinstance(v, VersionVector)
    with pytest.raises(DecodeError):
        VersionVector.decode(data + b"\x00trailing")


@given(st.binary(max_size=40))
@settings(max_examples=budget(100))
def test_decode_random_bytes_only_raises_decode_error(data):
    try:
        v = VersionVector.decode(data)
    except DecodeError:
        return
    assert isinstance(v, VersionVector)
    for k, n in v.items():
        assert isinstance(k, int) and 0 <= k < 2**64
        assert isinstance(n, int) and n >= 0
    assert VersionVector.decode(v.encode()) == v


@given(vectors, rids)
@settings(max_examples=budget(60))
def test_absent_replica_reads_as_zero_but_is_not_contained(v, r):
    # As collections.Counter: indexing an absent replica gives 0, membership stays False
    # and nothing absent shows up in iteration, len or the encoding.
    listed = dict(v)
    assert v[r] == listed.get(r, 0)
    assert (r in v) == (r in listed)
    assert v.get(r) == listed.get(r, 0)
    assert v.get(r, "x") == listed.get(r, "x")
    assert list(v) == list(listed) and len(v) == len(listed)
    assert v[r] == 0 or r in v
    assert VersionVector.decode(v.encode()) == v


def test_absent_replica_examples():
    v = VersionVector({1: 3, 2: 0})
    assert v[2] == 0 and 2 not in v  # zero entries are dropped, not kept as 0
    assert v[99] == 0 and 99 not in v
    assert "x" not in v and v["x"] == 0  # type: ignore[index]
    assert dict(v) == {1: 3} and len(v) == 1


def test_counters_stop_below_the_clock_ceiling():
    top = 2**62 - 1
    assert VersionVector({1: top})[1] == top
    assert VersionVector.decode(VersionVector({1: top}).encode())[1] == top
    for bad in (2**62, 2**63 - 1, 2**64 - 1):
        with pytest.raises(ValueError):
            VersionVector({1: bad})
        with pytest.raises(DecodeError):
            VersionVector.decode(b"\xc1\x01" + msgpack.packb({1: bad}))
