"""Doc: root containers, transactions, on_update, version vector, replica ids, pending buffer."""

from __future__ import annotations

import itertools

import pytest
from crdt_helpers import Recorder, fresh_from, roots, snapshot, sync_pair

import crdtsync

ROOT_KINDS = ["text", "list", "set", "map", "counter"]
ROOT_CLASSES = {
    "text": "Text",
    "list": "List",
    "set": "ORSet",
    "map": "LWWMap",
    "counter": "Counter",
}


def populate(doc: crdtsync.Doc, kind: str, name: str) -> None:
    root = getattr(doc, kind)(name)
    if kind == "text":
        root.insert(0, "hi")
    elif kind == "list":
        root.append(1)
    elif kind == "set":
        root.add("e")
    elif kind == "map":
        root["k"] = "v"
    else:
        root.increment(3)


# --- replica ids -----------------------------------------------------------------------------


@pytest.mark.parametrize("rid", [0, 1, 2**32, 2**63, 2**64 - 1])
def test_replica_id_kept(rid):
    assert crdtsync.Doc(rid).replica_id == rid
    assert crdtsync.Doc(replica_id=rid).replica_id == rid


def test_random_replica_ids():
    ids = {crdtsync.Doc().replica_id for _ in range(50)}
    assert len(ids) == 50
    assert all(isinstance(i, int) and 0 <= i < 2**64 for i in ids)
    assert any(i >= 2**32 for i in ids)  # 64-bit, not 32-bit (p(fail) = 2**-1600)


@pytest.mark.parametrize("rid", [-1, 2**64, 2**70])
def test_replica_id_out_of_range(rid):
    with pytest.raises((ValueError, OverflowError)):
        crdtsync.Doc(rid)


@pytest.mark.parametrize("rid", ["1", 1.0, b"\x01"])
def test_replica_id_wrong_type(rid):
    with pytest.raises((TypeError, ValueError)):
        crdtsync.Doc(rid)


def test_big_replica_ids_replicate():
    a, b = crdtsync.Doc(2**64 - 1), crdtsync.Doc(0)
    a.text("t").insert(0, "max")
    b.text("t").insert(0, "min")
    sync_pair(a, b)
    assert str(a.text("t")) == str(b.text("t"))
    assert a.version.get(2**64 - 1, 0) > 0 and a.version.get(0, 0) > 0
    assert a.version == b.version


# --- roots ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ROOT_KINDS)
def test_root_is_same_object_each_time(kind):
    doc = crdtsync.Doc()
    first = getattr(doc, kind)("name")
    assert getattr(doc, kind)("name") is first
    assert type(first).__name__ == ROOT_CLASSES[kind]
    assert isinstance(first, getattr(crdtsync, ROOT_CLASSES[kind]))
    assert getattr(doc, kind)("other") is not first


@pytest.mark.parametrize(("kind", "other"), list(itertools.permutations(ROOT_KINDS, 2)))
def test_root_type_mismatch_raises_type_error(kind, other):
    doc = crdtsync.Doc()
    getattr(doc, kind)("name")
    with pytest.raises(TypeError):
        getattr(doc, other)("name")
    # the original root is unaffected
    assert type(getattr(doc, kind)("name")).__name__ == ROOT_CLASSES[kind]


@pytest.mark.parametrize("kind", ROOT_KINDS)
def test_root_created_by_remote_update(kind):
    a = crdtsync.Doc(1)
    populate(a, kind, "remote")
    b = fresh_from(a.get_update())
    root = getattr(b, kind)("remote")
    assert type(root).__name__ == ROOT_CLASSES[kind]
    assert getattr(b, kind)("remote") is root
    assert snapshot_of(root) == snapshot_of(getattr(a, kind)("remote"))
    for other in ROOT_KINDS:
        if other != kind:
            with pytest.raises(TypeError):
                getattr(b, other)("remote")


@pytest.mark.parametrize("kind", ROOT_KINDS)
def test_root_object_taken_before_remote_update_sees_it(kind):
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    early = getattr(b, kind)("shared")
    populate(a, kind, "shared")
    b.apply_update(a.get_update())
    assert getattr(b, kind)("shared") is early
    assert snapshot_of(early) == snapshot_of(getattr(a, kind)("shared"))


