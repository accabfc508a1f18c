"""UndoManager: selective undo/redo of this replica's own edits, synced like any edit."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _sync(*docs: crdtsync.Doc) -> None:
    for a in docs:
        for b in docs:
            if a is not b:
                b.apply_update(a.get_update(b.version))


def test_steps_group_by_capture_timeout_and_stop_capturing() -> None:
    doc, clock = crdtsync.Doc(1), FakeClock()
    text = doc.text("t")
    um = crdtsync.UndoManager(text, capture_timeout=0.5, clock=clock)
    for ch in "abc":
        text.insert(len(text), ch)
        clock.now += 0.1
    um.stop_capturing()
    text.insert(3, "d")
    clock.now += 1.0
    text.insert(4, "e")
    assert len(um.undo_stack) == 3
    assert um.undo() and str(text) == "abcd"
    assert um.undo() and str(text) == "abc"
    assert um.undo() and str(text) == ""
    assert not um.undo() and not um.can_undo and um.can_redo
    assert um.redo() and str(text) == "abc"
    text.insert(0, "x")  # a new edit empties the redo stack
    assert not um.can_redo and not um.redo()


def test_only_tracked_local_transactions_are_undone_never_remote_ones() -> None:
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    um = crdtsync.UndoManager(a, capture_timeout=0)
    a.text("t").insert(0, "mine ")
    _sync(a, b)
    b.text("t").insert(5, "theirs")
    with a.transaction("bot"):  # an origin that is not tracked
        a.map("m")["bot"] = 1
    _sync(a, b)
    a.text("t").insert(0, ">")
    assert str(a.text("t")) == ">mine theirs"
    assert um.undo() and str(a.text("t")) == "mine theirs"
    assert um.undo() and str(a.text("t")) == "theirs"
    assert not um.undo()
    assert dict(a.map("m")) == {"bot": 1}
    _sync(a, b)  # undos are ordinary edits: they reach everyone
    assert a.to_py() == b.to_py() == {"t": "theirs", "m": {"bot": 1}}


def test_tracked_origins_and_the_manager_origin() -> None:
    doc = crdtsync.Doc(1)
    um = crdtsync.UndoManager(doc.map("m"), tracked_origins={"user", int}, capture_timeout=0)
    seen: list[Any] = []
    doc.on_update(lambda update, origin: seen.append(origin))
    with doc.transaction("user"):
        doc.map("m")["a"] = 1
    with doc.transaction(7):  # an instance of a tracked class
        doc.map("m")["b"] = 2
    doc.map("m")["c"] = 3  # origin None: not tracked here
    assert len(um.undo_stack) == 2
    assert um.undo() and um.undo()
    assert dict(doc.map("m")) == {"c": 3}
    assert seen[-1] is um


def test_undoing_a_delete_restores_the_content_where_it_was_with_gc() -> None:
    a, b = crdtsync.Doc(1, gc=True), crdtsync.Doc(2)
    a.text("t").insert(0, "hello brave new world")
    _sync(a, b)
    um = crdtsync.UndoManager(a.text("t"))
    a.text("t").delete(5, 10)  # " brave new"
    b.text("t").insert(0, "oh, ")
    b.text("t").insert(len(b.text("t")), "!")
    _sync(a, b)
    assert str(a.text("t")) == "oh, hello world!"
    assert len(a.get_update()) < 60  # the deleted text is gone from the state
    assert um.undo()
    assert str(a.text("t")) == "oh, hello brave new world!"
    _sync(a, b)
    assert str(b.text("t")) == "oh, hello brave new world!"
    assert um.redo() and str(a.text("t")) == "oh, hello world!"


def test_map_writes_restore_the_previous_value_or_absence() -> None:
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    m = a.map("m")
    m["k"] = "old"
    um = crdtsync.UndoManager(m, capture_timeout=0)
    m["k"] = "new"
    m["fresh"] = 1
    del m["k"]
    assert um.undo() and dict(m) == {"fresh": 1, "k": "new"}
    assert um.undo() and dict(m) == {"k": "new"}
    assert um.undo() and dict(m) == {"k": "old"}
    assert um.redo() and um.redo() and dict(m) == {"k": "new", "fresh": 1}
    _sync(a, b)
    b.map("m")["fresh"] = "theirs"  # written since by someone else: an undo leaves it
    _sync(a, b)
    assert um.undo() is True  # (the "fresh" step has nothing left: the one before goes)
    assert dict(m) == {"k": "old", "fresh": "theirs"}


def test_yjs_472_values_set_on_a_map_whose_creation_was_undone_come_back() -> None:
    doc = crdtsync.Doc(1)
    um = crdtsync.UndoManager(doc, capture_timeout=0)
    child = doc.map("root").map("child")
    child["x"] = 1
    child.text("note").insert(0, "hi")
    assert len(um.undo_stack) == 4  # create child, x, create note, "hi"
    assert um.undo() and um.undo() and um.undo() and um.undo()
    assert doc.to_py() == {"root": {}}
    assert um.redo() and um.redo() and um.redo() and um.redo()
    assert doc.to_py() == {"root": {"child": {"x": 1, "note": "hi"}}}
    assert doc.map("root")["child"] is child


def test_restoring_deleted_nested_containers_keeps_their_identity_and_content() -> None:
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    cards = a.list("cards")
    card = cards.append_container(crdtsync.LWWMap)
    card.text("title").insert(0, "milk")
    card.set("tags").add("food")
    card.counter("votes").increment(3)
    a.map("board").map("meta")["owner"] = "ann"
    _sync(a, b)
    um = crdtsync.UndoManager(a, capture_timeout=0)
    b.list("cards")[0].text("title").insert(4, " (oat)")
    _sync(a, b)
    before = a.to_py()
    with a.transaction():
        del cards[0]
        del a.map("board")["meta"]
    assert a.to_py() == {"cards": [], "board": {}}
    assert um.undo()
    assert a.to_py() == before
    assert cards[0] is card  # the same container: older steps still find their edits
    _sync(a, b)
    assert b.to_py() == before
    assert um.redo() and a.to_py() == {"cards": [], "board": {}}
    assert um.undo() and a.to_py() == before
    fresh = crdtsync.Doc(3)
    fresh.apply_update(a.get_update())
    assert fresh.to_py() == before


def test_events_carry_meta_from_added_to_popped() -> None:
    doc = crdtsync.Doc(1)
    um = crdtsync.UndoManager(doc.text("t"), capture_timeout=0)
    added: list[Any] = []
    popped: list[Any] = []
    um.on_item_added(lambda e: (added.append(e.stack), e.item.meta.setdefault("sel", 7)))
    um.on_item_popped(lambda e: popped.append((e.stack, e.item.meta.get("sel"))))
    doc.text("t").insert(0, "a")
    um.undo()
    um.redo()
    assert added == ["undo", "redo", "undo"]
    assert popped == [("undo", 7), ("redo", 7)]


def test_max_depth_bounds_the_stacks_and_close_stops_recording() -> None:
    doc = crdtsync.Doc(1)
    um = crdtsync.UndoManager(doc.text("t"), capture_timeout=0, max_depth=10)
    for i in range(1000):
        doc.text("t").insert(0, str(i % 10))
    assert len(um.undo_stack) == 10
    while um.undo():
        pass
    assert len(doc.text("t")) == 990
    um.close()
    doc.text("t").insert(0, "x")
    assert not um.can_undo
    with pytest.raises(RuntimeError):
        um2 = crdtsync.UndoManager(doc.text("t"))
        with doc.transaction():
            um2.undo()


# ---- properties -------------------------------------------------------------------------

_op = st.tuples(
    st.sampled_from(
        ["ins", "del", "set", "unset", "add", "discard", "inc", "undo", "redo", "sync", "stop"]
    ),
    st.integers(0, 2),  # which replica
    st.integers(0, 40),
    st.integers(1, 4),
)


def _edit(doc: crdtsync.Doc, op: str, n: int, k: int) -> None:
    text = doc.text("t")
    if op == "ins":
        text.insert(n % (len(text) + 1), "xyz"[: k % 3 + 1] + str(doc.replica_id))
    elif op == "del" and len(text):
        i = n % len(text)
        text.delete(i, min(k, len(text) - i))
    elif op == "set":
        doc.map("m")[f"k{n % 3}"] = n
    elif op == "unset" and f"k{n % 3}" in doc.map("m"):
        del doc.map("m")[f"k{n % 3}"]
    elif op == "add":
        doc.set("s").add(n % 5)
    elif op == "discard":
        doc.set("s").discard(n % 5)
    elif op == "inc":
        doc.counter("c").increment(k)


def _others_visible(doc: crdtsync.Doc, me: int) -> set[tuple[int, int]]:
    out = set()
    for run in doc.text("t")._seq.runs():
        if not run.deleted and run.replica != me:
            out.update((run.replica, run.counter + i) for i in range(run.length))
    return out


@settings(max_examples=80)
@given(st.lists(_op, max_size=40), st.booleans())
def test_undo_under_interleaved_remote_edits(ops: list[Any], gc: bool) -> None:
    """Three replicas edit; replica 0 undoes and redoes at random. An undo never removes
    text another replica typed, undo then redo (or redo then undo) with nothing between
    gives back the same document, and after syncing every replica is equal."""
    docs = [crdtsync.Doc(i + 1, gc=gc) for i in range(3)]
    for doc in docs:  # every root exists everywhere, so to_py() always shows all four
        doc.text("t"), doc.map("m"), doc.set("s"), doc.counter("c")
    um = crdtsync.UndoManager(docs[0], capture_timeout=0)
    for op, who, n, k in ops:
        doc = docs[who]
        if op in ("undo", "redo"):
            doc = docs[0]
            before, theirs = doc.to_py(), _others_visible(doc, 1)
            first, second = (um.undo, um.redo) if op == "undo" else (um.redo, um.undo)
            if first():
                assert theirs <= _others_visible(doc, 1)
                assert second()
                assert doc.to_py() == before
                first()
        elif op == "sync":
            _sync(*docs)
        elif op == "stop":
            um.stop_capturing()
        else:
            _edit(doc, op, n, k)
    _sync(*docs)
    assert docs[0].to_py() == docs[1].to_py() == docs[2].to_py()


@settings(max_examples=60)
@given(st.lists(_op, max_size=30), st.booleans())
def test_undoing_everything_alone_gives_back_the_start(ops: list[Any], gc: bool) -> None:
    doc = crdtsync.Doc(1, gc=gc)
    doc.text("t").insert(0, "base")
    doc.map("m")["k0"] = "base"
    um = crdtsync.UndoManager(doc, capture_timeout=0)
    start = doc.to_py()
    for op, _, n, k in ops:
        if op not in ("undo", "redo", "sync", "stop"):
            _edit(doc, op, n, k)
    end = doc.to_py()
    while um.undo():
        pass
    assert {k: v for k, v in doc.to_py().items() if v not in ("", {}, set(), 0)} == start
    while um.redo():
        pass
    assert doc.to_py() == end


def test_undo_keeps_working_across_a_reissue_of_the_replica_id() -> None:
    """A document that re-issues its changes under a fresh id (its id was in use
    elsewhere) renames its elements: the undo records follow."""
    doc = crdtsync.Doc(42)
    um = crdtsync.UndoManager(doc, capture_timeout=0)
    doc.text("t").insert(0, "hello")
    doc.text("t").delete(0, 1)
    doc.map("m")["k"] = 1
    doc.set("s").add("x")
    doc.list("l").append_container(crdtsync.Text).insert(0, "in")
    other = crdtsync.Doc(42)  # someone else's changes under the same id
    other.text("x").insert(0, "theirs")
    relay = crdtsync.Doc(7)
    relay.apply_update(other.get_update())
    doc.apply_update(relay.get_update())
    assert doc.replica_id != 42
    while um.undo():
        pass
    assert doc.to_py() == {"t": "", "m": {}, "s": set(), "l": [], "x": "theirs"}
    while um.redo():
        pass
    assert doc.to_py() == {"t": "ello", "m": {"k": 1}, "s": {"x"}, "l": ["in"], "x": "theirs"}


def test_a_long_session_keeps_memory_bounded() -> None:
    """Thousands of steps, undos and redos with max_depth=50: the stacks stay at 50, and
    what the manager remembers about put-back content is dropped once both stacks empty."""
    doc = crdtsync.Doc(1)
    text = doc.text("t")
    um = crdtsync.UndoManager(text, capture_timeout=0, max_depth=50)
    for _ in range(20):
        for i in range(200):
            text.insert(len(text), "ab" if i % 2 else "c")
            if i % 3 == 0 and len(text) > 4:
                text.delete(0, 2)
        for _ in range(60):
            um.undo()
        for _ in range(30):
            um.redo()
        assert len(um.undo_stack) <= 50 and len(um.redo_stack) <= 50
        assert sum(len(item.records) for item in um.undo_stack + um.redo_stack) <= 200
    assert um._redone._starts  # (undos put content back: remembered while needed)
    um.clear()
    assert not um._write_stands_for and not um._redone._starts
    text.insert(0, "x")
    assert um.undo() and not um.can_undo
