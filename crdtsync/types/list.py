"""List: a collaborative list of values (RGA of values)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any

from crdtsync._values import check_value
from crdtsync.types.events import ListEvent
from crdtsync.types.text import SequenceContainer, _check_slice

__all__ = ["List"]


class List(SequenceContainer[ListEvent]):
    """A shared list of values (None, bool, int, float, str, bytes, lists and str-keyed
    dicts of these). Values are copied in, so later changes to your object do not leak.

    >>> import crdtsync
    >>> doc = crdtsync.Doc()
    >>> todo = doc.list("todo")
    >>> todo.extend(["milk", "eggs"])
    >>> todo.insert(0, {"task": "bread", "done": False})
    >>> del todo[1]
    >>> list(todo), len(todo), "eggs" in todo
    ([{'task': 'bread', 'done': False}, 'eggs'], 2, True)
    """

    __slots__ = ()
    _kind = "l"
    _is_text = False

    def insert(self, index: int, value: Any) -> None:
        """Insert ``value`` before position ``index`` (0 <= index <= len)."""
        check_value(value)
        self._insert(index, [copy.deepcopy(value)])

    def append(self, value: Any) -> None:
        """Add ``value`` at the end."""
        self.insert(self._seq.vis_len, value)

    def extend(self, values: Iterable[Any]) -> None:
        """Add several values at the end as one run."""
        items = list(values)
        for value in items:
            check_value(value)
        self._insert(self._seq.vis_len, copy.deepcopy(items))

    def delete(self, index: int, length: int = 1) -> None:
        """Delete ``length`` values starting at ``index``."""
        self._delete(index, length)

    def __getitem__(self, index: int | slice) -> Any:
        return copy.deepcopy(self._get(index))

    def __delitem__(self, index: int | slice) -> None:
        if isinstance(index, slice):
            _check_slice(index)
            start, stop, step = index.indices(self._seq.vis_len)
            if step != 1:
                raise ValueError("List deletion takes a contiguous slice")
            if stop > start:
                self._delete(start, stop - start)
            return
        self._delete(self._item_index(index), 1)

    def __iter__(self) -> Iterator[Any]:
        return iter(copy.deepcopy(self._seq.value()))

    def __contains__(self, value: object) -> bool:
        return value in self._seq.value()

    def to_list(self) -> list[Any]:
        """A copy of the current values."""
        values: list[Any] = copy.deepcopy(self._seq.value())
        return values

    def __repr__(self) -> str:
        return f"List({self.name!r}, {self._seq.value()!r})"
