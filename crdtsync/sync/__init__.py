"""Synchronisation: sans-I/O sessions, rooms on one connection, and presence.

``SyncSession(doc)`` turns a document into bytes to send and takes bytes received; the
transport (WebSockets, TCP, Redis, a test's simulated network) only carries them.
docs/protocol.md specifies the messages.
"""

from crdtsync._errors import ProtocolError
from crdtsync.sync._outbox import SharedOutbox
from crdtsync.sync.awareness import DEFAULT_PRESENCE_TIMEOUT, Presence, PresenceChange
from crdtsync.sync.hub import SyncHub
from crdtsync.sync.messages import PROTOCOL_VERSION
from crdtsync.sync.session import DEFAULT_MAX_MESSAGE_SIZE, SyncSession

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_PRESENCE_TIMEOUT",
    "PROTOCOL_VERSION",
    "Presence",
    "PresenceChange",
    "ProtocolError",
    "SharedOutbox",
    "SyncHub",
    "SyncSession",
]
