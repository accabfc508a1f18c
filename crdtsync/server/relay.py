"""The relay: rooms, each a server-side :class:`~crdtsync.Doc` that clients sync with.

Each client connection gets one :class:`~crdtsync.sync.SyncSession` per room on the room's
document, so the document relays: an update integrated from one client lands in every
other session's outbox, and the next :meth:`~crdtsync.sync.SyncSession.poll` sends it on.
A late joiner's HELLO is answered from the document, so it gets the whole room at once.

One step, for every message a client sends::

    session.receive(message)      the document integrates; its on_update listener notes
                                  each accepted update in room.unwritten
    ... (more messages, from any connection, in the same turn of the event loop)
    flush:  every room with unwritten updates: hand them to the writer thread as one
            batch (storage.append each, then storage.commit); the room is "in flight"
            every other room that changed: poll its sessions now (nothing uncommitted)
    commit done (back on the loop):
            poll the sessions of the batch's rooms; publish the updates (Redis)
            apply the messages held for those rooms meanwhile (below)

Nothing about an update reaches any socket (or Redis) before the commit holding it
returned, so no client ever holds an ACK (or another client's copy) of an update that a
crash could lose.

Storage off the event loop, by per-room gating. A room's document is shared by all its
sessions: whatever it holds, any poll may send. So while a room has a commit in flight,
its document must gain nothing uncommitted: messages for it are *held* (in arrival order,
in ``Room.held``) and applied only once that commit is done and the room's sessions were
polled. Other rooms go on at once: a reader joining another room, a HELLO answered from a
room that has no write in flight, /healthz; only the rooms waiting for their commit stall
while another process holds the database's write lock. Updates that come from other
processes (Redis, the shared log) are committed already and are applied at once. What a
room holds is bounded (``max_held_bytes``): past it, the connection holding the most of it
is closed with 1013 (try again later: its client reconnects and resyncs), never dropped
silently. Holding per room rather than stopping the connection's reads keeps the read loop
as it is, keeps a multiplexed connection's other rooms going, and lets a batch of held
messages go to the next commit together.

Transports (:mod:`crdtsync.transports.websocket`, :mod:`crdtsync.transports.asyncio_stream`)
hand each accepted connection to :meth:`Relay.serve_connection` as a
:class:`~crdtsync.transports.base.Channel`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from crdtsync import _encoding as enc
from crdtsync._doc import Doc
from crdtsync._errors import DecodeError, PendingOverflowError, ProtocolError
from crdtsync._values import ChildRef
from crdtsync.server._checks import equivocation, implausible_clock, unbacked_facts
from crdtsync.server._memory import release_free_memory
from crdtsync.server.auth import Access, Authenticator, allow_all
from crdtsync.server.limits import Limits, TokenBucket
from crdtsync.server.metrics import metrics_for
from crdtsync.server.storage import Loaded, MemoryStorage, Storage, build_doc
from crdtsync.sync import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Presence,
    PresenceChange,
    SharedOutbox,
    SyncSession,
)
from crdtsync.sync import messages as m
from crdtsync.transports.base import Channel, ChannelClosed
from crdtsync.transports.codes import CloseCode, reason_text

__all__ = [
    "Forbidden",
    "PRESENCE_QUERY_SEQ",
    "PRESENCE_SEQ",
    "QuotaExceeded",
    "REMOTE",
    "Relay",
    "Room",
    "TooManyRooms",
]

log = logging.getLogger("crdtsync.server")

#: The seq under which presence (an AWARENESS message) travels between processes.
PRESENCE_SEQ = -1
#: The seq of a request to the other processes to publish the presence of their clients in
#: a room (an AWARENESS message, possibly empty, of states to apply first): sent when a
#: room opens here, so its first client sees everyone at once rather than at their next
#: renewal. Processes that do not know it ignore it (as a seq below any log row).
PRESENCE_QUERY_SEQ = -2

#: The origin of updates that came from another process (Redis) or from the shared log:
#: already stored, not to be appended or published again.
REMOTE = "remote"
#: The origin of edits made through :meth:`Relay.room` (server-side application code).
SERVER = "crdtsync.server"


class Forbidden(Exception):
    """A read-only client sent a change."""


class Rejected(Forbidden):
    """The application's ``validate`` hook refused an update (the reason is the message).
    Raise it from the hook, or return the reason as a str."""


class QuotaExceeded(Rejected):
    """An update would take the room past ``Limits.max_document_bytes`` (see
    :meth:`Relay._check_quota`); nothing of it was taken."""


class TooManyRooms(Exception):
    """The connection's identity has ``Limits.max_rooms_per_token`` rooms open already."""


class ReplicaTaken(Exception):
    """A connection sent new changes under a replica id another client owns in the room."""


class Equivocation(Exception):
    """A connection sent a change at a dot the room holds, with other content (or a fact
    that contradicts what the room holds)."""


def _refusal(exc: BaseException) -> tuple[int, str]:
    """The close code and reason for a client whose message raised ``exc`` (one of the
    relay's refusals, a ValueError or a ProtocolError)."""
    if isinstance(exc, QuotaExceeded):
        return CloseCode.DOCUMENT_TOO_LARGE, str(exc)
    if isinstance(exc, TooManyRooms):
        return CloseCode.TOO_MANY_ROOMS, str(exc)
    if isinstance(exc, Rejected):
        return CloseCode.FORBIDDEN, f"rejected: {exc}"
    if isinstance(exc, Forbidden):
        return CloseCode.FORBIDDEN, f"forbidden: {exc}"
    if isinstance(exc, ReplicaTaken):
        return CloseCode.REPLICA_TAKEN, str(exc)
    if isinstance(exc, Equivocation):
        return CloseCode.EQUIVOCATION, f"contradicts the room: {exc}"
    if isinstance(exc, PendingOverflowError):
        # The room's buffer of updates waiting for dependencies is full: not this client's
        # fault necessarily; it may come back (and resync) later.
        return CloseCode.TRY_AGAIN_LATER, "room busy: reconnect to resync"
    return CloseCode.BAD_MESSAGE, f"bad message: {exc}"


class Bridge(Protocol):
    """What the relay needs from a link to other processes (see redis_bridge.py)."""

    status: str

    async def subscribe(self, room: str) -> None: ...

    async def unsubscribe(self, room: str) -> None: ...

    def publish(self, room: str, seq: int, update: bytes) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class MapWrite:
    """One map write an update brings: ``value`` is the written value, or the class of
    the container it creates (``crdtsync.Text`` ...); ``deleted`` for a delete."""

    map: Any
    key: str
    value: Any
    deleted: bool


class ValidateEvent:
    """What ``Relay(validate=...)`` hooks get for an update before the room takes it.

    ``room``: its name; ``identity``: who sent it (the connection's identity; None for an
    edit made through :meth:`Relay.room`); ``doc``: the room's document as it is (read
    only); ``containers``: the containers of ``doc`` the update changes; ``writes``: the
    map writes it brings (:class:`MapWrite`); ``after``: the document as it would be with
    the update, built on first use (a copy: it costs a pass over the document).
    """

    def __init__(self, room: str, identity: str | None, doc: Doc, update: enc.Update) -> None:
        self.room = room
        self.identity = identity
        self.doc = doc
        self.update = update
        have = doc._vv
        fresh = [
            e
            for seg in update.segments
            for e in seg.entries
            if e[0] != enc.SKIP and e[1] > have.get(seg.replica, 0)
        ]
        self.containers: list[Any] = _containers(doc, fresh, update.facts)
        self.writes: list[MapWrite] = []
        for e in fresh:
            if e[0] == enc.MAP_SET or e[0] == enc.MAP_DEL:
                deleted = e[0] == enc.MAP_DEL
                value = None if deleted else e[5]
                if isinstance(value, ChildRef):
                    value = type(doc._container((value.kind, "")))
                self.writes.append(MapWrite(doc._container(e[2]), e[4], value, deleted))
        self._after: Doc | None = None

    @property
    def after(self) -> Doc:
        if self._after is None:
            copy = Doc()
            copy.apply_update(self.doc.get_update(), max_inflated_size=None)
            copy.apply_update(enc.encode_update(self.update), max_inflated_size=None)
            self._after = copy
        return self._after


