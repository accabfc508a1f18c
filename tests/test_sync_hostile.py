"""Hostile sync messages: random bytes, mutated valid messages, msgpack-level field edits.

``SyncSession.receive`` must either take a message or raise ``ProtocolError`` (a
``DecodeError``, a ``ValueError``), and when it raises, the session and its document must be
exactly as before. "Exactly" is checked against a twin: every test builds the same scene twice
(everything is deterministic), feeds the hostile message to one copy only, then finishes the
exchange on both; the messages they send and the states they reach must be byte-identical.

A mutation can also produce a valid message (a flipped bit inside a string, another transfer
id); the session may take it, but must stay consistent and keep raising nothing but
``ProtocolError`` afterwards.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field
from typing import Any

import msgpack
import pytest
from crdt_helpers import budget
from hypothesis import assume, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync import ProtocolError
from crdtsync.sync import DEFAULT_MAX_MESSAGE_SIZE, Presence, SyncHub, SyncSession
from crdtsync.sync import messages as m
from crdtsync.testing import apply_edits, assert_converged, random_edits, snapshot

SRC, RECV = 0xA11CE, 2**64 - 2
SCENES = ("fresh", "mid-transfer", "synced")

# ---- the scene ---------------------------------------------------------------------------------


@dataclass
class Scene:
    """Sender a and receiver b, their sessions, and what is still to be delivered to b."""

    a: crdtsync.Doc
    b: crdtsync.Doc
    sa: SyncSession
    sb: SyncSession
    presence_b: Presence
    to_b: list[bytes]
    to_a: list[bytes] = field(default_factory=list)

    def observe(self) -> tuple[Any, ...]:
        return (
            self.b.get_update(),
            dict(self.b.version),
            self.b.pending,
            self.sb.peer_version,
            self.sb.synced,
            self.presence_b.states,
        )

    def finish(self, tolerate: bool = False) -> list[bytes]:
        """Deliver everything until both sides are quiet; the transcript of what was sent.

        With ``tolerate``, a ProtocolError (and nothing else) ends the exchange early."""
        transcript: list[bytes] = []
        for _ in range(200):
            if not (self.to_a or self.to_b):
                return transcript
            to_a, to_b = self.to_a, self.to_b
            self.to_a, self.to_b = [], []
            try:
                for msg in to_b:
                    self.to_a += self.sb.receive(msg)
                for msg in to_a:
                    self.to_b += self.sa.receive(msg)
            except ProtocolError:
                if tolerate:
                    return transcript
                raise
            self.to_a += self.sb.poll()
            self.to_b += self.sa.poll()
            transcript += [b"a" + x for x in self.to_a] + [b"b" + x for x in self.to_b]
        raise AssertionError("the exchange did not go quiet")


def build(scene: str) -> Scene:
    a, b = crdtsync.Doc(SRC), crdtsync.Doc(RECV, gc=False)
    apply_edits(a, random_edits(random.Random(1), 400))
    apply_edits(b, random_edits(random.Random(2), 30))
    pa, pb = Presence(SRC), Presence(RECV)
    pa.set_local({"name": "a", "cursor": [1, 2]})
    pb.set_local({"name": "b"})
    # small messages: the diff is a transfer of many parts
    sa = SyncSession(a, presence=pa, max_message_size=256)
    sb = SyncSession(b, presence=pb, max_message_size=256)
    s = Scene(a, b, sa, sb, pb, to_b=sa.start(), to_a=sb.start())
    if scene == "fresh":
        return s
    s.to_b += [r for msg in s.to_a for r in sa.receive(msg)]  # a's HELLO, presence, DIFF
    s.to_a = []
    if scene == "mid-transfer":
        half = len(s.to_b) // 2
        for msg in s.to_b[:half]:
            s.to_a += sb.receive(msg)
        s.to_b = s.to_b[half:]
        assert sb._transfers, "the scene should hold part of a transfer"
        return s
    s.finish()
    assert_converged([a, b])
    apply_edits(a, random_edits(random.Random(3), 25))
    pa.set_local({"name": "a", "cursor": [5, 5]})
    s.to_b = sa.poll()
    return s


def _corpus() -> list[bytes]:
    """Every kind of message a session sends, from a full exchange plus later edits."""
    out: list[bytes] = []
    for scene in SCENES:
        s = build(scene)
        out += s.to_b + s.to_a
        out += [x[1:] for x in s.finish()]
    out.append(m.encode_message(m.Room("doc", out[0])))
    out.append(m.encode_message(m.Refused("doc", "no such room")))
    big = crdtsync.Doc(SRC)
    big.text("t").insert(0, "".join(random.Random(4).choice("abcdefgh") for _ in range(3000)))
    out.append(m.encode_message(m.Diff(big.get_update(), {SRC: 3000}, m.Transfer(0, 0, 1))))
    kinds = {m.decode_message(x).__class__ for x in out}
    assert kinds == {m.Hello, m.Diff, m.UpdateMessage, m.Ack, m.Awareness, m.Room, m.Refused}
    return list(dict.fromkeys(out))


CORPUS = _corpus()
# a valid update from another history: forged changes under the sender's replica id
_forger = crdtsync.Doc(SRC)
apply_edits(_forger, random_edits(random.Random(9), 20))
FORGED = [_forger.get_update(), _forger.get_update({SRC: 5})]


# ---- the check ---------------------------------------------------------------------------------


def check(scene: str, message: Any) -> bool:
    """Feed ``message`` to a fresh scene's receiver and check the outcome; True if taken."""
    s, twin = build(scene), build(scene)
    before = s.observe()
    try:
        s.sb.receive(message)
    except ProtocolError:
        assert s.observe() == before, "a rejected message changed the session or the document"
        assert s.finish() == twin.finish(), "a rejected message changed what the session does"
        assert s.observe() == twin.observe()
        _event("rejected")
        return False
    except Exception as exc:  # pragma: no cover - a failure
        raise AssertionError(f"{type(exc).__name__} instead of ProtocolError: {exc}") from exc
    # taken: the receiver must still be consistent and fail only with ProtocolError
    _event("taken")
    s.finish(tolerate=True)
    copy = crdtsync.Doc(1)
    copy.apply_update(s.b.get_update())
    assert_converged_values(copy, s.b)
    return True


