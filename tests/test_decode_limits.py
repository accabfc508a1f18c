"""What one update may cost to decode: the inflated-size limit and msgpack's length limits.

A compressed update inflates to at most ``max_inflated_size`` bytes (64 MiB by default for
``decode_update``/``apply_update``; a sync session passes its incoming message limit), and
msgpack refuses any str, bin, array or map header longer than the bytes that follow could
hold, so decoding costs memory and time proportional to the limit, never to what the bytes
claim. ``benchmarks/bomb.py`` gives the figures.
"""

from __future__ import annotations

import tracemalloc
import zlib

import pytest
from crdt_helpers import budget
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync import DecodeError, ProtocolError
from crdtsync import _encoding as enc
from crdtsync._merge import split_update
from crdtsync.sync import SyncSession
from crdtsync.sync import messages as m

MIB = 1 << 20


def bomb(size: int) -> bytes:
    """A compressed update whose body ``[[], [], [0, 0, ...]]`` inflates to ``size`` bytes."""
    n = size - 8
    deflater = zlib.compressobj(9)
    parts = [deflater.compress(b"\x93\x90\x90\xdd" + n.to_bytes(4, "big"))]
    while n > 0:
        parts.append(deflater.compress(bytes(min(n, MIB))))
        n -= MIB
    parts.append(deflater.flush())
    return b"\xc1\x02" + b"".join(parts)


def peak_bytes(fn: object) -> int:
    """Peak Python allocation while ``fn()`` runs (it must raise DecodeError)."""
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            fn()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_bomb_is_refused_after_inflating_no_more_than_the_limit() -> None:
    data = bomb(32 * MIB)  # ~33 KB compressed
    assert len(data) < 64 * 1024
    doc = crdtsync.Doc(1)
    doc.text("t").insert(0, "kept")
    before = doc.get_update()
    with pytest.raises(DecodeError, match="inflates beyond the limit of 1048576 bytes"):
        doc.apply_update(data, max_inflated_size=MIB)
    assert doc.get_update() == before
    # Memory follows the limit, not the bomb (32 MiB inflated, 256 MiB as a list).
    assert peak_bytes(lambda: enc.decode_update(data, MIB)) < 4 * MIB
    assert peak_bytes(lambda: crdtsync.Doc().apply_update(data, max_inflated_size=MIB)) < 4 * MIB


def test_the_default_limit_is_64_mib() -> None:
    assert enc.DEFAULT_MAX_INFLATED_SIZE == 64 * MIB
    with pytest.raises(DecodeError, match="inflates beyond the limit of 67108864 bytes"):
        crdtsync.Doc().apply_update(bomb(64 * MIB + 1))


def test_none_lifts_the_limit_for_trusted_bytes() -> None:
    doc = crdtsync.Doc(1)
    doc.text("t").insert(0, "z" * (3 * MIB))
    state = doc.get_update()
    assert len(state) < MIB // 8
    with pytest.raises(DecodeError):
        crdtsync.Doc(2).apply_update(state, max_inflated_size=MIB)
    fresh = crdtsync.Doc(2)
    fresh.apply_update(state, max_inflated_size=None)
    assert len(fresh.text("t")) == 3 * MIB


def test_an_update_just_within_the_limit_is_decoded() -> None:
    doc = crdtsync.Doc(1)
    doc.text("t").insert(0, "the same words again and again " * 2000)
    state = doc.get_update()
    assert state[:2] == b"\xc1\x02"
    size = 2 + len(zlib.decompress(state[2:]))
    fresh = crdtsync.Doc(2)
    with pytest.raises(DecodeError):
        fresh.apply_update(state, max_inflated_size=size - 3)
    assert fresh.version == {}
    fresh.apply_update(state, max_inflated_size=size - 2)  # the body, without the prefix
    assert str(fresh.text("t")) == str(doc.text("t"))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "64"])
