"""A textarea binding as docs/editor.md builds it, driven at random on three replicas.

Each replica has a simulated widget (a value and a selection) bound to its Text: a plain
string mirror kept by applying every TextEvent's delta, the selection as two cursors, and
an UndoManager tracking the binding's transactions that keeps the selection (as cursors
anchored just outside it) in each step's meta. Random typing, backspaces, selections,
one-way deliveries of updates, undos and redos; after every step, on every replica:

- the mirror, the widget's value and ``str(text)`` are equal;
- the widget's selection is the cursors' indexes, ``0 <= start <= end <= len``;
- each selection cursor follows the character it is anchored to. Every typed character
  is unique, so a character's value names it until some replica deletes it (an undo puts
  deleted text back as *new* characters with the same values). While its character has
  never been deleted, a cursor's index is exact: the character's position (just after it
  for side "before"). Once it has been, the cursor stays where the character was, which
  the test bounds by the characters known to come before and after it: the sequence
  order of two elements never changes, so each time both were seen alive on one
  replica, the test learned which comes first.
- a selection restored from meta by an undo or a redo lies within the text.

At the end all replicas are level: equal texts and mirrors, and each replica's selection
decoded on every other one lands on the same indexes.
"""

from __future__ import annotations

from typing import Any, Literal

from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync

Side = Literal["after", "before"]
START, END = "<start>", "<end>"  # a cursor anchored to an end of the text, not a character


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Widget:
    def __init__(self) -> None:
        self.value = ""
        self.selection = (0, 0)


def diff(old: str, new: str, caret: int) -> tuple[int, int, str]:
    """(index, count, inserted) that turns ``old`` into ``new``, the caret at ``caret``
    in ``new`` settling ambiguous cases (docs/editor.md)."""
    grown = max(0, len(new) - len(old))
    start, limit = 0, max(0, min(len(old), len(new), caret - grown))
    while start < limit and old[start] == new[start]:
        start += 1
    old_end, new_end = len(old), len(new)
    while old_end > start and new_end > max(start, caret) and old[old_end - 1] == new[new_end - 1]:
        old_end, new_end = old_end - 1, new_end - 1
    return start, old_end - start, new[start:new_end]


class Binding:
    """docs/editor.md's UndoBinding, plus what the test watches."""

    def __init__(self, world: World, text: crdtsync.Text, clock: Clock) -> None:
        self.world, self.text, self.doc = world, text, text.doc
        self.widget = Widget()
        self.mirror = self.widget.value = str(text)
        text.observe(self.on_text)
        self.undo_manager = crdtsync.UndoManager(
            text, tracked_origins={self}, capture_timeout=0.5, clock=clock
        )
        self.undo_manager.on_item_added(self.remember)
        self.undo_manager.on_item_updated(self.remember)
        self.undo_manager.on_item_popped(self.restore)
        self.before: tuple[crdtsync.Cursor, crdtsync.Cursor] | None = None
        self.restored: list[tuple[int, int]] = []
        self.set_selection(0, 0)

    # the widget's events
    def local_input(self) -> None:
        self.before = self.outside(self.start.index, self.end.index)
        index, count, inserted = diff(self.mirror, self.widget.value, self.widget.selection[1])
        with self.doc.transaction(origin=self):
            if count:
                self.text.delete(index, count)
            if inserted:
                self.text.insert(index, inserted)
        self.set_selection(*self.widget.selection)

    def type(self, s: str) -> None:
        start, end = self.widget.selection
        value = self.widget.value
        self.widget.value = value[:start] + s + value[end:]
        self.widget.selection = (start + len(s), start + len(s))
        self.local_input()

    def backspace(self, forward: bool) -> None:
        start, end = self.widget.selection
        value = self.widget.value
        if start == end:
            if forward and end < len(value):
                end += 1
            elif not forward and start:
                start -= 1
            else:
                return  # nothing to erase: a textarea fires no input event
        self.widget.value = value[:start] + value[end:]
        self.widget.selection = (start, start)
        self.local_input()

    # the document's events
    def on_text(self, event: crdtsync.TextEvent) -> None:
        old = self.mirror
        at = 0
        for op in event.delta:
            if "retain" in op:
                at += op["retain"]
            elif "delete" in op:
                self.world.deleted.update(old[at : at + op["delete"]])
                at += op["delete"]
        self.mirror = crdtsync.apply_delta(old, event.delta)
        if event.origin is not self:
            self.widget.value = self.mirror
            self.widget.selection = (self.start.index, self.end.index)

    # the selection
    def set_selection(self, start: int, end: int) -> None:
        self.widget.selection = (start, end)
        start_side: Side = "after" if start < end else "before"
        self.start = self.text.cursor(start, start_side)
        self.end = self.text.cursor(end, "before")
        self.anchors = (self.anchor(start, start_side), self.anchor(end, "before"))

    def anchor(self, index: int, side: Side) -> tuple[str, Side]:
        """The model's view of a cursor: the character it sticks to, and its side."""
        s = self.mirror
        if side == "after":
            return (s[index] if index < len(s) else END), side
        return (s[index - 1] if index else START), side

    # undo
    def outside(self, start: int, end: int) -> tuple[crdtsync.Cursor, crdtsync.Cursor]:
        if start == end:
            caret = self.text.cursor(start, "after")
            return caret, caret
        return self.text.cursor(start, "before"), self.text.cursor(end, "after")

    def remember(self, event: crdtsync.UndoEvent) -> None:
        if event.origin is self:
            assert self.before is not None
            event.item.meta.setdefault("before", self.before)
            event.item.meta["after"] = self.outside(*self.widget.selection)

    def restore(self, event: crdtsync.UndoEvent) -> None:
        kept = event.item.meta.get("before" if event.stack == "undo" else "after")
        assert kept is not None, "every step was made by the binding and has its meta"
        start, end = kept[0].index, kept[1].index
        assert 0 <= start <= end <= len(self.text), (start, end, str(self.text))
        self.restored.append((start, end))
        self.set_selection(start, end)


