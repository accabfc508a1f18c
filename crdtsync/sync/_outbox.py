"""What a document took that a session's peer may lack: the session's outbox.

At each poll a session sends its peer the updates its document took since the last poll,
less the ones that peer sent itself. By default a session records them on its own
(:class:`OwnOutbox`). A relay holds many sessions on one document, a room: if each of them
recorded every update and summed up its own outbox at every tick, a room would cost its
updates times its sessions each tick, which grows with the square of the room. A
:class:`SharedOutbox` records each update once for all of a document's sessions and sums
up a tick once; a session then pays only for leaving out its own peer's updates.

Both give a session the same thing: the updates in the order the document took them, with
the lowest and highest counter they cover per replica.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from itertools import chain
from typing import TYPE_CHECKING, Any

from crdtsync import _encoding as enc
from crdtsync._doc import Doc
from crdtsync.sync._fanout import MergeBase, merge_all

if TYPE_CHECKING:
    from crdtsync.sync.session import SyncSession

__all__ = ["OwnOutbox", "SharedOutbox", "Taken"]

#: How many decoded updates :func:`parsed` keeps: what the sessions of a document take
#: between two polls (a relay's tick, in every room: tens to a few thousand). Not more: a
#: relay takes about a thousand updates a second, and every one kept is a few objects that
#: each full garbage collection revisits (at 1 << 16, a relay of 100 typists held every
#: update of the last minute, and its full collections paused it for up to 130 ms).
PARSED_CACHE_SIZE = 1 << 12

_parsed_cache: dict[bytes, enc.Update] = {}


def parsed(update: bytes) -> enc.Update:
    """``update`` (one our own document took) decoded. Kept: a relay hands the same update
    to every session of a room, and each would otherwise decode it again, to see what it
    covers and to merge it into its peer's next message. Callers must not change it."""
    found = _parsed_cache.get(update)
    if found is None:
        found = enc.decode_update(update, None)
        remember(update, found)
    return found


def remember(update: bytes, decoded: enc.Update) -> None:
    """Keep ``decoded`` as what :func:`parsed` returns for ``update``: a session that has
    just integrated an update it decoded spares the outboxes a second decode."""
    _keep(_parsed_cache, update, decoded)


