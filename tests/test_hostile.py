"""Hostile input: corrupted, truncated, spliced and wrong-shaped updates.

Every malformed input must raise ``DecodeError`` (a ``ValueError``) and leave the receiving
document exactly as it was. Some mutations produce *valid* updates (a flipped bit inside string
content, say); those may be accepted, but the document must then still be consistent.
"""

from __future__ import annotations

import contextlib
import random
import resource
import signal
from typing import Any

import msgpack
import pytest
from crdt_helpers import Recorder, budget, fresh_from, random_edit_all, roots, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync import DecodeError

# ---------------------------------------------------------------------------------------------
# Fixture documents (built once; deterministic)

SRC_ID, OTHER_ID, RECV_ID = 2**64 - 1, 5, 77


def _build():
    a, b = crdtsync.Doc(SRC_ID), crdtsync.Doc(OTHER_ID)
    rec = Recorder(a)
    t, lst, s, m, c = roots(a)
    t.insert(0, "hello 😀 wörld")
    lst.extend([None, True, -(2**63), 2**63 - 1, 1.25, "s", b"\x00b"])
    lst.append([1, {"nested": [b"x", None, {"deep": -0.5}]}])
    s.add("x")
    s.add(b"y")
    s.add(None)
    m["k"] = {"a": [1, 2]}
    m["gone"] = "soon"
    c.increment(41)
    b.apply_update(a.get_update())
    b.text("t").insert(0, ">> ")
    b.counter("c").decrement(2)
    b.set("s").discard("x")
    a.apply_update(b.get_update(a.version))
    # concurrent edits on both sides, with deletions
    rnd = random.Random(1)
    t.delete(2, 3)
    del lst[1]
    s.discard(None)
    del m["gone"]
    with a.transaction():
        t.insert(len(t), " end")
        c.increment()
        m["k2"] = [None]
    random_edit_all(a, rnd, 30)
    random_edit_all(b, rnd, 30)
    updates = rec.take()
    return a, b, updates


SRC, OTHER, SRC_UPDATES = _build()
RECV_STATE = OTHER.get_update()

VALID = [
    SRC.get_update(),
    SRC.get_update(OTHER.version),
    SRC.get_update(SRC.version),
    OTHER.get_update(),
    crdtsync.merge_updates(SRC_UPDATES[-6:]),
    *SRC_UPDATES[:3],
    *SRC_UPDATES[-3:],
]
FULL = VALID[0]


def receiver() -> crdtsync.Doc:
    return fresh_from(RECV_STATE, replica_id=RECV_ID)


_after_full = receiver()
_after_full.apply_update(FULL)
EXPECTED_AFTER_FULL = snapshot(_after_full)


# ---------------------------------------------------------------------------------------------
# Guards: a hostile length field must not hang the suite or eat the machine's memory


@contextlib.contextmanager
def guarded(seconds: float = 10.0):
    def on_alarm(signum, frame):
        raise TimeoutError(f"apply_update took more than {seconds}s on hostile input")

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_limit = resource.getrlimit(resource.RLIMIT_AS)
    limited = False
    try:
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        cap = vm + 2 * 1024**3
        if old_limit[1] == resource.RLIM_INFINITY or cap < old_limit[1]:
            resource.setrlimit(resource.RLIMIT_AS, (cap, old_limit[1]))
            limited = True
    except (OSError, ValueError, StopIteration):
        pass
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if limited:
            resource.setrlimit(resource.RLIMIT_AS, old_limit)


