"""Replica-id reuse never loses an edit silently.

A document that sees someone else holding more of its own replica id than it does (an
incoming change under its id that it never made, or a peer's version above its own counter)
either re-issues its own changes under a fresh id, so they reach everyone intact, or raises
ReplicaIdConflict and stays exactly as it was.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync.sync import SyncSession
from crdtsync.testing import SimulatedNetwork, apply_edits
from crdtsync.testing.strategies import edit_scripts

ID = 42


def _old_process() -> crdtsync.Doc:
    old = crdtsync.Doc(ID)
    old.text("t").insert(0, "hello")
    old.map("m")["k"] = 1
    old.set("s").add("a")
    old.counter("c").increment(3)
    return old


def _offline_edits(doc: crdtsync.Doc) -> None:
    doc.text("t").insert(0, "X")
    doc.map("m")["j"] = 2
    doc.set("s").add("b")
    doc.counter("c").increment(5)


def test_a_restarted_process_without_its_state_reissues_its_edits(caplog):
    server = crdtsync.Doc(7)
    server.apply_update(_old_process().get_update())
    restarted = crdtsync.Doc(ID)
    _offline_edits(restarted)
    text = restarted.text("t")
    sent = []
    restarted.on_update(lambda update, origin: sent.append((update, origin)))
    with caplog.at_level(logging.WARNING, logger="crdtsync"):
        restarted.apply_update(server.get_update())
    assert "replica id 42 is in use elsewhere" in caplog.text
    assert restarted.replica_id != ID
    assert restarted.text("t") is text  # the same container objects
    assert str(text) == "Xhello"
    assert dict(restarted.map("m")) == {"k": 1, "j": 2}
    assert set(restarted.set("s")) == {"a", "b"}
    assert restarted.counter("c").value == 8
    assert sent[0][1] == crdtsync._doc.REISSUED
    for update, _ in sent:
        server.apply_update(update)
    assert server.get_update() == restarted.get_update()
    # and it keeps working under its new id
    text.insert(5, "!")
    server.apply_update(restarted.get_update(server.version))
    assert str(server.text("t")) == "Xhell!o"


def test_the_error_instead_leaves_the_document_as_it_was():
    restarted = crdtsync.Doc(ID, reissue_on_conflict=False)
    _offline_edits(restarted)
    before = restarted.get_update()
    with pytest.raises(crdtsync.ReplicaIdConflict, match="replica id 42 is in use"):
        restarted.apply_update(_old_process().get_update())
    assert restarted.get_update() == before
    assert restarted.replica_id == ID
    assert isinstance(crdtsync.ReplicaIdConflict("x"), crdtsync.DecodeError)


def test_loading_the_saved_state_first_is_fine():
    saved = _old_process().get_update()
    doc = crdtsync.Doc(ID)
    doc.apply_update(saved)  # the id comes back with the state it produced
    doc.text("t").insert(5, "!")
    assert doc.replica_id == ID and doc.version[ID] == 5 + 3 + 1
    other = crdtsync.Doc(7)
    other.apply_update(doc.get_update())
    assert str(other.text("t")) == "hello!"


def test_a_restored_copy_that_diverged_cannot_repair_itself():
    """Restored from an older copy, then edited, while the id went on elsewhere: some of its
    changes under the id came from that copy, so it cannot rename them all. It refuses."""
    old = _old_process()
    snapshot = old.get_update()
    old.text("t").insert(5, " world")  # the old process went on after the snapshot
    restored = crdtsync.Doc(ID)
    restored.apply_update(snapshot)
    restored.text("t").insert(0, "X")
    before = restored.get_update()
    with pytest.raises(crdtsync.ReplicaIdConflict):
        restored.apply_update(old.get_update(restored.version))
    assert restored.get_update() == before


def _network(*docs: crdtsync.Doc, size: int = 1 << 20) -> SimulatedNetwork:
    def factory(doc: crdtsync.Doc) -> SyncSession:
        return SyncSession(doc, max_message_size=size)

    return SimulatedNetwork.star(
        {f"p{i}": d for i, d in enumerate(docs)}, seed=1, latency=(1, 3), session_factory=factory
    )


def test_through_sessions_the_offline_edit_reaches_everyone():
    """The issue's case: 'Xello' with synced=True on the client, 'hello' everywhere else."""
    server, other = crdtsync.Doc(7), crdtsync.Doc(8)
    net = _network(server, other, _old_process())
    net.run_until_quiet()
    net.close()
    restarted = crdtsync.Doc(ID)
    restarted.text("t").insert(0, "X")
    net = _network(server, other, restarted)
    net.run_until_quiet()
    net.assert_converged()
    assert net.synced
    assert {str(d.text("t")) for d in (server, other, restarted)} == {"Xhello"}


def test_a_session_refuses_and_stays_as_it_was():
    server = crdtsync.Doc(7)
    server.apply_update(_old_process().get_update())
    restarted = crdtsync.Doc(ID, reissue_on_conflict=False)
    restarted.text("t").insert(0, "X")
    client, relay = SyncSession(restarted), SyncSession(server)
    hello = client.start()
    answer = relay.receive(hello[0])  # DIFF + the relay's own HELLO, both show 42 at 8
    with pytest.raises(crdtsync.ReplicaIdConflict):
        client.receive(answer[0])
    assert str(restarted.text("t")) == "X" and restarted.version == {ID: 1}


@settings(max_examples=40, deadline=None)
@given(
    before=edit_scripts(min_size=1, max_size=8),
    offline=edit_scripts(min_size=1, max_size=4),
    elsewhere=edit_scripts(max_size=6),
    size=st.sampled_from([256, 1024, 1 << 20]),
)
def test_reuse_never_loses_an_edit(before, offline, elsewhere, size):
    """Whatever the old process and the others did, and whatever the restarted process
    edits offline under the same id, as long as the old process got further under it
    (someone holds more of the id than the restarted process: what counters can tell):
    after reconnecting everyone is level and holds the restarted process's edits."""
    server, other = crdtsync.Doc(7), crdtsync.Doc(8)
    old = crdtsync.Doc(ID)
    apply_edits(old, before)
    net = _network(server, other, old, size=size)
    net.run_until_quiet()
    net.close()
    restarted = crdtsync.Doc(ID)
    apply_edits(restarted, offline)
    assume(0 < restarted.version.get(ID, 0) < old.version.get(ID, 0))
    apply_edits(other, elsewhere)
    # The expected outcome: the others' state merged with the same edits made by an
    # independent replica (the restarted process's edits, under a harmless id).
    expected = crdtsync.Doc(10)
    for doc in (server, other):
        expected.apply_update(doc.get_update())
    alone = crdtsync.Doc(9)
    apply_edits(alone, offline)
    expected.apply_update(alone.get_update())
    net = _network(server, other, restarted, size=size)
    net.run_until_quiet()
    net.assert_converged()
    assert net.synced
    assert restarted.replica_id != ID
    # Same shape as the expected merge (ids and so tie-breaks differ, amounts do not).
    assert len(restarted.text("text")) == len(expected.text("text"))
    assert len(restarted.list("list")) == len(expected.list("list"))
    assert restarted.counter("counter").value == expected.counter("counter").value
    assert set(restarted.set("set")) == set(expected.set("set"))
    assert set(restarted.map("map")) == set(expected.map("map"))