def _event(label: str) -> None:
    if currently_in_test_context():  # hypothesis statistics: how many were taken
        event(label)


def assert_converged_values(x: crdtsync.Doc, y: crdtsync.Doc) -> None:
    assert snapshot(x) == snapshot(y)


# ---- byte-level hostility ----------------------------------------------------------------------


@settings(max_examples=budget(60))
@given(scene=st.sampled_from(SCENES), data=st.binary(max_size=200))
def test_random_bytes(scene, data):
    assert not check(scene, data), "random bytes were taken as a message"


@settings(max_examples=budget(60))
@given(scene=st.sampled_from(SCENES), data=st.binary(max_size=200))
def test_random_bytes_after_the_prefix(scene, data):
    check(scene, m.PREFIX + data)


def _mutate(data: bytes, draw: Any) -> bytes:
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "splice", "byte"]))
    buf = bytearray(data)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << draw(st.integers(0, 7))
        return bytes(buf)
    if kind == "truncate":
        return bytes(buf[: draw(st.integers(0, len(buf) - 1))])
    if kind == "insert":
        i = draw(st.integers(0, len(buf)))
        return bytes(buf[:i] + draw(st.binary(min_size=1, max_size=8)) + buf[i:])
    if kind == "delete":
        i = draw(st.integers(0, len(buf) - 1))
        return bytes(buf[:i] + buf[i + draw(st.integers(1, 16)) :])
    if kind == "splice":
        other = draw(st.sampled_from(CORPUS))
        return bytes(
            buf[: draw(st.integers(0, len(buf)))] + other[draw(st.integers(0, len(other))) :]
        )
    i = draw(st.integers(0, len(buf) - 1))
    buf[i] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xC0, 0xC1, 0xC2, 0xDC, 0xDE, 0xFF]))
    return bytes(buf)


@settings(max_examples=budget(250))
@given(scene=st.sampled_from(SCENES), message=st.sampled_from(CORPUS), data=st.data())
def test_mutated_messages(scene, message, data):
    mutated = _mutate(message, data.draw)
    assume(mutated != message)
    check(scene, mutated)


