"""Text: a collaborative string (RGA of characters)."""

from __future__ import annotations

import copy
import operator
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, overload

from crdtsync._cursor import Cursor, make_cursor
from crdtsync._rga import Sequence
from crdtsync._values import check_str, check_value
from crdtsync.types._base import Container, E
from crdtsync.types._marks import (
    DEFAULT_EXPAND,
    FALLBACK_EXPAND,
    Expand,
    Mark,
    anchor_position,
    anchors_for,
    attributes_at,
    spans,
)
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


def _exact(seq: Any, index: int, after: bool) -> tuple[int, int, bool]:
    run, offset = seq.locate(index)
    return (run.replica, run.counter + offset, after)


def _check_attributes(attributes: Any) -> dict[str, Any]:
    if not isinstance(attributes, Mapping):
        raise TypeError(f"attributes are a mapping of str to values, not {attributes!r}")
    out = {}
    for name, value in attributes.items():
        check_str(name, "an attribute name")
        if value is not None:
            check_value(value)
        out[name] = copy.deepcopy(value)
    return out


def _check_delta_op(k: int, op: Any) -> None:
    if type(op) is not dict:
        raise ValueError(f"delta op {k} {op!r}: expected a dict")
    kinds = [name for name in ("insert", "retain", "delete") if name in op]
    extra = set(op) - {"insert", "retain", "delete", "attributes"}
    if len(kinds) != 1 or extra or ("attributes" in op and kinds[0] == "delete"):
        raise ValueError(f"delta op {k} {op!r}: one of insert, retain, delete (and attributes)")
    arg = op[kinds[0]]
    if kinds[0] == "insert":
        if type(arg) is not str:
            raise ValueError(f"delta op {k} {op!r}: a Text inserts a str")
    elif type(arg) is not int or arg < 1:
        raise ValueError(f"delta op {k} {op!r}: {kinds[0]} takes a positive int")
    attrs = op.get("attributes")
    if attrs is not None and not isinstance(attrs, dict):
        raise ValueError(f"delta op {k} {op!r}: attributes are a dict")


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

    __slots__ = ("_marks", "_spans")
    _kind = "t"
    _is_text = True

    def __init__(self, doc: Doc, name: str, nested: bool = False) -> None:
        super().__init__(doc, name, nested)
        #: Formatting changes (see crdtsync.types._marks), in the order they arrived.
        self._marks: list[Mark] = []
        self._spans: tuple[Any, Any, list[tuple[int, int, dict[str, Any]]]] | None = None

    def insert(self, index: int, s: str, attributes: Mapping[str, Any] | None = None) -> None:
        """Insert ``s`` so that it starts at ``index`` (0 <= index <= len).

        Without ``attributes`` the new text takes the formatting the marks around it give
        it (typing inside a bold word, or at its end, is bold). With ``attributes`` it has
        exactly those: each given one is set on it, and any other it would take is
        removed (see :meth:`format`).
        """
        check_str(s, "inserted text")
        if attributes is None or not s:
            self._insert(index, s)
            return
        attributes = _check_attributes(attributes)
        with self._doc.transaction():
            self._insert(index, s)
            inherited = self.attributes_at(index)
            changes = {k: None for k in inherited if k not in attributes}
            changes.update(attributes)
            if changes:
                self.format(index, len(s), changes)

    def format(self, index: int, length: int, attributes: Mapping[str, Any]) -> None:
        """Set each attribute of ``attributes`` on characters ``index .. index+length-1``
        (a value of None removes it): rich-text marks, after Peritext.

        Marks move with the text and converge under concurrent edits: for each attribute
        the latest formatting (by Lamport time, then replica id) of a character wins. A
        mark's edges grow as its name's expand rule says (``Doc.mark_expand``): by default
        text typed at the end of a mark takes it ("after"), except for ``link``, ``href``
        and ``comment`` ("none"). Values are as for LWWMap values.

        >>> import crdtsync
        >>> doc = crdtsync.Doc()
        >>> text = doc.text("t")
        >>> text.insert(0, "hello world")
        >>> text.format(0, 5, {"bold": True})
        >>> text.insert(5, "!")                     # typed at the end of the bold word
        >>> text.format(7, 5, {"link": "https://example.com"})
        >>> text.insert(len(text), ".")             # a link does not grow
        >>> for op in text.to_delta():
        ...     print(op)
        {'insert': 'hello!', 'attributes': {'bold': True}}
        {'insert': ' '}
        {'insert': 'world', 'attributes': {'link': 'https://example.com'}}
        {'insert': '.'}
        >>> str(text)
        'hello! world.'
        """
        attributes = _check_attributes(attributes)
        length = _as_int(length, "length")
        index = _check_index(index, self._seq.vis_len)
        if length < 0 or index + length > self._seq.vis_len:
            raise IndexError(f"cannot format {length} from {index}: length is {len(self)}")
        if not length or not attributes:
            return
        expand = self._doc.mark_expand
        with self._doc.transaction():
            for name, value in attributes.items():
                rule: Expand = expand.get(name) or DEFAULT_EXPAND.get(name) or FALLBACK_EXPAND  # type: ignore[assignment]
                start, end = anchors_for(self._seq, index, length, rule)
                self._doc._local_mark(self, name, value, start, end)

    def attributes_at(self, index: int) -> dict[str, Any]:
        """The attributes of the character at ``index`` (of the one before it when
        ``index == len``; {} for an empty text)."""
        table = self._attribute_runs()
        if not table:
            return {}
        index = min(_check_index(index, self._seq.vis_len), self._seq.vis_len - 1)
        return dict(attributes_at(table, index))

    def to_delta(self) -> list[dict[str, Any]]:
        """The text as a Quill delta: inserts, each with its ``attributes`` if it has any.

        >>> import crdtsync
        >>> text = crdtsync.Doc().text("t")
        >>> text.insert(0, "Hi!", {"bold": True})
        >>> text.format(2, 1, {"bold": None})
        >>> text.to_delta()
        [{'insert': 'Hi', 'attributes': {'bold': True}}, {'insert': '!'}]
        """
        value = self._seq.value()
        out: list[dict[str, Any]] = []
        for start, end, attrs in self._attribute_runs() or [(0, len(value), {})]:
            if start < end:
                piece = value[start:end]
                out.append(
                    {"insert": piece, "attributes": dict(attrs)} if attrs else {"insert": piece}
                )
        return out

    def apply_delta(self, delta: list[dict[str, Any]]) -> None:
        """Apply a Quill delta to this text, in one transaction: ``retain`` (with
        ``attributes``, a format), ``insert`` of a str (with ``attributes``), ``delete``.

        >>> import crdtsync
        >>> text = crdtsync.Doc().text("t")
        >>> text.apply_delta([{"insert": "Hello"}])
        >>> text.apply_delta([{"retain": 1, "attributes": {"bold": True}}, {"retain": 4},
        ...                   {"insert": " you", "attributes": {"italic": True}}])
        >>> for op in text.to_delta():
        ...     print(op)
        {'insert': 'H', 'attributes': {'bold': True}}
        {'insert': 'ello'}
        {'insert': ' you', 'attributes': {'italic': True}}
        """
        if not isinstance(delta, list | tuple):
            raise ValueError(f"a delta is a list of ops, not {type(delta).__name__}")
        for k, op in enumerate(delta):
            _check_delta_op(k, op)
        with self._doc.transaction():
            pos = 0
            for op in delta:
                attrs = op.get("attributes")
                if "insert" in op:
                    self.insert(pos, op["insert"], attrs or {})  # (exactly those)
                    pos += len(op["insert"])
                elif "delete" in op:
                    if pos + op["delete"] > len(self):
                        raise ValueError(f"delta op {op!r} reaches past the end")
                    self.delete(pos, op["delete"])
                else:
                    n = op["retain"]
                    if pos + n > len(self):
                        raise ValueError(f"delta op {op!r} reaches past the end")
                    if attrs:
                        self.format(pos, n, attrs)
                    pos += n

    def _previous_values(self, mark: Mark) -> list[tuple[Any, Any, Any]]:
        """What attribute ``mark.name`` is on the characters ``mark`` covers, before it is
        taken in: (start anchor, end anchor, value) pieces, anchored to exactly those
        characters (for an undo to put back)."""
        seq, ids = self._seq, self._doc._ids
        lo = 0 if mark.start is None else anchor_position(seq, ids, mark.start)
        hi = seq.vis_len if mark.end is None else anchor_position(seq, ids, mark.end)
        out = []
        for start, end, attrs in self._attribute_runs() or [(0, seq.vis_len, {})]:
            a, b = max(start, lo), min(end, hi)
            if a < b:
                out.append((_exact(seq, a, False), _exact(seq, b - 1, True), attrs.get(mark.name)))
        return out

    def _still(self, start: Any, end: Any, name: str, value: Any) -> list[tuple[Any, Any]]:
        """The parts of the characters from anchor ``start`` to ``end`` whose attribute
        ``name`` is still ``value``, as exact (start, end) anchors."""
        seq, ids = self._seq, self._doc._ids
        lo, hi = anchor_position(seq, ids, start), anchor_position(seq, ids, end)
        out = []
        for s, e, attrs in self._attribute_runs() or [(0, seq.vis_len, {})]:
            a, b = max(s, lo), min(e, hi)
            if a < b and attrs.get(name) == value:
                out.append((_exact(seq, a, False), _exact(seq, b - 1, True)))
        return out

    def _attribute_runs(self) -> list[tuple[int, int, dict[str, Any]]]:
        """(start, end, attributes) runs covering the text; [] without marks."""
        if not self._marks:
            return []
        # Valid while the text and the marks are: the value string is a new object after
        # an edit that changes it (held here, so its id is not reused; short strings are
        # shared objects, hence the sequence's stamp too), and marks are only added.
        seq = self._seq
        value, stamp, count = seq.value(), (seq._stamp, seq.vis_len), len(self._marks)
        cached = self._spans
        if cached is None or cached[0] != (stamp, count) or cached[1] is not value:
            runs = spans(seq, self._doc._ids, self._marks)
            cached = self._spans = ((stamp, count), value, runs)
        return cached[2]

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
