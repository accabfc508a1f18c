"""Doc: the replica that owns the root containers, the clocks and the update flow.

Local edits take the replica's next counters (dots) and Lamport times, change the state
at once and are recorded as entries of the current transaction; when the outermost
transaction ends they become one encoded update for ``on_update`` listeners.

Remote updates are decoded and validated first (``_encoding``), then checked for causal
readiness. An update is integrated as a unit once, for every replica it covers, it starts
no later than one past what we hold, and everything it refers to (origins, delete
targets, removed set dots) is held or inside it. Otherwise it waits in a bounded pending
buffer and is retried after each integration.
"""

from __future__ import annotations

import builtins
import contextlib
import heapq
import itertools
import logging
import secrets
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from crdtsync import _encoding as enc
from crdtsync._bulk import without_gc
from crdtsync._callbacks import report_callback_error, subscribe
from crdtsync._clock import MAX_CLOCK, MAX_REPLICA_ID, VersionVector
from crdtsync._cursor import Cursor, decode_cursor
from crdtsync._encoding import Entry, Segment, Update
from crdtsync._errors import DecodeError, PendingOverflowError, ReplicaIdConflict
from crdtsync._ids import IdIndex
from crdtsync._integrate import check_ready, integrate, integrate_keystrokes
from crdtsync._nesting import Slot, child_name
from crdtsync._values import check_str
from crdtsync.types._base import Container
from crdtsync.types._deep import deep_event_lists
from crdtsync.types._marks import Mark, attributed_delta, spans
from crdtsync.types.counter import Counter
from crdtsync.types.events import (
    CounterEvent,
    DeltaBuilder,
    ListEvent,
    MapEvent,
    SetEvent,
    TextEvent,
)
from crdtsync.types.list import List
from crdtsync.types.lwwmap import LWWMap
from crdtsync.types.orset import Key, ORSet, element_key
from crdtsync.types.text import SequenceContainer, Text

__all__ = ["Doc", "Transaction", "DEFAULT_MAX_PENDING", "REISSUED"]

#: The ``on_update`` origin of the update a document emits when it re-issues its changes
#: under a fresh replica id (see :class:`~crdtsync.ReplicaIdConflict`).
REISSUED = "crdtsync.reissued"

Dot = tuple[int, int]
UpdateCallback = Callable[[bytes, Any], None]
ErrorCallback = Callable[[Exception], None]
C = TypeVar("C", bound=Container[Any])

log = logging.getLogger("crdtsync")

#: How many updates may wait for missing dependencies before apply_update refuses more.
#: A resync (``get_update(version)``) replaces any number of lost messages, so a peer that
#: falls this far behind should resync rather than buffer without bound.
DEFAULT_MAX_PENDING = 65_536

_KINDS: dict[str, type[Container[Any]]] = {
    "t": Text,
    "l": List,
    "s": ORSet,
    "m": LWWMap,
    "c": Counter,
}


class _Changes:
    """Per-container changes gathered during one transaction, for observer events."""

    __slots__ = ("delta", "keys", "added", "removed", "amount", "marks_before")

    def __init__(self) -> None:
        self.delta: DeltaBuilder | None = None
        #: A Text's mark count before this transaction's first mark (None: no mark).
        self.marks_before: int | None = None
        self.keys: set[str] = set()
        self.added: dict[Key, Any] = {}
        self.removed: dict[Key, Any] = {}
        self.amount = 0


