"""The keystrokes shortcut (``integrate_keystrokes``) against the general integration.

A document that nobody observes integrates keystroke-shaped updates, and a relay's merges
of several typists' keystrokes, through the shortcut; a document with an observer always
takes the general path. Both must end in exactly the same state, and an update the
shortcut cannot prove safe must go the general way, with the general path's verdict.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from crdt_helpers import budget
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync import _doc, _integrate
from crdtsync import _encoding as enc


class Spy:
    """Counts the updates the shortcut took."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.taken = 0
        real = _integrate.integrate_keystrokes

        def spy(doc: Any, data: bytes, update: Any, origin: Any) -> bool:
            took = real(doc, data, update, origin)
            self.taken += took
            return took

        monkeypatch.setattr(_doc, "integrate_keystrokes", spy)


def readers() -> tuple[crdtsync.Doc, crdtsync.Doc]:
    """An unobserved reader (the shortcut's) and an observed one (the general path's)."""
    plain, observed = crdtsync.Doc(1), crdtsync.Doc(2)
    observed.text("t").observe(lambda event: None)
    plain.text("t")
    return plain, observed


def same_state(a: crdtsync.Doc, b: crdtsync.Doc) -> None:
    assert str(a.text("t")) == str(b.text("t"))
    assert a.version == b.version
    assert a.get_update() == b.get_update()


class Typist:
    """A replica typing at a cursor: mostly on, sometimes a backspace, now and then a
    click elsewhere (the load benchmark's typing pattern)."""

    def __init__(self, replica: int) -> None:
        self.doc = crdtsync.Doc(replica)
        self.text = self.doc.text("t")
        self.cursor: Any = None
        self.tick: list[bytes] = []
        self.doc.on_update(lambda u, origin: self.tick.append(u) if origin is None else None)

    def keystroke(self, r: random.Random) -> None:
        n = len(self.text)
        at = r.randint(0, n) if self.cursor is None or r.random() < 0.1 else self.cursor.index
        if at and r.random() < 0.3:
            self.text.delete(at - 1)
            at -= 1
        else:
            self.text.insert(at, r.choice("ab😀"))
            at += 1
        self.cursor = self.text.cursor(at, side="before") if at else self.text.cursor(0)


