"""Protection under load: the relay's limits, and the token bucket behind its rate limit."""

from __future__ import annotations

from dataclasses import dataclass

from crdtsync.sync.session import DEFAULT_MAX_MESSAGE_SIZE

__all__ = ["Limits", "TokenBucket"]


@dataclass(frozen=True)
class Limits:
    """Per-connection and per-process limits (the commonest are also options of
    ``crdtsync serve``; docs/server.md lists them all)."""

    #: Largest incoming message (WebSocket message or TCP frame), in bytes. Larger ones
    #: close the connection (1009). Twice the size sessions cut outgoing messages to, since
    #: one change larger than that is sent whole (see SyncSession.max_incoming_size).
    max_message_size: int = 2 * DEFAULT_MAX_MESSAGE_SIZE
    #: Sustained messages per second a connection may send, and the burst above that.
    #: A client over its rate is not dropped: the relay stops reading from it until the
    #: bucket refills, so TCP pushes back on the sender. A typing client sends about two
    #: messages per keystroke batch (the update, then an ACK), so 200/s leaves wide room.
    rate: float = 200.0
    burst: float = 400.0
    #: Sustained incoming bytes per second and burst (the burst must hold the largest
    #: message: a big offline diff arrives at once, then the bucket refills).
    byte_rate: float = float(8 << 20)
    byte_burst: float = float(32 << 20)
    #: A connection's queue of messages waiting to be written, in bytes. A client that
    #: reads slower than its room changes fills it and is closed with 1013 (try again
    #: later); it resyncs on reconnect, and nobody else waits for it.
    send_queue_bytes: int = 16 << 20
    #: Parts of unfinished split transfers one connection may have the relay hold (a
    #: part past it closes the connection with 4400), and the whole process (when the
    #: sum passes it, the connection holding the most is closed with 1013).
    transfer_bytes_per_connection: int = 64 << 20
    #: Process-wide budgets, sized for a small machine: the send queues of all
    #: connections, and the parts of unfinished transfers of all connections. When one is
    #: exceeded, the connection with the largest share of it is closed with 1013 (try
    #: again later; it resyncs on reconnect): the slowest reader, the biggest sender of
    #: parts that never complete, never a connection that holds little.
    process_send_queue_bytes: int = 256 << 20
    process_transfer_bytes: int = 256 << 20
    #: Updates a room's document holds while their dependencies are missing, in bytes
    #: (besides ``Relay(max_pending=)``, their number): past it an update that would wait
    #: is not kept, and the sender's session is asked for a fresh diff instead (which is
    #: always ready), the room unchanged.
    pending_bytes_per_room: int = 16 << 20
    #: Rooms one multiplexed connection (path ``/``, SyncHub envelopes) may open.
    max_rooms_per_connection: int = 64
    #: Open connections per server process; more are closed with 4429.
    max_connections: int = 10_000
    #: Presence: replica ids one connection may publish states for (the first ones it
    #: publishes, unless another live connection of the room holds them), and entries one
    #: room keeps. Entries past either are dropped, never relayed.
    presence_per_connection: int = 4
    presence_per_room: int = 10_000
    #: How far one update may move a room's clocks: at most this many new counters in all,
    #: no counter this far past the room's, no Lamport time this far past the room's
    #: clock (an honest client's is at most the room's plus the changes it brings). Every
    #: writer shares the room's Lamport clock and its ceiling (2**62): this bound makes
    #: using it up take some 2**38 accepted updates instead of one.
    max_clock_jump: int = 1 << 24
    #: Quotas (None: none). ``max_document_bytes``: what one room may hold in storage,
    #: counted as its snapshot plus its log rows (as loaded, plus every update the room
    #: takes, reset to the new snapshot's size by each compaction): an update that would
    #: pass it is refused before it is stored or relayed (4413), except one that only
    #: removes, which may take the room a quarter past it, so that a full room can still
    #: be cleaned up (docs/server.md "Quotas").
    max_document_bytes: int | None = None
    #: Distinct rooms one identity (a token's holder; without a token, the connection)
    #: may have open at once on this process, over all its connections: joining one more
    #: is refused (4430, or REFUSED on a multiplexed connection).
    max_rooms_per_token: int | None = None

    def __post_init__(self) -> None:
        if self.max_message_size < 1024:
            raise ValueError("max_message_size must be at least 1024 bytes")
        if self.rate <= 0 or self.burst < 1 or self.byte_rate <= 0:
            raise ValueError("rates must be positive and the burst at least 1")
        if self.byte_burst < self.max_message_size:
            raise ValueError("byte_burst must hold at least one message of max_message_size")
        if self.send_queue_bytes < self.max_message_size:
            raise ValueError("send_queue_bytes must hold at least one message")
        if self.pending_bytes_per_room < self.max_message_size:
            raise ValueError("pending_bytes_per_room must hold at least one message")
        if self.transfer_bytes_per_connection < self.max_message_size:
            raise ValueError("transfer_bytes_per_connection must hold at least one message")
        if (
            self.process_send_queue_bytes < self.send_queue_bytes
            or self.process_transfer_bytes < self.transfer_bytes_per_connection
        ):
            raise ValueError("a process budget must hold at least one connection's share")
        if self.max_rooms_per_connection < 1 or self.max_connections < 1:
            raise ValueError("room and connection limits must be at least 1")
        if self.presence_per_connection < 1 or self.presence_per_room < 1:
            raise ValueError("presence limits must be at least 1")
        if self.max_clock_jump < 1:
            raise ValueError("max_clock_jump must be at least 1")
        if self.max_document_bytes is not None and self.max_document_bytes < 1:
            raise ValueError("max_document_bytes must be at least 1 (None: no quota)")
        if self.max_rooms_per_token is not None and self.max_rooms_per_token < 1:
            raise ValueError("max_rooms_per_token must be at least 1 (None: no quota)")


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; time is passed in.

    >>> bucket = TokenBucket(rate=10, burst=2, now=0.0)
    >>> bucket.take(1, now=0.0), bucket.take(1, now=0.0), bucket.take(1, now=0.0)
    (0.0, 0.0, 0.1)
    >>> bucket.take(1, now=0.5)   # the debt of the third take was paid, 4 refilled; cap 2
    0.0
    """

    __slots__ = ("rate", "burst", "_tokens", "_stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def take(self, amount: float, now: float) -> float:
        """Take ``amount`` tokens (going into debt if needed); return how many seconds the
        caller should wait before going on (0.0 if it had them)."""
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= amount
        return 0.0 if self._tokens >= 0 else round(-self._tokens / self.rate, 9)