def check_hostile(data: bytes, *, must_reject: bool = False) -> None:
    recv = receiver()
    before_bytes = recv.get_update()
    before_version = recv.version
    before_values = snapshot(recv)
    before_pending = recv.pending
    rec = Recorder(recv)
    try:
        with guarded():
            recv.apply_update(data)
    except DecodeError as e:
        assert isinstance(e, ValueError)
        assert rec.updates == [], "on_update fired for a rejected update"
        assert recv.version == before_version
        assert recv.pending == before_pending
        assert snapshot(recv) == before_values
        assert recv.get_update() == before_bytes
        # the document is not poisoned: the genuine update still applies
        recv.apply_update(FULL)
        assert snapshot(recv) == EXPECTED_AFTER_FULL
        return
    assert not must_reject, f"malformed update accepted: {data[:60].hex()}..."
    # accepted (valid after all): the document must still be consistent and usable
    values = snapshot(recv)
    copy = fresh_from(recv.get_update())
    assert snapshot(copy) == values
    assert before_version <= recv.version
    recv.text("t").insert(0, "ok")
    recv.counter("c").increment()
    assert str(recv.text("t")).startswith("ok")


# ---------------------------------------------------------------------------------------------
# Byte-level mutations

valid_updates = st.sampled_from(VALID)


@given(st.binary(max_size=300))
@settings(max_examples=budget(100))
def test_random_bytes(data):
    check_hostile(data)


@given(valid_updates, st.binary(max_size=100))
@settings(max_examples=budget(60))
def test_valid_prefix_then_random_bytes(u, tail):
    prefix = u[: min(8, len(u))]
    check_hostile(prefix + tail)


@given(valid_updates, st.data())
@settings(max_examples=budget(100))
def test_truncated(u, data):
    cut = data.draw(st.integers(0, len(u) - 1), label="cut")
    check_hostile(u[:cut], must_reject=True)


@given(valid_updates, st.data())
@settings(max_examples=budget(300))
def test_bit_flips(u, data):
    buf = bytearray(u)
    for _ in range(data.draw(st.integers(1, 3), label="flips")):
        i = data.draw(st.integers(0, len(buf) - 1), label="pos")
        buf[i] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    check_hostile(bytes(buf))


@given(valid_updates, st.data())
@settings(max_examples=budget(100))
def test_byte_replacement(u, data):
    buf = bytearray(u)
    i = data.draw(st.integers(0, len(buf) - 1), label="pos")
    buf[i] = data.draw(st.sampled_from([0x00, 0xFF, 0xC0, 0xC1, 0xDC, 0xDD, 0xDF, 0x7F, 0x80]))
    check_hostile(bytes(buf))


@given(valid_updates, valid_updates, st.data())
@settings(max_examples=budget(100))
def test_spliced(u1, u2, data):
    kind = data.draw(st.sampled_from(["join", "insert", "delete", "dup", "concat"]), label="kind")
    i = data.draw(st.integers(0, len(u1)), label="i")
    if kind == "join":
        j = data.draw(st.integers(0, len(u2)), label="j")
        out = u1[:i] + u2[j:]
    elif kind == "insert":
        out = u1[:i] + data.draw(st.binary(min_size=1, max_size=20)) + u1[i:]
    elif kind == "delete":
        n = data.draw(st.integers(1, 20), label="n")
        out = u1[:i] + u1[i + n :]
    elif kind == "dup":
        n = data.draw(st.integers(1, 20), label="n")
        out = u1[:i] + u1[i : i + n] + u1[i:]
    else:
        out = u1 + u2
    if out in VALID:
        return
    check_hostile(out)


# ---------------------------------------------------------------------------------------------
# msgpack-valid but wrong shape

weird_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([0, -1, 1, 2**31, 2**32, 2**53, 2**63, 2**64 - 1, -(2**63)]),
    st.floats(),
    st.text(max_size=6),
    st.binary(max_size=6),
)
msgpack_objects = st.recursive(
    weird_leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 5)), inner, max_size=3)
    ),
    max_leaves=12,
)


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _msgpack_body(u: bytes) -> tuple[bytes, Any] | None:
    """(prefix, decoded body) if the update is a short prefix followed by one msgpack object."""
    for k in range(min(16, len(u))):
        try:
            obj = msgpack.unpackb(u[k:], raw=False, strict_map_key=False)
        except Exception:
            continue
        if isinstance(obj, list | dict):
            return u[:k], obj
    return None


BODIES = [b for b in (_msgpack_body(u) for u in VALID) if b is not None]
PREFIX = next((p for p, _ in BODIES), VALID[0][:4])


