"""SyncHub: many documents (rooms) over one connection.

Each message travels in a ROOM envelope naming its room; the hub keeps one
:class:`SyncSession` per room and creates rooms on demand through a callback, so a server
can load a room's document, or refuse the room (the peer gets a REFUSED message).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crdtsync._doc import Doc
from crdtsync._errors import ProtocolError
from crdtsync.sync import messages as m
from crdtsync.sync.awareness import Presence
from crdtsync.sync.session import (
    DEFAULT_MAX_INCOMING_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    SyncSession,
)

__all__ = ["SyncHub", "RoomOpener", "MAX_ROOMS"]

#: A connection may hold at most this many rooms unless the hub is told otherwise.
MAX_ROOMS = 256

#: ``open_room(name)`` returns the room's Doc (or ``(doc, presence)``), or None to refuse.
RoomOpener = Callable[[str], "Doc | tuple[Doc, Presence | None] | None"]


class SyncHub:
    """Routes one connection's messages to per-room sessions.

    Client side: ``hub.join(room, doc)`` returns the messages that open the room. Server
    side: give ``open_room``; a message for an unknown room asks it for the room's document.

    >>> import crdtsync
    >>> from crdtsync.sync import SyncHub
    >>> server_docs = {"notes": crdtsync.Doc()}
    >>> server = SyncHub(open_room=server_docs.get)
    >>> client, doc = SyncHub(), crdtsync.Doc()
    >>> doc.text("t").insert(0, "hi")
    >>> to_server, to_client = client.join("notes", doc), []
    >>> while to_server or to_client:
    ...     to_client = [r for x in to_server for r in server.receive(x)] + server.poll()
    ...     to_server = [r for x in to_client for r in client.receive(x)] + client.poll()
    >>> str(server_docs["notes"].text("t"))
    'hi'
    >>> client.receive(server.receive(client.join("secret", crdtsync.Doc())[0])[0])
    []
    >>> client.refused
    {'secret': 'no such room'}
    """

    def __init__(
        self,
        open_room: RoomOpener | None = None,
        *,
        max_rooms: int = MAX_ROOMS,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self._open_room = open_room
        self.max_rooms = max_rooms
        self.max_message_size = max_message_size
        #: Larger incoming messages (envelope included) raise ProtocolError.
        self.max_incoming_size = max(DEFAULT_MAX_INCOMING_SIZE, 2 * max_message_size)
        self.sessions: dict[str, SyncSession] = {}
        #: Rooms the peer refused, with its reason.
        self.refused: dict[str, str] = {}

    def _session(self, room: str, doc: Doc, presence: Presence | None) -> SyncSession:
        if len(self.sessions) >= self.max_rooms:
            raise ProtocolError(f"more than {self.max_rooms} rooms on one connection")
        session = SyncSession(doc, presence=presence, max_message_size=self.max_message_size)
        self.sessions[room] = session
        return session

    def join(self, room: str, doc: Doc, presence: Presence | None = None) -> list[bytes]:
        """Open ``room`` on this connection, synced with ``doc``; messages to send."""
        m.check_room(room)
        if room in self.sessions:
            raise ValueError(f"room {room!r} is already open")
        self.refused.pop(room, None)
        return self._wrap(room, self._session(room, doc, presence).start())

    def leave(self, room: str) -> None:
        """Close ``room`` on this side (the peer's session just goes quiet)."""
        session = self.sessions.pop(room, None)
        if session is not None:
            session.close()

    def start(self) -> list[bytes]:
        """After a reconnect: restart every room's handshake."""
        return [x for room, s in self.sessions.items() for x in self._wrap(room, s.start())]

    def receive(self, message: bytes) -> list[bytes]:
        """Route one message; return the messages to send back."""
        msg = m.decode_message(message, self.max_incoming_size)
        if isinstance(msg, m.Refused):
            self.refused[msg.room] = msg.reason
            self.leave(msg.room)
            return []
        if not isinstance(msg, m.Room):
            raise ProtocolError("a hub takes ROOM and REFUSED messages")
        session = self.sessions.get(msg.room)
        if session is None:
            m.decode_message(msg.message, self.max_incoming_size)  # before opening anything
            if len(self.sessions) >= self.max_rooms:
                return [m.encode_message(m.Refused(msg.room, "too many rooms on this connection"))]
            opened: Any = self._open_room(msg.room) if self._open_room is not None else None
            if opened is None:
                return [m.encode_message(m.Refused(msg.room, "no such room"))]
            doc, presence = opened if isinstance(opened, tuple) else (opened, None)
            session = self._session(msg.room, doc, presence)
        return self._wrap(msg.room, session.receive(msg.message))

    def poll(self) -> list[bytes]:
        """Every room's outgoing messages."""
        return [x for room, s in self.sessions.items() for x in self._wrap(room, s.poll())]

    @property
    def synced(self) -> bool:
        """True when every room is synced."""
        return all(s.synced for s in self.sessions.values())

    def close(self) -> None:
        for room in list(self.sessions):
            self.leave(room)

    @staticmethod
    def _wrap(room: str, messages: list[bytes]) -> list[bytes]:
        return [m.encode_message(m.Room(room, x)) for x in messages]
