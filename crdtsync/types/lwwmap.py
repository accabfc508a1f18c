"""LWWMap: a last-writer-wins map with str keys."""

from __future__ import annotations

import copy
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from crdtsync._values import KIND_NAMES, ChildRef, check_str, check_value
from crdtsync.types._base import Container
from crdtsync.types.events import MapEvent

if TYPE_CHECKING:
    from crdtsync._doc import Doc
    from crdtsync.types.counter import Counter
    from crdtsync.types.list import List
    from crdtsync.types.orset import ORSet
    from crdtsync.types.text import Text

__all__ = ["LWWMap"]

_MISSING: Any = object()


class _Entry:
    """The winning write for one key; ``deleted`` writes stay so older writes lose."""

    __slots__ = ("lamport", "replica", "counter", "value", "deleted")

    def __init__(self, lamport: int, replica: int, counter: int, value: Any, deleted: bool) -> None:
        self.lamport = lamport
        self.replica = replica
        self.counter = counter
        self.value = value
        self.deleted = deleted


class LWWMap(Container[MapEvent], MutableMapping[str, Any]):
    """A shared dict from str to values; each key keeps the last write.

    "Last" is the highest ``(Lamport time, replica id)``: a write made after seeing
    another always has the higher Lamport time, so it wins; concurrent writes are ordered
    by that pair identically everywhere. A delete is a write of "absent".

    >>> import crdtsync
    >>> doc = crdtsync.Doc()
    >>> settings = doc.map("settings")
    >>> settings["theme"] = "dark"
    >>> settings["font"] = {"size": 12}
    >>> del settings["theme"]
    >>> dict(settings), "theme" in settings, settings.get("theme", "light")
    ({'font': {'size': 12}}, False, 'light')

    A key may hold a container instead of a value: :meth:`text`, :meth:`list`,
    :meth:`map`, :meth:`set` and :meth:`counter` get or create one, and ``m[key]`` then
    returns it. Replicas that create the same kind of child at a key concurrently get one
    child holding everyone's edits; ``del m[key]`` removes the child, and a child created
    there later starts empty:

    >>> card = doc.map("card")
    >>> card.text("title").insert(0, "milk")
    >>> card["title"] is card.text("title"), card.to_py()
    (True, {'title': 'milk'})
    """

    __slots__ = ("_entries", "_size")
    _kind = "m"

    def __init__(self, doc: Doc, name: str, nested: bool = False) -> None:
        Container.__init__(self, doc, name, nested)
        self._entries: dict[str, _Entry] = {}
        self._size = 0

    def __setitem__(self, key: str, value: Any) -> None:
        check_str(key, "an LWWMap key")
        check_value(value)
        self._replace(key, copy.deepcopy(value), False)

    def _replace(self, key: str, value: Any, deleted: bool) -> None:
        """Write ``key``; a child it held is emptied in the same transaction."""
        entry = self._entries.get(key)
        held = None if entry is None or entry.deleted else entry.value
        if type(held) is not ChildRef:
            self._doc._local_map_write(self, key, value, deleted)
            return
        with self._doc.transaction():
            self._doc._child(self, ("k", key, held.basis), held.kind)._clear_content()
            self._doc._local_map_write(self, key, value, deleted)

    def __getitem__(self, key: str) -> Any:
        entry = self._entries.get(key) if type(key) is str else None
        if entry is None or entry.deleted:
            raise KeyError(key)
        value = entry.value
        if type(value) is ChildRef:
            return self._doc._child(self, ("k", key, value.basis), value.kind)
        return copy.deepcopy(value)

    # ---- containers inside ---------------------------------------------------------------

    def text(self, key: str) -> Text:
        """The Text at ``key``, created if the key holds none (see :meth:`_child_at`)."""
        return self._child_at(key, "t")  # type: ignore[return-value]

    def list(self, key: str) -> List:
        """The List at ``key``, created if the key holds none."""
        return self._child_at(key, "l")  # type: ignore[return-value]

    def map(self, key: str) -> LWWMap:
        """The LWWMap at ``key``, created if the key holds none."""
        return self._child_at(key, "m")  # type: ignore[return-value]

    def set(self, key: str) -> ORSet:
        """The ORSet at ``key``, created if the key holds none."""
        return self._child_at(key, "s")  # type: ignore[return-value]

    def counter(self, key: str) -> Counter:
        """The Counter at ``key``, created if the key holds none."""
        return self._child_at(key, "c")  # type: ignore[return-value]

    def _child_at(self, key: str, kind: str) -> Container[Any]:
        """The child of kind ``kind`` at ``key``. A key holding such a child returns it; a
        key holding another kind of container raises TypeError; an absent key or one
        holding a plain value gets a new child (a write, replacing the value)."""
        check_str(key, "an LWWMap key")
        entry = self._entries.get(key)
        if entry is not None and not entry.deleted and type(entry.value) is ChildRef:
            held: ChildRef = entry.value
            if held.kind != kind:
                raise TypeError(
                    f"key {key!r} holds a {KIND_NAMES[held.kind]}, not a {KIND_NAMES[kind]}"
                )
            return self._doc._child(self, ("k", key, held.basis), kind)
        # Named after the write it replaces: concurrent creators replace the same one, and
        # a child created after a delete (or any other write) is a new one, which edits
        # made inside the old one concurrently with that write never reach.
        self._local_depth_check(key)
        basis = 0 if entry is None else entry.lamport
        self._doc._local_map_write(self, key, ChildRef(kind, basis), False)
        return self._doc._child(self, ("k", key, basis), kind)

    def to_py(self) -> dict[str, Any]:
        """A plain dict of this map, containers inside it as plain Python too."""
        out: dict[str, Any] = {}
        for key, entry in self._entries.items():
            if entry.deleted:
                continue
            value = entry.value
            if type(value) is ChildRef:
                out[key] = self._doc._child(self, ("k", key, value.basis), value.kind).to_py()
            else:
                out[key] = copy.deepcopy(value)
        return out

    def __delitem__(self, key: str) -> None:
        entry = self._entries.get(key) if type(key) is str else None
        if entry is None or entry.deleted:
            raise KeyError(key)
        self._replace(key, None, True)

    def _clear_content(self) -> None:
        for key in list(self):
            self._replace(key, None, True)

    def __contains__(self, key: object) -> bool:
        entry = self._entries.get(key) if type(key) is str else None
        return entry is not None and not entry.deleted

    def __iter__(self) -> Iterator[str]:
        return iter([k for k, e in self._entries.items() if not e.deleted])

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"LWWMap({self.name!r}, {dict(self)!r})"

    def _write(
        self, lamport: int, replica: int, counter: int, key: str, value: Any, deleted: bool
    ) -> bool:
        """Apply a write by the LWW rule; True if the visible value changed."""
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(lamport, replica, counter, value, deleted)
            if not deleted:
                self._size += 1
            return not deleted
        if (lamport, replica) <= (entry.lamport, entry.replica):
            return False
        was_deleted = entry.deleted
        changed = not (was_deleted and deleted) and (
            was_deleted != deleted or entry.value != value or type(entry.value) is not type(value)
        )
        self._size += int(was_deleted) - int(deleted)
        entry.lamport, entry.replica, entry.counter = lamport, replica, counter
        entry.value, entry.deleted = value, deleted
        return changed