@dataclass(frozen=True)
class ChangeEvent:
    """What ``Relay(on_change=...)`` hooks get after a commit that changed a room: the
    room's name, its document (read it, do not edit it: edit through
    :meth:`Relay.room`), the containers the committed updates touched (nested ones
    included) and those updates' bytes (for a webhook or a search index)."""

    room: str
    doc: Doc
    containers: list[Any]
    updates: list[bytes]


def _containers(doc: Doc, entries: list[enc.Entry], facts: list[tuple[Any, ...]]) -> list[Any]:
    """The containers of ``doc`` that these changes and facts apply to, by key."""
    keys = {e[2] for e in entries} | {fact[1] for fact in facts}
    return [doc._container(k) for k in sorted(keys)]


async def _guarded(awaitable: Any, room: str) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("on_change hook failed", extra={"event": "hook_error", "room": room})


class Room:
    """One shared document on this server and the sessions synced with it."""

    def __init__(self, relay: Relay, name: str, doc: Doc, last_seq: int) -> None:
        self.relay = relay
        self.name = name
        self.doc = doc
        self.presence = Presence(doc.replica_id, timeout=relay.presence_timeout)
        # Start on the clock Relay._housekeep ticks it with: until then its time is 0, so
        # the first tick would find every state heard before it stale and drop it
        # unannounced (a client leaving after that tick then leaves no trace elsewhere).
        self.presence.tick(asyncio.get_running_loop().time())
        self.members: dict[int, Member] = {}
        #: Replica id -> the identity of the client that owns it here (Relay._check_owners).
        self.owners: dict[int, str] = {}
        #: The last seq of the shared log this process has read (for repair from the log).
        self.last_seq = last_seq
        #: The highest seq the document is known to hold with every row before it: what
        #: it was loaded from, then each commit of this process (Relay._compact).
        self.committed_seq = last_seq
        #: Seqs received from other processes over Redis, not yet covered by last_seq.
        self.remote_seqs: set[int] = set()
        self.rows_since_compact = 0
        self.bytes_since_compact = 0
        #: What the room holds in storage, for its quota (Relay._check_quota): the
        #: snapshot and log as loaded, plus every update the document took since (from
        #: anywhere), reset to the snapshot's size (plus what came since) by compaction.
        self.stored_bytes = 0
        self.compacting = False
        self.repairing = False
        #: Storage failed for this room: it sends nothing more and is dropped.
        self.failed = False
        #: Updates accepted since the last flush, for the next batch of the writer thread.
        self.unwritten: list[bytes] = []
        #: Loop time the room last joined the rooms waiting for a flush (Relay._mark).
        self.dirty_since = 0.0
        #: Batches holding this room's updates handed to the writer, not yet committed.
        #: While nonzero, nothing is polled and messages for the room are held.
        self.in_flight = 0
        #: Messages that arrived while a commit was in flight, in order (see the module doc).
        self.held: deque[tuple[Member, bytes]] = deque()
        self.held_bytes = 0
        self.idle_handle: asyncio.TimerHandle | None = None
        #: Server-side edits (Relay.room): one at a time per room, under a replica id of
        #: their own; ``pins`` keep the room loaded while one is open.
        self.edit_lock = asyncio.Lock()
        self.editor_id = secrets.randbits(64)
        self.pins = 0
        self.opened = time.monotonic()
        self._unsubscribe = doc.on_update(self._on_update, _internal=True)
        self._unsubscribe_presence = self.presence.on_change(self._on_presence)
        #: What the document took, recorded once for every member's session.
        self.outbox = SharedOutbox(doc)

    def _on_update(self, update: bytes, origin: Any) -> None:
        if self.failed:
            return
        self.stored_bytes += len(update)  # (another process stored a remote one)
        if origin is REMOTE:
            return
        relay = self.relay
        # Stored by the writer thread after the next flush (Relay._flush).
        self.unwritten.append(update)
        relay._mark(self)
        self.rows_since_compact += 1
        self.bytes_since_compact += len(update)
        if (
            self.rows_since_compact >= relay.compact_rows
            or self.bytes_since_compact >= relay.compact_bytes
        ):
            relay._schedule_compaction(self)

    def _on_presence(self, change: PresenceChange) -> None:
        for member in self.members.values():
            if change.origin is member.session:
                member.presence_ids |= change.joined | change.updated
                member.presence_ids -= change.left
                break
        bridge = self.relay.bridge
        if bridge is not None and change.origin is not REMOTE and change.origin != "timeout":
            # From our own clients (or one of them leaving): tell the other processes.
            # Presence is ephemeral: no log, no repair; clients renew it periodically.
            changed = change.joined | change.updated | change.left
            states = self.presence.encode_states(changed)
            if states:
                bridge.publish(self.name, PRESENCE_SEQ, m.encode_message(m.Awareness(states)))

    def close(self) -> None:
        self._unsubscribe()
        self._unsubscribe_presence()
        self.outbox.close()
        if self.idle_handle is not None:
            self.idle_handle.cancel()


class Member:
    """One connection's session in one room."""

    __slots__ = ("conn", "room", "session", "access", "pending", "presence_ids", "envelope")

    def __init__(self, conn: Connection, room: Room, access: Access, envelope: bool) -> None:
        self.conn = conn
        self.room = room
        self.access = access
        self.session = SyncSession(
            room.doc,
            presence=room.presence,
            max_message_size=room.relay.out_message_size,
            max_incoming_size=room.relay.limits.max_message_size,
            max_transfer_bytes=room.relay.limits.transfer_bytes_per_connection,
            max_presence_states=room.relay.limits.presence_per_room,
            presence_filter=lambda states: room.relay._own_presence(self, states),
            update_check=lambda parsed, whole: room.relay._check_update(self, parsed, whole),
            outbox=room.outbox,
        )
        #: Replies to send at the next flush (after the commit).
        self.pending: list[bytes] = []
        #: Presence replicas this client brought (marked as left when it goes).
        self.presence_ids: set[int] = set()
        #: Wrap messages in ROOM envelopes (a multiplexed connection).
        self.envelope = envelope

    def wrap(self, messages: list[bytes]) -> list[bytes]:
        if not self.envelope:
            return messages
        return [m.encode_message(m.Room(self.room.name, x)) for x in messages]


