"""Claims of docs/format.md that are not shown by its doctests, checked against the code."""

from __future__ import annotations

import random
import zlib
from typing import Any

import msgpack
import pytest
from crdt_helpers import budget, random_edit_all, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync import DecodeError
from crdtsync import _encoding as enc


def body_of(update: bytes) -> Any:
    raw = update[2:] if update[:2] == b"\xc1\x01" else zlib.decompress(update[2:])
    return msgpack.unpackb(raw)


def pack(body: Any) -> bytes:
    return b"\xc1\x01" + msgpack.packb(body)


def structural_doc() -> crdtsync.Doc:
    """A document whose updates hold ints only in structural places (no int values)."""
    a, b = crdtsync.Doc(replica_id=1), crdtsync.Doc(replica_id=0)
    a.text("t").insert(0, "hello")
    b.apply_update(a.get_update())
    b.text("t").insert(1, "x")
    b.text("t").delete(0, 2)
    b.set("s").add("e")
    b.set("s").discard("e")
    b.set("s").add("f")
    b.map("m")["k"] = "v"
    b.counter("c").increment()
    return b


def int_leaves(value: Any, path: tuple[int, ...] = ()) -> list[tuple[tuple[int, ...], int]]:
    if type(value) is int:
        return [(path, value)]
    if type(value) is list:
        return [leaf for i, item in enumerate(value) for leaf in int_leaves(item, (*path, i))]
    return []


def replaced(value: Any, path: tuple[int, ...], new: Any) -> Any:
    if not path:
        return new
    out = list(value)
    out[path[0]] = replaced(value[path[0]], path[1:], new)
    return out


def test_no_int_field_takes_a_bool_or_a_float() -> None:
    doc = structural_doc()
    bodies = [body_of(doc.get_update()), body_of(doc.get_update({1: 5}))]
    assert any(len(b) == 4 for b in bodies)  # facts too
    checked = 0
    for body in bodies:
        for path, v in int_leaves(body):
            if path[0] == 0:  # the replica table: ids 0 and 1 are ids, not fields
                continue
            for other in [bool(v), float(v)] if v in (0, 1) else [float(v)]:
                with pytest.raises(DecodeError):
                    crdtsync.Doc(replica_id=9).apply_update(pack(replaced(body, path, other)))
                checked += 1
    assert checked > 40


@pytest.mark.parametrize("tag", [False, True, 0.0, 1.0])
def test_fact_tags_are_checked_by_type(tag: Any) -> None:
    doc = structural_doc()
    body = body_of(doc.get_update({1: 5}))
    assert body[3] and all(type(f[0]) is int for f in body[3])
    for i in range(len(body[3])):
        if body[3][i][0] != int(tag):
            continue
        bad = [body[0], body[1], body[2], [*body[3][:i], [tag, *body[3][i][1:]], *body[3][i + 1 :]]]
        with pytest.raises(DecodeError, match="fact"):
            crdtsync.Doc(replica_id=9).apply_update(pack(bad))
        crdtsync.Doc(replica_id=9).apply_update(pack(body))


def test_the_deflate_threshold_counts_the_prefix() -> None:
    for total in (enc.DEFLATE_THRESHOLD - 1, enc.DEFLATE_THRESHOLD):
        content = "a" * 2000
        doc = crdtsync.Doc(replica_id=1)
        doc.text("t").insert(0, content)
        raw = enc.encode_update(enc.decode_update(doc.get_update()))
        # Trim the text so the uncompressed update, prefix included, is `total` bytes.
        cut = len(raw) - total
        doc2 = crdtsync.Doc(replica_id=1)
        doc2.text("t").insert(0, content[:-cut])
        raw2 = enc.encode_update(enc.decode_update(doc2.get_update()))
        assert len(raw2) == total
        out = enc.deflate_update(raw2)
        assert (out[:2] == b"\xc1\x02") == (total >= enc.DEFLATE_THRESHOLD)


def test_a_decode_error_wins_over_missing_dependencies() -> None:
    doc = crdtsync.Doc(replica_id=1)
    # Counter 5 of replica 7 with nothing before it held (a gap), and a bad tag.
    with pytest.raises(DecodeError):
        doc.apply_update(pack([[7], ["tt"], [[0, 5, 1, None, "x", 99]]]))
    assert doc.pending == 0 and doc.version == {}


def test_a_gap_found_before_a_bad_origin_waits_and_is_dropped_later() -> None:
    a = crdtsync.Doc(replica_id=7)
    a.text("t").insert(0, "ab")  # counters 1-2
    a.map("m")["k"] = 1  # counter 3: not an element of "t"
    doc = crdtsync.Doc(replica_id=1)
    # Counter 4 names (7, 3) as its origin: not held yet (wait), and not an element of "t".
    bad = pack([[7], ["tt"], [[0, 4, 10, 0, 1, 0, "!"]]])
    doc.apply_update(bad)
    assert doc.pending == 1
    doc.apply_update(a.get_update())  # now (7, 3) is held: a map write, so the origin is bad
    assert doc.pending == 0 and str(doc.text("t")) == "ab" and doc.version == {7: 3}
    with pytest.raises(DecodeError, match="not an element"):
        doc.apply_update(bad)  # ready now, and refused


def test_a_bad_origin_found_first_raises_even_if_a_later_change_must_wait() -> None:
    a = crdtsync.Doc(replica_id=7)
    a.map("m")["k"] = 1  # (7, 1)
    doc = crdtsync.Doc(replica_id=1)
    doc.apply_update(a.get_update())
    # Counter 2: an insert after (7, 1), which is a map write; counter 3: waits for (8, 9).
    bad = pack([[7, 8], ["tt"], [[0, 2, 1, 0, "x", 1, [1, 9], "y"]]])
    with pytest.raises(DecodeError, match="not an element"):
        doc.apply_update(bad)
    assert doc.pending == 0


@settings(max_examples=budget(30))
@given(seed=st.integers(0, 2**32 - 1), replicas=st.integers(1, 3), edits=st.integers(1, 12))
def test_non_overlapping_updates_can_simply_be_concatenated(
    seed: int, replicas: int, edits: int
) -> None:
    # format.md section 12: where no two updates cover the same counter, no merge logic is
    # needed: their segments and facts side by side (tables re-indexed) are the merge.
    rnd = random.Random(seed)
    docs = [crdtsync.Doc(replica_id=i + 1) for i in range(replicas)]
    local: list[bytes] = []  # every transaction's update: no two cover the same counter
    for doc in docs:
        doc.on_update(lambda u, origin: local.append(u) if origin is None else None)
    for _ in range(edits):
        i = rnd.randrange(replicas)
        random_edit_all(docs[i], rnd)
        if rnd.random() < 0.3:  # now and then someone catches up with someone else
            j = rnd.randrange(replicas)
            docs[j].apply_update(docs[i].get_update(docs[j].version), origin="sync")
    parts = [enc.decode_update(u) for u in local]
    joined = enc.Update([s for p in parts for s in p.segments], [f for p in parts for f in p.facts])
    concatenated = enc.encode_update(joined)
    one_by_one, at_once = crdtsync.Doc(replica_id=99), crdtsync.Doc(replica_id=99)
    for u in rnd.sample(local, len(local)):
        one_by_one.apply_update(u)
    at_once.apply_update(concatenated)
    assert snapshot(at_once) == snapshot(one_by_one)
    assert at_once.version == one_by_one.version