class World:
    def __init__(self, gc: bool) -> None:
        self.clock = Clock()
        #: Values of which some replica deleted a character: a character of such a value
        #: may be a copy an undo put back, not the one a cursor was anchored to.
        self.deleted: set[str] = set()
        #: For each anchor character, the characters seen alive before / after it.
        self.before: dict[str, set[str]] = {}
        self.after: dict[str, set[str]] = {}
        self.typed = 0
        self.docs = [crdtsync.Doc(i + 1, gc=gc) for i in range(3)]
        self.bindings = [Binding(self, doc.text("body"), self.clock) for doc in self.docs]

    def fresh(self, n: int) -> str:
        """n characters never typed before (CJK ideographs: one code point each)."""
        out = "".join(chr(0x4E00 + self.typed + i) for i in range(n))
        self.typed += n
        return out

    def deliver(self, source: int, target: int) -> None:
        src, dst = self.docs[source], self.docs[target]
        dst.apply_update(src.get_update(dst.version))

    def learn(self) -> None:
        """Note the order of each anchor character against every other character, from
        every replica where both are alive and surely the characters typed."""
        anchors = {ch for b in self.bindings for ch, _ in b.anchors} - {START, END}
        for b in self.bindings:
            s = b.mirror
            for x in anchors:
                if x in self.deleted or x not in s:
                    continue
                p = s.index(x)
                self.before.setdefault(x, set()).update(y for y in s[:p] if y not in self.deleted)
                self.after.setdefault(x, set()).update(
                    y for y in s[p + 1 :] if y not in self.deleted
                )

    def check(self) -> None:
        self.learn()
        for b in self.bindings:
            s = str(b.text)
            assert b.mirror == s == b.widget.value
            start, end = b.start.index, b.end.index
            assert b.widget.selection == (start, end)
            assert 0 <= start <= end <= len(s), (start, end, s)
            for cursor, (x, side) in zip((b.start, b.end), b.anchors, strict=True):
                assert cursor.side == side
                self.check_cursor(cursor.index, x, side, s)

    def check_cursor(self, index: int, x: str, side: Side, s: str) -> None:
        if x == START:
            assert index == 0
        elif x == END:
            assert index == len(s)
        elif x not in self.deleted:  # the one character of this value, alive
            assert s.count(x) == 1
            assert index == s.index(x) + (1 if side == "before" else 0)
        else:  # deleted somewhere (maybe alive here still, or back as a copy)
            alive = [y for y in s if y not in self.deleted]
            lo = sum(y in self.before.get(x, ()) for y in alive)
            hi = len(s) - sum(y in self.after.get(x, ()) for y in alive)
            where_it_was = lo <= index <= hi + (1 if side == "before" else 0)
            # A copy an undo put back is a new insert: text typed at the same place
            # concurrently by a replica whose clock ran ahead goes before it (RGA order),
            # so a cursor on the copy follows the copy, not the place of the original.
            on_copy = x in s and index == s.index(x) + (1 if side == "before" else 0)
            assert where_it_was or on_copy, (index, lo, hi, x, s)


