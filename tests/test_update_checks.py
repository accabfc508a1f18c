"""The relay's checks of client updates (crdtsync/server/_checks.py): every update honest
replicas produce passes them, whatever they did; the forgeries they exist for do not."""

from __future__ import annotations

import random

from crdt_helpers import random_edit_all, sync_pair
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync import _encoding as enc
from crdtsync._merge import merge_updates
from crdtsync.server._checks import equivocation, implausible_clock, unbacked_facts
from crdtsync.testing import assert_converged

JUMP = 1 << 24


def verdicts(room: crdtsync.Doc, update: bytes) -> list[str]:
    parsed = enc.decode_update(update, None)
    found = [
        implausible_clock(room, parsed, JUMP),
        equivocation(room, parsed),
        unbacked_facts(room, parsed),
    ]
    return [why for why in found if why is not None]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    replicas=st.integers(2, 4),
    steps=st.integers(5, 40),
    gc=st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_every_honest_update_passes(seed: int, replicas: int, steps: int, gc: list[bool]) -> None:
    """Replicas edit everything (deletes, overwrites, removes, counters), sync pairwise at
    random, and the room takes from them, in whatever form, overlapping what it holds:
    deltas, whole states, stale states, their live updates again, merges. None of it is
    flagged, and the room ends level with them."""
    rnd = random.Random(seed)
    docs = [crdtsync.Doc(i + 1, gc=gc[i]) for i in range(replicas)]
    room = crdtsync.Doc(99, gc=gc[4])
    logs: list[list[bytes]] = [[] for _ in docs]
    for i, doc in enumerate(docs):
        doc.on_update(lambda u, _o, i=i: logs[i].append(bytes(u)))
    olds: list[dict[int, int]] = [{}]
    for _ in range(steps):
        i = rnd.randrange(replicas)
        doc = docs[i]
        action = rnd.randrange(7)
        if action <= 2:
            random_edit_all(doc, rnd, rnd.randint(1, 4))
            if rnd.random() < 0.1:
                doc.map("map")["nan"] = float("nan")  # NaN equals itself on the wire
        elif action == 3:
            sync_pair(doc, docs[rnd.randrange(replicas)])
        else:
            if action == 4:
                update = doc.get_update(room.version)
            elif action == 5:
                update = doc.get_update(rnd.choice(olds))
            elif logs[i]:
                picked = rnd.sample(logs[i], rnd.randint(1, min(4, len(logs[i]))))
                update = merge_updates(picked) if len(picked) > 1 else picked[0]
            else:
                update = doc.get_update()
            assert verdicts(room, update) == []
            room.apply_update(update)
            olds.append(dict(room.version))
    for doc in docs:
        update = doc.get_update()
        assert verdicts(room, update) == []
        room.apply_update(update)
    for doc in docs:
        room_state = room.get_update(doc.version)
        assert verdicts(doc, room_state) == []  # and the other way round
        doc.apply_update(room_state)
    assert_converged([*docs, room])


def _twins(base: str = "hello") -> tuple[crdtsync.Doc, crdtsync.Doc]:
    """Two documents under one replica id at the same point (a state restored twice)."""
    first = crdtsync.Doc(7)
    first.text("t").insert(0, base)
    first.map("m")["k"] = 0
    second = crdtsync.Doc(7)
    second.apply_update(first.get_update())
    return first, second


@settings(max_examples=80, deadline=None)
@given(
    a=st.text("ab", min_size=1, max_size=4),
    b=st.text("ab", min_size=1, max_size=4),
    i=st.integers(0, 5),
    j=st.integers(0, 5),
)
def test_twins_inserting_differently_are_caught(a: str, b: str, i: int, j: int) -> None:
    """Twins insert at the same counters: the room, holding the first's insert, flags the
    second's exactly when it is not the same insert (or one continuing the other)."""
    first, second = _twins()
    first.text("t").insert(i, a)
    second.text("t").insert(j, b)
    room = crdtsync.Doc(1)
    room.apply_update(first.get_update())
    found = equivocation(room, enc.decode_update(second.get_update(), None))
    same = i == j and (a.startswith(b) or b.startswith(a))
    assert (found is None) == same