# ---- msgpack-level field mutations ---------------------------------------------------------

BOUNDARY_INTS = [-(2**63), -1, 0, 1, 2, 6, 7, 2**16, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]
weird = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from(BOUNDARY_INTS),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(),
        st.text(max_size=6),
        st.binary(max_size=6),
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.one_of(st.integers(-2, 2**64 - 1), st.text(max_size=2)), inner, max_size=3
        )
    ),
    max_leaves=5,
)
bad_versions = st.dictionaries(
    st.one_of(st.sampled_from([-1, 0, SRC, RECV, 2**64 - 1]), st.text(max_size=2), st.none()),
    st.one_of(
        st.sampled_from([-1, 0, 1, 2**31, 2**63 - 1, 2**63, 2**64 - 1]), st.floats(), st.booleans()
    ),
    max_size=3,
)


def _body(message: bytes) -> list[Any]:
    body = msgpack.unpackb(message[2:], raw=False, strict_map_key=False)
    assert isinstance(body, list)
    return body


def _pack(body: Any) -> bytes:
    try:
        return m.PREFIX + msgpack.packb(body)
    except (OverflowError, TypeError, ValueError):
        assume(False)
        raise


@settings(max_examples=budget(250))
@given(scene=st.sampled_from(SCENES), message=st.sampled_from(CORPUS), data=st.data())
def test_field_mutations(scene, message, data):
    body = _body(message)
    op = data.draw(
        st.sampled_from(["replace", "drop", "append", "type", "version", "vv", "update"])
    )
    i = data.draw(st.integers(0, len(body) - 1))
    if op == "replace":
        body[i] = data.draw(weird)
    elif op == "drop":
        del body[i]
    elif op == "append":
        body.append(data.draw(weird))
    elif op == "type":
        body[1] = data.draw(st.one_of(st.integers(-1, 8), weird))
    elif op == "version":
        body[0] = data.draw(st.one_of(st.sampled_from([0, 2, 1.0, True, "1"]), weird))
    elif op == "vv":
        # a version vector field (HELLO, ACK: 2; DIFF: 3), or any field, gets a bad map
        where = {m.MessageType.HELLO: 2, m.MessageType.ACK: 2, m.MessageType.DIFF: 3}
        body[where.get(body[1], i)] = data.draw(bad_versions)
    else:
        # the update inside a DIFF / UPDATE (field 2): mutated bytes, or a forged valid update
        j = 2 if body[1] in (m.MessageType.DIFF, m.MessageType.UPDATE) else i
        inner = body[j] if isinstance(body[j], bytes) and body[j] else FORGED[0]
        body[j] = data.draw(st.one_of(st.sampled_from(FORGED), st.just(_mutate(inner, data.draw))))
    check(scene, _pack(body))


@settings(max_examples=budget(40))
@given(
    scene=st.sampled_from(SCENES),
    transfer=st.sampled_from([0, 1, 2, 2**32 - 1]),
    index=st.sampled_from([0, 1, 5, 2**16, 2**32 - 1]),
    count=st.sampled_from([1, 2, 6, 2**16, 2**16 + 1, 2**32 - 1]),
    forged=st.sampled_from(FORGED),
    diff=st.booleans(),
)
def test_forged_transfer_parts(scene, transfer, index, count, forged, diff):
    """Valid-looking parts of transfers that never complete, or complete with the wrong
    parts, or announce more parts than the limit."""
    part = (transfer, index, count)
    if diff:
        body = [1, m.MessageType.DIFF, forged, {SRC: 3}, *part]
    else:
        body = [1, m.MessageType.UPDATE, forged, *part]
    check(scene, _pack(body))


# ---- specific cases ------------------------------------------------------------------------------


