"""The clock ceiling: counters and Lamport times stay below 2**62.

Remote updates that carry a clock at or above the ceiling are refused with DecodeError (the
document is unchanged); a local edit that would take a clock past it raises OverflowError
and changes nothing, so a replica that reached the ceiling stays consistent and readable.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from crdt_helpers import budget, roots, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync import DecodeError

CEILING = 2**62
TOP = CEILING - 1
OTHER = 7


def update(body: list[Any]) -> bytes:
    return b"\xc1\x01" + msgpack.packb(body)


def text_run(counter: int, offset: int, content: str, origin: Any = None) -> bytes:
    """An update from OTHER: one text insert at ``counter`` with a Lamport offset."""
    seg: list[Any] = [0, counter]
    if offset:
        seg += [10, offset]
    seg += [1, origin, content]
    return update([[OTHER], ["tt"], [seg]])


def map_write(counter: int, lamport: int) -> bytes:
    return update([[OTHER], ["mm"], [[0, counter, 10, lamport - counter, 4, "k", 1]]])


def covering(counter: int) -> bytes:
    """OTHER's changes 1 ... counter, all SKIP (superseded) but for a map write at the end."""
    seg: list[Any] = [0, 1]
    if counter > 1:
        seg.append(-(counter - 1))
    seg += [4, "k", 1]
    return update([[OTHER], ["mm"], [seg]])


def assert_refused(doc: crdtsync.Doc, data: bytes) -> None:
    before, version = doc.get_update(), doc.version
    with pytest.raises(DecodeError):
        doc.apply_update(data)
    assert doc.get_update() == before and doc.version == version


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(text_run(CEILING, 0, "a"), id="first counter at the ceiling"),
        pytest.param(text_run(TOP - 1, 0, "abc"), id="insert run crossing the ceiling"),
        pytest.param(text_run(1, TOP, "a"), id="Lamport time at the ceiling"),
        pytest.param(text_run(1, TOP - 2, "abc"), id="run's Lamport times crossing it"),
        pytest.param(text_run(1, 2**63 - 2, "a"), id="Lamport just below 2**63"),
        pytest.param(map_write(1, CEILING), id="map write at the ceiling"),
        pytest.param(map_write(CEILING, CEILING), id="map write counter at the ceiling"),
        pytest.param(covering(CEILING), id="skip reaching the ceiling"),
        pytest.param(
            update([[OTHER], ["tt"], [[0, TOP - 1, 2, None, 1, 2]]]),
            id="deleter offset past the ceiling",
        ),
        pytest.param(
            update([[OTHER], ["tt"], [[0, 1, 3, [0, TOP, 2]]]]),
            id="delete range past the ceiling",
        ),
        pytest.param(
            update([[OTHER], ["ss"], [[0, 1, 6, "x", [0, CEILING]]]]), id="set dot at the ceiling"
        ),
        pytest.param(
            update([[OTHER], ["tt"], [[0, 2, 1, [0, CEILING], "a"]]]),
            id="origin at the ceiling",
        ),
    ],
)
def test_updates_with_no_headroom_are_refused(data: bytes) -> None:
    doc = crdtsync.Doc(1)
    doc.text("t").insert(0, "hi")
    assert_refused(doc, data)


def test_clocks_just_below_the_ceiling_are_accepted() -> None:
    doc = crdtsync.Doc(1)
    doc.apply_update(text_run(1, TOP - 3, "abc"))  # Lamport times TOP-2 ... TOP
    assert str(doc.text("t")) == "abc"
    doc.apply_update(map_write(4, TOP))
    assert doc.map("m")["k"] == 1
    other = crdtsync.Doc(2)
    other.apply_update(covering(TOP))
    assert other.version[OTHER] == TOP


def local_edits(doc: crdtsync.Doc) -> list[Any]:
    t, lst, s, m, c = roots(doc)
    return [
        lambda: t.insert(0, "x"),
        lambda: t.insert(len(t), "many characters"),
        lambda: t.delete(0),
        lambda: lst.append(1),
        lambda: lst.extend([1, 2, 3]),
        lambda: s.add("new"),
        lambda: s.discard("a"),
        lambda: m.__setitem__("k2", 2),
        lambda: m.__delitem__("k"),
        lambda: c.increment(),
        lambda: c.decrement(2),
    ]


def seeded(replica: int = 1) -> crdtsync.Doc:
    doc = crdtsync.Doc(replica)
    t, lst, s, m, c = roots(doc)
    t.insert(0, "abc")
    lst.append(0)
    s.add("a")
    m["k"] = 0
    c.increment()
    return doc