class Connection:
    """One client connection: its rooms, its bounded send queue, its sender task."""

    _ids = itertools.count(1)

    def __init__(self, relay: Relay, channel: Channel, token: str | None, peer: str) -> None:
        self.id = next(self._ids)
        self.relay = relay
        self.channel = channel
        self.token = token
        #: Who owns the replica ids this connection writes under: a token's holder (the
        #: same from any connection and process: stored), else this connection alone.
        self.durable_identity = token is not None
        self.identity = (
            "token:" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:32]
            if token is not None
            else f"conn:{relay.node}:{self.id}"
        )
        self.peer = peer
        self.members: dict[str, Member] = {}
        #: Messages waiting to be written, each with whether it answers the client (see
        #: enqueue), and their bytes: all of them, and those answers alone.
        self.queue: deque[tuple[bytes, bool]] = deque()
        self.queued_bytes = 0
        self.answer_bytes = 0
        self.wake = asyncio.Event()
        self.closing = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.opened = time.monotonic()
        self.received = 0
        self.sent = 0
        self.close_task: asyncio.Task[None] | None = None

    def enqueue(self, messages: list[bytes], *, answers: bool = False) -> None:
        """Queue ``messages`` for the sender task. ``answers``: they answer what the client
        asked (the DIFF to its HELLO: the whole room for a joiner), which the connection's
        own queue limit leaves out, so that a room larger than that limit can be joined;
        the process budget counts them like everything else."""
        if self.closing or not messages:
            return
        size = sum(len(x) for x in messages)
        self.queue.extend((x, answers) for x in messages)
        self.queued_bytes += size
        self.relay.queued_bytes += size
        if answers:
            self.answer_bytes += size
        if self.queued_bytes - self.answer_bytes > self.relay.limits.send_queue_bytes:
            log.warning(
                "slow client dropped: send queue full",
                extra={
                    "event": "slow_client_dropped",
                    "conn": self.id,
                    "queued_bytes": self.queued_bytes,
                },
            )
            self.abort(CloseCode.TRY_AGAIN_LATER, "send queue full: reconnect to resync")
            return
        if self.relay.queued_bytes > self.relay.limits.process_send_queue_bytes:
            self.relay._shed_slowest_reader()
            if self.closing:
                return
        self.wake.set()

    def abort(self, code: int, reason: str) -> None:
        """Stop serving this connection at once and close it with ``code`` (in a task: a
        closing handshake with a stalled client must not hold anyone up)."""
        if self.closing:
            return
        self.closing = True
        self.close_code, self.close_reason = code, reason
        self.queue.clear()
        self.relay.queued_bytes -= self.queued_bytes
        self.queued_bytes = self.answer_bytes = 0
        self.wake.set()
        self.relay._leave_all(self)
        self.close_task = asyncio.get_running_loop().create_task(
            self.channel.close(code, reason_text(reason))
        )

    async def run_sender(self) -> None:
        try:
            while not self.closing:
                await self.wake.wait()
                self.wake.clear()
                while self.queue and not self.closing:
                    message, answer = self.queue.popleft()
                    self.queued_bytes -= len(message)
                    self.relay.queued_bytes -= len(message)
                    if answer:
                        self.answer_bytes -= len(message)
                    await self.channel.send(message)
                    self.sent += 1
                    self.relay.metrics.sent(len(message))
        except ChannelClosed:
            pass