def snapshot_of(root):
    if isinstance(root, crdtsync.Counter):
        return root.value
    if isinstance(root, crdtsync.Text):
        return str(root)
    if isinstance(root, crdtsync.LWWMap):
        return dict(root)
    if isinstance(root, crdtsync.ORSet):
        return set(root)
    return list(root)


def test_root_names_are_independent():
    doc = crdtsync.Doc(1)
    doc.text("a").insert(0, "A")
    doc.text("b").insert(0, "B")
    doc.text("").insert(0, "empty-name")
    doc.text("😀").insert(0, "emoji-name")
    copy = fresh_from(doc.get_update())
    assert str(copy.text("a")) == "A"
    assert str(copy.text("b")) == "B"
    assert str(copy.text("")) == "empty-name"
    assert str(copy.text("😀")) == "emoji-name"


# --- transactions and on_update --------------------------------------------------------------


def test_each_local_op_outside_transaction_is_one_update():
    doc = crdtsync.Doc(1)
    rec = Recorder(doc)
    t, lst, s, m, c = roots(doc)
    t.insert(0, "abc")
    lst.append(1)
    s.add(1)
    m["k"] = 1
    c.increment()
    t.delete(0, 2)
    assert len(rec.updates) == 6
    assert rec.origins == [None] * 6


def test_transaction_makes_one_update():
    doc = crdtsync.Doc(1)
    rec = Recorder(doc)
    t, lst, s, m, c = roots(doc)
    with doc.transaction(origin="me"):
        t.insert(0, "abc")
        t.insert(3, "def")
        t.delete(1)
        lst.extend([1, 2, 3])
        del lst[0]
        s.add("x")
        m["k"] = "v"
        c.increment(4)
        c.decrement(1)
        # changes are visible inside the transaction
        assert str(t) == "acdef"
        assert c.value == 3
        assert rec.updates == []
    assert len(rec.updates) == 1
    assert rec.origins == ["me"]
    copy = fresh_from(rec.updates[0])
    assert snapshot(copy) == snapshot(doc)


def test_transaction_default_origin_is_none():
    doc = crdtsync.Doc(1)
    rec = Recorder(doc)
    with doc.transaction():
        doc.text("t").insert(0, "x")
    assert rec.origins == [None]


def test_empty_transaction_emits_nothing():
    doc = crdtsync.Doc(1)
    rec = Recorder(doc)
    v = doc.version
    with doc.transaction():
        pass
    assert rec.updates == []
    assert doc.version == v


def test_exception_inside_transaction_keeps_replicas_consistent():
    doc = crdtsync.Doc(1)
    rec = Recorder(doc)
    doc.text("t").insert(0, "before")
    with pytest.raises(RuntimeError), doc.transaction():
        doc.text("t").insert(0, "inside ")
        doc.counter("c").increment(5)
        raise RuntimeError("boom")
    doc.text("t").insert(len(doc.text("t")), " after")
    # whatever the policy (roll back or commit), peers see exactly the local state
    peer = crdtsync.Doc(2)
    for u in rec.updates:
        peer.apply_update(u)
    assert snapshot(peer) == snapshot(doc)
    assert peer.version == doc.version
    assert snapshot(fresh_from(doc.get_update())) == snapshot(doc)


def test_nested_transactions_make_one_update():
    doc = crdtsync.Doc(1)
    rec = Recorder(doc)
    with doc.transaction(origin="outer"):
        doc.text("t").insert(0, "a")
        with doc.transaction():
            doc.text("t").insert(1, "b")
            doc.list("l").append(1)
        doc.text("t").insert(2, "c")
    assert len(rec.updates) == 1
    assert str(fresh_from(rec.updates[0]).text("t")) == "abc"


