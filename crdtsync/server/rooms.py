"""``crdtsync rooms``: inspect and manage the rooms in a server's database.

The functions here work on a :class:`~crdtsync.server.storage.SQLiteStorage` opened on the
same file ``crdtsync serve --db`` uses; they are safe while a server runs on it (WAL mode:
their reads never block the server, and their writes wait for SQLite's write lock like a
second server process would). A :class:`~crdtsync.server.postgres.PostgresStorage` on the
servers' database works the same way (its reads are MVCC snapshots; a write waits for the
room's lock like a server's append does). What a running server sees of their changes is in
docs/server.md, "Managing rooms".
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from crdtsync._doc import Doc
from crdtsync.server.storage import SQLiteStorage, build_doc

if TYPE_CHECKING:
    from crdtsync.server.postgres import PostgresStorage

__all__ = ["IMPORT_NODE", "check_room_name", "import_update", "load_doc", "to_json"]

#: The ``node`` column of the log rows ``crdtsync rooms import`` appends: never a server's
#: own node name, so a server sharing the database through Redis reads them as another
#: process's rows (see docs/server.md).
IMPORT_NODE = "crdtsync-rooms-import"


def check_room_name(name: str) -> str:
    """``name`` if a client may name the room in a WebSocket URL, else ValueError saying why
    (the server's rule: :func:`crdtsync.transports.websocket.room_from_path`)."""
    from crdtsync.transports.websocket import room_from_path

    room = room_from_path("/" + quote(name, safe="/"))
    if room is None:
        raise ValueError("a room name is not empty")
    return name


def load_doc(storage: SQLiteStorage | PostgresStorage, room: str) -> Doc:
    """The room's merged document: its snapshot and every log row after it, applied."""
    return build_doc(storage.load(room).updates, max_pending=storage.max_pending)


def import_update(storage: SQLiteStorage | PostgresStorage, room: str, update: bytes) -> int:
    """Append ``update`` to the room's log and commit it; its seq. Checks first that it
    decodes on top of the room's current state: :class:`crdtsync.DecodeError` (or
    :class:`crdtsync.PendingOverflowError`) if not, with nothing written."""
    doc = load_doc(storage, room)
    doc.apply_update(update, max_inflated_size=None)
    seq = storage.append(room, update)
    storage.commit()
    return seq


def to_json(value: Any) -> Any:
    """``Doc.to_py()`` output as JSON-ready data: sets become lists sorted by their JSON text,
    bytes become ``{"$base64": "..."}`` objects, tuples become lists."""
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, (set, frozenset)):
        items = [to_json(item) for item in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$base64": base64.b64encode(bytes(value)).decode("ascii")}
    return value
