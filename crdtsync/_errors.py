"""Exceptions raised by crdtsync.

Every error a peer can provoke with bad bytes is a subclass of :class:`ValueError`, so an
application that relays untrusted input can catch one family.
"""

from __future__ import annotations

__all__ = ["DecodeError", "PendingOverflowError", "ProtocolError"]


class DecodeError(ValueError):
    """Bytes that are not a valid update, version vector or message.

    Whatever received them (a document, a session) is left exactly as it was.

    >>> import crdtsync
    >>> try:
    ...     crdtsync.Doc().apply_update(b"not an update")
    ... except crdtsync.DecodeError as exc:
    ...     print("rejected")
    rejected
    """


class ProtocolError(DecodeError):
    """A peer broke the sync protocol (a well-formed message sent at the wrong time, or a
    message that violates a stated limit)."""


class PendingOverflowError(ValueError):
    """An update could not be buffered because the document's pending buffer is full.

    Updates whose causal dependencies are missing wait in a bounded buffer (see
    ``Doc(max_pending=...)``). When it is full the new update is refused and the document is
    unchanged; the usual remedy is a resync with ``get_update(doc.version)`` from a peer.
    """