def test_on_update_unsubscribe():
    doc = crdtsync.Doc(1)
    a, b = Recorder(doc), Recorder(doc)
    doc.text("t").insert(0, "1")
    a.unsubscribe()
    doc.text("t").insert(0, "2")
    assert len(a.updates) == 1
    assert len(b.updates) == 2
    b.unsubscribe()
    doc.text("t").insert(0, "3")
    assert len(b.updates) == 2


def test_on_update_fires_for_remote_updates_that_change_state_only():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    rec = Recorder(b)
    a.text("t").insert(0, "hello")
    u = a.get_update()
    b.apply_update(u, origin="net")
    assert len(rec.updates) == 1
    assert rec.origins == ["net"]
    b.apply_update(u)  # duplicate: no change
    b.apply_update(a.get_update(b.version))  # empty delta: no change
    assert len(rec.updates) == 1
    # the re-emitted update carries the change
    assert str(fresh_from(rec.updates[0]).text("t")) == "hello"


def test_remote_update_default_origin_none():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    rec = Recorder(b)
    a.counter("c").increment()
    b.apply_update(a.get_update())
    assert rec.origins == [None]


def test_updates_from_on_update_replay_the_document():
    a = crdtsync.Doc(1)
    rec = Recorder(a)
    t, lst, s, m, c = roots(a)
    t.insert(0, "hello world")
    t.delete(0, 6)
    lst.extend(["x", "y"])
    s.add(3)
    s.discard(3)
    m["a"] = {"b": [1]}
    c.decrement(2)
    b = crdtsync.Doc(2)
    for u in rec.updates:
        b.apply_update(u)
    assert snapshot(b) == snapshot(a)
    assert b.version == a.version


# --- version vector -------------------------------------------------------------------------


def test_fresh_doc_version_is_empty():
    doc = crdtsync.Doc(1)
    assert isinstance(doc.version, crdtsync.VersionVector)
    assert doc.version == crdtsync.VersionVector()
    assert len(doc.version) == 0


def test_version_grows_with_local_edits_and_is_a_snapshot():
    doc = crdtsync.Doc(7)
    doc.text("t").insert(0, "a")
    v1 = doc.version
    assert set(v1) == {7} and v1[7] > 0
    doc.text("t").insert(1, "bc")
    v2 = doc.version
    assert v2[7] > v1[7]
    assert v1 <= v2 and not v2 <= v1
    assert v1 != v2
    assert dict(v1) == {7: v1[7]}


def test_version_snapshot_is_not_live():
    doc = crdtsync.Doc(7)
    doc.text("t").insert(0, "a")
    v1 = doc.version
    before = dict(v1)
    doc.text("t").insert(1, "b")
    doc.counter("c").increment()
    assert dict(v1) == before


def test_version_after_merge_covers_both():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.text("t").insert(0, "a")
    b.list("l").append(1)
    va, vb = a.version, b.version
    sync_pair(a, b)
    assert a.version == b.version == va | vb
    assert va <= a.version and vb <= a.version
    assert not va <= vb and not vb <= va


def test_reading_does_not_change_version():
    doc = crdtsync.Doc(1)
    doc.text("t").insert(0, "x")
    v = doc.version
    roots(doc)
    snapshot(doc)
    doc.get_update()
    doc.get_update(v)
    assert doc.version == v


def test_get_update_since_version():
    a = crdtsync.Doc(1)
    a.text("t").insert(0, "hello")
    b = fresh_from(a.get_update())
    v = b.version
    a.text("t").insert(5, " world")
    a.map("m")["k"] = 1
    delta = a.get_update(v)
    b.apply_update(delta)
    assert snapshot(b) == snapshot(a)
    assert b.version == a.version
    # applying the delta to a doc that lacks its base buffers it rather than corrupting
    c = crdtsync.Doc(3)
    c.apply_update(delta)
    assert str(c.text("t")) == ""
    c.apply_update(a.get_update())
    assert snapshot(c) == snapshot(a)


def test_get_update_since_empty_version_equals_whole_state():
    a = crdtsync.Doc(1)
    a.text("t").insert(0, "hello")
    a.set("s").add(1)
    assert snapshot(fresh_from(a.get_update(crdtsync.VersionVector()))) == snapshot(a)


