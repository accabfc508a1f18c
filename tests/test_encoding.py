"""Wire-format properties: small keystrokes, run-length encoding, garbage collection, magic."""

from __future__ import annotations

import os
import random

import pytest
from crdt_helpers import Recorder, fresh_from, random_edit_all, snapshot, sync_pair

import crdtsync


def _edited_doc(replica_id=None, n=3000, seed=0):
    """A doc with a few thousand edits: typing with corrections at random places."""
    rnd = random.Random(seed)
    doc = crdtsync.Doc(replica_id)
    t = doc.text("t")
    for _ in range(n):
        if len(t) > 10 and rnd.random() < 0.2:
            t.delete(rnd.randrange(len(t)))
        elif rnd.random() < 0.7:
            t.insert(len(t), rnd.choice("abcdefgh "))
        else:
            t.insert(rnd.randint(0, len(t)), rnd.choice("xyz😀"))
    return doc


@pytest.mark.parametrize("replica_id", [None, 2**64 - 1, 3])
def test_keystroke_update_is_small(replica_id):
    doc = _edited_doc(replica_id)
    rec = Recorder(doc)
    t = doc.text("t")
    for ch in "xy😀":
        t.insert(len(t), ch)
    assert len(rec.updates) == 3
    for u in rec.updates:
        assert len(u) <= 40, f"keystroke update is {len(u)} bytes: {u.hex()}"


def test_keystroke_update_with_long_root_name_still_replicates():
    doc = crdtsync.Doc()
    rec = Recorder(doc)
    doc.text("a-rather-long-root-name").insert(0, "x")
    assert fresh_from(rec.updates[0]).text("a-rather-long-root-name")[0] == "x"


def test_sequential_typing_is_run_length_encoded():
    doc = crdtsync.Doc()
    t = doc.text("t")
    chars = "the quick brown fox jumps over the lazy dog. "
    for k in range(10_000):
        t.insert(len(t), chars[k % len(chars)])
    state = doc.get_update()
    assert len(state) < 10_200, f"10,000 typed chars encode to {len(state)} bytes"
    assert str(fresh_from(state).text("t")) == str(t)


def test_sequential_list_appends_replicate():
    doc = crdtsync.Doc()
    lst = doc.list("l")
    for k in range(2000):
        lst.append(k % 100)
    state = doc.get_update()
    assert list(fresh_from(state).list("l")) == [k % 100 for k in range(2000)]


MARKER = "QZXJ-deleted-marker-7781"


def _doc_with_deleted_marker(gc: bool) -> crdtsync.Doc:
    doc = crdtsync.Doc(1, gc=gc)
    t = doc.text("t")
    t.insert(0, "keep the start. ")
    for k in range(20):
        t.insert(len(t), f"{MARKER}-{k} filler filler. ")
    t.insert(len(t), "keep the end.")
    # delete everything between the kept parts
    start = len("keep the start. ")
    t.delete(start, len(t) - start - len("keep the end."))
    assert str(t) == "keep the start. keep the end."
    return doc


def test_gc_drops_deleted_content():
    doc = _doc_with_deleted_marker(gc=True)
    state = doc.get_update()
    assert MARKER.encode() not in state
    assert b"filler" not in state
    copy = fresh_from(state)
    assert str(copy.text("t")) == "keep the start. keep the end."


def test_no_gc_keeps_deleted_content():
    doc = _doc_with_deleted_marker(gc=False)
    state = doc.get_update()
    assert MARKER.encode() in state
    assert str(fresh_from(state).text("t")) == "keep the start. keep the end."


def test_gc_state_is_smaller():
    assert len(_doc_with_deleted_marker(True).get_update()) < len(
        _doc_with_deleted_marker(False).get_update()
    )


def test_gc_list_values_dropped():
    doc = crdtsync.Doc(1)
    lst = doc.list("l")
    lst.extend([f"{MARKER}-{k}" for k in range(10)])
    lst.append("kept")
    for _ in range(10):
        del lst[0]
    state = doc.get_update()
    assert MARKER.encode() not in state
    assert list(fresh_from(state).list("l")) == ["kept"]