@pytest.mark.parametrize("scene", SCENES)
@pytest.mark.parametrize(
    "message",
    [
        None,
        "\xc1S",
        12,
        [b"\xc1S"],
        b"",
        b"\xc1",
        m.PREFIX,
        m.PREFIX + msgpack.packb([1]),
        m.PREFIX + msgpack.packb([1, 0, {}, True]) + b"\x00",  # trailing bytes
        m.PREFIX + msgpack.packb([1, 0, {}, 1]),  # wants_hello must be a bool
        m.PREFIX + msgpack.packb([1, 0, {True: 1}, True]),
        m.PREFIX + msgpack.packb([1, 3, {1: -1}]),
        m.PREFIX + msgpack.packb([1, 3, {-1: 1}]),
        m.PREFIX + msgpack.packb([1, 2, b"", 0, 0, 1]),
        m.PREFIX + msgpack.packb([1, 2, FORGED[0], 0, 1, 1]),  # index beyond count
        m.PREFIX + msgpack.packb([1, 2, FORGED[0], 0, 0, 0]),
        m.PREFIX + msgpack.packb([1, 2, FORGED[0], 0, 0, 2**16 + 1]),  # too many parts
        m.PREFIX + msgpack.packb([1, 2, FORGED[0], -1, 0, 1]),
        m.PREFIX + msgpack.packb([1, 6, [[1, 2]]]),
        m.PREFIX + msgpack.packb([1, 6, [[1, -2, None]]]),
        m.PREFIX + msgpack.packb([1, 6, [[-(2**63), 2, None]]]),
        m.PREFIX + msgpack.packb([1, 4, "room", b"x"]),  # for a hub
        m.PREFIX + msgpack.packb([1, 5, "room", "reason"]),
        m.PREFIX + msgpack.packb([1, 9]),
        m.PREFIX + msgpack.packb([2, 0, {}, True]),  # a future protocol version
        m.PREFIX + msgpack.packb([1, 0, msgpack.ExtType(1, b"x"), True]),
        m.PREFIX + b"\x91" * 5000 + b"\x90",  # deeply nested arrays
        m.PREFIX + b"\xdd\xff\xff\xff\xff",  # an array claiming 4 billion items
        m.PREFIX + b"\xdb\xff\xff\xff\xff",  # a str claiming 4 GiB
    ],
    ids=lambda x: repr(x)[:40],
)
def test_known_bad_messages(scene, message):
    assert not check(scene, message)


def test_oversized_message():
    doc = crdtsync.Doc(RECV)
    doc.text("t").insert(0, "kept")
    session = SyncSession(doc, max_incoming_size=512)
    session.start()
    big = m.encode_message(m.UpdateMessage(FORGED[0] + b"\x00" * 600, m.Transfer(0, 0, 1)))
    state = (doc.get_update(), doc.version, session.peer_version, session.synced)
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        session.receive(big)
    assert (doc.get_update(), doc.version, session.peer_version, session.synced) == state
    assert SyncSession(crdtsync.Doc()).max_incoming_size >= 2 * DEFAULT_MAX_MESSAGE_SIZE


def test_buffers_are_taken_like_bytes():
    for scene in SCENES:
        s, twin = build(scene), build(scene)
        s.to_b = [bytearray(x) if i % 2 else memoryview(x) for i, x in enumerate(s.to_b)]
        assert s.finish() == twin.finish()
        assert s.observe() == twin.observe()


def test_malformed_diff_leaves_peer_version_alone():
    # (a DIFF's version vector used to be merged before its update was validated)
    body = [1, m.MessageType.DIFF, b"not an update", {SRC: 10**6}, 0, 0, 1]
    assert not check("fresh", _pack(body))


def test_hub_rejects_without_opening_rooms():
    opened = []

    def open_room(name: str) -> crdtsync.Doc:
        opened.append(name)
        return crdtsync.Doc(RECV)

    hub = SyncHub(open_room=open_room)
    with pytest.raises(ProtocolError):
        hub.receive(m.encode_message(m.Room("doc", b"garbage")))
    assert hub.sessions == {} and opened == []


@settings(max_examples=budget(60))
@given(message=st.sampled_from(CORPUS), data=st.data())
def test_hub_raises_only_protocol_errors(message, data):
    docs: dict[str, crdtsync.Doc] = {}
    hub = SyncHub(open_room=lambda name: docs.setdefault(name, crdtsync.Doc(RECV)))
    wrapped = m.encode_message(m.Room("doc", message))
    hostile = _mutate(data.draw(st.sampled_from([wrapped, message])), data.draw)
    with contextlib.suppress(ProtocolError):
        hub.receive(hostile)
