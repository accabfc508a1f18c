"""UndoManager: selective undo and redo of this replica's own edits.

Every local transaction of a document with an undo manager records, for each edit, what
it takes to revert it: the ids an insert made, the content a delete removed (kept here, so
an undo restores it with gc on too), the value a map write replaced, the elements a set
edit added or removed, a counter's step. A manager keeps the records of its tracked
transactions that touch its scope as stack items. Undoing one applies the reverse edits
as an ordinary local transaction (origin: the manager), which syncs like any other, and
records *its* reverse as a redo item.

Reverse edits touch only what the undone edits made or removed: an element someone else
deleted meanwhile stays deleted, a map key someone else wrote since keeps their value, and
remote edits are never undone. Deleted content comes back right after its own tombstones,
so it returns where it was, whatever was inserted around it since; a list element holding
a container comes back holding the *same* container (see ``ChildRef.alias``), so the
records of older steps that edited inside it still apply.
"""

from __future__ import annotations

import bisect
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from crdtsync._callbacks import subscribe
from crdtsync._nesting import parent_key
from crdtsync._values import ChildRef
from crdtsync.types._base import Container
from crdtsync.types.text import SequenceContainer

if TYPE_CHECKING:
    from crdtsync._doc import Doc, Transaction

__all__ = ["StackItem", "UndoEvent", "UndoManager"]

#: How many steps each stack keeps by default; the oldest go first.
DEFAULT_MAX_DEPTH = 1000


@dataclass(eq=False)
class StackItem:
    """One undo or redo step: the reverse of one or more transactions.

    ``meta`` is the application's: store there what to restore along with the step (the
    selection, say) when it is added, and read it back when it is popped. A redo step
    made by undoing a step carries the same ``meta`` dict, and the other way round.
    """

    records: list[tuple[Any, ...]]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UndoEvent:
    """What an UndoManager tells its listeners: ``item`` was added to, updated on (a
    transaction joined it) or popped from the ``stack`` ("undo" or "redo"), by a
    transaction with ``origin`` (the manager itself for an undo or a redo)."""

    item: StackItem
    stack: Literal["undo", "redo"]
    origin: Any


EventCallback = Callable[[UndoEvent], None]


