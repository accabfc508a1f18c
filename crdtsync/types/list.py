"""List: a collaborative list of values (RGA of values)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from crdtsync._values import ChildRef, check_value
from crdtsync.types._base import Container
from crdtsync.types.events import ListEvent
from crdtsync.types.text import SequenceContainer, _check_index, _check_slice

__all__ = ["List"]

C = TypeVar("C", bound=Container[Any])


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

    An element may be a container: :meth:`insert_container` and :meth:`append_container`
    add one, and ``lst[i]`` returns it:

    >>> card = todo.append_container(crdtsync.LWWMap)
    >>> card["task"] = "jam"
    >>> todo[2] is card, todo.to_py()[2]
    (True, {'task': 'jam'})
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

    def insert_container(self, index: int, kind: type[C]) -> C:
        """Insert a new, empty container of type ``kind`` (Text, List, LWWMap, ORSet or
        Counter) before position ``index``; return it."""
        letter = _kind_letter(kind)
        index = _check_index(index, self._seq.vis_len)
        self._local_depth_check()
        self._insert(index, [ChildRef(letter, 0)])
        run, offset = self._seq.locate(index)
        return self._doc._child(self, _child_slot(run, offset), letter)  # type: ignore[return-value]

    def append_container(self, kind: type[C]) -> C:
        """Add a new, empty container of type ``kind`` at the end; return it."""
        return self.insert_container(self._seq.vis_len, kind)

    def _element(self, run: Any, offset: int) -> Any:
        """The element at ``offset`` of ``run``: its value copied, or the container."""
        value = run.content[offset]
        if type(value) is ChildRef:
            return self._doc._child(self, _child_slot(run, offset), value.kind)
        return copy.deepcopy(value)

    def _elements(self) -> Iterator[Any]:
        for run in self._seq.runs():
            if not run.deleted:
                for offset in range(run.length):
                    yield self._element(run, offset)

    def _delete(self, index: Any, length: Any) -> None:
        """Delete as a sequence does; containers among the deleted elements are emptied
        in the same transaction."""
        start = _check_index(index, self._seq.vis_len)
        if type(length) is not int or length <= 0 or start + length > self._seq.vis_len:
            SequenceContainer._delete(self, index, length)  # (its checks, its errors)
            return
        values = self._seq.slice(start, start + length)
        if ChildRef not in map(type, values):
            SequenceContainer._delete(self, start, length)
            return
        with self._doc.transaction():
            for i, value in enumerate(values):
                if type(value) is ChildRef:
                    run, offset = self._seq.locate(start + i)
                    self._doc._child(self, _child_slot(run, offset), value.kind)._clear_content()
            SequenceContainer._delete(self, start, length)

    def _clear_content(self) -> None:
        self._delete(0, self._seq.vis_len)

    def _holds_children(self) -> bool:
        return ChildRef in map(type, self._seq.value())

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            if self._holds_children():
                return list(self._elements())[index]
            return copy.deepcopy(self._get(index))
        run, offset = self._seq.locate(self._item_index(index))
        return self._element(run, offset)

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
        if self._holds_children():
            return iter(list(self._elements()))
        return iter(copy.deepcopy(self._seq.value()))

    def __contains__(self, value: object) -> bool:
        if isinstance(value, Container):
            return any(x is value for x in self._elements())
        return value in self._seq.value()

    def _with_children(self, delta: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """An event's delta (old value to this list's current one) with the containers
        inserted in place of their references."""
        pos, out = 0, []
        for op in delta:
            inserted = op.get("insert")
            if inserted is not None and ChildRef in map(type, inserted):
                values = []
                for i, value in enumerate(inserted):
                    if type(value) is ChildRef:
                        value = self._element(*self._seq.locate(pos + i))
                    values.append(value)
                op = {"insert": values}
            if inserted is not None:
                pos += len(inserted)
            elif "retain" in op:
                pos += op["retain"]
            out.append(op)
        return out

    def to_list(self) -> list[Any]:
        """A copy of the current values (containers in it as the container objects)."""
        if self._holds_children():
            return list(self._elements())
        values: list[Any] = copy.deepcopy(self._seq.value())
        return values

    def to_py(self) -> list[Any]:
        """A plain list of this list, containers inside it as plain Python too."""
        return [x.to_py() if isinstance(x, Container) else x for x in self.to_list()]

    def __repr__(self) -> str:
        return f"List({self.name!r}, {self._seq.value()!r})"


def _kind_letter(kind: Any) -> str:
    letter = getattr(kind, "_kind", None) if isinstance(kind, type) else None
    if not isinstance(letter, str) or letter not in "tlmsc" or not letter:
        raise TypeError(
            f"a container kind is crdtsync.Text, List, LWWMap, ORSet or Counter, not {kind!r}"
        )
    return letter


def _child_slot(run: Any, offset: int) -> tuple[str, int, int]:
    """The place that names the container held by element ``offset`` of ``run``: the
    element itself, or the one its reference is an alias of."""
    alias = run.content[offset].alias
    if alias is not None:
        return ("e", alias[0], alias[1])
    return ("e", run.replica, run.counter + offset)