class Transaction:
    """Groups local edits into one update. Use it through :meth:`Doc.transaction`."""

    __slots__ = ("_doc", "origin", "local", "_entries", "_changes", "_depth", "_undo", "_tail")

    def __init__(self, doc: Doc, origin: Any, local: bool) -> None:
        self._doc = doc
        self.origin = origin
        self.local = local
        self._entries: list[Entry] = []
        #: What it takes to revert each local edit, for undo managers (None: none listens).
        self._undo: list[tuple[Any, ...]] | None = [] if local and doc._undo_managers else None
        #: id(container) -> (container, changes); by id because an LWWMap compares by value
        self._changes: dict[int, tuple[Container[Any], _Changes]] = {}
        self._depth = 0
        #: (index, pieces): content typed onto the insert entry at ``index`` that is not in
        #: it yet. Joined once when the transaction is encoded: joining on every keystroke
        #: would copy the content typed so far each time.
        self._tail: tuple[int, builtins.list[Any]] | None = None

    def __enter__(self) -> Transaction:
        doc = self._doc
        if doc._txn is None:
            doc._txn = self
        else:
            # A nested transaction joins the outer one.
            doc._txn._depth += 1
        return doc._txn

    def __exit__(self, *exc: object) -> None:
        doc = self._doc
        outer = doc._txn
        assert outer is not None
        if outer._depth:
            outer._depth -= 1
            return
        doc._txn = None
        if outer._entries:
            if doc._made_from is None:
                doc._made_from = outer._entries[0][1]
            errors: list[Exception] = []
            # Encoded only for someone to hear it (see _publish for late listeners).
            heard = doc._internal_callbacks or doc._update_callbacks
            doc._publish(outer._encode() if heard else None, outer, True, errors)
            if outer._undo:
                for ref in list(doc._undo_managers):
                    manager = ref()
                    if manager is None:
                        doc._undo_managers.remove(ref)
                    else:
                        manager._captured(outer)
            if errors and exc[0] is None:
                # Everything else ran and the edit went out: now the caller hears of it.
                # (When the body itself raised, that exception wins; these were logged.)
                first = errors[0]
                first.add_note(
                    "raised by a callback after the local edit was applied and passed to "
                    "every on_update listener; the document is consistent"
                )
                raise first

    def _changes_for(self, container: Container[Any]) -> _Changes:
        found = self._changes.get(id(container))
        if found is None:
            found = self._changes[id(container)] = (container, _Changes())
        return found[1]

    def _delta_for(self, container: Container[Any]) -> DeltaBuilder:
        """The delta this transaction builds for a sequence's event."""
        ch = self._changes_for(container)
        if ch.delta is None:
            ch.delta = DeltaBuilder()
        return ch.delta

    def _take_mark(self, container: Text, mark: Mark) -> None:
        """Add a formatting change to ``container``, noting for its event, if anyone
        observes it, which marks are this transaction's."""
        if container._observers or self._doc._deep:
            ch = self._changes_for(container)
            if ch.marks_before is None:
                ch.marks_before = len(container._marks)
        container._marks.append(mark)

    def _join_tail(self) -> None:
        """Put the pieces typed onto an insert entry into it (see ``_tail``)."""
        if self._tail is None:
            return
        i, pieces = self._tail
        self._tail = None
        e = self._entries[i]
        if type(e[5]) is str:
            content: Any = "".join([e[5], *pieces])
        else:
            content = [v for part in (e[5], *pieces) for v in part]
        self._entries[i] = (e[0], e[1], e[2], e[3], e[4], content, e[6], e[7])

    def _encode(self) -> bytes:
        self._join_tail()
        entries = self._entries
        doc = self._doc
        if len(entries) == 1:
            data = enc.encode_keystroke(doc._replica, entries[0])
            if data is not None:
                return data
        end = entries[-1][1] + enc.entry_span(entries[-1])
        return enc.encode_update(Update([Segment(doc._replica, entries[0][1], end, entries)]))

    def _emit_events(self, errors: list[Exception] | None = None) -> None:
        """Call every observer of every changed container, then every deep observer with
        the events of its subtree; one that raises is reported (see
        :meth:`Doc.on_callback_error`) and the others still run."""
        doc = self._doc
        events: list[tuple[Container[Any], Any]] = []
        for container, ch in self._changes.values():
            event = self._event(container, ch)
            if event is None:
                continue
            events.append((container, event))
            for callback in list(container._observers):
                try:
                    callback(event)
                except Exception as exc:
                    doc._callback_failed(exc, "observe", callback, errors)
        if doc._deep and events:
            for callback, deep_events in deep_event_lists(events):
                try:
                    callback(deep_events)
                except Exception as exc:
                    doc._callback_failed(exc, "observe_deep", callback, errors)

    def _event(self, container: Container[Any], ch: _Changes) -> Any:
        """The event for ``container``'s changes in this transaction; None if nothing
        visible changed."""
        if isinstance(container, SequenceContainer):
            delta = [] if ch.delta is None else ch.delta.build()
            if isinstance(container, Text) and container._marks:
                without = None
                if ch.marks_before is not None:
                    fresh = frozenset(map(id, container._marks[ch.marks_before :]))
                    without = spans(container._seq, self._doc._ids, container._marks, fresh)
                runs = container._attribute_runs()
                delta = attributed_delta(delta, runs, without, len(container))
            if not delta:
                return None
            if isinstance(container, Text):
                return TextEvent(container, self.origin, self.local, delta)
            lst = cast(List, container)
            return ListEvent(lst, self.origin, self.local, lst._with_children(delta))
        if isinstance(container, LWWMap):
            if not ch.keys:
                return None
            return MapEvent(container, self.origin, self.local, frozenset(ch.keys))
        if isinstance(container, ORSet):
            added = {k: v for k, v in ch.added.items() if k not in ch.removed}
            removed = {k: v for k, v in ch.removed.items() if k not in ch.added}
            if not added and not removed:
                return None
            return SetEvent(
                container,
                self.origin,
                self.local,
                frozenset(added.values()),
                frozenset(removed.values()),
            )
        if not ch.amount:
            return None
        return CounterEvent(cast(Counter, container), self.origin, self.local, ch.amount)