class UndoManager:
    """Undo and redo this replica's own edits to ``scope``.

    ``scope`` is a container, an iterable of containers, or the Doc (everything);
    containers inside a scope container count as in scope. Only local transactions whose
    origin is in ``tracked_origins`` (default ``{None}``: the plain edits of this replica;
    a class in it matches its instances) are recorded; remote updates never are. Tracked
    transactions less than ``capture_timeout`` seconds apart form one step, until
    :meth:`stop_capturing`. Each stack keeps at most ``max_depth`` steps.

    >>> import crdtsync
    >>> doc = crdtsync.Doc()
    >>> text = doc.text("t")
    >>> undo = crdtsync.UndoManager(text, capture_timeout=0)
    >>> text.insert(0, "hello")
    >>> text.insert(5, " world")
    >>> undo.undo(), str(text)
    (True, 'hello')
    >>> undo.redo(), str(text)
    (True, 'hello world')
    >>> text.delete(0, 6)
    >>> undo.undo(), str(text)       # deleted text comes back where it was
    (True, 'hello world')
    """

    def __init__(
        self,
        scope: Doc | Container[Any] | Iterable[Container[Any]],
        *,
        tracked_origins: Iterable[Any] | None = None,
        capture_timeout: float = 0.5,
        max_depth: int = DEFAULT_MAX_DEPTH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from crdtsync._doc import Doc

        if isinstance(scope, Doc):
            self._doc: Doc = scope
            self._scope: set[tuple[str, str]] | None = None
        else:
            containers = [scope] if isinstance(scope, Container) else list(scope)
            if not containers or not all(isinstance(c, Container) for c in containers):
                raise TypeError("scope is a Doc, a container or an iterable of containers")
            self._doc = containers[0].doc
            if any(c.doc is not self._doc for c in containers):
                raise ValueError("every container in the scope must belong to one document")
            self._scope = {c._key for c in containers}
        if type(max_depth) is not int or max_depth < 1:
            raise ValueError("max_depth is a positive int")
        self._tracked = {None} if tracked_origins is None else set(tracked_origins)
        self._tracked_types = tuple(o for o in self._tracked if isinstance(o, type))
        self.capture_timeout = capture_timeout
        self.max_depth = max_depth
        self._clock = clock
        self._undo: list[StackItem] = []
        self._redo: list[StackItem] = []
        self._last_capture = float("-inf")
        self._capturing = False  # whether the next tracked transaction may join the top step
        self._applying: tuple[str, StackItem] | None = None
        self._in_scope_cache: dict[tuple[str, str], bool] = {}
        # What reverse edits put back, standing for what they replaced (see _revert).
        self._redone = _Redone()
        self._write_stands_for: dict[tuple[int, str, int, int], tuple[int, int]] = {}
        self._add_stands_for: dict[tuple[int, int], tuple[int, int]] = {}
        self._added: list[EventCallback] = []
        self._updated: list[EventCallback] = []
        self._popped: list[EventCallback] = []
        self._ref = weakref.ref(self)
        self._doc._undo_managers.append(self._ref)

    # ---- the stacks ---------------------------------------------------------------------

    @property
    def can_undo(self) -> bool:
        """Whether there is a step to undo."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """Whether there is a step to redo."""
        return bool(self._redo)

    @property
    def undo_stack(self) -> tuple[StackItem, ...]:
        """The undo steps, oldest first."""
        return tuple(self._undo)

    @property
    def redo_stack(self) -> tuple[StackItem, ...]:
        """The redo steps, oldest first."""
        return tuple(self._redo)

    def undo(self) -> bool:
        """Revert the latest undo step; False if there was nothing to undo.

        A step whose every edit has since been overwritten or deleted by others has
        nothing left to revert: it is dropped and the one before is tried."""
        return self._pop("undo")

    def redo(self) -> bool:
        """Re-apply the latest undone step; False if there was nothing to redo. Any new
        tracked edit empties the redo stack."""
        return self._pop("redo")

    def stop_capturing(self) -> None:
        """End the current step: the next tracked transaction starts a new one, however
        soon it comes."""
        self._capturing = False

    def clear(self, undo: bool = True, redo: bool = True) -> None:
        """Forget every step (of the stacks asked for)."""
        if undo:
            self._undo.clear()
        if redo:
            self._redo.clear()
        self._capturing = False
        self._forget_if_empty()

    def _forget_if_empty(self) -> None:
        """With both stacks empty no record needs to know what stands for what."""
        if not self._undo and not self._redo:
            self._redone = _Redone()
            self._write_stands_for.clear()
            self._add_stands_for.clear()

    def close(self) -> None:
        """Stop recording (the document no longer keeps records for this manager)."""
        if self._ref in self._doc._undo_managers:
            self._doc._undo_managers.remove(self._ref)

    # ---- listeners ----------------------------------------------------------------------

    def on_item_added(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(event)`` when a step is pushed onto either stack (a tracked
        transaction starting a step, or an undo/redo making its reverse); returns a
        function that unsubscribes. Put app state in ``event.item.meta`` here."""
        return subscribe(self._added, callback)

    def on_item_updated(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(event)`` when a tracked transaction joins the top undo step."""
        return subscribe(self._updated, callback)

    def on_item_popped(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(event)`` after a step was undone or redone (``event.stack``
        says which stack it left), to restore what ``event.item.meta`` holds. It is called
        too for a step that had nothing left to revert and was dropped (see :meth:`undo`),
        before the next step is tried; when none is left, undo() returns False."""
        return subscribe(self._popped, callback)

    def _emit(self, callbacks: list[EventCallback], event: UndoEvent) -> None:
        for callback in list(callbacks):
            try:
                callback(event)
            except Exception as exc:
                self._doc._callback_failed(exc, "UndoManager", callback, None)

    # ---- recording (called by the document after each local transaction) ----------------

    def _in_scope(self, container: Container[Any]) -> bool:
        scope = self._scope
        if scope is None:
            return True
        key = container._key
        known = self._in_scope_cache.get(key)
        if known is None:
            probe: tuple[str, str] | None = key
            while probe is not None and probe not in scope:
                probe = parent_key(probe)
            known = self._in_scope_cache[key] = probe is not None
        return known

    def _tracks(self, origin: Any) -> bool:
        try:
            if origin in self._tracked:
                return True
        except TypeError:  # an unhashable origin
            pass
        return bool(self._tracked_types) and isinstance(origin, self._tracked_types)

    def _captured(self, txn: Transaction) -> None:
        records = [r for r in txn._undo or () if self._in_scope(r[1])]
        if not records:
            return
        if txn.origin is self and self._applying is not None:
            kind, popped = self._applying
            # The reverse of an undo is a redo step, and the other way round.
            target, name = (self._redo, "redo") if kind == "undo" else (self._undo, "undo")
            item = StackItem(records, popped.meta)
            self._push(target, item)
            if self._added:
                self._emit(self._added, UndoEvent(item, name, txn.origin))  # type: ignore[arg-type]
            return
        if not self._tracks(txn.origin):
            return
        if self._redo:
            self._redo.clear()
        if not self._undo:
            self._forget_if_empty()
        now = self._clock()
        if self._capturing and self._undo and now - self._last_capture < self.capture_timeout:
            self._undo[-1].records.extend(records)
            if self._updated:
                self._emit(self._updated, UndoEvent(self._undo[-1], "undo", txn.origin))
        else:
            item = StackItem(records)
            self._push(self._undo, item)
            if self._added:
                self._emit(self._added, UndoEvent(item, "undo", txn.origin))
        self._last_capture = now
        self._capturing = True

    def _push(self, stack: list[StackItem], item: StackItem) -> None:
        stack.append(item)
        if len(stack) > self.max_depth:
            del stack[: len(stack) - self.max_depth]

    def _renamed(self, old: int, new: int) -> None:
        """The document re-issued its changes from replica id ``old`` under ``new``: the
        records name its elements, writes and adds by the new id from now on."""

        def dot(d: Any) -> Any:
            return d if d is None or d[0] != old else (new, *d[1:])

        def content(c: Any) -> Any:
            if type(c) is not list or ChildRef not in map(type, c):
                return c
            return [
                ChildRef(v.kind, v.basis, dot(v.alias)) if type(v) is ChildRef else v for v in c
            ]

        def record(r: tuple[Any, ...]) -> tuple[Any, ...]:
            tag = r[0]
            if tag == "i":
                return (tag, r[1], new if r[2] == old else r[2], r[3], r[4])
            if tag == "d":
                pieces = [
                    (new if rr == old else rr, c, n, content(piece)) for rr, c, n, piece in r[2]
                ]
                return (tag, r[1], pieces)
            if tag == "m":
                return (tag, r[1], r[2], r[3], r[4], dot(r[5]), r[6], new if r[7] == old else r[7])
            if tag == "a":
                return (tag, r[1], r[2], dot(r[3]), r[4])
            if tag == "r":
                return (tag, r[1], [(element, dot(d)) for element, d in r[2]])
            if tag == "f":
                return (tag, r[1], r[2], r[3], [(dot(a), dot(b), v) for a, b, v in r[4]])
            return r

        for stack in (self._undo, self._redo):
            for item in stack:
                item.records = [record(r) for r in item.records]
        self._redone.rename(old, new)
        self._write_stands_for = {
            (c, k, lamport, new if r == old else r): dot(was)
            for (c, k, lamport, r), was in self._write_stands_for.items()
        }
        self._add_stands_for = {dot(a): dot(b) for a, b in self._add_stands_for.items()}

    # ---- undoing ------------------------------------------------------------------------

    def _pop(self, kind: Literal["undo", "redo"]) -> bool:
        doc = self._doc
        if doc._txn is not None:
            raise RuntimeError("undo() and redo() cannot run inside a transaction")
        stack = self._undo if kind == "undo" else self._redo
        self._capturing = False
        while stack:
            item = stack.pop()
            self._applying = (kind, item)
            try:
                with doc.transaction(self) as txn:
                    for record in reversed(item.records):
                        self._revert(record)
                    changed = bool(txn._entries)
            finally:
                self._applying = None
            self._emit(self._popped, UndoEvent(item, kind, self))
            if changed:
                return True
        return False

    def _revert(self, record: tuple[Any, ...]) -> None:
        """Apply the reverse of one recorded edit, as local edits of the open transaction.

        What a reverse edit puts back has new identities (new elements, a new write, a new
        add): each is noted as standing for the old one, so that the records of older
        steps, which name the old ones, still find what they made."""
        doc = self._doc
        tag, container = record[0], record[1]
        if tag == "i":
            _, _, replica, counter, n = record
            self._delete_ids(container, replica, counter, n)
        elif tag == "d":
            for replica, counter, n, content in record[2]:
                # Each part that is still one run (nothing came between its elements since)
                # goes back right after its own tombstones.
                at, end = counter, counter + n
                while at < end:
                    run = doc._ids.find(replica, at)
                    if run is None:
                        return
                    span = min(run.counter + run.length, end) - at
                    part = _same_children(content[at - counter : at - counter + span], replica, at)
                    new = doc._local_insert_after(container, (replica, at + span - 1), part)
                    self._redone.add(replica, at, span, doc.replica_id, new)
                    at += span
        elif tag == "m":
            _, _, key, before, present, was, lamport, replica = record
            entry = container._entries.get(key)
            if entry is None or not self._same_write(container, key, entry, (lamport, replica)):
                return  # written since, by someone else or by a later step: that stays
            if not present and entry.deleted:
                return
            doc._local_map_write(container, key, before, not present)
            if was is not None:
                now = container._entries[key]
                self._write_stands_for[(id(container), key, now.lamport, now.replica)] = was
        elif tag == "a":
            _, _, element, dot, was_present = record
            if was_present:
                return
            # This replica's adds of the element since stand for this one (each one
            # supersedes the one before); others' adds stay, and so does the element.
            me = doc.replica_id
            mine = [d for d in container._dots_of(element) if d[0] == me or self._same_add(d, dot)]
            if mine:
                doc._local_set_remove(container, mine)
        elif tag == "r":
            for element, dot in record[2]:
                if element not in container:
                    doc._local_set_add(container, element)
                    (new,) = container._dots_of(element)
                    self._add_stands_for[new] = dot
        elif tag == "c":
            _, _, inc, dec = record
            if inc or dec:
                doc._local_counter(container, dec, inc)
        elif tag == "f":
            _, _, name, value, pieces = record
            for start, end, before in pieces:
                # Only where the text still has what this step set: a later format, by
                # anyone, stays.
                for lo, hi in container._still(start, end, name, value):
                    doc._local_mark(container, name, before, lo, hi)

    def _same_write(self, container: Any, key: str, entry: Any, write: tuple[int, int]) -> bool:
        """Whether the map entry is the write ``write`` or one an undo put back for it."""
        found: tuple[int, int] | None = (entry.lamport, entry.replica)
        seen = 0
        while found is not None and seen <= len(self._write_stands_for):
            if found == write:
                return True
            found = self._write_stands_for.get((id(container), key, *found))
            seen += 1
        return False

    def _same_add(self, dot: tuple[int, int], add: tuple[int, int]) -> bool:
        found: tuple[int, int] | None = dot
        seen = 0
        while found is not None and seen <= len(self._add_stands_for):
            if found == add:
                return True
            found = self._add_stands_for.get(found)
            seen += 1
        return False

    def _delete_ids(
        self, container: SequenceContainer[Any], replica: int, first: int, n: int
    ) -> None:
        """Delete what is still visible of elements (replica, first .. first+n-1), and of
        what undos put back in their place."""
        doc = self._doc
        seq = container._seq
        counter, end = first, first + n
        while counter < end:
            run = doc._ids.find(replica, counter)
            if run is None or run.seq is not seq:
                return
            span = min(run.counter + run.length, end) - counter
            if not run.deleted:
                doc._local_delete(container, seq.position_of(run) + counter - run.counter, span)
            else:
                for r, c, k in self._redone.find(replica, counter, span):
                    self._delete_ids(container, r, c, k)
            counter += span


class _Redone:
    """Which elements an undo put back in place of which deleted ones: disjoint ranges of
    old ids, per replica, each to the first id of its copy."""

    def __init__(self) -> None:
        self._starts: dict[int, list[int]] = {}
        self._ranges: dict[int, list[tuple[int, int, int, int]]] = {}

    def add(self, replica: int, counter: int, n: int, new_replica: int, new_counter: int) -> None:
        starts = self._starts.setdefault(replica, [])
        i = bisect.bisect(starts, counter)
        starts.insert(i, counter)
        self._ranges.setdefault(replica, []).insert(
            i, (counter, counter + n, new_replica, new_counter)
        )

    def rename(self, old: int, new: int) -> None:
        if old in self._starts:
            self._starts[new] = self._starts.pop(old)
            self._ranges[new] = self._ranges.pop(old)
        for replica, ranges in self._ranges.items():
            self._ranges[replica] = [(a, b, new if r == old else r, c) for a, b, r, c in ranges]

    def find(self, replica: int, counter: int, n: int) -> list[tuple[int, int, int]]:
        """The copies of old ids (replica, counter .. counter+n-1), as id ranges."""
        starts = self._starts.get(replica)
        if not starts:
            return []
        ranges = self._ranges[replica]
        out = []
        i = max(bisect.bisect(starts, counter) - 1, 0)
        end = counter + n
        while i < len(ranges) and ranges[i][0] < end:
            start, stop, new_replica, new_counter = ranges[i]
            lo, hi = max(start, counter), min(stop, end)
            if lo < hi:
                out.append((new_replica, new_counter + lo - start, hi - lo))
            i += 1
        return out


def _same_children(content: Any, replica: int, counter: int) -> Any:
    """List content put back by an undo: an element that held a container holds the same
    container again (named after the deleted element)."""
    if type(content) is not list or ChildRef not in map(type, content):
        return content
    out = []
    for i, value in enumerate(content):
        if type(value) is ChildRef:
            value = ChildRef(value.kind, 0, value.alias or (replica, counter + i))
        out.append(value)
    return out
