"""LWWMap: a last-writer-wins map with str keys."""

from __future__ import annotations

import copy
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from crdtsync._values import check_str, check_value
from crdtsync.types._base import Container
from crdtsync.types.events import MapEvent

if TYPE_CHECKING:
    from crdtsync._doc import Doc

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
    """

    __slots__ = ("_entries", "_size")
    _kind = "m"

    def __init__(self, doc: Doc, name: str) -> None:
        Container.__init__(self, doc, name)
        self._entries: dict[str, _Entry] = {}
        self._size = 0

    def __setitem__(self, key: str, value: Any) -> None:
        check_str(key, "an LWWMap key")
        check_value(value)
        self._doc._local_map_write(self, key, copy.deepcopy(value), False)

    def __getitem__(self, key: str) -> Any:
        entry = self._entries.get(key) if type(key) is str else None
        if entry is None or entry.deleted:
            raise KeyError(key)
        return copy.deepcopy(entry.value)

    def __delitem__(self, key: str) -> None:
        entry = self._entries.get(key) if type(key) is str else None
        if entry is None or entry.deleted:
            raise KeyError(key)
        self._doc._local_map_write(self, key, None, True)

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
