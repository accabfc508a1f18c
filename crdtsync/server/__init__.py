"""The relay server behind ``crdtsync serve``: rooms, storage, access control, limits.

- :class:`Relay`: rooms (a server-side :class:`~crdtsync.Doc` each) and the connections
  synced with them; transports hand it their connections.
- :class:`SQLiteStorage` (the default: one SQLite file, WAL), :class:`PostgresStorage` (a
  PostgreSQL database that processes on several hosts share) and :class:`MemoryStorage`.
- :class:`TokenFile` and :func:`allow_all`: ``authenticate(token, room)`` hooks.
- :class:`Limits`: message size, rate, send queue, rooms per connection, connections.
- :mod:`crdtsync.server.app`: the process (``crdtsync serve``): signals, health, logging,
  Redis (:mod:`crdtsync.server.redis_bridge`).

docs/server.md covers deployment. Names are imported on first use, so that
``crdtsync --help`` does not load the relay.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crdtsync.server.auth import Access, Authenticator, TokenFile, allow_all
    from crdtsync.server.limits import Limits, TokenBucket
    from crdtsync.server.postgres import PostgresStorage
    from crdtsync.server.relay import (
        ChangeEvent,
        MapWrite,
        QuotaExceeded,
        Rejected,
        Relay,
        Room,
        ValidateEvent,
    )
    from crdtsync.server.storage import MemoryStorage, SQLiteStorage, Storage

_WHERE = {
    "Access": "auth",
    "Authenticator": "auth",
    "TokenFile": "auth",
    "allow_all": "auth",
    "Limits": "limits",
    "TokenBucket": "limits",
    "ChangeEvent": "relay",
    "MapWrite": "relay",
    "QuotaExceeded": "relay",
    "Rejected": "relay",
    "Relay": "relay",
    "Room": "relay",
    "ValidateEvent": "relay",
    "MemoryStorage": "storage",
    "PostgresStorage": "postgres",
    "SQLiteStorage": "storage",
    "Storage": "storage",
}

__all__ = [
    "Access",
    "Authenticator",
    "ChangeEvent",
    "MapWrite",
    "QuotaExceeded",
    "Rejected",
    "ValidateEvent",
    "Limits",
    "MemoryStorage",
    "PostgresStorage",
    "Relay",
    "Room",
    "SQLiteStorage",
    "Storage",
    "TokenBucket",
    "TokenFile",
    "allow_all",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'crdtsync.server' has no attribute {name!r}")
    return getattr(importlib.import_module(f"crdtsync.server.{module}"), name)