class Relay:
    """Rooms and connections of one server process.

    ``storage`` (default: in memory) keeps every accepted update; ``authenticate`` decides
    who may read or write which room; ``limits`` protects the process under load.
    ``compact_rows`` / ``compact_bytes``: fold a room's log into its snapshot once this many
    rows or bytes were appended since the last time. ``idle_unload``: drop a room from
    memory this many seconds after its last client left.
    """

    def __init__(
        self,
        *,
        storage: Storage | None = None,
        authenticate: Authenticator = allow_all,
        limits: Limits | None = None,
        node: str | None = None,
        compact_rows: int = 2000,
        compact_bytes: int = 4 << 20,
        idle_unload: float = 60.0,
        presence_timeout: float = 30.0,
        resync_interval: float = 5.0,
        max_pending: int = 1024,
        out_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_held_bytes: int = 16 << 20,
        on_change: Callable[[ChangeEvent], Any] | None = None,
        validate: Callable[[ValidateEvent], str | None] | None = None,
        tick: float = 0.005,
        tick_per_member: float = 0.0004,
    ) -> None:
        self.node = node or secrets.token_hex(6)
        #: Called after each commit that changed a room (see ChangeEvent); sync or async.
        self.on_change: list[Callable[[ChangeEvent], Any]] = (
            [] if on_change is None else [on_change]
        )
        #: Asked about every update before a room takes it (see ValidateEvent); synchronous.
        self.validate = validate
        #: Seconds a room's accepted updates wait to be committed and sent together (0: at
        #: the next turn of the event loop).
        self.tick = tick
        #: A room of N members waits at least N times this (unless ``tick`` is 0): each wait
        #: ends in a message to every member, so a room then costs at most
        #: 1/tick_per_member messages a second (2,500 by default) whatever its size.
        self.tick_per_member = tick_per_member
        self.storage: Storage = storage if storage is not None else MemoryStorage(node=self.node)
        self.authenticate_hook = authenticate
        self.limits = limits or Limits()
        self.compact_rows = compact_rows
        self.compact_bytes = compact_bytes
        self.idle_unload = idle_unload
        self.presence_timeout = presence_timeout
        self.resync_interval = resync_interval
        self.max_pending = max_pending
        self.out_message_size = min(out_message_size, self.limits.max_message_size // 2)
        #: Bytes of messages one room may hold while its commit is in flight (at least one
        #: message of the largest size).
        self.max_held_bytes = max(max_held_bytes, self.limits.max_message_size)
        self.rooms: dict[str, Room] = {}
        self.connections: set[Connection] = set()
        #: Identity -> room -> its connections' memberships (and joins under way) there,
        #: for Limits.max_rooms_per_token.
        self.rooms_of: dict[str, dict[str, int]] = {}
        #: What every connection's send queue holds, and what every session holds of
        #: unfinished transfers, in bytes (see the process budgets in Limits).
        self.queued_bytes = 0
        self.transfer_bytes = 0
        #: A connection closed since memory was last given back (see _housekeep).
        self._freed = False
        self.bridge: Bridge | None = None
        self.started = time.monotonic()
        self.closing = False
        self._loading: dict[str, asyncio.Future[Room]] = {}
        self._backlog: dict[str, list[tuple[int, bytes]]] = {}
        self._dirty: set[Room] = set()
        self._flush_handle: asyncio.Handle | None = None
        self._flush_at = 0.0  # (loop time the flush handle is due)
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="crdtsync-io")
        #: The one thread that appends and commits, batch after batch, in order.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crdtsync-writer")
        #: Batches handed to the writer and not done yet -> the names of their rooms.
        self._inflight: dict[asyncio.Future[list[list[int]]], frozenset[str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._housekeeping: asyncio.Task[None] | None = None
        self.metrics = metrics_for(self)  # Prometheus, at GET /metrics (metrics.py)

    # ---- public -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def room(self, name: str) -> AsyncIterator[Doc]:
        """Read and edit room ``name`` from application code on the server.

        ``async with relay.room("notes") as doc:`` gives a copy of the room's document;
        what the block does to it is, when the block ends, applied to the room like a
        client's update: stored (the block's exit waits for the commit), sent to every
        client of the room and, with Redis, to the other processes, and reported to
        ``on_change`` hooks. The ``validate`` hook is asked first, as for a client's update
        (a refusal raises :class:`Rejected` and discards the edits). Blocks on one room run
        one at a time; clients' edits that arrive meanwhile merge as usual. An exception in
        the block discards its edits.
        The room is loaded for the block if no client has it open.

        >>> import asyncio, crdtsync
        >>> from crdtsync.server import Relay
        >>> async def main():
        ...     relay = Relay()
        ...     relay.start()
        ...     async with relay.room("notes") as doc:
        ...         doc.text("t").insert(0, "hello from the server")
        ...     async with relay.room("notes") as doc:
        ...         print(str(doc.text("t")))
        ...     await relay.close()
        >>> asyncio.run(main())
        hello from the server
        """
        name = m.check_room(name)
        room = await self.open_room(name)
        room.pins += 1
        if room.idle_handle is not None:
            room.idle_handle.cancel()
            room.idle_handle = None
        try:
            async with room.edit_lock:
                if room.failed or self.rooms.get(name) is not room:
                    raise RuntimeError(f"room {name!r} closed (storage failure or shutdown)")
                copy = Doc(room.editor_id, max_pending=self.max_pending)
                copy.apply_update(room.doc.get_update(), max_inflated_size=None)
                base = copy.version
                yield copy
                if copy.version != base:
                    update = copy.get_update(base)
                    if self.limits.max_document_bytes is not None or self.validate is not None:
                        parsed = enc.decode_update(update, None)
                        self._check_quota(room, parsed, len(update))
                        if self.validate is not None:
                            self._validate(room, None, parsed)
                    room.doc.apply_update(update, SERVER, max_inflated_size=None)
                    await self._wait_committed(name)
        finally:
            room.pins -= 1
            self._idle_later(room)

    def stats(self) -> dict[str, Any]:
        return {
            "status": "shutting_down" if self.closing else "ok",
            "node": self.node,
            "rooms": len(self.rooms),
            "connections": len(self.connections),
            "uptime": round(time.monotonic() - self.started, 3),
            "redis": self.bridge.status if self.bridge is not None else "disabled",
        }

    async def authenticate(self, token: str | None, room: str) -> Access | None:
        """Ask the hook; a hook that fails refuses (and is logged), it never lets in."""
        try:
            result = self.authenticate_hook(token, room)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            log.exception("authenticate hook failed", extra={"event": "auth_error", "room": room})
            return None
        if result not in ("read", "write", None):
            log.error("authenticate hook returned %r", result, extra={"event": "auth_error"})
            return None
        return result

    def start(self) -> None:
        """Start background housekeeping (presence timeouts, WAL checkpoints, log repair)."""
        if self._housekeeping is None:
            self._housekeeping = asyncio.get_running_loop().create_task(self._housekeep())

    async def serve_connection(
        self,
        channel: Channel,
        *,
        room: str | None,
        token: str | None,
        access: Access | None | bool = True,
        peer: str = "",
    ) -> None:
        """Serve one accepted connection until it closes. ``room``: the room of a
        one-room connection, None for a multiplexed one (ROOM envelopes, each room
        authenticated when first named). ``access``: the transport's verdict if it already
        asked :meth:`authenticate` (True: ask now)."""
        if self.closing:
            self.metrics.closed(CloseCode.GOING_AWAY)
            await channel.close(CloseCode.GOING_AWAY, "server shutting down")
            return
        if len(self.connections) >= self.limits.max_connections:
            log.warning("connection limit reached", extra={"event": "refused", "peer": peer})
            self.metrics.closed(CloseCode.TOO_MANY_CONNECTIONS)
            await channel.close(CloseCode.TOO_MANY_CONNECTIONS, "too many connections")
            return
        if room is not None:
            if access is True:
                access = await self.authenticate(token, room)
            if access not in ("read", "write"):
                log.info(
                    "unauthorized",
                    extra={"event": "unauthorized", "room": room, "peer": peer},
                )
                self.metrics.closed(CloseCode.UNAUTHORIZED)
                await channel.close(
                    CloseCode.UNAUTHORIZED, f"unauthorized: no access to room {room!r}"
                )
                return
        conn = Connection(self, channel, token, peer)
        self.connections.add(conn)
        self.metrics.connected()
        sender = asyncio.get_running_loop().create_task(conn.run_sender())
        log.info(
            "connected",
            extra={
                "event": "connect",
                "conn": conn.id,
                "room": room,
                "peer": peer,
                "access": access if room is not None else None,
            },
        )
        code: int = CloseCode.ABNORMAL
        reason = ""
        try:
            member = None
            if room is not None:
                assert access == "read" or access == "write"
                member = await self._join(conn, room, access, envelope=False)
            loop = asyncio.get_running_loop()
            messages = TokenBucket(self.limits.rate, self.limits.burst, loop.time())
            volume = TokenBucket(self.limits.byte_rate, self.limits.byte_burst, loop.time())
            while not conn.closing:
                data = await channel.recv()
                conn.received += 1
                self.metrics.received(len(data))
                now = loop.time()
                delay = max(messages.take(1, now), volume.take(len(data), now))
                if delay > 0:
                    # Throttle: stop reading, TCP pushes back. The client's pings and pongs
                    # then wait behind its data; the WebSocket keepalive counts what waits
                    # unread as proof of life, so throttling never drops it (issue #10).
                    await asyncio.sleep(delay)
                if conn.closing:
                    break
                if member is not None:
                    self._receive(member, data)
                else:
                    await self._receive_multiplexed(conn, data)
        except ChannelClosed as exc:
            code, reason = exc.code, exc.reason
        except (
            Forbidden,
            ReplicaTaken,
            Equivocation,
            TooManyRooms,
            ValueError,
            ProtocolError,
        ) as exc:
            # The session and document are unchanged; the connection goes.
            code, reason = _refusal(exc)
            conn.abort(code, reason)
        except asyncio.CancelledError:
            code, reason = CloseCode.GOING_AWAY, "cancelled"
            conn.abort(code, reason)
            raise
        except Exception as exc:
            log.exception("connection failed", extra={"event": "error", "conn": conn.id})
            code, reason = CloseCode.INTERNAL_ERROR, f"internal error: {type(exc).__name__}"
            conn.abort(code, reason)
        finally:
            if conn.close_code is not None:
                code, reason = conn.close_code, conn.close_reason
            self.metrics.closed(code)
            conn.closing = True
            conn.wake.set()
            self._leave_all(conn)
            self.connections.discard(conn)
            self._freed = True
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
            if conn.close_task is not None:
                with contextlib.suppress(BaseException):
                    await conn.close_task
            log.info(
                "disconnected",
                extra={
                    "event": "disconnect",
                    "conn": conn.id,
                    "room": room,
                    "code": code,
                    "reason": reason,
                    "received": conn.received,
                    "sent": conn.sent,
                    "seconds": round(time.monotonic() - conn.opened, 3),
                },
            )

    async def open_room(self, name: str) -> Room:
        """The room, loaded from storage (once, however many connections ask at once)."""
        room = self.rooms.get(name)
        if room is not None:
            return room
        future = self._loading.get(name)
        if future is not None:
            return await asyncio.shield(future)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._loading[name] = future
        self._backlog[name] = []
        started = time.perf_counter()
        try:
            if self.bridge is not None:
                # Subscribe first: whatever another process commits after our read below
                # reaches us over Redis, whatever it committed before is in the read.
                await self.bridge.subscribe(name)
            # A room dropped while its commit was in flight: the load must see that commit.
            await self._wait_committed(name)
            loaded = await loop.run_in_executor(self._executor, self.storage.load, name)
            doc = await loop.run_in_executor(self._executor, self._build, loaded)
            room = Room(self, name, doc, loaded.last_seq)
            room.owners.update(loaded.owners)
            # What the log holds past the snapshot counts toward compaction: a server that
            # keeps crashing before its counters reach the threshold must still compact.
            room.rows_since_compact = len(loaded.rows)
            room.bytes_since_compact = sum(len(data) for _, data in loaded.rows)
            room.stored_bytes = len(loaded.snapshot or b"") + room.bytes_since_compact
            for seq, update in self._backlog.pop(name, []):
                self._apply_remote(room, seq, update)
            self.rooms[name] = room
            future.set_result(room)
            if (
                room.rows_since_compact >= self.compact_rows
                or room.bytes_since_compact >= self.compact_bytes
            ):
                self._schedule_compaction(room)
            # Clients of other processes may be here already: ask who (the answers come
            # on the channel we subscribed to, to the room that now exists).
            self._query_presence(name)
            log.info(
                "room opened",
                extra={
                    "event": "room_open",
                    "room": name,
                    "updates": len(loaded.updates),
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            return room
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: the waiters re-raise it themselves
            if self.bridge is not None and name not in self.rooms:
                with contextlib.suppress(Exception):
                    await self.bridge.unsubscribe(name)
            raise
        finally:
            self._loading.pop(name, None)
            self._backlog.pop(name, None)

    def remote_update(self, room_name: str, seq: int, update: bytes) -> None:
        """An update another process accepted (from Redis)."""
        room = self.rooms.get(room_name)
        if room is not None:
            self._apply_remote(room, seq, update)
        elif room_name in self._backlog:
            self._backlog[room_name].append((seq, update))

    def remote_presence(self, room_name: str, message: bytes) -> None:
        """Presence states another process's clients sent (an AWARENESS message)."""
        room = self.rooms.get(room_name)
        if room is None:
            return
        try:
            msg = m.decode_message(message)
        except ProtocolError:
            return
        if isinstance(msg, m.Awareness) and msg.states:
            room.presence.apply(msg.states, origin=REMOTE)
            self._mark(room)

    def presence_query(self, room_name: str, message: bytes) -> None:
        """Another process asks who is in the room (see :data:`PRESENCE_QUERY_SEQ`): apply
        the states it sent, and publish those of this process's own clients."""
        room = self.rooms.get(room_name)
        if room is None or self.bridge is None:
            return
        self.remote_presence(room_name, message)
        ours: set[int] = set()
        for member in room.members.values():
            ours |= member.presence_ids
        # Only our own clients: every process answers for its own, so nobody's state is
        # sent once per process.
        states = room.presence.encode_states(ours)
        if states:
            self.bridge.publish(room_name, PRESENCE_SEQ, m.encode_message(m.Awareness(states)))

    def query_presence_all(self) -> None:
        """Ask the other processes who is in each open room (after a Redis outage, when
        what they published meanwhile was lost)."""
        for name in list(self.rooms):
            self._query_presence(name)

    def _query_presence(self, room_name: str) -> None:
        """Ask the other processes who is in the room (see :data:`PRESENCE_QUERY_SEQ`)."""
        if self.bridge is not None:
            query = m.encode_message(m.Awareness([]))
            self.bridge.publish(room_name, PRESENCE_QUERY_SEQ, query)

    def resync_all(self) -> None:
        """Read what other processes committed to the shared log (after a Redis outage)."""
        for room in list(self.rooms.values()):
            self._spawn(self.repair(room))

    async def repair(self, room: Room) -> None:
        """Apply the rows other processes committed to this room since we last looked."""
        if room.repairing:
            return
        room.repairing = True
        try:
            loop = asyncio.get_running_loop()
            tail: Loaded = await loop.run_in_executor(
                self._executor, self.storage.tail, room.name, room.last_seq
            )
        finally:
            room.repairing = False
        if self.rooms.get(room.name) is not room:
            return
        updates = [] if tail.snapshot is None else [tail.snapshot]
        updates += [data for seq, data in tail.rows if seq not in room.remote_seqs]
        for update in updates:
            self._apply_update(room, update)
        room.last_seq = max(room.last_seq, tail.last_seq)
        room.remote_seqs = {s for s in room.remote_seqs if s > room.last_seq}
        if updates:
            self._mark(room)

    async def close(self, timeout: float = 10.0) -> None:
        """Graceful shutdown: close every connection with 1001 (clients reconnect, maybe to
        another process), commit, compact the rooms that changed, close storage."""
        if self.closing:
            return
        self.closing = True
        log.info("shutting down", extra={"event": "shutdown", "connections": len(self.connections)})
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        for conn in list(self.connections):
            conn.abort(CloseCode.GOING_AWAY, "server shutting down")
        self._flush()
        await self._wait_committed()  # everything accepted is stored (and published)
        closers = [c.close_task for c in list(self.connections) if c.close_task is not None]
        if closers:
            await asyncio.wait(closers, timeout=min(timeout, 5.0))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for room in list(self.rooms.values()):
            if room.rows_since_compact and loop.time() < deadline:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        loop.run_in_executor(self._executor, self.storage.compact, room.name),
                        max(0.1, deadline - loop.time()),
                    )
            room.close()
        self.rooms.clear()
        if self.bridge is not None:
            with contextlib.suppress(Exception):
                await self.bridge.close()
        for task in list(self._tasks):
            task.cancel()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        await self._wait_committed()
        await loop.run_in_executor(self._writer, self.storage.commit)  # claims left, if any
        self._writer.shutdown(wait=True)
        await loop.run_in_executor(self._executor, _close_thread_conns, self.storage)
        self._executor.shutdown(wait=True)
        self.storage.close()
        log.info("shut down", extra={"event": "stopped"})

    # ---- receiving ---------------------------------------------------------------------------

    def _build(self, loaded: Loaded) -> Doc:
        doc = build_doc(loaded.updates, max_pending=self.max_pending)
        # Bounded from now on (what the log holds loads whatever it parks meanwhile).
        doc._max_pending_bytes = self.limits.pending_bytes_per_room
        return doc

    async def _join(self, conn: Connection, name: str, access: Access, *, envelope: bool) -> Member:
        # Counted before the room loads, so that joins racing on several connections of
        # one token cannot all pass the limit.
        self._take_room(conn, name)
        try:
            room = await self.open_room(name)
            if conn.closing:
                raise ChannelClosed(conn.close_code or CloseCode.ABNORMAL, conn.close_reason)
        except BaseException:
            self._give_room(conn, name)
            raise
        member = Member(conn, room, access, envelope)
        room.members[id(member)] = member
        conn.members[name] = member
        if room.idle_handle is not None:
            room.idle_handle.cancel()
            room.idle_handle = None
        return member

    def _take_room(self, conn: Connection, name: str) -> None:
        """Count one more membership of ``conn``'s identity in room ``name``; TooManyRooms
        if that would make one room more than ``Limits.max_rooms_per_token``."""
        rooms = self.rooms_of.setdefault(conn.identity, {})
        limit = self.limits.max_rooms_per_token
        if limit is not None and name not in rooms and len(rooms) >= limit:
            log.info(
                "room refused: rooms per token",
                extra={"event": "too_many_rooms", "room": name, "conn": conn.id},
            )
            raise TooManyRooms(f"too many rooms: at most {limit} open per token")
        rooms[name] = rooms.get(name, 0) + 1

    def _give_room(self, conn: Connection, name: str) -> None:
        rooms = self.rooms_of.get(conn.identity, {})
        left = rooms.get(name, 0) - 1
        if left > 0:
            rooms[name] = left
        else:
            rooms.pop(name, None)
            if not rooms:
                self.rooms_of.pop(conn.identity, None)

    def _receive(self, member: Member, data: bytes) -> None:
        room = member.room
        if room.in_flight or room.held:
            self._hold(member, data)
            return
        self._apply_message(member, data)

    def _apply_message(self, member: Member, data: bytes) -> None:
        room = member.room
        if member.access == "read" and _changes_document(room.doc, data, self.limits):
            raise Forbidden(f"read-only access to room {room.name!r}")
        session = member.session
        held = session._transfer_bytes
        try:
            replies = session.receive(data)
        finally:
            self.transfer_bytes += session._transfer_bytes - held
        if replies:
            member.pending += replies
        self._mark(room)
        if self.transfer_bytes > self.limits.process_transfer_bytes:
            self._shed_biggest_transfers()

    def _check_update(self, member: Member, update: enc.Update, whole: bool) -> None:
        """Everything the room checks in a client's update before it takes any of it (see
        crdtsync/server/_checks.py and docs/server.md "What a client can and cannot do"):
        clock plausibility, equivocation, who owns the replica ids it brings new changes
        under, and (``whole``: not one part of a transfer) that its facts are backed."""
        doc = member.room.doc
        # Owners first: the likeliest forgery, named as such. (A claim made here for an
        # update refused below gives nothing: a plausible update would have made it.)
        self._check_owners(member, update)
        why = implausible_clock(doc, update, self.limits.max_clock_jump)
        if why is not None:
            raise ProtocolError(f"implausible clock: {why}")
        why = equivocation(doc, update) or (unbacked_facts(doc, update) if whole else None)
        if why is not None:
            log.warning(
                "update contradicting the room refused: %s",
                why,
                extra={"event": "equivocation", "room": member.room.name, "conn": member.conn.id},
            )
            raise Equivocation(why)
        self._check_quota(member.room, update)
        if whole and self.validate is not None:
            self._validate(member.room, member.conn.identity, update)

    def _check_quota(self, room: Room, update: enc.Update, size: int | None = None) -> None:
        """Refuse (QuotaExceeded) an update that would take ``room`` past
        ``Limits.max_document_bytes``: its stored bytes, plus what its document holds
        waiting for dependencies (stored once they arrive), plus the update's encoded size
        (``size``; else computed, near the quota only). An update that changes nothing
        passes; one that only removes may take the room a quarter past the quota, so that a
        full room can be cleaned up (what it frees counts after the next compaction, which
        a refusal starts). O(update): the document is never encoded here."""
        quota = self.limits.max_document_bytes
        if quota is None:
            return
        held = room.stored_bytes + room.doc._pending_bytes
        # A client's update inflates to at most max_message_size (its session's limit,
        # merged transfers included): far from the quota, no need to measure it.
        if size is None and held + 2 * self.limits.max_message_size <= quota:
            return
        vv = room.doc._vv
        if not update.facts and all(
            seg.end - 1 <= vv.get(seg.replica, 0) for seg in update.segments
        ):
            return
        if size is None:
            size = len(enc.encode_update(update))
        removes = all(fact[0] == enc.FACT_DELETE for fact in update.facts) and all(
            e[0] in _REMOVALS for seg in update.segments for e in seg.entries
        )
        if held + size <= (quota + quota // 4 if removes else quota):
            return
        log.warning(
            "update refused: over the room's document quota",
            extra={"event": "quota", "room": room.name, "stored_bytes": held, "bytes": size},
        )
        if room.rows_since_compact:
            # Removals may have freed space that only a compaction counts.
            self._schedule_compaction(room)
        raise QuotaExceeded(f"document quota exceeded: {held} + {size} bytes > {quota}")

    def _validate(self, room: Room, identity: str | None, update: enc.Update) -> None:
        """Ask the application's hook; Rejected if it refuses, or fails (it never lets an
        update in by failing)."""
        hook = self.validate
        assert hook is not None
        try:
            verdict = hook(ValidateEvent(room.name, identity, room.doc, update))
        except Rejected:
            raise
        except Exception as exc:
            log.exception("validate hook failed", extra={"event": "hook_error", "room": room.name})
            raise Rejected(
                f"the server could not check this update ({type(exc).__name__})"
            ) from None
        if verdict is not None:
            raise Rejected(str(verdict))

    def _check_owners(self, member: Member, update: enc.Update) -> None:
        """Refuse (ReplicaTaken) new changes under a replica id another client owns in the
        room; the first client to bring new changes under an id owns it from then on.
        Changes the room holds already pass from anyone: they change nothing. A delete
        attributed to a counter the room does not hold yet (it waits for it) is a new
        change of that replica too: once the counter arrived it would take effect."""
        room, conn = member.room, member.conn
        vv = room.doc._vv
        brought = [seg.replica for seg in update.segments if seg.end - 1 > vv.get(seg.replica, 0)]
        tops = enc.coverage(update) if update.facts else {}
        for fact in update.facts:
            if fact[0] == enc.FACT_DELETE:
                r, c = fact[2]
                if c > vv.get(r, 0) and tops.get(r, 0) < c:
                    brought.append(r)
        for replica in brought:
            owner = room.owners.get(replica)
            if owner is None:
                owner = conn.identity
                store_claim = getattr(self.storage, "claim", None)
                if conn.durable_identity and store_claim is not None:
                    owner = store_claim(room.name, replica, conn.identity)  # another's?
                room.owners[replica] = owner
            if owner != conn.identity:
                log.warning(
                    "changes under another client's replica id refused",
                    extra={
                        "event": "replica_taken",
                        "room": room.name,
                        "conn": conn.id,
                        "replica": replica,
                    },
                )
                raise ReplicaTaken(f"replica id {replica} belongs to another client")

    def _own_presence(
        self, member: Member, states: list[tuple[int, int, Any]]
    ) -> list[tuple[int, int, Any]]:
        """The entries of ``states`` this connection may publish: for its own replica ids
        (the first ``presence_per_connection`` it publishes, none held by another live
        connection of the room, never the room's own), within the room's cap. Others are
        dropped (logged): a client can neither speak for someone else nor crowd a room."""
        room, limits = member.room, self.limits
        known = room.presence._meta
        mine = set(member.presence_ids)
        entries = len(known)
        allowed: list[tuple[int, int, Any]] = []
        dropped = 0
        for entry in states:
            replica = entry[0]
            if replica not in mine:
                new = replica not in known
                # The cheap tests first: a flood of ids is mostly past the connection's
                # limit, and must cost no scan of the room's members per entry.
                if (
                    len(mine) >= limits.presence_per_connection
                    or (new and entries >= limits.presence_per_room)
                    or replica == room.presence.replica_id
                    or any(
                        replica in other.presence_ids
                        for other in room.members.values()
                        if other is not member
                    )
                ):
                    dropped += 1
                    continue
                mine.add(replica)
                entries += new
            allowed.append(entry)
        if dropped:
            log.warning(
                "presence entries dropped: not this connection's own, or over a limit",
                extra={
                    "event": "presence_dropped",
                    "room": room.name,
                    "conn": member.conn.id,
                    "count": dropped,
                },
            )
        return allowed

    async def _receive_multiplexed(self, conn: Connection, data: bytes) -> None:
        msg = m.decode_message(data, self.limits.max_message_size)
        if not isinstance(msg, m.Room):
            raise ProtocolError("a multiplexed connection takes ROOM messages only")
        member = conn.members.get(msg.room)
        if member is None:
            access = await self.authenticate(conn.token, msg.room)
            if access is None:
                log.info(
                    "unauthorized",
                    extra={"event": "unauthorized", "room": msg.room, "conn": conn.id},
                )
                conn.enqueue([m.encode_message(m.Refused(msg.room, "unauthorized"))])
                return
            if len(conn.members) >= self.limits.max_rooms_per_connection:
                limit = self.limits.max_rooms_per_connection
                refusal = f"more than {limit} rooms on one connection"
                conn.enqueue([m.encode_message(m.Refused(msg.room, refusal))])
                return
            try:
                member = await self._join(conn, msg.room, access, envelope=True)
            except TooManyRooms as exc:
                conn.enqueue([m.encode_message(m.Refused(msg.room, str(exc)))])
                return
        try:
            self._receive(member, msg.message)
        except (Forbidden, ReplicaTaken, Equivocation) as exc:
            self._leave(member)
            conn.enqueue([m.encode_message(m.Refused(msg.room, f"forbidden: {exc}"))])

    def _apply_remote(self, room: Room, seq: int, update: bytes) -> None:
        if seq <= room.last_seq or seq in room.remote_seqs:
            return
        room.remote_seqs.add(seq)
        self._apply_update(room, update)
        self._mark(room)
        if room.doc.pending:
            # Something before it did not reach us over Redis: read the shared log.
            self._spawn(self.repair(room))

    def _apply_update(self, room: Room, update: bytes) -> None:
        try:
            room.doc.apply_update(update, REMOTE)
        except (DecodeError, ValueError) as exc:
            log.error(
                "update from another process rejected: %s",
                exc,
                extra={"event": "remote_rejected", "room": room.name},
            )

    # ---- flushing ------------------------------------------------------------------------------

    def _mark(self, room: Room) -> None:
        # One flush per tick: what rooms took meanwhile is stored as one batch and sent as
        # one merged update per recipient (sessions share equal merges).
        loop = asyncio.get_running_loop()
        if self.tick <= 0:
            self._dirty.add(room)
            if self._flush_handle is None:
                self._flush_handle = loop.call_soon(self._flush)
            return
        if room not in self._dirty:
            self._dirty.add(room)
            room.dirty_since = loop.time()
        self._flush_by(self._due(room))

    def _flush_by(self, due: float) -> None:
        """Have the timer flush at loop time ``due`` at the latest."""
        if self._flush_handle is None or due < self._flush_at:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_at(due, lambda: self._flush(force=False))
            self._flush_at = due

    def _due(self, room: Room) -> float:
        return room.dirty_since + self._interval(room)

    def _interval(self, room: Room) -> float:
        """How long a room's changes wait before they are committed and sent: the tick, or
        longer in a large room (every wait ends in a message to each member: the relay's
        cost per wait grows with the room, and so does the wait). A tick of 0: none."""
        if self.tick <= 0:
            return 0.0
        return max(self.tick, self.tick_per_member * len(room.members))

    def _flush(self, force: bool = True) -> None:
        """Cut: hand the rooms' unwritten updates to the writer thread as one batch (those
        rooms are in flight until it is committed); poll the other rooms that changed.
        ``force``: every room that changed; else (the timer) those whose wait is over."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if force:
            dirty, self._dirty = self._dirty, set()
        else:
            # Every room due within the next tick goes now, so that rooms share flushes
            # (and commits) as they did with one tick for all.
            soon = asyncio.get_running_loop().time() + self.tick
            dirty = {r for r in self._dirty if self._due(r) <= soon}
            self._dirty -= dirty
            if self._dirty:
                self._flush_by(min(map(self._due, self._dirty)))
        batch: list[tuple[Room, list[bytes]]] = []
        for room in dirty:
            if room.unwritten and not room.failed:
                batch.append((room, room.unwritten))
                room.unwritten = []
                room.in_flight += 1
        for room in dirty:
            if not room.in_flight and not room.failed:
                self._poll(room)  # its document holds committed state only
        if batch:
            loop = asyncio.get_running_loop()
            items = [(room.name, updates) for room, updates in batch]
            future = loop.run_in_executor(
                self._writer, self.metrics.timed(_write_batch), self.storage, items
            )
            self._inflight[future] = frozenset(name for name, _ in items)
            future.add_done_callback(lambda done: self._committed(batch, done))

    def _poll(self, room: Room) -> None:
        for member in list(room.members.values()):
            if member.pending:
                member.conn.enqueue(member.wrap(member.pending), answers=True)
                member.pending = []
            out = member.session.poll()
            if out:
                member.conn.enqueue(member.wrap(out))

    def _committed(
        self, batch: list[tuple[Room, list[bytes]]], future: asyncio.Future[list[list[int]]]
    ) -> None:
        """A batch is done (on the loop): send what it made durable, then let in what its
        rooms held meanwhile."""
        self._inflight.pop(future, None)
        for room, _ in batch:
            room.in_flight -= 1
        error = future.exception() if not future.cancelled() else asyncio.CancelledError()
        if error is not None:
            # Nothing of this batch is durable: send nothing about it, drop its rooms (they
            # reload from storage on the next connection) and close their clients.
            log.critical(
                "storage commit failed",
                exc_info=error,
                extra={"event": "storage_error", "rooms": sorted({r.name for r, _ in batch})},
            )
            for room, _ in batch:
                self._fail(room)
            return
        seqs = future.result()
        for (room, _), room_seqs in zip(batch, seqs, strict=True):
            if room_seqs:
                room.committed_seq = max(room.committed_seq, room_seqs[-1])
            if not room.in_flight and not room.failed:
                self._poll(room)
        if self.bridge is not None:
            for (room, updates), room_seqs in zip(batch, seqs, strict=True):
                if not room.failed:
                    for seq, update in zip(room_seqs, updates, strict=True):
                        self.bridge.publish(room.name, seq, update)
        for room, _ in batch:
            if not room.in_flight and not room.failed:
                self._release(room)
        if self.on_change:
            for room, updates in batch:
                if not room.failed:
                    self._changed(room, updates)

    def _changed(self, room: Room, updates: list[bytes]) -> None:
        """Tell the on_change hooks what a commit made durable; a hook that fails is
        logged and changes nothing else."""
        parsed = [enc.decode_update(update, None) for update in updates]
        entries = [e for p in parsed for seg in p.segments for e in seg.entries if e[0] != enc.SKIP]
        facts = [fact for p in parsed for fact in p.facts]
        event = ChangeEvent(room.name, room.doc, _containers(room.doc, entries, facts), updates)
        for hook in list(self.on_change):
            try:
                result = hook(event)
                if inspect.isawaitable(result):
                    self._spawn(_guarded(result, room.name))
            except Exception:
                log.exception(
                    "on_change hook failed", extra={"event": "hook_error", "room": room.name}
                )

    def _fail(self, room: Room) -> None:
        if room.failed:
            return
        room.failed = True
        room.unwritten = []
        room.held.clear()
        room.held_bytes = 0
        for member in list(room.members.values()):
            member.conn.abort(CloseCode.INTERNAL_ERROR, "storage failure")
        self._drop_room(room)

    async def _wait_committed(self, room_name: str | None = None) -> None:
        """Until everything accepted so far (for ``room_name``, or in every room) is
        committed: a flush, then the batches in flight now."""
        self._flush()
        waiting = [
            f for f, names in self._inflight.items() if room_name is None or room_name in names
        ]
        if waiting:
            await asyncio.wait(waiting)

    def _hold(self, member: Member, data: bytes) -> None:
        room = member.room
        room.held.append((member, data))
        room.held_bytes += len(data)
        if room.held_bytes <= self.max_held_bytes:
            return
        # Over the bound: the connection holding the most here goes (its client resyncs on
        # reconnect; nothing it sent since the commit in flight was accepted).
        per_conn: dict[Connection, int] = {}
        for held_member, held_data in room.held:
            per_conn[held_member.conn] = per_conn.get(held_member.conn, 0) + len(held_data)
        conn = max(per_conn, key=per_conn.__getitem__)
        log.warning(
            "connection closed: too much held while the room's commit is in flight",
            extra={
                "event": "held_overflow",
                "room": room.name,
                "conn": conn.id,
                "held_bytes": per_conn[conn],
            },
        )
        room.held = deque(x for x in room.held if x[0].conn is not conn)
        room.held_bytes -= per_conn[conn]
        conn.abort(CloseCode.TRY_AGAIN_LATER, "room busy: reconnect to resync")

    def _release(self, room: Room) -> None:
        """Apply the messages ``room`` held, in order (their replies and the updates they
        bring go out after the next commit, like any others)."""
        held, room.held, room.held_bytes = room.held, deque(), 0
        for member, data in held:
            conn = member.conn
            if conn.closing or room.members.get(id(member)) is not member:
                continue  # gone meanwhile: never accepted, its client resyncs
            # As serve_connection / _receive_multiplexed would for a message read now.
            try:
                try:
                    self._apply_message(member, data)
                except (Forbidden, ReplicaTaken, Equivocation) as exc:
                    if not member.envelope:
                        raise
                    self._leave(member)
                    conn.enqueue([m.encode_message(m.Refused(room.name, f"forbidden: {exc}"))])
            except (Forbidden, ReplicaTaken, Equivocation, ValueError, ProtocolError) as exc:
                conn.abort(*_refusal(exc))
            except Exception as exc:
                log.exception("connection failed", extra={"event": "error", "conn": conn.id})
                conn.abort(CloseCode.INTERNAL_ERROR, f"internal error: {type(exc).__name__}")

    # ---- process budgets ------------------------------------------------------------------------

    def _shed_slowest_reader(self) -> None:
        """The send queues of all connections hold more than the process budget: close
        the connection whose queue holds the most (it reads slowest)."""
        conn = max(self.connections, key=lambda c: c.queued_bytes, default=None)
        if conn is None or conn.queued_bytes == 0:
            return
        log.warning(
            "slow client dropped: process send-queue budget exceeded",
            extra={"event": "budget_shed", "conn": conn.id, "queued_bytes": conn.queued_bytes},
        )
        conn.abort(CloseCode.TRY_AGAIN_LATER, "server send budget exceeded: reconnect to resync")

    def _shed_biggest_transfers(self) -> None:
        """Unfinished transfers of all connections hold more than the process budget:
        close the connection holding the most of them."""
        while self.transfer_bytes > self.limits.process_transfer_bytes:
            held: dict[Connection, int] = {}
            for room in self.rooms.values():
                for member in room.members.values():
                    size = member.session._transfer_bytes
                    if size:
                        held[member.conn] = held.get(member.conn, 0) + size
            if not held:
                self.transfer_bytes = 0  # (nothing is held: the count drifted)
                return
            conn = max(held, key=held.__getitem__)
            log.warning(
                "connection dropped: process budget for unfinished transfers exceeded",
                extra={"event": "budget_shed", "conn": conn.id, "transfer_bytes": held[conn]},
            )
            conn.abort(
                CloseCode.TRY_AGAIN_LATER, "server transfer budget exceeded: reconnect to resync"
            )

    # ---- leaving, unloading, compaction --------------------------------------------------------

    def _leave_all(self, conn: Connection) -> None:
        for member in list(conn.members.values()):
            self._leave(member)

    def _leave(self, member: Member) -> None:
        room, conn = member.room, member.conn
        if conn.members.get(room.name) is member:
            del conn.members[room.name]
        if room.members.pop(id(member), None) is None:
            return
        self._give_room(conn, room.name)
        self.transfer_bytes -= member.session._transfer_bytes
        member.session.close()  # drops what it held of unfinished transfers
        if not conn.durable_identity and not any(
            other.conn is conn for other in room.members.values()
        ):
            # A connection's own ownership ends with it (its client reconnects as another).
            for replica in [r for r, who in room.owners.items() if who == conn.identity]:
                del room.owners[replica]
        if member.presence_ids:
            gone = [
                (r, clock + 1, None)
                for r, clock, _ in room.presence.encode_states(member.presence_ids)
            ]
            room.presence.apply(gone)
            self._mark(room)
        self._idle_later(room)

    def _idle_later(self, room: Room) -> None:
        """Unload ``room`` after ``idle_unload`` seconds if nobody uses it by then."""
        if room.members or room.pins or self.closing or self.rooms.get(room.name) is not room:
            return
        if room.idle_handle is not None:
            room.idle_handle.cancel()
        loop = asyncio.get_running_loop()
        room.idle_handle = loop.call_later(
            self.idle_unload, lambda: self._spawn(self._unload(room))
        )

    async def _unload(self, room: Room) -> None:
        if room.members or room.pins or self.rooms.get(room.name) is not room:
            return
        await self._wait_committed(room.name)
        if room.rows_since_compact:
            await self._compact(room)
        if room.members or room.pins or self.rooms.get(room.name) is not room:
            return
        self._drop_room(room)
        log.info("room closed", extra={"event": "room_close", "room": room.name})
        if self.bridge is not None:
            await self.bridge.unsubscribe(room.name)

    def _drop_room(self, room: Room) -> None:
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]
        self._dirty.discard(room)
        room.close()

    def _schedule_compaction(self, room: Room) -> None:
        if not room.compacting:
            self._spawn(self._compact(room))

    async def _compact(self, room: Room) -> None:
        if room.compacting:
            return
        room.compacting = True
        rows, size = room.rows_since_compact, room.bytes_since_compact
        room.rows_since_compact = room.bytes_since_compact = 0
        stored = room.stored_bytes
        try:
            # The worker's connection reads committed rows only: let the writer commit
            # what the room accepted so far (waits, off the loop, while a lock delays it).
            await self._wait_committed(room.name)
            loop = asyncio.get_running_loop()
            result = None
            compact_with = getattr(self.storage, "compact_with", None)
            if compact_with is not None and self.bridge is None and not room.doc.pending:
                # With no bus, this process is the room's only writer (compact_with checks
                # the rows), and its document holds every row it committed: that document's
                # state is the snapshot. Rebuilding the room from its rows instead took a
                # worker thread 80-140 ms every 2,000 rows, holding the interpreter lock
                # against the event loop (a room of 100 typists: every 2 s).
                state = room.doc.get_update()
                result = await loop.run_in_executor(
                    self._executor, compact_with, room.name, state, room.committed_seq
                )
            if result is None:
                result = await loop.run_in_executor(self._executor, self.storage.compact, room.name)
            if result is not None:
                # The snapshot holds all the room had stored when it started (committed
                # first); what it took since counts on top, some perhaps twice: the count
                # may run over what storage holds, never under.
                room.stored_bytes = result.snapshot_bytes + room.stored_bytes - stored
                log.info(
                    "room compacted",
                    extra={
                        "event": "compact",
                        "room": room.name,
                        "rows": result.rows,
                        "snapshot_bytes": result.snapshot_bytes,
                        "ms": round(result.seconds * 1000, 1),
                    },
                )
        except Exception:
            room.rows_since_compact += rows
            room.bytes_since_compact += size
            log.exception("compaction failed", extra={"event": "compact_error", "room": room.name})
        finally:
            room.compacting = False

    # ---- background ------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _housekeep(self) -> None:
        loop = asyncio.get_running_loop()
        last_checkpoint = last_resync = last_trim = loop.time()
        while True:
            await asyncio.sleep(1.0)
            now = loop.time()
            if self._freed and now - last_trim >= 2.0:
                # Connections closed: what their queues and transfers held is free now;
                # give it back (a few ms, at most every 2 s).
                self._freed = False
                last_trim = now
                release_free_memory()
            for room in list(self.rooms.values()):
                room.presence.tick(now)
            if now - last_checkpoint >= 30.0:
                last_checkpoint = now
                try:
                    await loop.run_in_executor(self._executor, self.storage.maintenance)
                except Exception:
                    log.exception("storage maintenance failed", extra={"event": "storage_error"})
            if self.bridge is not None and now - last_resync >= self.resync_interval:
                last_resync = now
                self.resync_all()


#: Entry tags of changes that only remove (the quota lets them past, see _check_quota).
_REMOVALS = frozenset({enc.DEL, enc.MAP_DEL, enc.SET_REM, enc.SKIP})


def _write_batch(storage: Storage, items: list[tuple[str, list[bytes]]]) -> list[list[int]]:
    """*(writer thread)* Append every update of the batch, commit; the seqs, per room. A
    busy database is retried inside the storage (see SQLiteStorage); an exception means
    nothing of the batch is durable. Rooms are appended in name order: a store that locks
    each room for the rest of the transaction (PostgresStorage) then takes its locks in one
    order in every process, so two processes' batches never deadlock."""
    seqs: list[list[int]] = [[] for _ in items]
    for i in sorted(range(len(items)), key=lambda i: items[i][0]):
        name, updates = items[i]
        seqs[i] = [storage.append(name, update) for update in updates]
    storage.commit()
    return seqs


def _close_thread_conns(storage: Storage) -> None:
    closer: Callable[[], None] | None = getattr(storage, "close_thread", None)
    if closer is not None:
        closer()


def _changes_document(doc: Doc, data: bytes, limits: Limits) -> bool:
    """Whether a message from a read-only client would change ``doc``: an update or diff
    with changes the document lacks, or with facts (a fact can remove elements the
    document holds). A client that is level or behind sends empty diffs, which pass."""
    msg = m.decode_message(data, limits.max_message_size, max_states=limits.presence_per_room)
    if not isinstance(msg, m.Diff | m.UpdateMessage):
        return False
    try:
        parsed = enc.decode_update(msg.update, limits.max_message_size)
    except DecodeError as exc:
        raise ProtocolError(f"bad update in a sync message: {exc}") from None
    if parsed.facts:
        return True
    vv = doc.version
    return any(seg.end - 1 > vv.get(seg.replica, 0) for seg in parsed.segments)