@given(msgpack_objects, st.booleans())
@settings(max_examples=budget(100))
def test_random_msgpack_objects(obj, with_prefix):
    data = _pack(obj)
    check_hostile(PREFIX + data if with_prefix else data)


def _paths(obj: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(obj, list):
        for i, x in enumerate(obj):
            out.extend(_paths(x, (*path, i)))
    elif isinstance(obj, dict):
        for k, x in obj.items():
            out.extend(_paths(x, (*path, k)))
    return out


def _replace(obj: Any, path: tuple, fn) -> Any:
    if not path:
        return fn(obj)
    head, rest = path[0], path[1:]
    copy = list(obj) if isinstance(obj, list) else dict(obj)
    copy[head] = _replace(obj[head], rest, fn)
    return copy


_DELETE = object()


def _mutate_node(node: Any, data) -> Any:
    choices = ["replace", "retype"]
    if isinstance(node, int) and not isinstance(node, bool):
        choices += ["int"] * 3
    if isinstance(node, list | dict) and node:
        choices += ["drop", "dup", "shuffle"]
    if isinstance(node, str | bytes):
        choices += ["strmod"]
    how = data.draw(st.sampled_from(choices), label="how")
    if how == "replace":
        return data.draw(msgpack_objects, label="replacement")
    if how == "retype":
        return data.draw(st.sampled_from([None, [], {}, "", b"", -1, 1.5, [node], {"x": node}]))
    if how == "int":
        delta = data.draw(
            st.sampled_from([1, -1, -node - 1, 2**32, 2**62, -(2**63), 10**6, (2**64 - 1) - node])
        )
        return node + delta if -(2**63) <= node + delta < 2**64 else -1
    if how == "strmod":
        if isinstance(node, bytes):
            return data.draw(st.sampled_from([b"", node + b"\xff", node.decode("latin-1")]))
        return data.draw(st.sampled_from(["", node + "😀", node.encode()]))
    items = list(node) if isinstance(node, list) else list(node.items())
    i = data.draw(st.integers(0, len(items) - 1), label="elem")
    if how == "drop":
        del items[i]
    elif how == "dup":
        items.insert(i, items[i])
    else:
        rnd = data.draw(st.randoms(use_true_random=False))
        rnd.shuffle(items)
    return items if isinstance(node, list) else dict(items)


@pytest.mark.skipif(not BODIES, reason="updates are not prefix + msgpack; no structure to mutate")
@given(st.data())
@settings(max_examples=budget(500))
def test_structure_mutations(data):
    prefix, body = data.draw(st.sampled_from(BODIES), label="update")
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = _paths(body)
        path = data.draw(st.sampled_from(paths), label="path")
        body = _replace(body, path, lambda node: _mutate_node(node, data))
    check_hostile(prefix + _pack(body))


def test_updates_have_msgpack_structure_to_fuzz():
    """Not required by the contract; documents whether test_structure_mutations is active."""
    if not BODIES:
        pytest.skip("update format is not a prefix + msgpack body")
    assert len(BODIES) == len(VALID)


# ---------------------------------------------------------------------------------------------
# Specific malformed inputs


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\xff" * 64,
        _pack(None),
        _pack([]),
        _pack({}),
        _pack("update"),
        _pack([1, 2, 3]),
        _pack({"a": 1}),
    ],
    ids=lambda d: d.hex()[:16] or "empty",
)
def test_obvious_garbage_rejected(data):
    check_hostile(data, must_reject=True)


@pytest.mark.parametrize("depth", [100, 1000, 100_000])
def test_deeply_nested_msgpack_rejected(depth):
    check_hostile(PREFIX + b"\x91" * depth + b"\xc0", must_reject=True)
    check_hostile(PREFIX + b"\x93\x90\x90\x91" + b"\x91" * depth + b"\xc0", must_reject=True)


def test_prefix_only_and_trailing_garbage_rejected():
    check_hostile(PREFIX, must_reject=True)
    check_hostile(FULL + b"\x00", must_reject=True)
    check_hostile(FULL + FULL)


