"""A callback that raises (an observer or an on_update listener) never stops sync, never
skips another callback and never loses an edit: the document ends as it would with no
raising callback, every update reaches every on_update listener (sync sessions first), the
exception is logged and reported, and a local edit re-raises it once everything ran."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from crdt_helpers import budget
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync.sync import SyncSession
from crdtsync.testing import CounterAdd, MapSet, TextInsert, Transact, apply_edit, snapshot
from crdtsync.testing.strategies import edits


class Boom(Exception):
    """What the raising callbacks raise (nothing else in the library raises it)."""


def describe(event: Any) -> tuple[Any, ...]:
    """An event as plain data (without the target object and the session origin)."""
    payload = tuple(
        getattr(event, f)
        for f in ("delta", "keys_changed", "added", "removed")
        if hasattr(event, f)
    )
    return (event.target.name, type(event).__name__, event.local, repr(payload))


class Replica:
    """A doc with recording callbacks, and (when ``trigger`` is given) raising ones placed
    before and after them."""

    ROOTS = ("text", "list", "set", "map", "counter")

    def __init__(self, replica_id: int, trigger: Trigger | None) -> None:
        self.doc = crdtsync.Doc(replica_id=replica_id)
        self.events: list[tuple[Any, ...]] = []
        self.updates: list[tuple[bytes, bool]] = []
        self.reported: list[Exception] = []
        self.doc.on_callback_error(self.reported.append)
        doc = self.doc
        roots = [doc.text("text"), doc.list("list"), doc.set("set"), doc.map("map")]
        roots.append(doc.counter("counter"))
        for root in roots:
            if trigger is not None:
                root.observe(trigger.maybe_raise)
            root.observe(lambda event: self.events.append(describe(event)))
            if trigger is not None:
                root.observe(trigger.maybe_raise)
        if trigger is not None:
            doc.on_update(trigger.maybe_raise)
        doc.on_update(lambda update, origin: self.updates.append((update, origin is None)))
        if trigger is not None:
            doc.on_update(trigger.maybe_raise)


class Trigger:
    """Raises Boom on the calls whose number is in ``at``."""

    def __init__(self, at: set[int]) -> None:
        self.at = at
        self.calls = 0
        self.raised: list[Boom] = []

    def maybe_raise(self, *args: Any) -> None:
        self.calls += 1
        if self.calls in self.at:
            exc = Boom(f"call {self.calls}")
            self.raised.append(exc)
            raise exc


class World:
    """Replicas a and b synced by a pair of sessions (messages queued, delivered on
    demand), and c, an outside replica whose state the application applies to a or b."""

    def __init__(self, trigger: Trigger | None) -> None:
        self.trigger = trigger
        self.a, self.b, self.c = (Replica(i, trigger) for i in (1, 2, 3))
        self.sa, self.sb = SyncSession(self.a.doc), SyncSession(self.b.doc)
        self.to_b, self.to_a = self.sa.start(), self.sb.start()

    def replica(self, name: str) -> Replica:
        return {"a": self.a, "b": self.b, "c": self.c}[name]

    def edit(self, name: str, edit: Any) -> None:
        trigger = self.trigger
        before = len(trigger.raised) if trigger is not None else 0
        try:
            apply_edit(self.replica(name).doc, edit)
        except Boom as exc:
            assert trigger is not None
            # The first exception raised during this edit, after every callback ran.
            assert exc is trigger.raised[before]
        else:
            assert trigger is None or len(trigger.raised) == before

    def app_apply(self, name: str, whole: bool) -> None:
        target = self.replica(name).doc
        update = self.c.doc.get_update(None if whole else target.version)
        target.apply_update(update)  # never raises for a callback

    def deliver(self, rounds: int) -> bool:
        """Run ``rounds`` exchanges; False once there was nothing left to send."""
        for _ in range(rounds):
            to_b, to_a = self.to_b + self.sa.poll(), self.to_a + self.sb.poll()
            if not (to_a or to_b):
                return False
            self.to_a = [r for x in to_b for r in self.sb.receive(x)]
            self.to_b = [r for x in to_a for r in self.sa.receive(x)]
        return True

    def settle(self) -> None:
        for _ in range(1000):
            if not self.deliver(1):
                return
        raise AssertionError("the sessions never went quiet")


one_edit = st.one_of(
    edits(), st.lists(edits(), min_size=2, max_size=4).map(lambda es: Transact(tuple(es)))
)
steps = st.one_of(
    st.tuples(st.just("edit"), st.sampled_from("abc"), one_edit),
    st.tuples(st.just("app"), st.sampled_from("ab"), st.booleans()),
    st.tuples(st.just("deliver"), st.integers(1, 3)),
)


@settings(max_examples=budget(60))
@given(
    script=st.lists(steps, min_size=4, max_size=40),
    at=st.sets(st.integers(1, 60), min_size=1, max_size=40),
)
def test_raising_callbacks_change_nothing(script: list[tuple[Any, ...]], at: set[int]) -> None:
    trigger = Trigger(at)
    raising, reference = World(trigger), World(None)
    for world in (raising, reference):
        for step in script:
            if step[0] == "edit":
                world.edit(step[1], step[2])
            elif step[0] == "app":
                world.app_apply(step[1], step[2])
            else:
                world.deliver(step[1])
        world.settle()
    for mine, ref in zip(
        (raising.a, raising.b, raising.c), (reference.a, reference.b, reference.c), strict=True
    ):
        assert snapshot(mine.doc) == snapshot(ref.doc)
        assert mine.doc.version == ref.doc.version
        assert mine.events == ref.events  # every other observer ran, every time
        assert mine.updates == ref.updates  # every update reached on_update
        assert mine.doc.pending == ref.doc.pending == 0
    assert snapshot(raising.a.doc) == snapshot(raising.b.doc)
    assert raising.sa.synced and raising.sb.synced
    # every exception was reported, exactly once
    reported = [e for r in (raising.a, raising.b, raising.c) for e in r.reported]
    assert sorted(map(id, reported)) == sorted(map(id, trigger.raised))


# ---- single cases ------------------------------------------------------------------------------


def boom(*args: Any) -> None:
    raise Boom("callback failed")


def test_local_edit_reaches_every_listener_then_raises(caplog: pytest.LogCaptureFixture) -> None:
    doc, peer = crdtsync.Doc(), crdtsync.Doc()
    session = SyncSession(doc)
    seen: list[str] = []
    text = doc.text("t")
    text.observe(boom)
    text.observe(lambda event: seen.append("observer"))
    doc.on_update(boom)
    doc.on_update(lambda update, origin: seen.append("on_update"))
    with caplog.at_level(logging.ERROR, "crdtsync"), pytest.raises(Boom) as info:
        text.insert(0, "hi")
    assert info.value.__notes__ and "applied" in info.value.__notes__[0]
    assert seen == ["observer", "on_update"]
    # the session heard of it: the edit goes out
    for message in session.poll():
        SyncSession(peer).receive(message)
    assert str(peer.text("t")) == "hi"
    records = [r for r in caplog.records if r.name == "crdtsync"]
    assert len(records) == 2 and all(r.exc_info and r.exc_info[0] is Boom for r in records)


def test_sessions_hear_of_an_edit_before_any_application_callback() -> None:
    doc = crdtsync.Doc()
    first, second = SyncSession(doc), SyncSession(doc)
    seen: list[tuple[str, int]] = []
    doc.text("t").observe(lambda event: seen.append(("observer", len(first.poll()))))
    doc.on_update(lambda update, origin: seen.append(("on_update", len(second.poll()))))
    doc.text("t").insert(0, "x")
    assert seen == [("observer", 1), ("on_update", 1)]


def test_a_base_exception_propagates_but_the_session_already_has_the_edit() -> None:
    doc, peer = crdtsync.Doc(), crdtsync.Doc()
    session = SyncSession(doc)

    def interrupt(event: Any) -> None:
        raise KeyboardInterrupt

    doc.text("t").observe(interrupt)
    with pytest.raises(KeyboardInterrupt):
        doc.text("t").insert(0, "kept")
    receiver = SyncSession(peer)
    for message in session.poll():
        receiver.receive(message)
    assert str(peer.text("t")) == "kept"


def test_the_body_exception_wins_over_a_callback_exception() -> None:
    doc, sent = crdtsync.Doc(), []
    doc.on_update(lambda update, origin: sent.append(update))
    doc.text("t").observe(boom)
    with pytest.raises(KeyError), doc.transaction():
        doc.text("t").insert(0, "a")
        raise KeyError("body")
    assert len(sent) == 1 and str(doc.text("t")) == "a"


def test_remote_update_does_not_raise_and_parked_updates_still_go_in() -> None:
    source, doc = crdtsync.Doc(), crdtsync.Doc()
    updates: list[bytes] = []
    source.on_update(lambda update, origin: updates.append(update))
    for i, word in enumerate(["one ", "two ", "three"]):
        source.text("t").insert(len(source.text("t")), word)
        source.counter("n").increment(i + 1)
    reported: list[Exception] = []
    doc.on_callback_error(reported.append)
    doc.text("t").observe(boom)
    doc.counter("n").observe(boom)
    relayed: list[bytes] = []
    doc.on_update(boom)
    doc.on_update(lambda update, origin: relayed.append(update))
    for update in reversed(updates):  # all but the last wait for the first
        doc.apply_update(update)
    assert str(doc.text("t")) == "one two three" and doc.counter("n").value == 6
    assert doc.pending == 0 and len(relayed) == len(updates)
    assert reported and all(isinstance(e, Boom) for e in reported)


def test_remote_keystroke_fast_path_calls_every_listener() -> None:
    source, doc = crdtsync.Doc(), crdtsync.Doc()
    doc.apply_update(source.get_update())
    source.text("t").insert(0, "a")
    doc.text("t")  # exists and has no observers: the one-keystroke fast path
    source_updates: list[bytes] = []
    source.on_update(lambda update, origin: source_updates.append(update))
    doc.apply_update(source.get_update())
    source.text("t").insert(1, "b")
    got: list[bytes] = []
    doc.on_update(boom)
    doc.on_update(lambda update, origin: got.append(update))
    doc.apply_update(source_updates[0])
    assert got == source_updates and str(doc.text("t")) == "ab"


def test_nested_local_edit_in_an_observer_is_reported_once() -> None:
    remote, doc = crdtsync.Doc(), crdtsync.Doc()
    remote.text("t").insert(0, "x")
    reported: list[Exception] = []
    doc.on_callback_error(reported.append)
    doc.counter("echo").observe(boom)
    # a remote change makes the app edit (whose observer raises, re-raising to this one)
    doc.text("t").observe(lambda event: doc.counter("echo").increment())
    doc.apply_update(remote.get_update())
    assert doc.counter("echo").value == 1 and len(reported) == 1


def test_error_listener_that_raises_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    doc = crdtsync.Doc()
    doc.on_callback_error(boom)
    doc.map("m").observe(boom)
    with caplog.at_level(logging.ERROR, "crdtsync"), pytest.raises(Boom):
        doc.map("m")["k"] = 1
    assert any("on_callback_error listener" in r.getMessage() for r in caplog.records)
    assert doc.map("m")["k"] == 1


def test_every_edit_kind_survives_a_raising_observer() -> None:
    for edit in (TextInsert("text", 0, "a"), MapSet("map", "k", 1), CounterAdd("counter", 2)):
        doc, peer = crdtsync.Doc(), crdtsync.Doc()
        session, receiver = SyncSession(doc), SyncSession(peer)
        doc.text("text").observe(boom)
        doc.map("map").observe(boom)
        doc.counter("counter").observe(boom)
        with pytest.raises(Boom):
            apply_edit(doc, edit)
        for message in session.poll():
            receiver.receive(message)
        assert snapshot(peer) == snapshot(doc) != {}
