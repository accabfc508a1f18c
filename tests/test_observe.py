"""Observer events: deltas for Text/List, keys_changed for LWWMap, added/removed for ORSet,
delta for Counter; origin and local flags; once per transaction per container."""

from __future__ import annotations

from typing import Any

from crdt_helpers import (
    apply_list_delta,
    apply_text_delta,
    budget,
    distinct_ids,
    set_elements,
    small_text,
    sync_pair,
    tag,
    values,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync


class Watch:
    """Records events of one root and replays their deltas onto a shadow copy."""

    def __init__(self, root, read, apply_delta=None) -> None:
        self.root = root
        self.read = read
        self.apply_delta = apply_delta
        self.shadow = read(root)
        self.events: list[Any] = []
        self.problems: list[str] = []
        self.unsubscribe = root.observe(self._on)

    def _on(self, ev) -> None:
        self.events.append(ev)
        if self.apply_delta is not None:
            try:
                replayed = self.apply_delta(self.shadow, ev.delta)
            except AssertionError as e:
                self.problems.append(f"bad delta {ev.delta!r} for {self.shadow!r}: {e}")
                replayed = self.read(self.root)
            now = self.read(self.root)
            if tag(replayed) != tag(now):
                self.problems.append(
                    f"delta {ev.delta!r} applied to {self.shadow!r} gives {replayed!r}, "
                    f"document holds {now!r}"
                )
            self.shadow = now

    def take(self) -> list[Any]:
        assert not self.problems, self.problems
        out, self.events = self.events, []
        return out


def check_events(events, *, local: bool, origin: Any, at_most_one: bool = True) -> None:
    if at_most_one:
        assert len(events) <= 1, f"{len(events)} events for one transaction"
    for ev in events:
        assert ev.local is local
        assert ev.origin == origin


def text_watch(doc):
    return Watch(doc.text("t"), lambda t: str(t), apply_text_delta)


def list_watch(doc):
    return Watch(doc.list("l"), lambda lst: list(lst), apply_list_delta)


# ---------------------------------------------------------------------------------------------
# Text


def _text_edit(t, data) -> None:
    if len(t) and data.draw(st.booleans(), label="delete?"):
        i = data.draw(st.integers(0, len(t) - 1), label="i")
        t.delete(i, data.draw(st.integers(1, len(t) - i), label="n"))
    else:
        t.insert(data.draw(st.integers(0, len(t)), label="i"), data.draw(small_text, label="s"))


@given(ids=distinct_ids(2), data=st.data())
@settings(max_examples=budget(120))
def test_text_deltas_replay_local_and_remote(ids, data):
    a, b = crdtsync.Doc(ids[0]), crdtsync.Doc(ids[1])
    a.text("t").insert(0, "start")
    sync_pair(a, b)
    wa, wb = text_watch(a), text_watch(b)
    pending_for_a: list[bytes] = []
    pending_for_b: list[bytes] = []
    a.on_update(lambda u, o: pending_for_b.append(u) if o != "net" else None)
    b.on_update(lambda u, o: pending_for_a.append(u) if o != "net" else None)
    for _ in range(data.draw(st.integers(1, 12), label="steps")):
        step = data.draw(st.sampled_from(["a", "b", "txn", "to_a", "to_b"]), label="step")
        if step in ("a", "b"):
            doc, w = (a, wa) if step == "a" else (b, wb)
            _text_edit(doc.text("t"), data)
            evs = w.take()
            assert len(evs) == 1
            check_events(evs, local=True, origin=None)
        elif step == "txn":
            with a.transaction(origin="typing"):
                for _ in range(data.draw(st.integers(1, 4), label="edits")):
                    _text_edit(a.text("t"), data)
            check_events(wa.take(), local=True, origin="typing")
        else:
            dst, w, queue = (a, wa, pending_for_a) if step == "to_a" else (b, wb, pending_for_b)
            for u in queue:
                before = str(dst.text("t"))
                dst.apply_update(u, origin="net")
                evs = w.take()
                if str(dst.text("t")) != before:
                    assert evs, "no event for a remote change"
                check_events(evs, local=False, origin="net")
            queue.clear()
    wa.take()
    wb.take()


def test_text_event_shape():
    doc = crdtsync.Doc(1)
    t = doc.text("t")
    t.insert(0, "hello")
    w = text_watch(doc)
    t.insert(2, "XY")
    (ev,) = w.take()
    assert ev.delta == [{"retain": 2}, {"insert": "XY"}]
    t.delete(0, 3)
    (ev,) = w.take()
    assert ev.delta == [{"delete": 3}]
    with doc.transaction(origin="o"):
        t.insert(len(t), "!")
        t.insert(0, "😀")
    (ev,) = w.take()
    assert apply_text_delta("Yllo", ev.delta) == "😀Yllo!" == str(t)
    assert ev.origin == "o" and ev.local is True


def test_text_event_default_origin_for_remote_is_none():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    w = text_watch(b)
    a.text("t").insert(0, "abc")
    b.apply_update(a.get_update())
    (ev,) = w.take()
    assert ev.origin is None and ev.local is False
    assert ev.delta == [{"insert": "abc"}]


@given(data=st.data())
@settings(max_examples=budget(60))
def test_events_when_buffered_updates_integrate(data):
    a = crdtsync.Doc(1)
    ups: list[bytes] = []
    a.on_update(lambda u, o: ups.append(u))
    for _ in range(data.draw(st.integers(2, 8), label="edits")):
        _text_edit(a.text("t"), data)
    b = crdtsync.Doc(2)
    w = text_watch(b)
    order = data.draw(st.permutations(range(len(ups))), label="order")
    for pos, k in enumerate(order):
        before = str(b.text("t"))
        b.apply_update(ups[k], origin=k)
        evs = w.take()  # replays each delta onto the shadow copy and checks it
        if str(b.text("t")) != before:
            assert evs
        for ev in evs:
            # a buffered update may be reported with the origin it arrived with
            assert ev.local is False
            assert ev.origin in order[: pos + 1]
    assert str(b.text("t")) == str(a.text("t")) == w.shadow


def test_unsubscribe_stops_events():
    doc = crdtsync.Doc(1)
    w = text_watch(doc)
    doc.text("t").insert(0, "a")
    assert len(w.take()) == 1
    w.unsubscribe()
    doc.text("t").insert(0, "b")
    assert w.take() == []


def test_one_event_per_container_per_transaction():
    doc = crdtsync.Doc(1)
    wt, wl = text_watch(doc), list_watch(doc)
    counter_events = []
    doc.counter("c").observe(counter_events.append)
    with doc.transaction():
        for k in range(5):
            doc.text("t").insert(k, "x")
            doc.list("l").append(k)
            doc.counter("c").increment()
    assert len(wt.take()) == 1
    assert len(wl.take()) == 1
    assert len(counter_events) == 1 and counter_events[0].delta == 5


def test_other_containers_do_not_fire():
    doc = crdtsync.Doc(1)
    wt = text_watch(doc)
    other = Watch(doc.text("other"), str, apply_text_delta)
    doc.text("t").insert(0, "x")
    doc.counter("c").increment()
    assert len(wt.take()) == 1
    assert other.take() == []


# ---------------------------------------------------------------------------------------------
# List


def _list_edit(lst, data) -> None:
    if len(lst) and data.draw(st.booleans(), label="delete?"):
        del lst[data.draw(st.integers(0, len(lst) - 1), label="i")]
    elif data.draw(st.booleans(), label="extend?"):
        lst.extend(data.draw(st.lists(values, min_size=1, max_size=3), label="vs"))
    else:
        lst.insert(data.draw(st.integers(0, len(lst)), label="i"), data.draw(values, label="v"))


@given(ids=distinct_ids(2), data=st.data())
@settings(max_examples=budget(100))
def test_list_deltas_replay_local_and_remote(ids, data):
    a, b = crdtsync.Doc(ids[0]), crdtsync.Doc(ids[1])
    a.list("l").extend([1, 2, 3])
    sync_pair(a, b)
    wa, wb = list_watch(a), list_watch(b)
    for _ in range(data.draw(st.integers(1, 10), label="steps")):
        step = data.draw(st.sampled_from(["a", "b", "txn", "sync"]), label="step")
        if step in ("a", "b"):
            doc, w = (a, wa) if step == "a" else (b, wb)
            _list_edit(doc.list("l"), data)
            evs = w.take()
            assert len(evs) == 1
            check_events(evs, local=True, origin=None)
        elif step == "txn":
            with b.transaction(origin=("tuple", 1)):
                for _ in range(data.draw(st.integers(1, 4), label="edits")):
                    _list_edit(b.list("l"), data)
            check_events(wb.take(), local=True, origin=("tuple", 1))
        else:
            b.apply_update(a.get_update(b.version), origin="net")
            a.apply_update(b.get_update(a.version), origin="net")
            check_events(wa.take(), local=False, origin="net")
            check_events(wb.take(), local=False, origin="net")
    assert tag(list(a.list("l"))) == tag(wa.shadow)


def test_list_event_shape():
    doc = crdtsync.Doc(1)
    lst = doc.list("l")
    lst.extend(["a", "b", "c"])
    w = list_watch(doc)
    lst.insert(1, {"k": 1})
    (ev,) = w.take()
    assert ev.delta == [{"retain": 1}, {"insert": [{"k": 1}]}]
    del lst[3]
    (ev,) = w.take()
    assert ev.delta == [{"retain": 3}, {"delete": 1}]


# ---------------------------------------------------------------------------------------------
# Map, Set, Counter

MAP_KEYS = ["a", "b", "c"]


@given(ids=distinct_ids(2), data=st.data())
@settings(max_examples=budget(100))
def test_map_keys_changed(ids, data):
    a, b = crdtsync.Doc(ids[0]), crdtsync.Doc(ids[1])
    events: list[Any] = []
    unsub = a.map("m").observe(events.append)
    for _ in range(data.draw(st.integers(1, 10), label="steps")):
        step = data.draw(st.sampled_from(["set", "del", "remote", "txn"]), label="step")
        before = dict(a.map("m"))
        k = data.draw(st.sampled_from(MAP_KEYS), label="key")
        if step in ("set", "del", "txn"):
            if step == "set":
                touched = {k}
                a.map("m")[k] = data.draw(values, label="v")
                origin = None
            elif step == "del":
                if k not in a.map("m"):
                    continue
                touched = {k}
                del a.map("m")[k]
                origin = None
            else:
                ks = data.draw(st.lists(st.sampled_from(MAP_KEYS), min_size=1), label="keys")
                touched = set(ks)
                origin = "bulk"
                with a.transaction(origin=origin):
                    for key in ks:
                        a.map("m")[key] = len(ks)
            after = dict(a.map("m"))
            visible = {
                key
                for key in set(before) | set(after)
                if key not in before or key not in after or tag(before[key]) != tag(after[key])
            }
            assert len(events) <= 1
            if visible:
                (ev,) = events
            for ev in events:
                assert visible <= ev.keys_changed <= touched
                assert ev.local is True and ev.origin == origin
        else:
            for key in data.draw(st.lists(st.sampled_from(MAP_KEYS), max_size=3), label="keys"):
                b.map("m")[key] = data.draw(values, label="v")
            if data.draw(st.booleans(), label="remote delete") and k in b.map("m"):
                del b.map("m")[k]
            a.apply_update(b.get_update(a.version), origin="peer")
            after = dict(a.map("m"))
            visible = {
                key
                for key in set(before) | set(after)
                if key not in before or key not in after or tag(before[key]) != tag(after[key])
            }
            assert len(events) <= 1
            if visible:
                (ev,) = events
                assert visible <= ev.keys_changed <= set(MAP_KEYS)
                assert ev.local is False and ev.origin == "peer"
        events.clear()
        if data.draw(st.booleans(), label="sync back"):
            b.apply_update(a.get_update(b.version))
    unsub()
    a.map("m")["a"] = "after unsubscribe"
    assert events == []


@given(ids=distinct_ids(2), data=st.data())
@settings(max_examples=budget(100))
def test_set_added_removed(ids, data):
    a, b = crdtsync.Doc(ids[0]), crdtsync.Doc(ids[1])
    events: list[Any] = []
    a.set("s").observe(events.append)
    for _ in range(data.draw(st.integers(1, 10), label="steps")):
        before = set(a.set("s"))
        e = data.draw(set_elements, label="e")
        step = data.draw(st.sampled_from(["add", "discard", "remote"]), label="step")
        if step == "add":
            a.set("s").add(e)
            if e not in before:
                (ev,) = events
                assert ev.added == {e} and ev.removed == set()
                assert ev.local is True
        elif step == "discard":
            if e not in before:
                continue
            a.set("s").discard(e)
            (ev,) = events
            assert ev.removed == {e} and ev.added == set()
        else:
            for x in data.draw(st.lists(set_elements, max_size=3), label="adds"):
                b.set("s").add(x)
            for x in data.draw(
                st.lists(st.sampled_from(sorted(before, key=repr) or [e])), label="discards"
            ):
                b.set("s").discard(x)
            a.apply_update(b.get_update(a.version), origin="peer")
            after = set(a.set("s"))
            assert len(events) <= 1
            if after != before:
                (ev,) = events
                assert after - before <= ev.added <= after
                assert before - after <= ev.removed <= before
                assert ev.local is False and ev.origin == "peer"
        events.clear()
        if data.draw(st.booleans(), label="sync back"):
            b.apply_update(a.get_update(b.version))


@given(ids=distinct_ids(2), amounts=st.lists(st.integers(-50, 50).filter(bool), max_size=8))
@settings(max_examples=budget(40))
def test_counter_delta(ids, amounts):
    a, b = crdtsync.Doc(ids[0]), crdtsync.Doc(ids[1])
    events: list[Any] = []
    a.counter("c").observe(events.append)
    for n in amounts:
        c = b.counter("c")
        c.increment(n) if n > 0 else c.decrement(-n)
        before = a.counter("c").value
        a.apply_update(b.get_update(a.version), origin=n)
        (ev,) = events
        assert ev.delta == a.counter("c").value - before == n
        assert ev.origin == n and ev.local is False
        events.clear()
        a.counter("c").decrement(3)
        (ev,) = events
        assert ev.delta == -3 and ev.local is True
        events.clear()
    with a.transaction(origin="t"):
        a.counter("c").increment(10)
        a.counter("c").decrement(4)
    (ev,) = events
    assert ev.delta == 6 and ev.origin == "t"


def test_origin_object_is_passed_through_unchanged():
    marker = object()
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    seen = []
    b.text("t").observe(lambda ev: seen.append(ev.origin))
    a.text("t").insert(0, "x")
    b.apply_update(a.get_update(), origin=marker)
    with b.transaction(origin=marker):
        b.text("t").insert(0, "y")
    assert seen == [marker, marker]
    assert all(o is marker for o in seen)
