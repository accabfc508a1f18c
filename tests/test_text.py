"""Unit tests for Text (RGA): the str-like API, bounds, code-point indexing, replication."""

from __future__ import annotations

import pytest
from crdt_helpers import budget, fresh_from, small_text, sync_pair
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync


def make(s: str = "") -> crdtsync.Text:
    doc = crdtsync.Doc(1)
    t = doc.text("t")
    if s:
        t.insert(0, s)
    return t


def test_empty_text():
    t = make()
    assert str(t) == ""
    assert len(t) == 0
    assert t[0:0] == ""
    with pytest.raises(IndexError):
        t[0]


def test_insert_and_delete_basic():
    t = make()
    t.insert(0, "hello")
    t.insert(5, " world")
    t.insert(0, ">> ")
    assert str(t) == ">> hello world"
    assert len(t) == 14
    t.delete(0, 3)
    assert str(t) == "hello world"
    t.delete(5)  # default length 1
    assert str(t) == "helloworld"
    t.insert(5, ", ")
    t.delete(len(t) - 1)
    assert str(t) == "hello, worl"


def test_type_is_exported():
    doc = crdtsync.Doc()
    assert isinstance(doc.text("x"), crdtsync.Text)


def test_emoji_are_single_positions():
    t = make("a😀b🇫🇷c")
    # 🇫🇷 is two code points (regional indicators); 😀 is one astral code point
    assert len(t) == len("a😀b🇫🇷c") == 6
    assert t[1] == "😀"
    assert t[3:5] == "🇫🇷"
    t.delete(1)
    assert str(t) == "ab🇫🇷c"
    t.insert(1, "👍🏽")
    assert str(t) == "a👍🏽b🇫🇷c"
    assert t[1] == "👍" and t[2] == "🏽"
    t.delete(4, 2)
    assert str(t) == "a👍🏽bc"


def test_emoji_survive_replication():
    doc = crdtsync.Doc(1)
    t = doc.text("t")
    t.insert(0, "𝔘😀x")
    t.insert(1, "é中")
    t.delete(3)
    other = fresh_from(doc.get_update())
    assert str(other.text("t")) == "𝔘é中x"
    other.text("t").insert(2, "🎉")
    doc.apply_update(other.get_update(doc.version))
    assert str(t) == "𝔘é🎉中x"


def test_indexing_like_str():
    s = "abc😀e"
    t = make(s)
    for i in range(-len(s), len(s)):
        assert t[i] == s[i], i
    for i in (len(s), len(s) + 1, -len(s) - 1, 100, -100):
        with pytest.raises(IndexError):
            t[i]


@given(
    s=st.text(alphabet="ab😀🎉x", max_size=12),
    i=st.one_of(st.none(), st.integers(-15, 15)),
    j=st.one_of(st.none(), st.integers(-15, 15)),
)
@settings(max_examples=budget(60))
def test_slicing_like_str(s, i, j):
    t = make(s)
    assert t[i:j] == s[i:j]
    assert isinstance(t[i:j], str)


@pytest.mark.parametrize("index", [-1, 4, 5, 100])
def test_insert_out_of_range(index):
    t = make("abc")
    with pytest.raises(IndexError):
        t.insert(index, "x")
    assert str(t) == "abc"


def test_insert_at_end_boundary_is_allowed():
    t = make("abc")
    t.insert(3, "d")
    t.insert(0, "_")
    assert str(t) == "_abcd"


@pytest.mark.parametrize(
    ("index", "length"),
    [(3, 1), (4, 1), (-1, 1), (100, 1), (0, 4), (2, 2)],
)
def test_delete_out_of_range(index, length):
    t = make("abc")
    with pytest.raises(IndexError):
        t.delete(index, length)
    assert str(t) == "abc"