def _held_then(first_edit, second_edit) -> str | None:  # type: ignore[no-untyped-def]
    first, second = _twins()
    first_edit(first)
    second_edit(second)
    room = crdtsync.Doc(1)
    room.apply_update(first.get_update())
    found = verdicts(room, second.get_update())  # a state: a delete travels as a fact
    return found[0] if found else None


def test_each_kind_of_change_is_compared() -> None:
    def text_del(i: int):  # type: ignore[no-untyped-def]
        return lambda d: d.text("t").delete(i, 1)

    cases = {
        "list value": (lambda d: d.list("l").append(1), lambda d: d.list("l").append(True)),
        "map value": (
            lambda d: d.map("m").__setitem__("k", 1.0),
            lambda d: d.map("m").__setitem__("k", 2.0),
        ),
        "map set vs delete": (
            lambda d: d.map("m").__setitem__("k", 1),
            lambda d: d.map("m").__delitem__("k"),
        ),
        "counter vs insert": (
            lambda d: d.counter("c").increment(1),
            lambda d: d.text("t").insert(0, "x"),
        ),
        "map vs insert": (
            lambda d: d.text("t").insert(0, "x"),
            lambda d: d.map("m").__setitem__("j", 1),
        ),
        "set element": (lambda d: d.set("s").add("x"), lambda d: d.set("s").add("y")),
        "counter": (lambda d: d.counter("c").increment(2), lambda d: d.counter("c").increment(3)),
        "delete": (text_del(0), text_del(3)),
        "insert vs map": (
            lambda d: d.text("t").insert(0, "x"),
            lambda d: d.map("m").__setitem__("k", 1),
        ),
    }
    for name, (one, other) in cases.items():
        assert _held_then(one, other) is not None, name
        assert _held_then(one, one) is None, name  # the same change again passes


def test_a_delete_attributed_to_a_held_dot_must_match_it() -> None:
    victim = crdtsync.Doc(7)
    victim.text("t").insert(0, "hello")
    room = crdtsync.Doc(1)
    room.apply_update(victim.get_update())
    key = ("t", "t")
    forged = enc.Update(facts=[(enc.FACT_DELETE, key, (7, 1), [(7, 1, 5)])])
    assert unbacked_facts(room, forged) is not None
    victim.text("t").delete(0, 5)  # the victim's real delete, at 7:6
    room.apply_update(victim.get_update(room.version))
    held = enc.Update(facts=[(enc.FACT_DELETE, key, (7, 6), [(7, 1, 5)])])
    assert unbacked_facts(room, held) is None  # what the room holds: no effect


def test_a_set_state_must_bring_the_removal() -> None:
    victim = crdtsync.Doc(7)
    victim.set("s").add("x")
    room = crdtsync.Doc(1)
    room.apply_update(victim.get_update())
    key = ("s", "s")
    forged = enc.Update(facts=[(enc.FACT_LIVE, key, {7: 1}, [], {7: 1})])
    assert unbacked_facts(room, forged) is not None
    victim.set("s").discard("x")
    honest = enc.decode_update(victim.get_update(room.version), None)
    assert honest.facts and unbacked_facts(room, honest) is None


def test_clocks_may_not_jump() -> None:
    room = crdtsync.Doc(1)
    room.text("t").insert(0, "abc")
    far = (1 << 24) + 10
    lamport = enc.Update(
        segments=[enc.Segment(9, 1, 2, [(enc.INS, 1, ("t", "t"), far, None, "x", 1, None)])]
    )
    assert implausible_clock(room, lamport, JUMP) is not None
    skip = enc.Update(segments=[enc.Segment(9, 1, far, [(enc.SKIP, 1, far - 1)])])
    assert implausible_clock(room, skip, JUMP) is not None
    near = enc.Update(
        segments=[enc.Segment(9, 1, 2, [(enc.INS, 1, ("t", "t"), 9, None, "x", 1, None)])]
    )
    assert implausible_clock(room, near, JUMP) is None