_op = st.tuples(
    st.sampled_from(
        ["type"] * 4
        + ["backspace"] * 2
        + ["select"] * 2
        + ["deliver"] * 3
        + ["undo"] * 2
        + ["redo", "wait", "stop"]
    ),
    st.integers(0, 2),  # which replica (deliver: the source)
    st.integers(0, 60),  # type: how many; select: where; deliver: the target
    st.integers(0, 3),  # select: how many characters; backspace: forward if odd
)


@settings(max_examples=150)
@given(st.lists(_op, min_size=20, max_size=80), st.booleans())
def test_a_textarea_binding_keeps_mirror_and_selection_right(ops: list[Any], gc: bool) -> None:
    world = World(gc)
    world.check()
    for kind, who, n, k in ops:
        b = world.bindings[who]
        if kind == "type":
            b.type(world.fresh(1 + n % 4))
        elif kind == "backspace":
            b.backspace(forward=bool(k % 2))
        elif kind == "select":
            length = len(b.widget.value)
            start = n % (length + 1)
            b.widget.selection = (start, min(length, start + k))
            b.set_selection(*b.widget.selection)
            b.undo_manager.stop_capturing()  # the caret moved: a new step begins
        elif kind == "deliver":
            if n % 3 != who:
                world.deliver(who, n % 3)
        elif kind in ("undo", "redo"):
            seen = len(b.restored)
            done = b.undo_manager.undo() if kind == "undo" else b.undo_manager.redo()
            if done:  # the selection came back from meta, within the text (restore())
                assert len(b.restored) > seen
                assert b.widget.selection == b.restored[-1]
        elif kind == "wait":
            world.clock.now += (0.1, 0.3, 1.0)[k % 3]
        elif kind == "stop":
            b.undo_manager.stop_capturing()
        world.check()
    for source in range(3):
        for target in range(3):
            if source != target:
                world.deliver(source, target)
    world.check()
    texts = {str(b.text) for b in world.bindings}
    assert len(texts) == 1
    for b in world.bindings:
        for other in world.docs:
            assert other.decode_cursor(b.start.encode()).index == b.start.index
            assert other.decode_cursor(b.end.encode()).index == b.end.index


def test_the_diff_settles_repeated_characters_by_the_caret() -> None:
    assert diff("hello", "hallo", 2) == (1, 1, "a")
    assert diff("aa", "aaa", 1) == (0, 0, "a")  # typed at the start
    assert diff("aa", "aaa", 3) == (2, 0, "a")  # typed at the end
    assert diff("aab", "ab", 1) == (1, 1, "")  # backspace after the second "a"
    assert diff("abcd", "axd", 2) == (1, 2, "x")  # a selection replaced
    assert diff("abc", "abc", 1) == (1, 0, "")


def test_undo_restores_the_selection_a_deletion_removed_with_remote_edits_around() -> None:
    world = World(gc=True)
    alice, bob = world.bindings[0], world.bindings[1]
    alice.type("hello brown world")
    world.deliver(0, 1)
    world.clock.now += 1
    alice.widget.selection = (6, 12)
    alice.set_selection(6, 12)
    alice.backspace(False)  # "brown " goes
    bob.widget.selection = (0, 0)
    bob.set_selection(0, 0)
    bob.type(">> ")
    world.deliver(1, 0)
    assert alice.widget.value == ">> hello world"
    assert alice.undo_manager.undo()
    assert alice.widget.value == ">> hello brown world"
    assert alice.widget.selection == (9, 15)  # "brown " selected again
    world.check()