@settings(max_examples=budget(40))
@given(st.integers(0, 2**32), st.integers(2, 4), st.integers(1, 12))
def test_merged_ticks_integrate_as_the_general_path_does(seed: int, n: int, ticks: int) -> None:
    r = random.Random(seed)
    typists = [Typist(10 + i) for i in range(n)]
    plain, observed = readers()
    merges: list[bytes] = []
    for _ in range(ticks):
        for t in typists:
            for _ in range(r.randint(0, 4)):
                t.keystroke(r)
        tick = [u for t in typists for u in t.tick]
        for t in typists:
            t.tick.clear()
        if tick:
            merges.append(crdtsync.merge_updates(tick))
        # the typists hear each other (as through a relay) at the end of some ticks
        if r.random() < 0.5:
            for t in typists:
                for m in merges:
                    t.doc.apply_update(m, origin="relay")
    order = list(merges)
    if r.random() < 0.5:  # late, duplicated, out of order: the shortcut must decline those
        order += r.sample(merges, len(merges) // 2)
        r.shuffle(order)
    for m in order:
        plain.apply_update(m, origin="relay")
        observed.apply_update(m, origin="relay")
    same_state(plain, observed)
    for t in typists:
        for m in merges:
            t.doc.apply_update(m, origin="relay")
        assert str(t.text) == str(plain.text("t"))


def typed_and_backspaced() -> tuple[bytes, bytes]:
    """A first state, then one tick of two typists: one typed two characters and
    backspaced one, the other typed after a held character."""
    a, b = crdtsync.Doc(10), crdtsync.Doc(11)
    a.text("t").insert(0, "hello")
    b.apply_update(a.get_update())
    first = a.get_update()
    tick: list[bytes] = []
    a.on_update(lambda u, o: tick.append(u))
    b.on_update(lambda u, o: tick.append(u))
    a.text("t").insert(5, "!")
    a.text("t").insert(6, "?")
    a.text("t").delete(6)
    b.text("t").insert(1, "x")
    return first, crdtsync.merge_updates(tick)


def test_a_typed_and_backspaced_tick_takes_the_shortcut(monkeypatch: pytest.MonkeyPatch) -> None:
    first, tick = typed_and_backspaced()
    plain, observed = readers()
    for doc in (plain, observed):
        doc.apply_update(first)
    spy = Spy(monkeypatch)
    plain.apply_update(tick)
    assert spy.taken == 1
    observed.apply_update(tick)
    assert spy.taken == 1  # observed: the general path
    same_state(plain, observed)
    assert str(plain.text("t")) == "hxello!"


def ins(c: int, lamport: int, origin: Any, content: str) -> enc.Entry:
    return (enc.INS, c, ("t", "t"), lamport, origin, content, len(content), None)


def dele(c: int, *ranges: tuple[int, int, int]) -> enc.Entry:
    return (enc.DEL, c, ("t", "t"), list(ranges))


def segment(replica: int, *entries: enc.Entry) -> enc.Segment:
    end = entries[-1][1] + enc.entry_span(entries[-1])
    return enc.Segment(replica, entries[0][1], end, list(entries))


# A held text "ab" by replica 10 (counters 1-2, Lamport 1-2); each case is one update by
# replicas 11/12 that the shortcut must not take (some are valid, some are not).
DECLINED = {
    "origin newer than the element, inside the segment": [
        segment(11, ins(1, 9, (10, 2), "x"), ins(2, 5, (11, 1), "y"))
    ],
    "origin is a delete of the segment": [
        segment(11, ins(1, 5, (10, 2), "x"), dele(2, (11, 1, 1)), ins(3, 7, (11, 2), "y"))
    ],
    "origin is a later counter of the segment": [
        segment(11, ins(1, 5, (11, 2), "x"), ins(2, 6, (10, 1), "y"))
    ],
    "origin in another typist's segment": [
        segment(11, ins(1, 5, (10, 2), "x")),
        segment(12, ins(1, 6, (11, 1), "y")),
    ],
    "origin not held": [segment(11, ins(1, 5, (12, 1), "x"))],
    "Lamport time not newer than a held origin": [segment(11, ins(1, 2, (10, 2), "x"))],
    "a gap": [segment(11, ins(2, 5, (10, 2), "x"))],
    "a duplicate replica's segment": [
        segment(11, ins(1, 5, (10, 2), "x")),
        segment(11, ins(2, 6, (11, 1), "y")),
    ],
    "delete of what is not held": [segment(11, dele(1, (12, 1, 1)))],
    "delete past the segment's end": [segment(11, ins(1, 5, (10, 2), "x"), dele(2, (11, 1, 3)))],
    "a deleted insert": [
        enc.Segment(11, 1, 2, [(enc.INS, 1, ("t", "t"), 5, (10, 2), "x", 1, (11, 9))])
    ],
    "another container": [enc.Segment(11, 1, 2, [(enc.INS, 1, ("t", "u"), 5, None, "x", 1, None)])],
    "nothing at all": [],
    "a counter": [enc.Segment(11, 1, 2, [(enc.COUNTER, 1, ("c", "n"), 1, 0)])],
}


@pytest.mark.parametrize("case", sorted(DECLINED))
def test_what_it_cannot_prove_goes_the_general_way(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = crdtsync.Doc(10)
    held.text("t").insert(0, "ab")
    data = enc.encode_update(enc.Update(DECLINED[case]))
    plain, observed = readers()
    for doc in (plain, observed):
        doc.apply_update(held.get_update())
    spy = Spy(monkeypatch)
    verdicts = []
    for doc in (plain, observed):
        try:
            doc.apply_update(data)
            verdicts.append(None)
        except ValueError as exc:
            verdicts.append(type(exc))
    assert spy.taken == 0
    assert verdicts[0] == verdicts[1]
    same_state(plain, observed)


def test_the_cases_it_takes_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """The neighbours of the declined cases that are fine go through the shortcut, so the
    cases above decline for the reason they name."""
    held = crdtsync.Doc(10)
    held.text("t").insert(0, "ab")
    taken = [
        [segment(11, ins(1, 5, (10, 2), "x"), ins(2, 6, (11, 1), "y"))],
        [segment(11, ins(1, 5, (10, 2), "xy"), ins(3, 9, (11, 1), "z"))],
        [segment(11, ins(1, 5, (10, 2), "x"), dele(2, (11, 1, 1), (10, 1, 1)))],
        [segment(11, ins(1, 5, (10, 2), "x")), segment(12, ins(1, 6, (10, 1), "y"))],
        [segment(11, dele(1, (10, 1, 2)))],
    ]
    for segments in taken:
        plain, observed = readers()
        for doc in (plain, observed):
            doc.apply_update(held.get_update())
        spy = Spy(monkeypatch)
        data = enc.encode_update(enc.Update(segments))
        plain.apply_update(data)
        assert spy.taken == 1, segments
        observed.apply_update(data)
        same_state(plain, observed)


def test_what_the_shortcut_integrated_keeps_its_coverage() -> None:
    """The session reads an integrated update's coverage from it (``Update.covers``): it
    must be what summing the segments gives."""
    first, tick = typed_and_backspaced()
    plain, _ = readers()
    plain.apply_update(first)
    parsed = plain._apply(tick, "relay")
    assert parsed.covers is not None
    summed = enc.coverage(enc.decode_update(tick))
    assert parsed.covers == summed == {10: 8, 11: 1}
    assert enc.coverage(parsed) is parsed.covers
