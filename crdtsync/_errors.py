"""Exceptions raised by crdtsync.

Every error a peer can provoke with bad bytes is a subclass of :class:`ValueError`, so an
application that relays untrusted input can catch one family.
"""

from __future__ import annotations

__all__ = ["DecodeError", "PendingOverflowError", "ProtocolError", "ReplicaIdConflict"]


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


class ReplicaIdConflict(ProtocolError):
    """Someone else holds changes under this document's replica id that it did not make.

    A :class:`ProtocolError` (and so a :class:`DecodeError`), so that code which closes a
    connection on a ProtocolError from ``SyncSession.receive`` does so here too.

    Raised before anything is integrated, so the document (and the session that received the
    message) is left exactly as it was. A replica id may be reused only together with the
    state it produced: a process that restarts without its saved state must take a fresh id
    (``Doc()`` picks a random one).

    A document whose changes under its id are all its own repairs the conflict by itself
    instead (it re-issues them under a fresh random id, see ``Doc``); this error is what it
    raises when it cannot, or when it was made with ``reissue_on_conflict=False``.

    >>> import crdtsync
    >>> old = crdtsync.Doc(replica_id=42, reissue_on_conflict=False)
    >>> old.text("t").insert(0, "hello")
    >>> restarted = crdtsync.Doc(replica_id=42, reissue_on_conflict=False)
    >>> restarted.text("t").insert(0, "X")          # offline, without the old state
    >>> try:
    ...     restarted.apply_update(old.get_update())
    ... except crdtsync.ReplicaIdConflict as exc:
    ...     print("refused:", str(restarted.text("t")))
    refused: X
    """