def assert_every_local_edit_refused(doc: crdtsync.Doc) -> None:
    emitted: list[bytes] = []
    doc.on_update(lambda u, o: emitted.append(u))
    for i, edit in enumerate(local_edits(doc)):
        before, version, state = snapshot(doc), doc.version, doc.get_update()
        with pytest.raises(OverflowError, match="ceiling"):
            edit()
        assert snapshot(doc) == before, i
        assert doc.version == version and doc.get_update() == state, i
    assert emitted == []


def test_a_remote_lamport_time_at_the_ceiling_blocks_local_edits_cleanly() -> None:
    doc = seeded()
    doc.apply_update(map_write(1, TOP))
    assert_every_local_edit_refused(doc)
    # The document still merges and serves what others need.
    doc.apply_update(text_run(2, 0, "z", origin=None))
    assert "z" in str(doc.text("t"))
    fresh = crdtsync.Doc(3)
    fresh.apply_update(doc.get_update())
    assert snapshot(fresh) == snapshot(doc)


def test_own_counter_at_the_ceiling_blocks_local_edits_cleanly() -> None:
    # The replica's own saved state, loaded before it edits (changes under its own id that
    # it did not make, arriving after it edited, would be a replica-id conflict instead).
    saved = seeded(OTHER)
    doc = crdtsync.Doc(OTHER)
    doc.apply_update(saved.get_update())
    doc.apply_update(
        update([[OTHER], ["mm"], [[0, doc.version[OTHER] + 1, -(TOP - doc.version[OTHER])]]])
    )
    assert doc.version[OTHER] == TOP
    assert_every_local_edit_refused(doc)


def test_an_edit_in_a_transaction_that_passes_the_ceiling_keeps_the_earlier_ones() -> None:
    doc = seeded()
    doc.apply_update(map_write(1, TOP - 3))  # room for three more Lamport times
    sent: list[bytes] = []
    doc.on_update(lambda u, o: sent.append(u))
    with pytest.raises(OverflowError), doc.transaction():
        doc.text("t").insert(0, "xy")
        doc.text("t").insert(0, "pq")  # needs two more; only one is left
    assert str(doc.text("t")) == "xyabc"
    assert len(sent) == 1
    peer = crdtsync.Doc(9)
    peer.apply_update(seeded().get_update())
    peer.apply_update(map_write(1, TOP - 3))
    peer.apply_update(sent[0])
    assert str(peer.text("t")) == "xyabc"


@settings(max_examples=budget(120))
@given(
    counter=st.one_of(st.integers(1, 5), st.integers(TOP - 5, CEILING + 2)),
    lamport=st.one_of(st.integers(1, 5), st.integers(TOP - 5, 2**63 + 2)),
    length=st.integers(1, 4),
)
def test_a_run_is_accepted_exactly_when_all_its_clocks_are_below_the_ceiling(
    counter: int, lamport: int, length: int
) -> None:
    doc = crdtsync.Doc(1)
    head = [] if counter == 1 else [-(counter - 1)]
    seg = [0, 1, *head, 10, lamport - counter, 1, None, "x" * length]
    data = update([[OTHER], ["tt"], [seg]])
    fits = counter + length - 1 <= TOP and lamport >= 1 and lamport + length - 1 <= TOP
    if not fits:
        assert_refused(doc, data)
        return
    doc.apply_update(data)
    assert str(doc.text("t")) == "x" * length
    room = TOP - (lamport + length - 1)  # Lamport times left for local edits
    if room >= 1:
        doc.text("t").insert(0, "y" * min(room, 3))
    else:
        with pytest.raises(OverflowError):
            doc.text("t").insert(0, "y")
    assert len(doc.text("t")) == length + min(room, 3)
    assert all(c <= TOP for c in doc.version.values())


def test_the_keystroke_path_holds_the_ceiling_too() -> None:
    doc = crdtsync.Doc(1)
    doc.text("t")  # exists and is unobserved: remote keystrokes take the shortcut
    doc.apply_update(update([[OTHER], ["mm"], [[0, 1, -(TOP - 3)]]]))  # OTHER at TOP - 3
    assert doc.version[OTHER] == TOP - 3
    crossing = update([[OTHER], ["tt"], [[0, TOP - 2, 1, None, "abcd"]]])
    assert_refused(doc, crossing)
    sent: list[bytes] = []
    doc.on_update(lambda u, o: sent.append(u))
    doc.apply_update(update([[OTHER], ["tt"], [[0, TOP - 2, 1, None, "abc"]]]))
    assert str(doc.text("t")) == "abc" and doc.version[OTHER] == TOP and len(sent) == 1
    with pytest.raises(OverflowError):  # its Lamport times reached TOP as well
        doc.text("t").insert(0, "x")
    assert str(doc.text("t")) == "abc" and len(sent) == 1