def test_the_limit_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(TypeError):
        crdtsync.Doc().apply_update(crdtsync.Doc().get_update(), max_inflated_size=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "header",
    [
        b"\xdd\xff\xff\xff\xff",  # an array of 4G items
        b"\xdf\xff\xff\xff\xff",  # a map of 4G entries
        b"\xdb\xff\xff\xff\xff",  # a str of 4 GB
        b"\xc6\xff\xff\xff\xff",  # a bin of 4 GB
        b"\xdd\x00\x10\x00\x00",  # 1M items, with 10 bytes behind the header
        b"\xc9\x00\x00\x00\x05\x01",  # an extension type
    ],
)
def test_length_headers_beyond_the_bytes_are_refused_before_allocating(header: bytes) -> None:
    for data in (
        b"\xc1\x01\x93\x90\x90" + header + bytes(10),
        b"\xc1\x02" + zlib.compress(b"\x93\x90\x90" + header + bytes(10)),
    ):
        assert peak_bytes(lambda d=data: enc.decode_update(d)) < MIB  # type: ignore[misc]
    with pytest.raises(ProtocolError):
        m.decode_message(b"\xc1S\x93\x01\x03" + header + bytes(10))  # an ACK
    with pytest.raises(DecodeError):
        crdtsync.VersionVector.decode(b"\xc1\x01" + header + bytes(10))


def update_message(update: bytes) -> bytes:
    return m.encode_message(m.UpdateMessage(update, m.Transfer(0, 0, 1)))


def test_a_session_refuses_a_bomb_by_its_incoming_limit() -> None:
    doc = crdtsync.Doc(1)
    doc.text("t").insert(0, "kept")
    session = SyncSession(doc, max_incoming_size=256 * 1024)
    session.start()
    msg = update_message(bomb(32 * MIB))
    before = doc.get_update()

    def receive() -> None:
        session.receive(msg)

    assert peak_bytes(receive) < 2 * MIB  # ProtocolError is a DecodeError
    assert doc.get_update() == before


def repetitive_state(n: int) -> bytes:
    doc = crdtsync.Doc(1)
    doc.text("t").insert(0, "ab" * n)
    doc.list("l").extend([0] * n)
    state = doc.get_update()
    assert state[:2] == b"\xc1\x02"
    return state


def test_split_parts_fit_the_limit_inflated() -> None:
    # 40 KB of state compresses below 1 KB: sent whole it would inflate far beyond a
    # receiver's 2 KB limit, so it is cut by its inflated size.
    state = repetitive_state(10_000)
    assert len(state) < 2048
    parts = split_update(state, 2048)
    assert len(parts) > 10
    fresh = crdtsync.Doc(2)
    for part in parts:
        assert len(part) <= 2048
        enc.decode_update(part, 2048)
        fresh.apply_update(part, max_inflated_size=2048)
    assert str(fresh.text("t")) == "ab" * 10_000 and len(fresh.list("l")) == 10_000


@settings(max_examples=budget(20))
@given(n=st.integers(1, 3000), limit=st.sampled_from([256, 1024, 4096]))
def test_two_sessions_level_a_compressible_state_through_small_limits(n: int, limit: int) -> None:
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.text("t").insert(0, "xy" * n)
    # Incoming limits of twice the outgoing size, as the relay sets them.
    sa = SyncSession(a, max_message_size=limit, max_incoming_size=2 * limit)
    sb = SyncSession(b, max_message_size=limit, max_incoming_size=2 * limit)
    to_a, to_b = sb.start(), sa.start()
    for _ in range(10_000):
        if not (to_a or to_b):
            break
        to_a, to_b = (
            [r for msg in to_b for r in sb.receive(msg)] + sb.poll(),
            [r for msg in to_a for r in sa.receive(msg)] + sa.poll(),
        )
    assert str(b.text("t")) == "xy" * n
    assert sa.synced and sb.synced
