"""The merge path's shortcuts: origin runs handed from the readiness check to integration,
and a merge's delete facts taken a text at a time.

``check_ready`` looks up the run holding each origin the document already has; integration
straight after reuses it instead of looking it up again, so it must notice when an earlier
insert of the same update has cut that run since. A merge's deletes arrive as one fact per
deleting keystroke; integration takes each text's run of facts in one go, so facts of
several texts must each reach their own text. A remote delete inside a live run makes its
two cuts and the tombstone in one step, which must leave exactly what two cuts and a
tombstone leave.
"""

from __future__ import annotations

import random
from typing import Any
from unittest.mock import patch

from crdt_helpers import budget, check_ids, check_sequence
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync import _encoding as enc
from crdtsync import _rga
from crdtsync._integrate import check_ready, integrate


def pair(base: str) -> tuple[crdtsync.Doc, crdtsync.Doc]:
    a = crdtsync.Doc(1)
    a.text("text").insert(0, base)
    b = crdtsync.Doc(2)
    b.apply_update(a.get_update())
    return a, b


def exchange(a: crdtsync.Doc, b: crdtsync.Doc) -> None:
    to_a, to_b = b.get_update(a.version), a.get_update(b.version)
    a.apply_update(to_a)
    b.apply_update(to_b)


def test_an_origin_run_cut_by_an_earlier_insert_is_looked_up_again() -> None:
    a, b = pair("abcdef")
    text = b.text("text")
    text.insert(2, "X")  # after "b": cuts the run "abcdef" that A holds
    text.insert(5, "Y")  # after "d": its origin is in the right part of that cut
    data = b.get_update(a.version)
    update = enc.decode_update(data)
    tops = check_ready(a, update)
    assert isinstance(tops, dict)
    # Both origins were found in the one run A held before: the hint for "Y" is the run
    # that the insert of "X" cuts short.
    assert update.origin_runs is not None and update.origin_runs[0] is a
    held = set(update.origin_runs[1].values())
    assert len(held) == 1 and next(iter(held)).length == 6
    integrate(a, data, update, tops, None)
    assert str(a.text("text")) == str(b.text("text")) == "abXcdYef"
    assert update.origin_runs is None  # (spent: the runs have changed)


@settings(max_examples=budget(40))
@given(seed=st.integers(0, 2**32 - 1), edits=st.integers(1, 60))
def test_offline_edits_merge_the_same_both_ways(seed: int, edits: int) -> None:
    rng = random.Random(seed)
    a, b = pair("".join(rng.choice("abcdefgh") for _ in range(rng.randint(0, 40))))
    for doc in (a, b):
        text = doc.text("text")
        for _ in range(edits):
            if len(text) and rng.random() < 0.4:
                pos = rng.randrange(len(text))
                text.delete(pos, min(rng.randint(1, 3), len(text) - pos))
            else:
                text.insert(rng.randint(0, len(text)), rng.choice(["x", "yz", "w"]))
    # A third replica takes both replicas' states in the other order: no shortcut shared.
    c = crdtsync.Doc(3)
    c.apply_update(b.get_update())
    c.apply_update(a.get_update())
    exchange(a, b)
    assert str(a.text("text")) == str(b.text("text")) == str(c.text("text"))


def test_a_waiting_update_keeps_no_runs() -> None:
    a, b = pair("abcdef")
    c = crdtsync.Doc(3)
    c.apply_update(a.get_update())
    c.text("text").insert(0, "Z")
    b.apply_update(c.get_update(b.version))
    text = b.text("text")
    text.insert(4, "X")  # after "c", which A holds: its run is looked up and kept
    text.insert(1, "Y")  # after "Z", which A lacks: the update must wait
    update = enc.decode_update(b.get_update({**a.version, 3: c.version[3]}))
    assert check_ready(a, update) == (3, 1)
    # No runs are left on it: they would go stale while it waits in the pending buffer.
    assert update.origin_runs is None
    a.apply_update(c.get_update(a.version))
    assert isinstance(check_ready(a, update), dict)
    assert update.origin_runs is not None and len(update.origin_runs[1]) == 2