def test_gc_does_not_break_concurrent_edits_inside_deleted_range():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.text("t").insert(0, f"left {MARKER} right")
    sync_pair(a, b)
    at = len("left ") + 5
    a.text("t").delete(len("left "), len(MARKER) + 1)  # a deletes the marker (and gc's it)
    for k, ch in enumerate("NEW"):
        b.text("t").insert(at + k, ch)  # b types inside it concurrently
    b_update = b.get_update(a.version)
    # a, which collected the deleted characters, must still place b's insert
    a.apply_update(b_update)
    # a third replica that only ever saw a's collected state, too
    c = fresh_from(a.get_update())
    c_old = fresh_from(a.get_update())
    sync_pair(a, b)
    assert str(a.text("t")) == str(b.text("t")) == "left NEWright"
    assert str(c.text("t")) == "left NEWright"
    c_old.apply_update(b.get_update())
    assert str(c_old.text("t")) == "left NEWright"


def test_gc_fresh_replica_merges_with_stale_one():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.text("t").insert(0, "0123456789")
    sync_pair(a, b)
    a.text("t").delete(2, 6)  # "0189"
    c = fresh_from(a.get_update())  # only the collected state
    b.text("t").insert(5, "B")  # b, stale, edits inside the deleted range
    c.apply_update(b.get_update())
    assert str(c.text("t")) == "01B89"
    b.apply_update(c.get_update(b.version))
    assert str(b.text("t")) == "01B89"


def _all_kinds_of_updates() -> list[bytes]:
    rnd = random.Random(3)
    a, b = crdtsync.Doc(1), crdtsync.Doc(2**64 - 1)
    rec = Recorder(a)
    random_edit_all(a, rnd, 40)
    random_edit_all(b, rnd, 40)
    out = list(rec.take())
    out += [a.get_update(), b.get_update(), a.get_update(b.version), a.get_update(a.version)]
    out.append(crdtsync.merge_updates(out[:5]))
    out.append(crdtsync.merge_updates([]))
    out.append(crdtsync.Doc().get_update())
    return out


def test_updates_start_with_magic_prefix():
    ups = _all_kinds_of_updates()
    prefix = os.path.commonprefix(ups)
    assert len(prefix) >= 2, f"no common magic prefix: {[u[:6].hex() for u in ups]}"


def test_empty_delta_is_small_and_harmless():
    doc = crdtsync.Doc(1)
    random_edit_all(doc, random.Random(5), 200)
    empty = doc.get_update(doc.version)
    assert len(empty) < 20, len(empty)
    for target in (crdtsync.Doc(), fresh_from(doc.get_update()), doc):
        before_bytes = target.get_update()
        before = snapshot(target)
        v = target.version
        rec = Recorder(target)
        target.apply_update(empty)
        assert snapshot(target) == before
        assert target.version == v
        assert target.get_update() == before_bytes
        assert rec.updates == []


def test_whole_state_is_deterministic():
    doc = crdtsync.Doc(1)
    random_edit_all(doc, random.Random(9), 100)
    assert doc.get_update() == doc.get_update()
    assert doc.get_update(crdtsync.VersionVector()) == doc.get_update(crdtsync.VersionVector())


def test_large_states_are_deflated_and_load_back():
    doc = crdtsync.Doc(1)
    doc.text("t").insert(0, "the quick brown fox jumps over the lazy dog " * 200)
    state = doc.get_update()
    assert state[:2] == b"\xc1\x02"  # compressed: text shrinks well
    assert len(state) < len(str(doc.text("t"))) // 4
    fresh = crdtsync.Doc(2)
    fresh.apply_update(state)
    assert str(fresh.text("t")) == str(doc.text("t"))
    # a keystroke update is never compressed
    updates = []
    doc.on_update(lambda u, o: updates.append(u))
    doc.text("t").insert(0, "x")
    assert updates[0][:2] == b"\xc1\x01"


def test_compressed_garbage_and_bombs_are_decode_errors():
    import zlib

    doc = crdtsync.Doc(1)
    doc.text("t").insert(0, "abc")
    before = doc.get_update()
    bomb = b"\xc1\x02" + zlib.compress(b"\x00" * (4 << 20), 9)  # 4 MiB from a few KiB
    for bad in (
        b"\xc1\x02",
        b"\xc1\x02not zlib at all",
        b"\xc1\x02" + zlib.compress(b"\x93\x90\x90\x90")[:-2],  # truncated
        b"\xc1\x02" + zlib.compress(b"\x93\x90\x90\x90") + b"tail",  # trailing bytes
        bomb,
    ):
        with pytest.raises(crdtsync.DecodeError):
            doc.apply_update(bad, max_inflated_size=1 << 20)
        assert doc.get_update() == before
