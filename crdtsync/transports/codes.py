"""Close codes shared by the relay, its clients and both transports.

WebSocket close codes (RFC 6455 section 7.4) where one fits; the 4000-4999 range (private
use) for the rest, numbered after the HTTP status with the same meaning. The TCP transport
sends the same numbers in its CLOSE frame.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CloseCode", "FATAL", "reason_text"]


class CloseCode(IntEnum):
    NORMAL = 1000  # the client or server is done
    GOING_AWAY = 1001  # the server is shutting down: reconnect (perhaps to another process)
    PROTOCOL_ERROR = 1002  # a transport-level protocol error (bad WebSocket or TCP frame)
    UNSUPPORTED_DATA = 1003  # a text frame: sync messages are binary
    ABNORMAL = 1006  # no close frame: the connection dropped (never sent, only reported)
    MESSAGE_TOO_BIG = 1009  # a frame above the server's maximum message size
    INTERNAL_ERROR = 1011  # a bug in the server; reconnecting may help
    TRY_AGAIN_LATER = 1013  # the client could not keep up (its send queue filled): resync
    BAD_MESSAGE = 4400  # a malformed sync message, or one the room's document rejects
    UNAUTHORIZED = 4401  # no token, or a token that gives no access to this room
    FORBIDDEN = 4403  # a read-only client tried to change the room
    BAD_ROOM = 4404  # the path is not a valid room name
    REPLICA_TAKEN = 4409  # changes under a replica id another client owns in this room
    DOCUMENT_TOO_LARGE = 4413  # an update would take the room past its document quota
    EQUIVOCATION = 4422  # a change at a dot the room holds, with other content than it holds
    TOO_MANY_CONNECTIONS = 4429  # the server holds its maximum number of connections
    # One past 4429 (HTTP has one "too many" status): the client's token has its maximum
    # number of rooms open.
    TOO_MANY_ROOMS = 4430


#: Codes after which reconnecting would only fail the same way: a client stops retrying.
FATAL = frozenset(
    {
        CloseCode.PROTOCOL_ERROR,
        CloseCode.UNSUPPORTED_DATA,
        CloseCode.MESSAGE_TOO_BIG,
        CloseCode.BAD_MESSAGE,
        CloseCode.UNAUTHORIZED,
        CloseCode.FORBIDDEN,
        CloseCode.BAD_ROOM,
        CloseCode.DOCUMENT_TOO_LARGE,
        CloseCode.EQUIVOCATION,
    }
)

#: A close reason is at most 123 bytes of UTF-8 (RFC 6455 section 5.5: control frame
#: payloads are at most 125 bytes, two of which are the code).
MAX_REASON_BYTES = 123


def reason_text(text: str) -> str:
    """``text`` cut to fit in a close frame."""
    data = text.encode("utf-8")
    if len(data) <= MAX_REASON_BYTES:
        return text
    return data[: MAX_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."