def test_get_update_since_future_version_is_harmless():
    a = crdtsync.Doc(1)
    a.text("t").insert(0, "hello")
    future = crdtsync.VersionVector({1: 10**6, 99: 5})
    u = a.get_update(future)
    b = fresh_from(a.get_update())
    before = snapshot(b)
    b.apply_update(u)
    assert snapshot(b) == before


# --- pending buffer -------------------------------------------------------------------------


def test_update_before_dependency_is_buffered_then_integrated():
    a = crdtsync.Doc(1)
    rec = Recorder(a)
    a.text("t").insert(0, "ab")
    a.text("t").insert(1, "X")  # depends on "ab"
    u1, u2 = rec.take()
    b = crdtsync.Doc(2)
    b.text("t").insert(0, "local")
    v = b.version
    b.apply_update(u2)
    assert b.version == v
    assert str(b.text("t")) == "local"
    assert b.pending
    b.apply_update(u1)
    assert not b.pending
    assert b.version == a.version | v
    assert str(b.text("t")) in ("aXblocal", "localaXb")
    sync_pair(a, b)
    assert str(a.text("t")) == str(b.text("t"))


def test_cross_replica_dependency_is_buffered():
    a, b, c = crdtsync.Doc(1), crdtsync.Doc(2), crdtsync.Doc(3)
    ra, rb = Recorder(a), Recorder(b)
    a.text("t").insert(0, "base")
    (ua,) = ra.take()
    b.apply_update(ua)
    rb.take()
    b.text("t").insert(2, "--")  # depends on a's characters
    (ub,) = rb.take()
    c.apply_update(ub)
    assert c.version == crdtsync.VersionVector()
    assert str(c.text("t")) == ""
    assert c.pending
    c.apply_update(ua)
    assert not c.pending
    assert str(c.text("t")) == "ba--se"
    assert c.version == b.version


def test_pending_is_falsy_on_fresh_doc():
    assert not crdtsync.Doc().pending


def test_pending_overflow():
    a = crdtsync.Doc(1)
    rec = Recorder(a)
    for ch in "abcde":
        a.text("t").insert(len(a.text("t")), ch)
    ups = rec.take()
    b = crdtsync.Doc(2, max_pending=2)
    b.apply_update(ups[1])
    b.apply_update(ups[2])
    before = b.get_update()
    with pytest.raises(crdtsync.PendingOverflowError) as info:
        b.apply_update(ups[3])
    assert isinstance(info.value, ValueError)
    assert b.get_update() == before
    assert b.version == crdtsync.VersionVector()
    b.apply_update(ups[0])
    assert str(b.text("t")) == "abc"
    assert not b.pending
    b.apply_update(ups[3])
    b.apply_update(ups[4])
    assert str(b.text("t")) == "abcde"


def test_pending_bytes_are_bounded_too():
    a = crdtsync.Doc(1)
    rec = Recorder(a)
    for word in ("x", "y" * 300, "z" * 300, "w" * 300):
        a.text("t").insert(len(a.text("t")), word)
    ups = rec.take()
    b = crdtsync.Doc(2, max_pending_bytes=len(ups[1]) + len(ups[2]))
    b.apply_update(ups[1])
    b.apply_update(ups[2])  # exactly at the bound
    before = b.get_update()
    with pytest.raises(crdtsync.PendingOverflowError, match="max_pending_bytes"):
        b.apply_update(ups[3])
    assert b.get_update() == before and b._pending_bytes == len(ups[1]) + len(ups[2])
    b.apply_update(ups[0])  # the gap fills: everything parked goes in, the bytes with it
    assert b._pending_bytes == 0 and not b.pending
    b.apply_update(ups[3])
    assert str(b.text("t")) == str(a.text("t"))
    with pytest.raises(ValueError):
        crdtsync.Doc(max_pending_bytes=-1)


def test_errors_exported():
    assert issubclass(crdtsync.DecodeError, ValueError)
    assert issubclass(crdtsync.ProtocolError, ValueError)
    assert issubclass(crdtsync.PendingOverflowError, ValueError)
