"""Text: a collaborative string (RGA of characters)."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, overload

from crdtsync._cursor import Cursor, make_cursor
from crdtsync._rga import Sequence
from crdtsync._values import check_str
from crdtsync.types._base import Container, E
from crdtsync.types.events import TextEvent

if TYPE_CHECKING:
    from crdtsync._doc import Doc

__all__ = ["Text"]


def _as_int(value: Any, what: str) -> int:
    """``value`` as a plain int: any integer type (``__index__``) but bool, whose True and
    False are almost always a bug when they reach a position."""
    if type(value) is int:
        return value
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, not {type(value).__name__}") from None


def _check_index(index: Any, length: int) -> int:
    checked = _as_int(index, "index")
    if not 0 <= checked <= length:
        raise IndexError(f"index {checked} out of range 0..{length}")
    return checked


def _check_slice(s: slice) -> None:
    for part in (s.start, s.stop, s.step):
        if isinstance(part, bool):
            raise TypeError("slice indices must be ints or None, not bool")


class SequenceContainer(Container[E]):
    """What Text and List share: the RGA engine and index handling."""

    __slots__ = ("_seq",)
    _is_text = True

    def __init__(self, doc: Doc, name: str, nested: bool = False) -> None:
        super().__init__(doc, name, nested)
        self._seq = Sequence(doc._ids, self._is_text)
        self._seq.key = self._key

    def __len__(self) -> int:
        return self._seq.vis_len

    def cursor(self, index: int, side: Literal["after", "before"] = "after") -> Cursor:
        """A position that moves with the content: the place before the element at
        ``index`` (0 <= index <= len).

        With ``side="after"`` (the default) the cursor sticks to the element after it, the
        one at ``index``: text inserted at the cursor goes before it and pushes it right.
        With ``side="before"`` it sticks to the element before it: text inserted at the
        cursor goes after it. ``cursor.index`` is its position after any local or remote
        edits; an element that is deleted leaves the cursor where the element was.
        ``cursor.encode()`` and :meth:`crdtsync.Doc.decode_cursor` carry it to other
        replicas, through presence for example.

        >>> import crdtsync
        >>> doc = crdtsync.Doc()
        >>> text = doc.text("t")
        >>> text.insert(0, "hello world")
        >>> start, end = text.cursor(6), text.cursor(11, side="before")
        >>> text.insert(0, "oh, ")
        >>> text.insert(len(text), "!")
        >>> start.index, end.index, text[start.index:end.index]
        (10, 15, 'world')
        >>> text.delete(9, 6)                     # " world" goes
        >>> start.index, end.index
        (9, 9)
        """
        return make_cursor(self, _check_index(index, self._seq.vis_len), side)

    def _item_index(self, index: Any) -> int:
        if isinstance(index, bool) or not isinstance(index, int):
            try:
                index = _as_int(index, "index")
            except TypeError:
                kind = type(index).__name__
                raise TypeError(f"indices must be integers or slices, not {kind}") from None
        n = self._seq.vis_len
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"{type(self).__name__.lower()} index out of range")
        return int(index)

    def _get(self, index: Any) -> Any:
        if isinstance(index, slice):
            _check_slice(index)
            start, stop, step = index.indices(self._seq.vis_len)
            if step == 1:
                return self._seq.slice(start, stop)
            return self._seq.value()[index]
        run, offset = self._seq.locate(self._item_index(index))
        return run.content[offset]

    def _insert(self, index: Any, content: Any) -> None:
        index = _check_index(index, self._seq.vis_len)
        if len(content):
            self._doc._local_insert(self, index, content)

    def _delete(self, index: Any, length: Any) -> None:
        length = _as_int(length, "length")
        index = _check_index(index, self._seq.vis_len)
        if length < 0 or index + length > self._seq.vis_len:
            raise IndexError(f"cannot delete {length} from {index}: length is {self._seq.vis_len}")
        if length:
            self._doc._local_delete(self, index, length)


class Text(SequenceContainer[TextEvent]):
    """A shared string. Positions are Python ``str`` indices (code points).

    Concurrent inserts at the same place never interleave: each replica's run of typing
    stays together, ordered by Lamport time.

    >>> import crdtsync
    >>> doc = crdtsync.Doc()
    >>> text = doc.text("notes")
    >>> text.insert(0, "hello world")
    >>> text.delete(5, 6)
    >>> text.insert(5, "! 👋")
    >>> str(text), len(text), text[-1], text[0:5]
    ('hello! 👋', 8, '👋', 'hello')
    """

    __slots__ = ()
    _kind = "t"
    _is_text = True

    def insert(self, index: int, s: str) -> None:
        """Insert ``s`` so that it starts at ``index`` (0 <= index <= len)."""
        check_str(s, "inserted text")
        self._insert(index, s)

    def delete(self, index: int, length: int = 1) -> None:
        """Delete ``length`` characters starting at ``index``."""
        self._delete(index, length)

    def append(self, s: str) -> None:
        """Insert ``s`` at the end."""
        self.insert(self._seq.vis_len, s)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> str: ...
    def __getitem__(self, index: int | slice) -> str:
        return self._get(index)  # type: ignore[no-any-return]

    def __str__(self) -> str:
        return self._seq.value()  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(self._seq.value())

    def __contains__(self, sub: object) -> bool:
        return isinstance(sub, str) and sub in self._seq.value()

    def _clear_content(self) -> None:
        self._delete(0, self._seq.vis_len)

    def to_py(self) -> str:
        """The text as a str (the same as ``str(text)``)."""
        return self._seq.value()  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"Text({self.name!r}, {self._seq.value()!r})"
