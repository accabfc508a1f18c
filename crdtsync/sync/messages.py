"""Sync protocol messages, version 1: the one module of the protocol that knows bytes.

Every message is ``b"\\xc1S"`` (0xC1 is never used by msgpack; ``S`` for sync) followed by
a msgpack array whose first item is the protocol version (1) and second the message type.
docs/protocol.md gives every field and the state machine around them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack

from crdtsync._clock import MAX_CLOCK, MAX_REPLICA_ID
from crdtsync._encoding import unpack_bounded
from crdtsync._errors import ProtocolError
from crdtsync._values import encodable, is_value

__all__ = [
    "Ack",
    "Awareness",
    "Diff",
    "Hello",
    "Message",
    "MessageType",
    "PROTOCOL_VERSION",
    "Refused",
    "Room",
    "UpdateMessage",
    "decode_message",
    "encode_message",
]

PREFIX = b"\xc1S"
PROTOCOL_VERSION = 1

#: Room names are short identifiers (like URL paths), not payloads.
MAX_ROOM_NAME = 256


class MessageType(IntEnum):
    HELLO = 0  # my version vector; send me what I lack
    DIFF = 1  # the answer to HELLO: exactly what the asker lacked (maybe in parts)
    UPDATE = 2  # changes since the last poll (maybe in parts)
    ACK = 3  # my version vector, after integrating what you sent
    ROOM = 4  # a message for one room (document) on a shared connection
    REFUSED = 5  # this room is not available to you
    AWARENESS = 6  # presence states


@dataclass(frozen=True)
class Hello:
    version: dict[int, int]
    #: True when the sender also wants the receiver's HELLO (a connection opening); False
    #: for a request that only asks for what the sender lacks (gap repair).
    wants_hello: bool


@dataclass(frozen=True)
class Transfer:
    """Which part of a split update this is. Parts of one transfer share ``transfer``."""

    transfer: int
    index: int
    count: int


@dataclass(frozen=True)
class Diff:
    update: bytes
    version: dict[int, int]  # the sender's version when it computed the diff
    part: Transfer


@dataclass(frozen=True)
class UpdateMessage:
    update: bytes
    part: Transfer


@dataclass(frozen=True)
class Ack:
    version: dict[int, int]


@dataclass(frozen=True)
class Room:
    room: str
    message: bytes


@dataclass(frozen=True)
class Refused:
    room: str
    reason: str


@dataclass(frozen=True)
class Awareness:
    #: (replica, clock, state or None for "left")
    states: list[tuple[int, int, Any]]


Message = Hello | Diff | UpdateMessage | Ack | Room | Refused | Awareness


def _vv(version: dict[int, int]) -> dict[int, int]:
    return {r: c for r, c in version.items() if c}


def encode_message(message: Message) -> bytes:
    """Bytes for the wire."""
    m = message
    body: list[Any]
    if isinstance(m, Hello):
        body = [MessageType.HELLO, _vv(m.version), m.wants_hello]
    elif isinstance(m, Diff):
        p = m.part
        body = [MessageType.DIFF, m.update, _vv(m.version), p.transfer, p.index, p.count]
    elif isinstance(m, UpdateMessage):
        p = m.part
        body = [MessageType.UPDATE, m.update, p.transfer, p.index, p.count]
    elif isinstance(m, Ack):
        body = [MessageType.ACK, _vv(m.version)]
    elif isinstance(m, Room):
        body = [MessageType.ROOM, m.room, m.message]
    elif isinstance(m, Refused):
        body = [MessageType.REFUSED, m.room, m.reason]
    else:
        body = [MessageType.AWARENESS, [list(s) for s in m.states]]
    packed: bytes = msgpack.packb([PROTOCOL_VERSION, *body])
    return PREFIX + packed


def _fail(why: str) -> ProtocolError:
    return ProtocolError(f"malformed sync message: {why}")


def _version(raw: Any) -> dict[int, int]:
    if type(raw) is not dict:
        raise _fail("a version vector is a map")
    for r, c in raw.items():
        if type(r) is not int or not 0 <= r <= MAX_REPLICA_ID:
            raise _fail("replica ids are unsigned 64-bit ints")
        if type(c) is not int or not 0 <= c <= MAX_CLOCK:
            raise _fail("counters are non-negative ints")  # below the clock ceiling
    return raw


def _count(raw: Any, lo: int, what: str) -> int:
    if type(raw) is not int or not lo <= raw < 2**32:
        raise _fail(f"{what} out of range")
    return raw


def _part(transfer: Any, index: Any, count: Any) -> Transfer:
    count = _count(count, 1, "part count")
    index = _count(index, 0, "part index")
    if index >= count:
        raise _fail("part index beyond part count")
    return Transfer(_count(transfer, 0, "transfer id"), index, count)


def check_room(raw: Any) -> str:
    """The room name, or ProtocolError (a ValueError) if it is not a valid one."""
    return _room(raw)


def _room(raw: Any) -> str:
    if type(raw) is not str or not raw or len(raw) > MAX_ROOM_NAME or not encodable(raw):
        raise _fail(f"a room name is a non-empty str of at most {MAX_ROOM_NAME} characters")
    return raw


def decode_message(
    data: Any, max_size: int | None = None, *, max_states: int | None = None
) -> Message:
    """Parse and validate a message; :class:`ProtocolError` on anything else, including an
    AWARENESS message of more than ``max_states`` states (refused before any is looked
    at: validating each costs time)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(f"a sync message is bytes, not {type(data).__name__}")
    data = bytes(data)
    if max_size is not None and len(data) > max_size:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the limit of {max_size}")
    if data[:2] != PREFIX:
        raise ProtocolError("not a crdtsync sync message (bad magic)")
    try:
        body = unpack_bounded(memoryview(data)[2:])
    except Exception as exc:  # msgpack raises several unrelated types
        raise _fail(f"{type(exc).__name__}: {exc}") from None
    if type(body) is not list or len(body) < 2:
        raise _fail("expected [version, type, ...]")
    if body[0] != PROTOCOL_VERSION or type(body[0]) is not int:
        raise ProtocolError(f"unsupported protocol version {body[0]!r}")
    kind, fields = body[1], body[2:]
    if type(kind) is not int:
        raise _fail("message type must be an int")
    n = len(fields)
    if kind == MessageType.HELLO and n == 2 and type(fields[1]) is bool:
        return Hello(_version(fields[0]), fields[1])
    if kind == MessageType.DIFF and n == 5 and type(fields[0]) is bytes:
        return Diff(fields[0], _version(fields[1]), _part(*fields[2:5]))
    if kind == MessageType.UPDATE and n == 4 and type(fields[0]) is bytes:
        return UpdateMessage(fields[0], _part(*fields[1:4]))
    if kind == MessageType.ACK and n == 1:
        return Ack(_version(fields[0]))
    if kind == MessageType.ROOM and n == 2 and type(fields[1]) is bytes:
        return Room(_room(fields[0]), fields[1])
    if kind == MessageType.REFUSED and n == 2 and type(fields[1]) is str:
        return Refused(_room(fields[0]), fields[1])
    if kind == MessageType.AWARENESS and n == 1 and type(fields[0]) is list:
        if max_states is not None and len(fields[0]) > max_states:
            raise ProtocolError(
                f"{len(fields[0])} presence states in one message (at most {max_states})"
            )
        states = []
        for raw in fields[0]:
            if type(raw) is not list or len(raw) != 3:
                raise _fail("an awareness state is [replica, clock, state]")
            replica, clock, state = raw
            if type(replica) is not int or not 0 <= replica <= MAX_REPLICA_ID:
                raise _fail("replica ids are unsigned 64-bit ints")
            if type(clock) is not int or not 0 <= clock < 2**63:
                raise _fail("awareness clocks are non-negative ints")
            if not is_value(state):
                raise _fail("unsupported awareness state value")
            states.append((replica, clock, state))
        return Awareness(states)
    raise _fail(f"unknown message type {kind} or wrong fields")