def test_non_bytes_rejected():
    recv = receiver()
    before = recv.get_update()
    for bad in ("text", None, 123, [FULL]):
        with pytest.raises((TypeError, DecodeError)):
            recv.apply_update(bad)
    assert recv.get_update() == before


def test_bytearray_and_memoryview_of_valid_update():
    for wrap in (bytearray, memoryview):
        recv = receiver()
        try:
            recv.apply_update(wrap(FULL))
        except TypeError:
            continue  # bytes-only is acceptable
        assert snapshot(recv) == EXPECTED_AFTER_FULL


@given(st.lists(st.one_of(valid_updates, st.binary(max_size=40)), min_size=1, max_size=4))
@settings(max_examples=budget(40))
def test_merge_updates_garbage(parts):
    if all(p in VALID for p in parts):
        merged = crdtsync.merge_updates(parts)
        recv = receiver()
        recv.apply_update(merged)
        return
    try:
        merged = crdtsync.merge_updates(parts)
    except DecodeError:
        return
    # garbage that happened to decode: the result must itself be a valid update or rejectable
    check_hostile(merged)


def test_merge_updates_rejects_truncated():
    with pytest.raises(DecodeError):
        crdtsync.merge_updates([FULL, FULL[:-3]])


@given(st.binary(max_size=64))
@settings(max_examples=budget(60))
def test_version_vector_decode_garbage(data):
    try:
        v = crdtsync.VersionVector.decode(data)
    except DecodeError:
        return
    assert isinstance(v, crdtsync.VersionVector)


@given(st.data())
@settings(max_examples=budget(60))
def test_version_vector_decode_mutated(data):
    enc = SRC.version.encode()
    buf = bytearray(enc)
    i = data.draw(st.integers(0, len(buf) - 1))
    buf[i] ^= 1 << data.draw(st.integers(0, 7))
    cut = data.draw(st.integers(0, len(buf)))
    try:
        v = crdtsync.VersionVector.decode(bytes(buf[:cut]))
    except DecodeError:
        return
    assert isinstance(v, crdtsync.VersionVector)
    assert all(isinstance(k, int) and 0 <= k < 2**64 for k in v)


def test_delete_naming_another_containers_elements_is_ignored():
    """A DEL whose range covers a multi-element run of another container ends promptly and
    deletes nothing (regression: the skip-ahead used to loop forever)."""
    doc = crdtsync.Doc(1)
    doc.list("l").extend([1, 2, 3])
    doc.text("t").insert(0, "abc")
    forged = crdtsync.Doc(2)
    forged.apply_update(doc.get_update())
    # A delete by replica 2 on the text, naming ids 1..6 of replica 1: 1..3 are list items.
    with guarded(5):
        text = forged.text("t")
        rec = Recorder(forged)
        text.delete(0, 3)
        (update,) = rec.take()
    body = msgpack.unpackb(update[2:])
    body[2][0][-1] = [body[0].index(1), 1, 6]  # widen the range to cover the list's ids
    hostile = update[:2] + msgpack.packb(body)
    with guarded(5):
        doc.apply_update(hostile)
    assert str(doc.text("t")) == ""
    assert list(doc.list("l")) == [1, 2, 3]


def test_delete_of_later_elements_of_its_own_replica_still_reencodes():
    """An update whose delete names elements its own replica inserts later in the same
    update is causally odd but self-consistent, so it is taken; the document must still
    write a state that loads (regression: the deleter was written as a negative offset)."""
    root = ("t", "t")
    forged = crdtsync._encoding.Update(
        [
            crdtsync._encoding.Segment(
                7,
                1,
                4,
                [
                    (crdtsync._encoding.DEL, 1, root, [(7, 2, 2)]),
                    (crdtsync._encoding.INS, 2, root, 2, None, "ab", 2, None),
                ],
            )
        ]
    )
    doc = crdtsync.Doc(1)
    doc.apply_update(crdtsync._encoding.encode_update(forged))
    assert str(doc.text("t")) == ""
    copy = fresh_from(doc.get_update())
    assert copy.version == doc.version and str(copy.text("t")) == ""