class Doc:
    """A replica of a shared document: named root containers plus clocks.

    >>> import crdtsync
    >>> alice, bob = crdtsync.Doc(), crdtsync.Doc()
    >>> alice.text("notes").insert(0, "hi bob")
    >>> bob.apply_update(alice.get_update())
    >>> bob.text("notes").insert(6, "!")
    >>> alice.apply_update(bob.get_update(alice.version))
    >>> str(alice.text("notes")), alice.version == bob.version
    ('hi bob!', True)

    ``gc`` (default True) drops the content of deleted text and list elements, keeping
    only their ids and lengths; ``gc=False`` keeps it for history. ``max_pending`` bounds
    the number of updates buffered while their dependencies are missing, and
    ``max_pending_bytes`` (default: no bound but the count) their encoded size; past
    either, ``apply_update`` raises :class:`~crdtsync.PendingOverflowError` and parks
    nothing.

    ``replica_id`` defaults to a random 64-bit id. Reuse an id only together with the state
    it produced. A document that learns that someone else holds more of its id than it
    does (an incoming change under its id that it never made, or a peer's version above
    its own counter) checks before integrating anything: if every change it holds under
    the id is its own and none has left it yet (no ``get_update`` covered them, no session
    sent them), it re-issues them under a fresh random id (``replica_id``
    changes, a warning goes to the ``crdtsync`` logger, and ``on_update`` listeners get
    the re-issued changes with origin ``"crdtsync.reissued"``); otherwise, or with
    ``reissue_on_conflict=False``, it raises :class:`~crdtsync.ReplicaIdConflict` and
    stays as it was.
    """

    def __init__(
        self,
        replica_id: int | None = None,
        *,
        gc: bool = True,
        max_pending: int = DEFAULT_MAX_PENDING,
        reissue_on_conflict: bool = True,
        max_pending_bytes: int | None = None,
    ) -> None:
        if replica_id is None:
            replica_id = secrets.randbits(64)
        if type(replica_id) is not int or not 0 <= replica_id <= MAX_REPLICA_ID:
            raise ValueError("replica_id must be an int in [0, 2**64)")
        if type(max_pending) is not int or max_pending < 0:
            raise ValueError("max_pending must be a non-negative int")
        if max_pending_bytes is not None and (
            type(max_pending_bytes) is not int or max_pending_bytes < 0
        ):
            raise ValueError("max_pending_bytes must be a non-negative int or None")
        self._replica = replica_id
        self._max_pending_bytes = max_pending_bytes
        self._pending_bytes = 0
        self._gc = bool(gc)
        self._max_pending = max_pending
        self._vv: dict[int, int] = {}
        self._lamport = 0
        self._ids = IdIndex()
        self._roots: dict[tuple[str, str], Container[Any]] = {}
        self._txn: Transaction | None = None
        #: Sync sessions, clients, the relay's log: told of an update before any
        #: application callback runs (see on_update's ``_internal``).
        self._internal_callbacks: list[UpdateCallback] = []
        self._update_callbacks: list[UpdateCallback] = []
        self._error_callbacks: list[ErrorCallback] = []
        #: How many observe_deep callbacks are subscribed: while any is, every container's
        #: changes are gathered (a deep observer sees its descendants').
        self._deep = 0
        #: Replica ids this document's changes were re-issued from, to the id they went to
        #: (cursors made before a re-issue name elements by their old ids).
        self._renamed_replicas: dict[int, int] = {}
        #: How new rich-text marks grow at their edges, per attribute name ("after",
        #: "before", "both", "none"); names not here follow crdtsync.types._marks's
        #: defaults. Only where new marks' anchors go depends on it, so replicas may differ.
        self.mark_expand: dict[str, str] = {}
        #: UndoManagers of this document, weakly held (dropping one stops its recording).
        self._undo_managers: builtins.list[weakref.ref[Any]] = []
        #: Parked updates by the replica of the dot each awaits: heaps of
        #: (awaited counter, arrival number, (bytes, parsed update, origin)).
        self._waiting: dict[int, list[tuple[int, int, tuple[bytes, Update, Any]]]] = {}
        self._pending_count = 0
        self._arrivals = itertools.count()
        #: The counter of this object's first local change under its replica id (None
        #: before it makes one): own-id changes below it came from elsewhere (saved state).
        self._made_from: int | None = None
        self._reissue_on_conflict = bool(reissue_on_conflict)
        #: The highest counter of our own id that may have left this replica (returned by
        #: get_update, sent by a session): re-issuing changes others hold would duplicate them.
        self._own_shared = 0
        #: The highest counter of our own id that left this object in any way: handed to
        #: the application's on_update listeners (which may send it anywhere) or sent by a
        #: session (even one whose peer may have dropped it, which _own_shared leaves out).
        #: Own changes above both this and _own_shared never left this object: a peer that
        #: holds them has a twin's.
        self._own_emitted = 0
        #: Bumped each time this document re-issues its changes under a fresh replica id;
        #: sessions compare it to know they must tell their peer what it now holds.
        self._replica_epoch = 0

    # ---- identity, roots, clocks ---------------------------------------------------------

    @property
    def replica_id(self) -> int:
        """This replica's 64-bit id."""
        return self._replica

    @property
    def gc(self) -> bool:
        """Whether deleted sequence content is dropped."""
        return self._gc

    @property
    def version(self) -> VersionVector:
        """The changes integrated so far (buffered updates are not included)."""
        return VersionVector._trusted(dict(self._vv))

    @property
    def pending(self) -> int:
        """How many received updates are waiting for missing dependencies."""
        return self._pending_count

    def _root(self, kind: str, name: str) -> Container[Any]:
        check_str(name, "a root name")
        root = self._roots.get((kind, name))
        if root is None:
            for other in _KINDS:
                if other != kind and (other, name) in self._roots:
                    existing = type(self._roots[(other, name)]).__name__
                    raise TypeError(f"root {name!r} exists as a {existing}")
            root = self._roots[(kind, name)] = _KINDS[kind](self, name)
        return root

    def text(self, name: str) -> Text:
        """The root Text called ``name`` (created on first use)."""
        return self._root("t", name)  # type: ignore[return-value]

    def list(self, name: str) -> List:
        """The root List called ``name`` (created on first use)."""
        return self._root("l", name)  # type: ignore[return-value]

    def set(self, name: str) -> ORSet:
        """The root ORSet called ``name`` (created on first use)."""
        return self._root("s", name)  # type: ignore[return-value]

    def map(self, name: str) -> LWWMap:
        """The root LWWMap called ``name`` (created on first use)."""
        return self._root("m", name)  # type: ignore[return-value]

    def counter(self, name: str) -> Counter:
        """The root Counter called ``name`` (created on first use)."""
        return self._root("c", name)  # type: ignore[return-value]

    def roots(self) -> dict[str, Container[Any]]:
        """Every root container by name (containers inside containers are reached through
        their parents).

        A name that two replicas created concurrently as two types has both roots (each
        reached by its own accessor); this view shows the one whose kind letter sorts last
        (``c`` Counter, ``l`` List, ``m`` LWWMap, ``s`` ORSet, ``t`` Text).
        """
        return {name: root for (kind, name), root in sorted(self._roots.items()) if kind.islower()}

    def to_py(self) -> dict[str, Any]:
        """Every root as plain Python, recursively: Text -> str, List -> list, LWWMap ->
        dict, ORSet -> set, Counter -> int.

        >>> import crdtsync
        >>> doc = crdtsync.Doc()
        >>> card = doc.list("cards").append_container(crdtsync.LWWMap)
        >>> card.text("name").insert(0, "milk"); card["done"] = False
        >>> doc.to_py()
        {'cards': [{'name': 'milk', 'done': False}]}
        """
        return {name: root.to_py() for name, root in self.roots().items()}

    def decode_cursor(self, data: bytes | bytearray | memoryview) -> Cursor:
        """The cursor that ``Cursor.encode()`` wrote on any replica of this document, as a
        cursor of this one: its ``index`` is the same place here.

        Raises DecodeError for bytes that are no cursor, and LookupError when this replica
        does not hold the cursor's element yet (apply the sender's updates first).

        >>> import crdtsync
        >>> a, b = crdtsync.Doc(), crdtsync.Doc()
        >>> a.text("t").insert(0, "hello")
        >>> b.apply_update(a.get_update())
        >>> data = a.text("t").cursor(4).encode()     # before the "o"
        >>> b.text("t").insert(0, ">> ")
        >>> b.decode_cursor(data).index
        7
        """
        return decode_cursor(self, data)

    def _container(self, key: tuple[str, str]) -> Container[Any]:
        """The container keyed ``key``, made (empty) on first use: a root, or one inside
        another (whose content may arrive before the write that puts it in its parent)."""
        container = self._roots.get(key)
        if container is None:
            kind = key[0]
            cls = _KINDS[kind.lower()]
            container = self._roots[key] = cls(self, key[1], kind.isupper())
        return container

    def _child(self, parent: Container[Any], slot: Slot, kind: str) -> Container[Any]:
        """The child of ``parent`` of kind ``kind`` at ``slot`` (see crdtsync._nesting)."""
        return self._container((kind.upper(), child_name(parent._key, slot)))

    def _new_remote_txn(self, origin: Any) -> Transaction:
        return Transaction(self, origin, False)

    def _tick(self, n: int) -> tuple[int, int]:
        """Take the next ``n`` counters and Lamport times; return the first of each.

        Raises OverflowError, taking nothing, when either would pass the clock ceiling."""
        me = self._replica
        counter = self._vv.get(me, 0) + 1
        lamport = self._lamport + 1
        if counter + n - 1 > MAX_CLOCK or lamport + n - 1 > MAX_CLOCK:
            self._clock_overflow(n)
        self._vv[me] = counter + n - 1
        self._lamport += n
        return counter, lamport

    def _clock_overflow(self, n: int) -> None:
        raise OverflowError(
            f"this edit needs {n} more counter(s) and Lamport time(s), which would pass the "
            f"clock ceiling 2**62 (this replica's counter is {self._vv.get(self._replica, 0)}, "
            f"its Lamport clock {self._lamport}); nothing was changed. An update that carried "
            "a clock this close to the ceiling came from a broken or hostile peer."
        )

    # ---- transactions and listeners --------------------------------------------------------

    def transaction(self, origin: Any = None) -> Transaction:
        """A context manager grouping local edits into one update.

        >>> import crdtsync
        >>> doc = crdtsync.Doc()
        >>> updates = []
        >>> _ = doc.on_update(lambda update, origin: updates.append(origin))
        >>> with doc.transaction("typing"):
        ...     doc.text("t").insert(0, "a")
        ...     doc.map("m")["k"] = 1
        >>> updates
        ['typing']
        """
        return Transaction(self, origin, True)

    def on_update(self, callback: UpdateCallback, *, _internal: bool = False) -> Callable[[], None]:
        """Call ``callback(update, origin)`` after every local transaction and every remote
        update that changed this document; returns a function that unsubscribes.

        A callback that raises does not stop the others, nor the document's observers: the
        exception is logged and reported (see :meth:`on_callback_error`), and for a local
        edit re-raised to the code that made it once every callback ran.

        >>> import crdtsync
        >>> doc = crdtsync.Doc()
        >>> sent = []
        >>> unsubscribe = doc.on_update(lambda update, origin: sent.append(origin))
        >>> doc.text("t").insert(0, "a")
        >>> unsubscribe(); doc.text("t").insert(1, "b")
        >>> sent
        [None]
        """
        # _internal (sync sessions, transports, the relay): called before any observer or
        # application listener, so an update reaches the network whatever those do.
        callbacks = self._internal_callbacks if _internal else self._update_callbacks
        return subscribe(callbacks, callback)

    def on_callback_error(self, callback: ErrorCallback) -> Callable[[], None]:
        """Call ``callback(exc)`` for every exception an ``observe`` or :meth:`on_update`
        callback of this document raises; returns a function that unsubscribes.

        Such an exception never leaves the document half-updated or an update unsent: the
        change is complete, every other callback still runs, and the exception is logged
        to the ``crdtsync`` logger with its traceback. Transport clients subscribe here to
        feed their ``on_error`` hook.

        >>> import crdtsync
        >>> doc, seen = crdtsync.Doc(), []
        >>> _ = doc.on_callback_error(seen.append)
        >>> _ = doc.text("t").observe(lambda event: 1 / 0)
        >>> remote = crdtsync.Doc()
        >>> remote.text("t").insert(0, "hi")
        >>> doc.apply_update(remote.get_update())     # does not raise
        >>> str(doc.text("t")), seen
        ('hi', [ZeroDivisionError('division by zero')])
        """
        return subscribe(self._error_callbacks, callback)

    def _publish(
        self,
        update: bytes | None,
        txn: Transaction,
        changed: bool,
        errors: builtins.list[Exception] | None,
    ) -> None:
        """Tell everyone of ``update``, integrated under ``txn``: internal listeners, then
        observers, then the application's on_update listeners. Nothing a callback raises
        stops the rest (it is reported, and collected into ``errors`` if given).
        ``update`` None: a local transaction nobody listened to when it ended, encoded
        here if an observer subscribed a listener meanwhile."""
        if changed and self._internal_callbacks:
            if update is None:
                update = txn._encode()
            self._notify(self._internal_callbacks, update, txn.origin, errors)
        if txn._changes:
            txn._emit_events(errors)
        if changed and self._update_callbacks:
            if update is None:
                update = txn._encode()
            if txn.local:
                self._own_emitted = max(self._own_emitted, self._vv.get(self._replica, 0))
            self._notify(self._update_callbacks, update, txn.origin, errors)

    def _notify(
        self,
        callbacks: builtins.list[UpdateCallback],
        update: bytes,
        origin: Any,
        errors: builtins.list[Exception] | None,
    ) -> None:
        for callback in list(callbacks):
            try:
                callback(update, origin)
            except Exception as exc:
                self._callback_failed(exc, "on_update", callback, errors)

    def _callback_failed(
        self,
        exc: Exception,
        kind: str,
        callback: object,
        errors: builtins.list[Exception] | None,
    ) -> None:
        if errors is not None:
            errors.append(exc)
        if getattr(exc, "_crdtsync_reported", None) is self:
            return  # re-raised by a nested local edit that already reported it
        with contextlib.suppress(AttributeError):  # an exception type with __slots__
            exc._crdtsync_reported = self  # type: ignore[attr-defined]
        report_callback_error(
            exc,
            f"{kind} callback {callback!r} raised; the update was applied and passed on regardless",
            self._error_callbacks,
        )

    # ---- local edits (called by the containers) ----------------------------------------------

    def _local_insert(self, container: SequenceContainer[Any], index: int, content: Any) -> None:
        txn = self._txn
        if txn is None:
            with Transaction(self, None, True):
                return self._local_insert(container, index, content)
        n = len(content)
        me = self._replica
        vv = self._vv
        counter = vv.get(me, 0) + 1  # the next n counters (see _tick)
        # One past the clock, unless the insert continues our latest run (insert_local).
        lamport = self._lamport + 1
        if counter + n - 1 > MAX_CLOCK or lamport + n - 1 > MAX_CLOCK:
            self._clock_overflow(n)
        vv[me] = counter + n - 1
        origin, lamport = container._seq.insert_local(index, content, me, counter, lamport)
        if lamport + n - 1 > self._lamport:
            self._lamport = lamport + n - 1
        if txn._undo is not None:
            txn._undo.append(("i", container, me, counter, n))
        entries = txn._entries
        if entries:
            last = entries[-1]
            # Typing on within one transaction: extend the previous insert entry.
            if (
                last[0] == enc.INS
                and last[2] is container._key
                and last[7] is None
                and last[1] + last[6] == counter
                and last[3] + last[6] == lamport
                and origin == (self._replica, counter - 1)
            ):
                tail = txn._tail
                if tail is None or tail[0] != len(entries) - 1:
                    txn._join_tail()
                    tail = txn._tail = (len(entries) - 1, [])
                tail[1].append(content)
                entries[-1] = (
                    enc.INS,
                    last[1],
                    last[2],
                    last[3],
                    last[4],
                    last[5],
                    last[6] + n,
                    None,
                )
                n = 0
        if n:
            entries.append((enc.INS, counter, container._key, lamport, origin, content, n, None))
        if container._observers or self._deep:
            txn._delta_for(container).insert(index, content)

    def _local_insert_after(
        self, container: SequenceContainer[Any], origin: Dot, content: Any
    ) -> int:
        """Insert ``content`` right after the element ``origin`` (held in ``container``,
        deleted or not): how an undo puts deleted content back where it was. Inside a
        transaction only; returns the first counter of the new elements."""
        txn = self._txn
        assert txn is not None
        n = len(content)
        counter, lamport = self._tick(n)
        observed = bool(container._observers or self._deep)
        pos = container._seq.integrate(
            self._replica, counter, lamport, origin, content, n, None, observed
        )
        txn._entries.append((enc.INS, counter, container._key, lamport, origin, content, n, None))
        if txn._undo is not None:
            txn._undo.append(("i", container, self._replica, counter, n))
        if observed and pos is not None:
            txn._delta_for(container).insert(pos, content)
        return counter

    def _local_delete(self, container: SequenceContainer[Any], index: int, length: int) -> None:
        txn = self._txn
        if txn is None:
            with Transaction(self, None, True):
                return self._local_delete(container, index, length)
        counter, _ = self._tick(1)
        content = None if txn._undo is None else container._seq.slice(index, index + length)
        ranges = container._seq.delete_local(index, length, (self._replica, counter), self._gc)
        txn._entries.append((enc.DEL, counter, container._key, ranges))
        if txn._undo is not None:
            pieces, at = [], 0
            for r, c, n in ranges:
                pieces.append((r, c, n, content[at : at + n]))  # type: ignore[index]
                at += n
            txn._undo.append(("d", container, pieces))
        if container._observers or self._deep:
            txn._delta_for(container).delete(index, length)

    def _local_mark(self, container: Text, name: str, value: Any, start: Any, end: Any) -> None:
        txn = self._txn
        assert txn is not None  # (Text.format opens one)
        counter, lamport = self._tick(1)
        mark = Mark(self._replica, counter, lamport, name, value, start, end)
        if txn._undo is not None:
            txn._undo.append(("f", container, name, value, container._previous_values(mark)))
        txn._take_mark(container, mark)
        txn._entries.append((enc.MARK, counter, container._key, lamport, name, value, start, end))

    def _local_map_write(self, container: LWWMap, key: str, value: Any, deleted: bool) -> None:
        txn = self._txn
        if txn is None:
            with Transaction(self, None, True):
                return self._local_map_write(container, key, value, deleted)
        counter, lamport = self._tick(1)
        if txn._undo is not None:
            held = container._entries.get(key)
            present = held is not None and not held.deleted
            before = held.value if present else None  # type: ignore[union-attr]
            was = None if held is None else (held.lamport, held.replica)
            txn._undo.append(("m", container, key, before, present, was, lamport, self._replica))
        changed = container._write(lamport, self._replica, counter, key, value, deleted)
        if deleted:
            txn._entries.append((enc.MAP_DEL, counter, container._key, lamport, key))
        else:
            txn._entries.append((enc.MAP_SET, counter, container._key, lamport, key, value))
        if changed and (container._observers or self._deep):
            txn._changes_for(container).keys.add(key)

    def _local_set_add(self, container: ORSet, element: Any) -> None:
        txn = self._txn
        if txn is None:
            with Transaction(self, None, True):
                return self._local_set_add(container, element)
        counter, _ = self._tick(1)
        dot = (self._replica, counter)
        key = element_key(element)
        superseded = container._dots(key)
        if txn._undo is not None:
            txn._undo.append(("a", container, element, dot, bool(superseded)))
        appeared = container._add_dot(element, dot, key)
        if superseded:
            container._remove_dots(superseded)
        txn._entries.append((enc.SET_ADD, counter, container._key, element, superseded))
        if appeared and (container._observers or self._deep):
            txn._changes_for(container).added.setdefault(key, element)

    def _local_set_remove(self, container: ORSet, dots: Sequence[Dot]) -> None:
        txn = self._txn
        if txn is None:
            with Transaction(self, None, True):
                return self._local_set_remove(container, dots)
        counter, _ = self._tick(1)
        container._touch((self._replica, counter))
        removed = None
        if txn._undo is not None:
            owners = container._owner
            removed = [(container._element(owners[d]), d) for d in dots if d in owners]
        gone = container._remove_dots(dots)
        if removed:
            txn._undo.append(("r", container, removed))  # type: ignore[union-attr]
        txn._entries.append((enc.SET_REM, counter, container._key, dots))
        self._note_set_removed(txn, container, gone)

    def _note_set_removed(
        self, txn: Transaction, container: ORSet, gone: builtins.list[Any]
    ) -> None:
        if gone and (container._observers or self._deep):
            removed = txn._changes_for(container).removed
            for element in gone:
                removed.setdefault(element_key(element), element)

    def _local_counter(self, container: Counter, inc: int, dec: int) -> None:
        txn = self._txn
        if txn is None:
            with Transaction(self, None, True):
                return self._local_counter(container, inc, dec)
        counter, _ = self._tick(1)
        me = self._replica
        if txn._undo is not None:
            txn._undo.append(("c", container, inc, dec))
        inc += container._inc.get(me, 0)
        dec += container._dec.get(me, 0)
        moved = container._merge(me, counter, inc, dec)
        txn._entries.append((enc.COUNTER, counter, container._key, inc, dec))
        if container._observers or self._deep:
            txn._changes_for(container).amount += moved

    # ---- encoding state -------------------------------------------------------------------

    def get_update(
        self, since: Mapping[int, int] | bytes | bytearray | memoryview | None = None
    ) -> bytes:
        """Everything a replica at version ``since`` lacks (``None``: the whole state).

        ``since`` is a :class:`VersionVector` (or any mapping of replica id to counter) or
        the bytes of :meth:`VersionVector.encode`. Anything else raises TypeError: a
        mapping with non-int keys or counters (bools included) too; ValueError for ids or
        counters out of range; :class:`DecodeError` for bytes that are no version vector.

        >>> import crdtsync
        >>> a, b = crdtsync.Doc(), crdtsync.Doc()
        >>> a.text("t").insert(0, "shared")
        >>> b.apply_update(a.get_update())
        >>> a.text("t").insert(6, " text")
        >>> diff = a.get_update(b.version)      # only the new edit
        >>> b.apply_update(diff)
        >>> str(b.text("t"))
        'shared text'
        >>> a.get_update(b.version.encode()) == a.get_update(b.version)
        True
        """
        from crdtsync._state import state_update

        since = _since(since)
        me = self._replica
        if self._vv.get(me, 0) > since.get(me, 0):
            self._own_shared = self._vv[me]  # our own changes may leave this replica now
        # (Encoding allocates many short-lived objects and no cyclic garbage: a collection
        # meanwhile would only rescan the document.)
        return without_gc(lambda: enc.deflate_update(enc.encode_update(state_update(self, since))))

    # ---- applying remote updates -------------------------------------------------------------

    def apply_update(
        self,
        update: bytes,
        origin: Any = None,
        *,
        max_inflated_size: int | None = enc.DEFAULT_MAX_INFLATED_SIZE,
    ) -> None:
        """Merge an update from any replica, in any order, any number of times.

        An update whose dependencies have not arrived is buffered and integrated as soon as
        they do; malformed bytes raise :class:`DecodeError` and change nothing; a full
        pending buffer raises :class:`PendingOverflowError` and changes nothing.

        A compressed update (``get_update`` compresses large states) may inflate to at most
        ``max_inflated_size`` bytes, 64 MiB by default; beyond that it is a DecodeError,
        found without inflating more. Raise the limit (or pass None, no limit) to load
        larger states of your own, such as a stored snapshot; keep one for peers' bytes.

        >>> import crdtsync
        >>> big = crdtsync.Doc()
        >>> big.text("t").insert(0, "abc" * 10_000)
        >>> state = big.get_update()
        >>> try:
        ...     crdtsync.Doc().apply_update(state, max_inflated_size=1024)
        ... except crdtsync.DecodeError as exc:
        ...     print(exc)
        compressed update inflates beyond the limit of 1024 bytes
        """
        self._apply(update, origin, max_inflated_size=max_inflated_size)

    def _apply(
        self,
        update: bytes,
        origin: Any,
        parsed: Update | None = None,
        *,
        max_inflated_size: int | None = enc.DEFAULT_MAX_INFLATED_SIZE,
    ) -> Update:
        """apply_update, returning the parsed update (sync sessions look at what it covers);
        a caller that already decoded ``update`` passes ``parsed`` to skip a second decode."""
        if parsed is None:
            parsed = enc.decode_update(update, max_inflated_size)
        if self._txn is not None and self._txn.local:
            raise RuntimeError("apply_update inside a local transaction is not supported")
        if self._made_from is not None:
            me = self._replica
            for seg in parsed.bare:
                if seg.replica == me and self._twin_holds(seg.end - 1):
                    # Changes under our id that we never made (or never gave out: a twin
                    # made its own at those counters): integrating them would drop ours at
                    # the same counters (or theirs) without a word.
                    self._replica_id_taken(seg.end - 1)
                    break
        data = bytes(update)
        if integrate_keystrokes(self, data, parsed, origin):
            if self._pending_count:
                self._wake()
            return parsed
        ready = check_ready(self, parsed)
        if isinstance(ready, dict):
            integrate(self, data, parsed, ready, origin)
            self._wake()
            return parsed
        if self._pending_count >= self._max_pending:
            raise PendingOverflowError(
                f"{self._pending_count} updates already wait for missing dependencies "
                f"(max_pending={self._max_pending}); resync with get_update(version)"
            )
        limit = self._max_pending_bytes
        if limit is not None and self._pending_bytes + len(data) > limit:
            raise PendingOverflowError(
                f"{self._pending_bytes} bytes of updates already wait for missing "
                f"dependencies (max_pending_bytes={limit}); resync with get_update(version)"
            )
        if self._buffer(data, parsed, origin, ready):
            self._wake()
        return parsed

    def _file(self, item: tuple[bytes, Update, Any], missing: Dot) -> None:
        """Park ``item`` until ``missing`` is held."""
        heap = self._waiting.setdefault(missing[0], [])
        heapq.heappush(heap, (missing[1], next(self._arrivals), item))
        self._pending_count += 1
        self._pending_bytes += len(item[0])

    def _buffer(self, data: bytes, parsed: Update, origin: Any, missing: Dot) -> bool:
        """Keep what cannot be integrated yet; True if something was integrated after all.

        An update made only of changes that each stand alone (no SKIP, no facts: every
        transaction's update, and merges of them) is split, so that its ready changes go in
        now rather than wait for the rest, and each remaining run of consecutive changes
        waits for its own first missing dependency."""
        if not _splittable(parsed):
            self._file((data, parsed, origin), missing)
            return False
        chains: dict[int, deque[Entry]] = {}
        for seg in sorted(parsed.segments, key=lambda s: (s.replica, s.start)):
            chains.setdefault(seg.replica, deque()).extend(seg.entries)
        progress = True
        integrated = dropped = False
        while progress:
            progress = False
            for replica, chain in chains.items():
                while chain:
                    e = chain[0]
                    span = enc.entry_span(e)
                    if e[1] + span - 1 <= self._vv.get(replica, 0):
                        chain.popleft()
                        dropped = True
                        continue
                    part = Update([Segment(replica, e[1], e[1] + span, [e])])
                    try:
                        ready = check_ready(self, part)
                    except DecodeError:
                        chain.popleft()  # names something that is not what it claims
                        dropped = True
                        continue
                    if not isinstance(ready, dict):
                        break
                    chain.popleft()
                    integrate(self, enc.encode_update(part), part, ready, origin)
                    progress = integrated = True
        rests: list[Segment] = []
        for replica, chain in chains.items():
            for e in chain:
                if rests and rests[-1].replica == replica and rests[-1].end == e[1]:
                    rests[-1].entries.append(e)
                    rests[-1].end += enc.entry_span(e)
                else:
                    rests.append(Segment(replica, e[1], e[1] + enc.entry_span(e), [e]))
        unchanged = not (integrated or dropped) and len(rests) == len(parsed.segments) == 1
        for seg in rests:
            rest = Update([seg])
            wait = check_ready(self, rest)
            if isinstance(wait, dict):  # the chain ahead of it went in meanwhile
                wait = (seg.replica, seg.start)
            self._file((data if unchanged else enc.encode_update(rest), rest, origin), wait)
        return integrated

    def _wake(self) -> None:
        """Retry parked updates whose awaited dot is now held, until none is."""
        progress = True
        while progress and self._pending_count:
            progress = False
            for replica, heap in list(self._waiting.items()):
                held = self._vv.get(replica, 0)
                while heap and heap[0][0] <= held:
                    _, _, (data, parsed, origin) = heapq.heappop(heap)
                    self._pending_count -= 1
                    self._pending_bytes -= len(data)
                    try:
                        ready = check_ready(self, parsed)
                    except DecodeError:
                        # It named something that turned out not to be what it claimed;
                        # every replica reaches the same verdict, so dropping it is safe.
                        continue
                    if isinstance(ready, dict):
                        integrate(self, data, parsed, ready, origin)
                        progress = True
                    elif self._buffer(data, parsed, origin, ready):
                        progress = True
                    held = self._vv.get(replica, 0)
                if not heap:
                    del self._waiting[replica]

    # ---- replica id conflicts -------------------------------------------------------------

    def _twin_holds(self, top: int) -> bool:
        """Whether a peer holding our id up to counter ``top`` must hold changes that
        another document made under it: counters beyond ours, or counters of changes this
        object made itself and never gave out (neither returned by get_update, nor sent by
        a session, nor handed to an on_update listener)."""
        made = self._made_from
        if made is None:
            return False
        if top > self._vv.get(self._replica, 0):
            return True
        return top >= max(made, self._own_shared + 1, self._own_emitted + 1)

    def _replica_id_taken(self, top: int) -> None:
        """Someone holds our replica id up to counter ``top`` (see :meth:`_twin_holds`),
        while we made changes under it: re-issue them under a fresh id, or raise (changing
        nothing)."""
        me = self._replica
        held = self._vv.get(me, 0)
        if top > held:
            seen = f"a peer holds its changes up to counter {top}, this document only up to {held}"
        else:
            seen = (
                f"a peer holds its changes up to counter {top}, which this document made "
                "itself and never gave out"
            )
        if not self._reissue_on_conflict or self._made_from != 1 or self._own_shared:
            if self._made_from != 1:
                why = "some of its changes under it came from elsewhere (it made its own "
                why += f"from counter {self._made_from} on)"
            elif self._own_shared:
                why = f"its changes under it up to counter {self._own_shared} may have "
                why += "reached others already (re-issuing them would duplicate them)"
            else:
                why = "it was made with reissue_on_conflict=False"
            raise ReplicaIdConflict(
                f"replica id {me} is in use elsewhere: {seen}, and {why}. Reuse a replica "
                "id only together with the state it produced (Doc() picks a fresh random id)"
            )
        self._reissue()
        log.warning(
            "replica id %d is in use elsewhere (a peer holds it up to counter %d): this "
            "document's %d changes under it are re-issued under the fresh id %d",
            me,
            top,
            self._vv.get(self._replica, 0),
            self._replica,
        )

    def _reissue(self) -> None:
        """Move every change of this replica to a fresh random replica id, in place.

        Only valid when every change under the current id is this object's own
        (``_made_from == 1``). The containers the application holds stay the same objects;
        their observers get no events (the content is the same). The re-issued changes go
        to ``on_update`` listeners like a local transaction's update (origin
        ``REISSUED``), so sessions send them on."""
        from crdtsync._rename import rename_key, rename_replica
        from crdtsync._state import state_update

        old = self._replica
        new = secrets.randbits(64)
        while new == old or new in self._vv:
            new = secrets.randbits(64)
        state = enc.decode_update(enc.encode_update(state_update(self, {})))
        renamed = rename_replica(state, old, new)
        fresh = Doc(
            new,
            gc=self._gc,
            max_pending=self._max_pending,
            max_pending_bytes=self._max_pending_bytes,
        )
        # A container inside a list is named after its element's dot: it gets a new key.
        renamed_keys = {key: rename_key(key, old, new) for key in self._roots}
        for key in renamed_keys.values():
            fresh._container(key)
        fresh._apply(enc.encode_update(renamed), None, renamed)
        mine_by_key = {renamed_keys[key]: c for key, c in self._roots.items()}
        self._roots = {}
        for key, container in fresh._roots.items():
            mine = mine_by_key.get(key)
            self._roots[key] = mine if mine is not None else container
            if mine is None:
                container._doc = self
                continue
            mine._key = key
            for cls in type(mine).__mro__:
                for slot in getattr(cls, "__slots__", ()):
                    if slot not in ("_doc", "_key", "_observers", "_deep_observers"):
                        setattr(mine, slot, getattr(container, slot))
        self._replica = new
        for before, after in self._renamed_replicas.items():
            if after == old:
                self._renamed_replicas[before] = new
        self._renamed_replicas[old] = new
        for ref in self._undo_managers:
            manager = ref()
            if manager is not None:
                manager._renamed(old, new)
        self._vv = fresh._vv
        self._lamport = max(self._lamport, fresh._lamport)
        self._ids = fresh._ids
        self._made_from = 1 if self._vv.get(new) else None
        self._replica_epoch += 1
        if self._vv.get(new):
            update = self.get_update({r: c for r, c in self._vv.items() if r != new})
            self._publish(update, Transaction(self, REISSUED, True), True, None)

    def __repr__(self) -> str:
        return f"Doc(replica_id={self._replica}, roots={sorted(n for _, n in self._roots)})"


def _since(since: Any) -> Mapping[int, int]:
    """``get_update``'s ``since`` as a mapping of valid entries."""
    if since is None:
        return {}
    if isinstance(since, VersionVector):
        return since
    if isinstance(since, bytes | bytearray | memoryview):
        return VersionVector.decode(since)
    if not isinstance(since, Mapping):
        raise TypeError(
            "since must be a VersionVector, a mapping of replica id to counter, the bytes "
            f"of VersionVector.encode() or None, not {type(since).__name__}"
        )
    for replica, counter in since.items():
        if type(replica) is not int or type(counter) is not int:
            raise TypeError(
                f"since maps int replica ids to int counters, got {replica!r}: {counter!r}"
            )
        if not 0 <= replica <= MAX_REPLICA_ID or counter < 0:
            raise ValueError(f"since has an entry out of range: {replica!r}: {counter!r}")
    return since


def _splittable(update: Update) -> bool:
    """Whether every change of ``update`` carries its whole effect at its own counter."""
    return (
        not update.facts
        and update.in_order is None
        and all(
            e[0] != enc.SKIP and (e[0] != enc.INS or e[7] is None)
            for seg in update.segments
            for e in seg.entries
        )
    )