def test_out_of_range_does_not_emit_update():
    doc = crdtsync.Doc(1)
    t = doc.text("t")
    t.insert(0, "abc")
    seen = []
    doc.on_update(lambda u, o: seen.append(u))
    v = doc.version
    with pytest.raises(IndexError):
        t.insert(7, "x")
    with pytest.raises(IndexError):
        t.delete(2, 5)
    assert seen == []
    assert doc.version == v


@pytest.mark.parametrize("bad", [None, 1, b"bytes", ["a"], 1.5])
def test_insert_non_str_raises_type_error(bad):
    t = make("abc")
    with pytest.raises(TypeError):
        t.insert(0, bad)
    assert str(t) == "abc"


def test_insert_then_delete_everything():
    t = make("hello")
    t.delete(0, 5)
    assert str(t) == ""
    assert len(t) == 0
    t.insert(0, "again")
    assert str(t) == "again"


def test_many_single_char_inserts_in_middle():
    t = make()
    expected = ""
    for k in range(300):
        i = (k * 7) % (len(expected) + 1)
        ch = "abcdefghij😀"[k % 11]
        t.insert(i, ch)
        expected = expected[:i] + ch + expected[i:]
    assert str(t) == expected
    # delete every other char, from the end
    for i in range(len(expected) - 1, -1, -2):
        t.delete(i)
        expected = expected[:i] + expected[i + 1 :]
    assert str(t) == expected


def test_concurrent_inserts_converge():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.text("t").insert(0, "base")
    sync_pair(a, b)
    a.text("t").insert(2, "AA")
    b.text("t").insert(2, "BB")
    b.text("t").delete(0)
    sync_pair(a, b)
    assert str(a.text("t")) == str(b.text("t"))
    s = str(a.text("t"))
    assert "AA" in s and "BB" in s
    assert s.replace("AA", "").replace("BB", "") == "ase"


def test_concurrent_delete_of_same_range():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.text("t").insert(0, "0123456789")
    sync_pair(a, b)
    a.text("t").delete(2, 5)  # 01789
    b.text("t").delete(4, 5)  # 01239
    sync_pair(a, b)
    assert str(a.text("t")) == str(b.text("t")) == "019"


def test_insert_inside_concurrently_deleted_range():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.text("t").insert(0, "hello cruel world")
    sync_pair(a, b)
    a.text("t").delete(5, 6)  # "hello world"
    b.text("t").insert(8, "XY")  # "hello crXYuel world"
    sync_pair(a, b)
    assert str(a.text("t")) == str(b.text("t")) == "helloXY world"


@given(base=small_text, ops=st.lists(st.tuples(st.integers(0, 50), small_text), max_size=8))
@settings(max_examples=budget(40))
def test_replica_with_whole_state_matches(base, ops):
    doc = crdtsync.Doc(3)
    t = doc.text("t")
    t.insert(0, base)
    for i, s in ops:
        t.insert(i % (len(t) + 1), s)
    copy = fresh_from(doc.get_update())
    assert str(copy.text("t")) == str(t)
    assert len(copy.text("t")) == len(t)


def test_lone_surrogates_are_refused_without_side_effects():
    """Lone surrogates cannot be UTF-8 encoded: refuse them before anything changes."""
    doc = crdtsync.Doc(1)
    doc.text("t").insert(0, "ok")
    doc.list("l").append(1)
    seen = []
    doc.on_update(lambda u, o: seen.append(u))
    v = doc.version
    attempts = [
        lambda: doc.text("t").insert(1, "a\ud800b"),
        lambda: doc.list("l").append("\udfff"),
        lambda: doc.list("l").append({"k": ["\ud83d"]}),
        lambda: doc.map("m").__setitem__("\ud800", 1),
        lambda: doc.map("m").__setitem__("k", "\ud800"),
        lambda: doc.set("s").add("\udc00"),
    ]
    for attempt in attempts:
        with pytest.raises((ValueError, TypeError)):
            attempt()
    assert seen == [] and doc.version == v
    assert str(doc.text("t")) == "ok"
    assert list(doc.list("l")) == [1]
    assert dict(doc.map("m")) == {} and len(doc.set("s")) == 0
