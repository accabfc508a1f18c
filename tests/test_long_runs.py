"""Typing must cost the same at any length: a text run stops growing at MAX_TEXT_RUN
characters (the next run continues it), and an insert typed on within one transaction is
joined once, when the transaction is encoded, not on every keystroke.

Both are changes of structure only: what a replica holds, sends and converges to is the
same as with runs that grow without end, which the property test checks with a tiny cap
on one replica and the real one on the other.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from crdt_helpers import budget, sync_all
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync import _encoding as enc
from crdtsync import _rga


def run_lengths(seq_owner: Any) -> list[int]:
    seq: Any = seq_owner._seq
    return [run.length for block in seq.blocks for run in block.runs]


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(_rga, "MAX_TEXT_RUN", 8)
    return 8


def test_typing_on_fills_runs_up_to_the_cap(small_cap: int) -> None:
    a, b = crdtsync.Doc(replica_id=1), crdtsync.Doc(replica_id=2)
    updates: list[bytes] = []
    a.on_update(lambda u, o: updates.append(u))
    t = a.text("t")
    for i in range(3 * small_cap + 5):
        t.insert(i, "abcdefgh"[i % 8])
    assert run_lengths(t) == [8, 8, 8, 5]
    for u in updates:  # the remote path: one keystroke at a time
        b.apply_update(u)
    assert str(b.text("t")) == str(t)
    assert run_lengths(b.text("t")) == [8, 8, 8, 5]
    c = crdtsync.Doc(replica_id=3)
    c.apply_update(a.get_update())  # the state path
    assert str(c.text("t")) == str(t) and c.version == a.version
    # The continuation runs take the next Lamport times (here, their counters).
    entries = [e for s in enc.decode_update(a.get_update()).segments for e in s.entries]
    assert all(e[3] == e[1] for e in entries)


def test_a_run_continued_past_the_cap_keeps_its_lamport_times(small_cap: int) -> None:
    """While another replica's edits move A's clock on, A's text typed on past the cap
    goes on at its runs' Lamport times (as it would within one run): no LAMPORT jumps."""
    a, b = crdtsync.Doc(replica_id=1), crdtsync.Doc(replica_id=2)
    a.text("t").insert(0, "a")
    b.apply_update(a.get_update())
    for _ in range(2 * small_cap + 3):
        b.text("t").insert(0, "b")
        a.apply_update(b.get_update(a.version))
        t = a.text("t")
        t.insert(len(t), "a")
    mine = [
        e for s in enc.decode_update(a.get_update()).segments if s.replica == 1 for e in s.entries
    ]
    assert {e[3] - e[1] for e in mine} == {0}
    seq: Any = a.text("t")._seq  # type: ignore[attr-defined]
    assert [r.length for bl in seq.blocks for r in bl.runs if r.replica == 1] == [8, 8, 4]


def test_backspacing_leaves_capped_tombstones_and_converges(small_cap: int) -> None:
    for gc in (True, False):
        a, b = crdtsync.Doc(replica_id=1, gc=gc), crdtsync.Doc(replica_id=2, gc=gc)
        t = a.text("t")
        for i in range(20):
            t.insert(i, "x")
        b.apply_update(a.get_update())
        for i in range(20, 0, -1):
            t.delete(i - 1)
            b.apply_update(a.get_update(b.version))
        assert str(t) == str(b.text("t")) == ""
        for text in (t, b.text("t")):  # locally, and from diffs (their deletes are facts)
            if gc:  # tombstones without content copy nothing: they fold into one
                assert run_lengths(text) == [20]
            else:
                assert sorted(run_lengths(text)) == [4, 8, 8]


def test_typing_in_one_transaction_is_one_change() -> None:
    doc = crdtsync.Doc(replica_id=1)
    sent: list[bytes] = []
    doc.on_update(lambda u, o: sent.append(u))
    t, items = doc.text("t"), doc.list("l")
    mine = [7]
    with doc.transaction():
        for i in range(_rga.MAX_TEXT_RUN + 10):
            t.insert(i, "ab"[i % 2])
        items.append(mine)
        for i in range(500):
            items.append(i)
        t.insert(0, "!")  # another entry after the typed one: both must come out whole
    assert mine == [7]  # the caller's list was not extended in place
    assert len(sent) == 1
    other = crdtsync.Doc(replica_id=2)
    other.apply_update(sent[0])
    assert str(other.text("t")) == str(t) == "!" + "ab" * ((_rga.MAX_TEXT_RUN + 10) // 2)
    assert list(other.list("l")) == list(items) == [[7], *range(500)]
    inserts = [e for s in enc.decode_update(sent[0]).segments for e in s.entries]
    assert [e[6] for e in inserts] == [_rga.MAX_TEXT_RUN + 10, 501, 1]


def test_a_late_listener_gets_the_whole_transaction() -> None:
    """A transaction nobody listened to is encoded when a listener subscribes meanwhile."""
    doc = crdtsync.Doc(replica_id=1)
    t = doc.text("t")
    heard: list[bytes] = []

    def subscribe(event: Any) -> None:
        doc.on_update(lambda u, o: heard.append(u))

    t.observe(subscribe)
    with doc.transaction():
        for i in range(100):
            t.insert(i, "z")
    other = crdtsync.Doc(replica_id=2)
    other.apply_update(heard[0])
    assert str(other.text("t")) == "z" * 100


edits = st.lists(
    st.tuples(st.integers(0, 2), st.booleans(), st.integers(0, 10**6), st.integers(1, 12)),
    max_size=40,
)


def play(edits: list[tuple[int, bool, int, int, int]]) -> list[str]:
    """Three replicas type (runs at random places, in one transaction) and delete, and
    now and then one sends another what it lacks; the texts after each step, then level."""
    docs = [crdtsync.Doc(replica_id=r) for r in (4, 5, 6)]
    seen = []
    for who, delete, seed, n, to in edits:
        rnd = random.Random(seed)
        doc = docs[who]
        t = doc.text("t")
        if delete and len(t):
            at = rnd.randrange(len(t))
            t.delete(at, min(n, len(t) - at))
        else:
            at = rnd.randint(0, len(t))
            with doc.transaction():
                for k in range(n):
                    t.insert(at + k, rnd.choice("xyz"))
        if to != who:
            docs[to].apply_update(doc.get_update(docs[to].version))
        seen.append("|".join(str(d.text("t")) for d in docs))
    sync_all(docs)
    assert docs[0].version == docs[1].version == docs[2].version
    assert len({str(d.text("t")) for d in docs}) == 1
    return [*seen, str(docs[0].text("t"))]


edits = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.booleans(),
        st.integers(0, 10**6),
        st.integers(1, 12),
        st.integers(0, 2),
    ),
    max_size=30,
)


@settings(max_examples=budget(100))
@given(edits=edits)
def test_the_cap_changes_no_outcome(edits: list[tuple[int, bool, int, int, int]]) -> None:
    """The same edits with runs of at most 2 characters and with the real cap: the same
    texts at every step, and every replica level at the end."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_rga, "MAX_TEXT_RUN", 2)
        tiny = play(edits)
    assert play(edits) == tiny
