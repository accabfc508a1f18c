"""Transports: carry :class:`~crdtsync.sync.SyncSession` messages between a client and a relay.

- :mod:`crdtsync.transports.websocket`: WebSockets (the ``websockets`` library, asyncio;
  ``pip install 'crdtsync[websocket]'``). One connection is one room: the room is the URL
  path, e.g. ``ws://localhost:8765/notes``.
- :mod:`crdtsync.transports.asyncio_stream`: plain TCP with length-prefixed frames, no
  dependency beyond the standard library.

Both give the same client (:class:`SyncClient`: keeps a :class:`~crdtsync.Doc` in sync,
reconnects with exponential backoff and jitter, and resyncs after every reconnect) and both
plug into the same relay (:mod:`crdtsync.server`). The close codes are shared too; see
:mod:`crdtsync.transports.codes` and docs/server.md.
"""

from crdtsync.transports.base import (
    ChannelClosed,
    ClientStatus,
    ConnectionRefusedByServer,
    SyncClient,
)
from crdtsync.transports.codes import CloseCode

__all__ = [
    "ChannelClosed",
    "ClientStatus",
    "CloseCode",
    "ConnectionRefusedByServer",
    "SyncClient",
]
