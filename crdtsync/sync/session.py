"""SyncSession: one peer connection, as a sans-I/O state machine (bytes in, bytes out).

Lifecycle::

    start()                     -> [HELLO(my version, wants_hello=True)]
    receive(HELLO(v, w))        -> [DIFF(get_update(v)) parts] (+ [HELLO(mine, False)] if w
                                   and I have not said hello on this connection)
    receive(DIFF parts)         -> integrate (once all parts are in); the next poll() ACKs
    receive(UPDATE parts)       -> integrate; a gap (missing dependencies) -> [HELLO(mine,
                                   False)] to ask for what I lack, once per gap episode
    receive(ACK(v))             -> remember what the peer has; if it holds something I lack
                                   and I am not already asking -> [HELLO(mine, False)]
    poll()                      -> [UPDATE parts] of everything the document took since
                                   the last poll (local edits and updates from other
                                   sessions), minus what this peer sent or already has;
                                   [ACK] if I integrated something from the peer; presence

Nothing here does I/O, reads a clock or starts a thread. A reconnect is ``start()`` again
on both sides. Once both sides are level and quiet, ``poll()`` and ``receive()`` return
nothing more.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from crdtsync import _encoding as enc
from crdtsync._doc import Doc, _splittable
from crdtsync._errors import DecodeError, PendingOverflowError, ProtocolError, ReplicaIdConflict
from crdtsync._merge import merge_updates, split_update
from crdtsync.sync import _outbox
from crdtsync.sync import messages as m
from crdtsync.sync._outbox import OwnOutbox, SharedOutbox, Taken
from crdtsync.sync.awareness import Presence, PresenceChange

__all__ = [
    "SyncSession",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_TRANSFER_PARTS",
    "MAX_TRANSFER_BYTES",
    "REASK_AFTER",
]

PresenceFilter = Callable[[list[tuple[int, int, Any]]], list[tuple[int, int, Any]]]

#: Outgoing messages are cut to about this size (WebSocket servers commonly cap frames at
#: 1 MiB, e.g. the ``websockets`` library's default ``max_size``).
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
#: Incoming messages above this size are refused (unless a session is told otherwise).
DEFAULT_MAX_INCOMING_SIZE = 64 << 20
#: Incoming limits: a split transfer may have at most this many parts, and the parts a
#: session holds while waiting for the rest may add up to at most this many bytes.
MAX_TRANSFER_PARTS = 1 << 16
MAX_TRANSFER_BYTES = 256 << 20
#: While a request for missing changes is unanswered (it or its answer may have been
#: lost), ask again after this many more messages from the peer that leave us behind it.
REASK_AFTER = 2
#: How many completed incoming transfer ids a session remembers (to recognise late
#: duplicates of their parts); older ones are forgotten first.
MAX_DONE_TRANSFERS = 4096


class SyncSession:
    """Keeps ``doc`` in sync with one peer over any transport that carries byte messages.

    >>> import crdtsync
    >>> from crdtsync.sync import SyncSession
    >>> a, b = crdtsync.Doc(), crdtsync.Doc()
    >>> a.text("t").insert(0, "hello")
    >>> sa, sb = SyncSession(a), SyncSession(b)
    >>> inbox_a, inbox_b = sa.start(), sb.start()
    >>> while inbox_a or inbox_b:     # deliver until both sides are quiet
    ...     inbox_b, inbox_a = (
    ...         [r for msg in inbox_a for r in sb.receive(msg)] + sb.poll(),
    ...         [r for msg in inbox_b for r in sa.receive(msg)] + sa.poll(),
    ...     )
    >>> str(b.text("t")), sa.synced and sb.synced
    ('hello', True)
    """

    def __init__(
        self,
        doc: Doc,
        *,
        presence: Presence | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_incoming_size: int | None = None,
        presence_filter: PresenceFilter | None = None,
        update_check: Callable[[enc.Update, bool], None] | None = None,
        max_transfer_bytes: int = MAX_TRANSFER_BYTES,
        max_presence_states: int | None = None,
        outbox: SharedOutbox | None = None,
    ) -> None:
        if max_message_size < 256:
            raise ValueError("max_message_size must be at least 256 bytes")
        self.doc = doc
        self.presence = presence
        #: Called with the entries of each AWARENESS the peer sends; only those it returns
        #: are applied (a relay keeps a client to its own replica ids).
        self.presence_filter = presence_filter
        #: Called as ``update_check(update, whole)`` with each decoded DIFF or UPDATE part
        #: before anything else happens to it (``whole`` False if it is one part of a
        #: split transfer), and again with the merged transfer once every part is in
        #: (``whole`` True): whatever it raises leaves receive() with the session and
        #: document unchanged. A relay checks who may write under which replica id this way.
        self.update_check = update_check
        #: The parts of unfinished split transfers this session holds may add up to at
        #: most this many bytes; a part past it raises ProtocolError.
        self.max_transfer_bytes = max_transfer_bytes
        #: An AWARENESS message with more states than this raises ProtocolError (None: no
        #: limit but the message size). A relay sets it to what a room may hold.
        self.max_presence_states = max_presence_states
        self.max_message_size = max_message_size
        #: Larger incoming messages raise ProtocolError. The default is generous because
        #: a single change larger than the outgoing limit (a huge map value) travels whole.
        self.max_incoming_size = max_incoming_size or max(
            DEFAULT_MAX_INCOMING_SIZE, 2 * max_message_size
        )
        self._peer: dict[int, int] = {}  # what the peer is known to hold
        self._sent: dict[int, int] = {}  # what we sent it since (it may not have it yet)
        self._told: dict[int, int] = {}  # the version we last told it we hold
        self._last_ack: dict[int, int] | None = None  # the version in its last ACK
        self._ack_due = False
        self._asking = False  # a HELLO(wants_hello=False) is unanswered
        self._gaps_since_ask = 0
        self._hello_sent = False
        self._transfers: dict[tuple[int, int], dict[int, bytes]] = {}
        self._transfer_bytes = 0
        # Incoming transfer ids that need no more parts: those completed, and every id up
        # to the floor (older than a DIFF we hold all of). A late duplicate of one of their
        # parts must not start a transfer that never completes.
        self._done: set[int] = set()
        self._floor = -1
        #: The sender's version stated by each unfinished DIFF transfer (see
        #: _retire_covered_diffs).
        self._diff_versions: dict[tuple[int, int], dict[int, int]] = {}
        self._transfer_ids = itertools.count()
        self._presence_dirty: set[int] = set()
        self._closed = False
        self._epoch = doc._replica_epoch
        #: False from start() until the peer's first message. Our own changes sent meanwhile
        #: (up to counter ``_early_own``) count as reaching others only if that message shows
        #: the peer did not hold those counters already (it drops what it holds).
        self._peer_known = True
        self._early_own = 0
        #: False from start() until the peer states its version (HELLO, DIFF or ACK).
        self._answered = True
        #: The updates the doc took that this peer may lack (see crdtsync.sync._outbox).
        self._box: OwnOutbox | SharedOutbox
        if outbox is None:
            self._box = OwnOutbox(doc, self)
        else:
            if outbox.doc is not doc:
                raise ValueError("a shared outbox serves the sessions of its own document")
            self._box = outbox
            outbox.join(self)
        self._unsubscribe_presence = (
            presence.on_change(self._presence_changed) if presence is not None else None
        )

    # ---- public state --------------------------------------------------------------------

    @property
    def peer_version(self) -> dict[int, int]:
        """What the peer is known to hold (from its HELLO, DIFFs, UPDATEs and ACKs)."""
        return {r: c for r, c in self._peer.items() if c}  # (an ACK may state zeros)

    @property
    def synced(self) -> bool:
        """True when the peer is known to hold exactly what this document holds and nothing
        is in flight on this side."""
        if self._transfers or self._ack_due or not self._answered or self._box.waiting(self):
            # (Cheap, and so first: clients ask after every message. Until the peer states
            # its version after start(), in a HELLO, DIFF or ACK, we cannot know all it
            # holds: an UPDATE says what it carries, not what else the peer has.)
            return False
        mine = {r: c for r, c in self.doc._vv.items() if c}
        peer = {r: c for r, c in self._peer.items() if c}
        return mine == peer

    def close(self) -> None:
        """Stop listening to the document (and presence)."""
        if not self._closed:
            self._closed = True
            self._transfers.clear()  # what it held for unfinished transfers goes now
            self._diff_versions.clear()
            self._transfer_bytes = 0
            self._box.leave(self)
            if self._unsubscribe_presence is not None:
                self._unsubscribe_presence()

    # ---- the state machine ---------------------------------------------------------------

    def start(self) -> list[bytes]:
        """Messages to send when the connection (re)opens."""
        self._transfers.clear()
        self._diff_versions.clear()
        self._transfer_bytes = 0
        self._done.clear()
        self._floor = -1
        self._peer_known = False
        self._answered = False
        self._early_own = 0
        self._asking = True
        self._gaps_since_ask = 0
        self._hello_sent = True
        self._told = dict(self.doc._vv)
        self._last_ack = None
        out = [m.encode_message(m.Hello(self._told, True))]
        if self.presence is not None:
            self._presence_dirty.update(r for r, _, _ in self.presence.encode_states())
        return out

    def receive(self, message: bytes) -> list[bytes]:
        """Take one message from the peer; return the messages to send back.

        Raises :class:`~crdtsync.ProtocolError` for a malformed message or one that breaks
        a limit; the session and the document are then unchanged.
        """
        msg = m.decode_message(message, self.max_incoming_size, max_states=self.max_presence_states)
        return self._dispatch(msg)

    def _holds_all_peer_holds(self) -> bool:
        vv = self.doc._vv
        return _covers(vv, self._peer)

    def _dispatch(self, msg: m.Message) -> list[bytes]:
        if not self._peer_known:
            self._first_message(msg)
        if isinstance(msg, m.Hello | m.Diff | m.Ack):
            self._answered = True  # (each states all the peer holds)
        if isinstance(msg, m.Hello | m.Diff | m.Ack) and self._own_id_taken(msg.version):
            # The document re-issued its changes under a fresh id: tell the peer what we
            # hold now (it holds the changes under our old id that we lack).
            if isinstance(msg, m.Diff):
                return self._ask()  # computed against our old version: ask afresh instead
            return self._dispatch(msg) + self._ask()
        if isinstance(msg, m.Hello):
            return self._on_hello(msg)
        if isinstance(msg, m.Diff):
            return self._on_part(msg.update, msg.part, is_diff=True, version=msg.version)
        if isinstance(msg, m.UpdateMessage):
            return self._on_part(msg.update, msg.part, is_diff=False)
        if isinstance(msg, m.Ack):
            last, sent, now = self._last_ack, self._sent, msg.version
            # Stalled: it lacks some of what we sent, and took none of it since its last ACK
            # (its own edits do not count as progress).
            # A stale ACK (overtaken by a newer one on a reordering transport) says less
            # than the peer is known to hold: it is no sign of a stall.
            stale = not _covers(now, self._peer)
            stalled = (
                not stale
                and last is not None
                and not _covers(now, sent)
                and all(now.get(r, 0) <= last.get(r, 0) for r in sent)
            )
            if not stale:
                self._last_ack = dict(msg.version)
                self._peer.update(now)  # (it covers what we knew: the join, at C speed)
            else:
                self._join_peer(now)
            out: list[bytes] = []
            if stalled:
                # The peer made no progress since its last ACK yet lacks what we sent: a
                # message (or its request for it) was lost. Resend what it lacks.
                diff = self.doc.get_update(msg.version)
                out += self._parts(diff, diff_version=dict(self.doc._vv))
                self._told = dict(self.doc._vv)
                _join(self._sent, self.doc._vv)
            holds_all = self._holds_all_peer_holds()
            if self._asking and not holds_all:
                return out + self._count_gap()
            return out + self._maybe_ask(holds_all)
        if isinstance(msg, m.Awareness):
            if self.presence is not None:
                states = msg.states
                if self.presence_filter is not None:
                    states = self.presence_filter(states)
                if states:
                    self.presence.apply(states, origin=self)
            return []
        raise ProtocolError(f"{type(msg).__name__} is for a hub, not a session")

    def poll(self) -> list[bytes]:
        """Changes the document took since the last poll, minus what the peer sent or
        already holds; an ACK if something from the peer was integrated; presence."""
        out: list[bytes] = []
        dropped = False
        if self._epoch != self.doc._replica_epoch:
            # Another session's peer made the document take a fresh replica id: our peer
            # must learn what we hold now.
            self._epoch = self.doc._replica_epoch
            out += self._ask()
        taken = self._box.take(self)
        if taken is not None:
            outbox, lows, tops = taken.updates, taken.lows, taken.tops
            peer, sent = self._peer, self._sent
            if _above(lows, peer) and _above(lows, sent):
                # The peer holds none of it (a relay's room, every tick): one merge, which
                # the room's other sessions share.
                merged = taken.merged()
                out += self._send_update(merged, tops, above_sent=True)
            else:
                known = dict(peer)
                _join(known, sent)
                fresh: list[bytes] = []
                overlap = False
                for update in outbox:
                    covered = _outbox.spans(update)
                    if all(top <= known.get(r, 0) for r, _, top in covered):
                        dropped = True  # the peer holds all of it (or was sent it)
                        continue
                    fresh.append(update)
                    overlap = overlap or any(low <= known.get(r, 0) for r, low, _ in covered)
                if fresh and overlap:
                    # Part of it is already there (say, a whole state the application
                    # applied): send only what the peer lacks, not the whole thing again.
                    merged = self.doc.get_update(known)
                    out += self._send_update(merged, _coverage(merged))
                elif fresh:
                    rest = Taken.of(tuple(fresh))
                    out += self._send_update(rest.merged(), rest.tops)
        if dropped and self._told != self.doc._vv:
            # Only changes the peer already holds came in (say, relayed by a third peer):
            # tell it our version, or it would never learn that we are level.
            self._ack_due = True
        if self._ack_due:
            self._ack_due = False
            out.append(self._ack())
        if self._diff_versions:
            self._retire_covered_diffs()
        if self._presence_dirty and self.presence is not None:
            states = self.presence.encode_states(self._presence_dirty)
            self._presence_dirty.clear()
            if states:
                out.append(m.encode_message(m.Awareness(states)))
        return out

    # ---- handlers ----------------------------------------------------------------------------

    def _on_hello(self, hello: m.Hello) -> list[bytes]:
        if hello.wants_hello:
            # A (re)opening connection: what the peer states is authoritative (it may have
            # lost data since), and everything we sent before may be lost.
            self._peer = dict(hello.version)
            self._sent = {}
            if self.presence is not None:
                # Nor has it our view of who is here (a relay's session never calls
                # start()): the next poll sends every entry, as start() does.
                self._presence_dirty.update(r for r, _, _ in self.presence.encode_states())
        else:
            # A request for what it lacks: it holds at least this (on a transport that
            # reorders, a newer ACK may have overtaken it).
            self._join_peer(hello.version)
        self._last_ack = dict(hello.version)
        # Everything collected so far is inside the diff we are about to send.
        self._box.skip(self)
        diff = self.doc.get_update(hello.version)
        out = self._parts(diff, diff_version=dict(self.doc._vv))
        self._told = dict(self.doc._vv)
        _join(self._sent, self.doc._vv)
        if hello.wants_hello and not self._hello_sent:
            self._hello_sent = True
            self._asking = True
            out.append(m.encode_message(m.Hello(dict(self.doc._vv), False)))
        return out

    def _on_part(
        self,
        update: bytes,
        part: m.Transfer,
        *,
        is_diff: bool,
        version: dict[int, int] | None = None,
    ) -> list[bytes]:
        try:
            # A compressed part may inflate to no more than a message this session would
            # take uncompressed, which bounds what decoding it costs.
            parsed = enc.decode_update(update, self.max_incoming_size)
        except DecodeError as exc:
            raise ProtocolError(f"bad update in a sync message: {exc}") from None
        if self.update_check is not None:
            self.update_check(parsed, part.count == 1)
        if part.count > MAX_TRANSFER_PARTS:
            raise ProtocolError(f"a transfer of {part.count} parts exceeds the limit")
        stored: tuple[tuple[int, int], int] | None = None
        incomplete = False
        if part.count > 1:
            if part.transfer <= self._floor or part.transfer in self._done:
                return []  # a late duplicate: its transfer went in whole already
            key = (part.transfer, part.count)
            held = self._transfers.get(key, {})
            if part.index not in held:
                if self._transfer_bytes + len(update) > self.max_transfer_bytes:
                    raise ProtocolError("split transfer exceeds the buffered-bytes limit")
                self._transfers[key] = held
                held[part.index] = update
                if version is not None:
                    self._diff_versions[key] = version
                self._transfer_bytes += len(update)
                stored = (key, part.index)
            if len(held) < part.count:
                incomplete = True
                # The peer holds what it sent us, even though we wait for the rest.
                self._join_peer(enc.coverage(parsed))
                if version is not None:
                    self._join_peer(version)
                if not _splittable(parsed):
                    return []
                # A part made of self-contained changes goes in at once; the whole
                # transfer is still applied at the end (its duplicates are skipped).
            else:
                # All parts are in: apply them as the one update they were cut from, so
                # that no part's effects are visible without the rest.
                update = merge_updates(
                    [held[i] for i in range(part.count)], max_inflated_size=self.max_incoming_size
                )
                parsed = enc.decode_update(update, None)  # (merged: not compressed)
                if self.update_check is not None:
                    try:
                        self.update_check(parsed, True)
                    except BaseException:
                        if stored is not None:  # leave the session as it was
                            self._unstore(*stored)
                        raise
                self._forget_transfer(key, done=True)
                stored = None
        try:
            self.doc._apply(update, self, parsed)
        except PendingOverflowError:
            # Our buffer for out-of-order changes is full: ask for a fresh diff instead
            # (a diff is always ready to integrate).
            return [] if self._asking else self._ask()
        except DecodeError as exc:
            if stored is not None:  # leave the session as it was
                self._unstore(*stored)
            if isinstance(exc, ReplicaIdConflict):
                raise
            raise ProtocolError(f"the peer sent an update this document rejects: {exc}") from exc
        self._box.integrated(update, parsed)
        if version is not None:
            self._join_peer(version)
        tops = enc.coverage(parsed)
        self._join_peer(tops)
        vv = self.doc._vv
        # (What the document lacks of the update waits in its buffer: none waits, no gap.)
        gap = bool(self.doc._pending_count) and not _covers(vv, tops)
        if vv != self._told:
            self._ack_due = True
        if incomplete:
            # The rest of the transfer is on its way: what this part still waits for is
            # most likely in it, so this is no gap to ask about.
            return []
        if is_diff:
            # Always acknowledge the answer to a HELLO: its sender set its view of us from
            # that HELLO (possibly a stale duplicate) and needs our actual version.
            self._ack_due = True
            self._asking = False
            self._gaps_since_ask = 0
            if version is not None and _covers(vv, version):
                self._drop_transfers_before(part.transfer)
            return []
        if gap:
            if not self._asking:
                return self._ask()  # our HELLO tells the peer our version: no ACK needed
            # Still stuck while our request is out: an ACK showing no progress lets the
            # sender notice and resend (our request or its answer may have been lost).
            self._ack_due = True
            return self._count_gap()
        return []

    def _retire_covered_diffs(self) -> None:
        """Forget unfinished DIFF transfers whose stated version we now hold: a DIFF
        carries only what its sender held at that version, so whatever its missing parts
        (lost, most likely) carry is here already, with its effects. Without this a
        session that got level another way would wait for them forever, unsynced."""
        vv = self.doc._vv
        for key, version in list(self._diff_versions.items()):
            if _covers(vv, version):
                self._forget_transfer(key, done=True)  # its late duplicates are ignored

    def _forget_transfer(self, key: tuple[int, int], *, done: bool) -> None:
        """Drop an incoming transfer's held parts; ``done``: count its id as done."""
        self._transfer_bytes -= sum(len(p) for p in self._transfers.pop(key).values())
        self._diff_versions.pop(key, None)
        if done:
            self._done.add(key[0])
            if len(self._done) > MAX_DONE_TRANSFERS:
                self._done.remove(min(self._done))

    def _unstore(self, key: tuple[int, int], index: int) -> None:
        """Forget the part just stored for a transfer (its update was refused)."""
        held = self._transfers[key]
        self._transfer_bytes -= len(held.pop(index))
        if not held:
            self._forget_transfer(key, done=False)

    def _drop_transfers_before(self, transfer: int) -> None:
        """Forget incomplete transfers older than ``transfer``, a DIFF we now hold all of.

        The peer sends only what it has integrated, and a DIFF carries everything the peer
        held that we lacked, so an older transfer (the peer counts its ids up) has nothing
        left for us: its missing parts were lost, or are duplicates still on their way."""
        for key in [k for k in self._transfers if k[0] < transfer]:
            self._forget_transfer(key, done=False)
        self._floor = max(self._floor, transfer)
        self._done = {t for t in self._done if t > self._floor}

    def _first_message(self, msg: m.Message) -> None:
        """The peer's first message since start(): did our own changes sent before it reach
        a peer that lacked them? (A peer that holds their counters drops them.)"""
        self._peer_known = True
        doc, early = self.doc, self._early_own
        self._early_own = 0
        if not early:
            return
        held = msg.version.get(doc._replica, 0) if isinstance(msg, m.Hello | m.Diff | m.Ack) else 0
        if held < early and early > doc._own_shared:
            doc._own_shared = early

    def _own_id_taken(self, version: dict[int, int]) -> bool:
        """Whether the peer's ``version`` shows someone else using our replica id, in which
        case the document re-issues its changes under a fresh id (True) or raises
        :class:`~crdtsync.ReplicaIdConflict`, leaving document and session unchanged."""
        doc = self.doc
        top = version.get(doc._replica, 0)
        if not doc._twin_holds(top):
            return False  # nothing of ours under the id yet, or nothing it cannot have
        doc._replica_id_taken(top)
        self._epoch = doc._replica_epoch
        return True

    def _ack(self) -> bytes:
        self._told = dict(self.doc._vv)
        return m.encode_message(m.Ack(self._told))

    def _count_gap(self) -> list[bytes]:
        self._gaps_since_ask += 1
        if self._gaps_since_ask >= REASK_AFTER:
            return self._ask()  # the request (or its answer) was probably lost
        return []

    def _ask(self) -> list[bytes]:
        self._asking = True
        self._gaps_since_ask = 0
        self._told = dict(self.doc._vv)
        return [m.encode_message(m.Hello(self._told, False))]

    def _maybe_ask(self, holds_all: bool | None = None) -> list[bytes]:
        """Ask for what the peer holds and we lack, unless asked already (``holds_all``:
        whether we hold all it holds, if the caller just found out)."""
        if holds_all is None:
            holds_all = self._holds_all_peer_holds()
        if not holds_all:
            return [] if self._asking else self._ask()
        self._asking = False  # we hold all the peer holds: nothing left to ask for
        return []

    # ---- helpers -------------------------------------------------------------------------------

    def _took_from_peer(self) -> None:
        """Something the peer sent went in (perhaps late, once another session filled the
        gap it waited on): the peer should hear our new version."""
        self._ack_due = True

    def _presence_changed(self, change: PresenceChange) -> None:
        if change.origin is not self and change.origin != "timeout":
            self._presence_dirty.update(change.joined | change.updated | change.left)

    def _join_peer(self, version: dict[int, int]) -> None:
        _join(self._peer, version)

    def _sending_own(self, top: int) -> None:
        """An UPDATE carries our own changes up to counter ``top``: note that they may
        reach others (a DIFF comes from get_update, which notes it itself)."""
        doc = self.doc
        if top > doc._own_emitted:
            doc._own_emitted = top  # it has left this object, whatever the peer did with it
        if not self._peer_known:
            self._early_own = max(self._early_own, top)  # judged at its first message
        elif top > doc._own_shared:
            doc._own_shared = top

    def _send_update(
        self, update: bytes, covers: dict[int, int], above_sent: bool = False
    ) -> list[bytes]:
        """UPDATE messages carrying ``update``, which covers ``covers`` (``above_sent``:
        every counter of which is above what was sent before)."""
        self._sending_own(covers.get(self.doc._replica, 0))
        if above_sent:
            self._sent.update(covers)  # (a relay's session, every tick: no comparing)
        else:
            _join(self._sent, covers)
        return self._parts(update, diff_version=None)

    def _parts(self, update: bytes, diff_version: dict[int, int] | None) -> list[bytes]:
        parts = split_update(update, self.max_message_size)
        transfer = next(self._transfer_ids) & 0xFFFFFFFF  # ids are uint32 on the wire
        out = []
        for i, part in enumerate(parts):
            where = m.Transfer(transfer, i, len(parts))
            if diff_version is None:
                out.append(m.encode_message(m.UpdateMessage(part, where)))
            else:
                out.append(m.encode_message(m.Diff(part, diff_version, where)))
        return out


def _join(into: dict[int, int], version: dict[int, int]) -> None:
    for r, c in version.items():
        if c > into.get(r, 0):
            into[r] = c


def _above(lows: dict[int, int], version: dict[int, int]) -> bool:
    """Whether every counter in ``lows`` is above what ``version`` holds of its replica."""
    get = version.get
    # A plain loop: all() over a generator costs twice as much, for every session and tick.
    for r, low in lows.items():  # noqa: SIM110
        if low <= get(r, 0):
            return False
    return True


def _covers(version: dict[int, int], other: dict[int, int]) -> bool:
    """Whether ``version`` holds everything ``other`` does (for every replica, at least
    its counter); a plain loop, as in :func:`_above` (versions of 100 replicas, per ACK)."""
    get = version.get
    for r, c in other.items():  # noqa: SIM110
        if get(r, 0) < c:
            return False
    return True


def _coverage(update: bytes) -> dict[int, int]:
    """Replica -> highest counter ``update`` covers."""
    return {r: top for r, _, top in _outbox.spans(update)}
