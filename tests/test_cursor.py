"""Cursors follow their element through local and remote edits, on every replica."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync


def _sync(*docs: crdtsync.Doc) -> None:
    for a in docs:
        for b in docs:
            if a is not b:
                b.apply_update(a.get_update(b.version))


def _dot_at(lst: crdtsync.List, index: int) -> tuple[int, int]:
    run, offset = lst._seq.locate(index)
    return run.replica, run.counter + offset


def _where(lst: crdtsync.List, dot: tuple[int, int]) -> tuple[int, bool]:
    """(visible index of element ``dot``, or of the place it was; alive?) from the
    sequence's own order, tombstones included."""
    pos = 0
    for run in lst._seq.runs():
        if run.replica == dot[0] and run.counter <= dot[1] < run.counter + run.length:
            return pos + (0 if run.deleted else dot[1] - run.counter), not run.deleted
        if not run.deleted:
            pos += run.length
    raise AssertionError(f"{dot} not in the sequence")


_ops = st.lists(
    st.tuples(
        st.sampled_from(["insert", "insert", "delete", "unanchor", "sync", "cursor", "cursor"]),
        st.integers(0, 2),
        st.integers(0, 50),
        st.integers(1, 3),
    ),
    max_size=40,
)


@settings(max_examples=200)
@given(_ops, st.booleans())
def test_a_cursor_tracks_its_element_against_a_model(ops: list[Any], gc: bool) -> None:
    """Three replicas edit a list of unique values; each cursor's index is always the
    position of its element (just after it for side "before"), or where that element was
    once deleted, and a cursor decoded on another replica agrees once they are level."""
    docs = [crdtsync.Doc(i + 1, gc=gc) for i in range(3)]
    lists = [d.list("l") for d in docs]
    cursors: list[tuple[int, crdtsync.Cursor, tuple[int, int] | None, str]] = []
    for op, who, n, k in ops:
        lst = lists[who]
        if op == "insert":
            lst.insert(n % (len(lst) + 1), n)
        elif op == "delete" and len(lst):
            i = n % len(lst)
            lst.delete(i, min(k, len(lst) - i))
        elif op == "unanchor" and cursors:  # delete a cursor's element, where it lives
            owner, _, anchor, _ = cursors[n % len(cursors)]
            if anchor is not None:
                pos, alive = _where(lists[owner], anchor)
                if alive:
                    lists[owner].delete(pos)
        elif op == "sync":
            _sync(*docs)
        elif op == "cursor":
            index = n % (len(lst) + 1)
            side = "after" if k % 2 else "before"
            at = index if side == "after" else index - 1
            anchor = _dot_at(lst, at) if 0 <= at < len(lst) else None
            cursors.append((who, lst.cursor(index, side), anchor, side))  # type: ignore[arg-type]
        for owner, cursor, anchor, side in cursors:
            mine = lists[owner]
            if anchor is None:
                assert cursor.index == (len(mine) if side == "after" else 0)
                continue
            pos, alive = _where(mine, anchor)
            assert cursor.index == (pos + 1 if alive and side == "before" else pos)
    _sync(*docs)
    for _, cursor, _, _ in cursors:
        for other in docs:
            assert other.decode_cursor(cursor.encode()).index == cursor.index


def test_text_cursors_for_a_selection_and_typing_at_the_cursor() -> None:
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.text("t").insert(0, "hello world")
    _sync(a, b)
    caret = a.text("t").cursor(5, side="before")  # after "hello"
    b.text("t").insert(0, "well, ")
    a.text("t").insert(5, ",")  # typed at a "before" cursor: the cursor stays before it
    _sync(a, b)
    assert str(a.text("t")) == "well, hello, world"
    assert caret.index == 11
    sticky = b.decode_cursor(caret.encode())
    assert sticky.index == 11 and sticky.side == "before"
    after = a.text("t").cursor(11)  # at the same place, sticking to ","
    a.text("t").insert(11, "!")
    assert (after.index, caret.index) == (12, 11)


def test_cursors_at_the_ends_and_in_nested_sequences() -> None:
    doc = crdtsync.Doc(1)
    text = doc.map("card").text("title")
    end, start = text.cursor(0), text.cursor(0, side="before")
    text.insert(0, "abc")
    assert (start.index, end.index) == (0, 3)
    peer = crdtsync.Doc(2)
    peer.apply_update(doc.get_update())
    moved = peer.decode_cursor(text.cursor(1).encode())
    assert moved.container is peer.map("card").text("title") and moved.index == 1
    cells = doc.list("cells")
    inner = cells.append_container(crdtsync.List)
    inner.extend([1, 2, 3])
    c = inner.cursor(2)
    inner.insert(0, 0)
    assert c.index == 3
    assert crdtsync.Doc(3).decode_cursor(text.cursor(3).encode()).index == 0  # the end


def test_a_cursor_survives_gc_and_a_reissue() -> None:
    doc = crdtsync.Doc(42)
    text = doc.text("t")
    text.insert(0, "abcdef")
    c = text.cursor(3)  # "d"
    text.delete(2, 3)  # "cde" goes; gc drops the content
    assert c.index == 2
    old = crdtsync.Doc(42)  # someone else held id 42 before: the document re-issues
    old.text("x").insert(0, "zz")
    other = crdtsync.Doc(7)
    other.apply_update(old.get_update())
    doc.apply_update(other.get_update())
    assert doc.replica_id != 42
    text.insert(0, "++")
    assert c.index == 4
    assert doc.decode_cursor(c.encode()).index == 4


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1\x01",
        b"\xc2",
        b"\xc2\x93\xa2tt\xc0\x01",
        b"\xc2\x93\xa2xt\xc0\xc3",
        b"\xc2\x93\xa2tt\x92\x01\x00\xc3",
        b"\xc2\x92\xa2tt\xc3",
        b"\xc2\x93\xa3T1x\xc0\xc3",
    ],
)
def test_bytes_that_are_no_cursor_are_a_decode_error(data: bytes) -> None:
    with pytest.raises(crdtsync.DecodeError):
        crdtsync.Doc().decode_cursor(data)


def test_a_cursor_to_an_element_not_held_yet_is_a_lookup_error() -> None:
    a = crdtsync.Doc(1)
    a.text("t").insert(0, "abc")
    with pytest.raises(LookupError, match="apply the sender's updates first"):
        crdtsync.Doc(2).decode_cursor(a.text("t").cursor(1).encode())
    with pytest.raises(ValueError, match="side"):
        a.text("t").cursor(1, side="middle")  # type: ignore[arg-type]
    with pytest.raises(IndexError):
        a.text("t").cursor(4)