def _keep(cache: dict[bytes, Any], update: bytes, value: Any) -> None:
    """``cache[update] = value``, in a cache of at most PARSED_CACHE_SIZE entries."""
    if len(cache) >= PARSED_CACHE_SIZE:
        # Oldest first (dicts keep insertion order): drop a slice, not one per insert.
        for stale in list(cache)[: PARSED_CACHE_SIZE // 8]:
            del cache[stale]
    cache[update] = value


_spans_cache: dict[bytes, tuple[tuple[int, int, int], ...]] = {}


def spans(update: bytes) -> tuple[tuple[int, int, int], ...]:
    """(replica, lowest counter, highest counter) for each replica ``update`` covers."""
    found = _spans_cache.get(update)
    if found is not None:
        return found
    lows: dict[int, int] = {}
    tops: dict[int, int] = {}
    for seg in parsed(update).bare:
        r = seg.replica
        if seg.start < lows.get(r, seg.start + 1):
            lows[r] = seg.start
        if seg.end - 1 > tops.get(r, 0):
            tops[r] = seg.end - 1
    found = tuple((r, lows[r], tops[r]) for r in tops)
    _keep(_spans_cache, update, found)
    return found


def summary(updates: tuple[bytes, ...]) -> tuple[dict[int, int], dict[int, int]]:
    """Replica -> lowest counter, and replica -> highest counter, that ``updates`` cover."""
    lows: dict[int, int] = {}
    tops: dict[int, int] = {}
    for update in updates:
        for r, low, top in spans(update):
            if low < lows.get(r, low + 1):
                lows[r] = low
            if top > tops.get(r, 0):
                tops[r] = top
    return lows, tops


@functools.lru_cache(maxsize=256)
def merged(updates: tuple[bytes, ...]) -> bytes:
    """The updates (our own document's) as one. Cached: sessions of one document that poll
    the same updates share one merge (and its bytes) instead of each merging them again."""
    return merge_all(updates, parsed, _merge_base)


#: The last merge :func:`merged` built, which the merges of its subsets are made from.
_merge_base: list[MergeBase | None] = [None]


class Taken:
    """A session's outbox as it polls: ``updates`` in the order the document took them,
    and replica -> lowest (``lows``) and highest (``tops``) counter they cover. The dicts
    may be shared with other sessions: callers must not change them."""

    __slots__ = ("updates", "lows", "tops", "_merge")

    def __init__(
        self,
        updates: tuple[bytes, ...],
        lows: dict[int, int],
        tops: dict[int, int],
        merge: Callable[[], bytes] | None = None,
    ) -> None:
        self.updates = updates
        self.lows = lows
        self.tops = tops
        self._merge = merge

    @classmethod
    def of(cls, updates: tuple[bytes, ...]) -> Taken:
        return cls(updates, *summary(updates))

    def merged(self) -> bytes:
        """The updates as one update."""
        if len(self.updates) == 1:
            return self.updates[0]
        if self._merge is not None:
            return self._merge()
        return merged(self.updates)


class OwnOutbox:
    """One session's own record of what its document took (the default)."""

    __slots__ = ("_session", "_updates", "_unsubscribe")

    def __init__(self, doc: Doc, session: SyncSession) -> None:
        self._session = session
        self._updates: list[bytes] = []
        self._unsubscribe = doc.on_update(self._collect, _internal=True)

    def _collect(self, update: bytes, origin: Any) -> None:
        if origin is self._session:
            self._session._took_from_peer()
        else:
            self._updates.append(update)

    def waiting(self, session: SyncSession) -> bool:
        """Whether anything is recorded for ``session``'s next poll."""
        return bool(self._updates)

    def take(self, session: SyncSession) -> Taken | None:
        """What ``session`` sends at this poll (None: nothing), recorded afresh from now."""
        if not self._updates:
            return None
        updates, self._updates = tuple(self._updates), []
        return Taken.of(updates)

    def skip(self, session: SyncSession) -> None:
        """Forget what is recorded for ``session`` (it sends a whole diff instead)."""
        self._updates = []

    def integrated(self, update: bytes, decoded: enc.Update) -> None:
        """The session integrated ``update``, which it decoded as ``decoded``."""

    def leave(self, session: SyncSession) -> None:
        self._unsubscribe()


#: In ``_Tick._holders``: a replica whose changes came from more than one origin.
_SEVERAL = object()


class _Tick:
    """The updates a document took between two positions of a shared log, summed up once
    for every session that polls them."""

    __slots__ = ("start", "end", "updates", "origins", "all", "_by_origin", "_holders", "_base")

    def __init__(self, start: int, end: int, updates: tuple[bytes, ...], origins: list[Any]):
        self.start = start
        self.end = end
        self.updates = updates
        self.origins = origins
        self.all = Taken(updates, *summary(updates), self._merge_all)
        self._by_origin: dict[int, list[int]] | None = None
        self._holders: dict[int, Any] | None = None
        self._base: list[MergeBase | None] | None = None

    def taken(self, session: SyncSession) -> Taken | None:
        """What ``session`` sends of these: all but what its own peer sent."""
        by_origin = self._by_origin
        if by_origin is None:
            # By id: an origin may be any object, hashable or not (the log keeps each one
            # alive, so no two of them share an id).
            by_origin = self._by_origin = {}
            for i, origin in enumerate(self.origins):
                by_origin.setdefault(id(origin), []).append(i)
        own = by_origin.get(id(session))
        if own is None:
            return self.all
        updates = self.updates
        if len(own) == len(updates):
            return None
        # Cut around its own (a few, in order) rather than test every update.
        pieces = [updates[: own[0]]]
        pieces += [updates[a + 1 : b] for a, b in zip(own, own[1:], strict=False)]
        pieces.append(updates[own[-1] + 1 :])
        rest = tuple(chain.from_iterable(pieces))
        replicas = {r for i in own for r, _, _ in spans(updates[i])}
        holders = self._holders_by_replica()
        if any(holders[r] is not session for r in replicas):
            return Taken.of(rest)  # others' updates touch its replicas too: in full
        # Its peer's replicas appear in its peer's updates only: leave them out of the sums
        # and out of the merge.
        lows = {r: c for r, c in self.all.lows.items() if r not in replicas}
        tops = {r: c for r, c in self.all.tops.items() if r not in replicas}
        return Taken(rest, lows, tops, lambda: self._merge_without(replicas, rest))

    def _holders_by_replica(self) -> dict[int, Any]:
        """Replica -> the origin of every update that touches it (or _SEVERAL)."""
        holders = self._holders
        if holders is None:
            holders = self._holders = {}
            for update, origin in zip(self.updates, self.origins, strict=True):
                for r, _, _ in spans(update):
                    if holders.setdefault(r, origin) is not origin:
                        holders[r] = _SEVERAL
        return holders

    def _merge_base(self) -> MergeBase | None:
        if self._base is None:
            self._base = [MergeBase.build(self.updates, [parsed(u) for u in self.updates])]
        return self._base[0]

    def _merge_all(self) -> bytes:
        base = self._merge_base()
        return merged(self.updates) if base is None else base.whole

    def _merge_without(self, replicas: set[int], rest: tuple[bytes, ...]) -> bytes:
        base = self._merge_base()
        return merged(rest) if base is None else base.without(replicas)


class SharedOutbox:
    """One record of what ``doc`` took for all the sessions of ``doc`` that are given it.

    A server that keeps many sessions on one document (one per client of a room) gives
    each of them the same outbox; polling them one after another then sums up and merges
    the updates once, not once per session, and a session whose peer sent some of them
    only cuts those out.

    >>> import crdtsync
    >>> from crdtsync.sync import SharedOutbox, SyncSession
    >>> room = crdtsync.Doc()
    >>> outbox = SharedOutbox(room)
    >>> sessions = [SyncSession(room, outbox=outbox) for _ in range(3)]
    >>> room.text("t").insert(0, "hi")
    >>> [len(s.poll()) for s in sessions]    # one UPDATE message each
    [1, 1, 1]
    >>> outbox.close()                        # after its sessions are closed
    """

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self._log: list[bytes] = []
        self._origins: list[Any] = []
        self._offset = 0  # the position of _log[0] since the outbox was made
        #: id(session) -> the session, and the position in the log it has read up to (by id:
        #: an origin need not be hashable, and looking one up must not fail)
        self._sessions: dict[int, SyncSession] = {}
        self._cursors: dict[int, int] = {}
        self._trim_at = 64
        self._tick: _Tick | None = None  # the last range taken
        self._unsubscribe = doc.on_update(self._record, _internal=True)

    def close(self) -> None:
        """Stop recording (the document's sessions that share it must be closed first)."""
        self._unsubscribe()
        self._log.clear()
        self._origins.clear()
        self._tick = None

    def _record(self, update: bytes, origin: Any) -> None:
        session = self._sessions.get(id(origin))
        if session is not None and session is origin:
            session._took_from_peer()
        self._log.append(update)
        self._origins.append(origin)
        if len(self._log) >= self._trim_at:
            self._trim()

    def _trim(self) -> None:
        """Drop what every session has read; the next trim waits for the log to double."""
        end = self._offset + len(self._log)
        low = min(self._cursors.values(), default=end) - self._offset
        if low > 0:
            del self._log[:low]
            del self._origins[:low]
            self._offset += low
        self._trim_at = 2 * len(self._log) + 64

    def join(self, session: SyncSession) -> None:
        """Record for ``session`` from now on."""
        self._sessions[id(session)] = session
        self._cursors[id(session)] = self._offset + len(self._log)

    def waiting(self, session: SyncSession) -> bool:
        first = self._cursors[id(session)] - self._offset
        return any(origin is not session for origin in self._origins[first:])

    def take(self, session: SyncSession) -> Taken | None:
        start = self._cursors[id(session)]
        end = self._offset + len(self._log)
        if start == end:
            return None
        self._cursors[id(session)] = end
        tick = self._tick
        if tick is None or tick.start != start or tick.end != end:
            # The first session polled since the document took these: sum up for all.
            first = start - self._offset
            tick = self._tick = _Tick(start, end, tuple(self._log[first:]), self._origins[first:])
        return tick.taken(session)

    def skip(self, session: SyncSession) -> None:
        self._cursors[id(session)] = self._offset + len(self._log)

    def integrated(self, update: bytes, decoded: enc.Update) -> None:
        # The other sessions will look at it at their next poll: spare them its decoding.
        if type(update) is bytes and len(self._cursors) > 1:
            remember(update, decoded)

    def leave(self, session: SyncSession) -> None:
        self._sessions.pop(id(session), None)
        self._cursors.pop(id(session), None)