def test_origin_runs_found_in_another_document_are_not_taken() -> None:
    # One decoded update checked against two replicas that hold the same text, then
    # integrated into the first: the runs the second check found are the second's.
    a, b = pair("abcdef")
    c = crdtsync.Doc(3)
    c.apply_update(a.get_update())
    b.text("text").insert(3, "X")
    data = b.get_update(a.version)
    update = enc.decode_update(data)
    tops = check_ready(a, update)
    assert isinstance(check_ready(c, update), dict)
    assert isinstance(tops, dict)
    integrate(a, data, update, tops, None)
    assert str(a.text("text")) == str(b.text("text")) == "abcXdef"


def test_delete_facts_of_several_texts_reach_their_own_text() -> None:
    a = crdtsync.Doc(1)
    for name in ("one", "two", "three"):
        a.text(name).insert(0, name * 4)
    b = crdtsync.Doc(2)
    b.apply_update(a.get_update())
    # Deletes by B of characters A holds, interleaved across the texts, one keystroke each
    # (apart, so that no two fold into one tombstone).
    for k in range(3):
        for name in ("two", "one", "three"):
            b.text(name).delete(1 + k, 1)
    update = enc.decode_update(b.get_update(a.version))
    roots = [fact[1] for fact in update.facts if fact[0] == enc.FACT_DELETE]
    assert len(roots) == 9 and len(set(roots)) == 3
    exchange(a, b)
    for name in ("one", "two", "three"):
        assert str(a.text(name)) == str(b.text(name))
        whole = name * 4
        assert str(a.text(name)) == whole[0] + whole[2] + whole[4] + whole[6:]


def _two_cuts(
    seq: _rga.Sequence, run: _rga.Run, k: int, m: int, deleter: Any, gc: bool, positions: Any
) -> None:
    """The general way of ``Sequence._delete_inside``: split twice, then tombstone."""
    mid = seq.split(run, k)
    seq.split(mid, m)
    if positions is not None:
        positions.append((seq.position_of(mid), m))
    seq._mark_deleted(mid, deleter, gc)


def _runs(doc: crdtsync.Doc) -> list[tuple[Any, ...]]:
    """The text's runs, once its bookkeeping and the id index are checked against them."""
    seq = doc.text("t")._seq
    check_sequence(seq)
    check_ids(doc)
    return [
        (r.replica, r.counter, r.lamport, r.origin, r.content, r.length, r.deleter)
        for r in seq.runs()
    ]


@settings(max_examples=budget(60))
@given(
    st.lists(st.tuples(st.integers(0, 99), st.text("abcxyz", min_size=1, max_size=9)), max_size=6),
    st.lists(st.tuples(st.integers(0, 99), st.integers(1, 4)), min_size=1, max_size=8),
    st.booleans(),
)
def test_a_delete_inside_a_run_leaves_what_two_cuts_leave(
    typed: list[tuple[int, str]], deletes: list[tuple[int, int]], gc: bool
) -> None:
    def replay() -> tuple[Any, ...]:
        a, b = crdtsync.Doc(1, gc=gc), crdtsync.Doc(2)
        text = a.text("t")
        text.insert(0, "0123456789")
        for pos, s in typed:
            text.insert(pos % (len(text) + 1), s)
        b.apply_update(a.get_update())
        merged = crdtsync.Doc(1, gc=gc)
        merged.apply_update(a.get_update())
        keystrokes: list[bytes] = []
        b.on_update(lambda u, o: keystrokes.append(u))
        theirs = b.text("t")
        for pos, n in deletes:
            if len(theirs):
                p = pos % len(theirs)
                theirs.delete(p, min(n, len(theirs) - p))
        deltas: list[Any] = []
        text.observe(lambda ev: deltas.append(ev.delta))
        for update in keystrokes:  # one at a time, observed
            a.apply_update(update)
        merged.apply_update(b.get_update(merged.version))  # all at once, as delete facts
        assert str(a.text("t")) == str(merged.text("t")) == str(theirs)
        return _runs(a), _runs(merged), a.get_update(), merged.get_update(), deltas

    fused = replay()
    with patch.object(_rga.Sequence, "_delete_inside", _two_cuts):
        assert replay() == fused
