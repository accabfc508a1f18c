"""Cursors: positions in a Text or List that follow the content, on every replica.

A cursor is anchored to an element's identity rather than to an index: to the element
right after it (``side="after"``) or right before it (``side="before"``), or to the start
or the end of the sequence when there is no such element. Its index is computed when asked,
so it is right after any local or remote edit, and the same cursor decoded on another
replica names the same place there. An anchor element that is deleted stays in the sequence
as a tombstone, so the cursor stays where the element was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgpack

from crdtsync._clock import MAX_CLOCK, MAX_REPLICA_ID
from crdtsync._errors import DecodeError
from crdtsync._nesting import valid_child_name

if TYPE_CHECKING:
    from crdtsync._doc import Doc
    from crdtsync.types.text import SequenceContainer

__all__ = ["Cursor", "decode_cursor"]

Side = Literal["after", "before"]

#: The first byte of an encoded cursor (an update starts with 0xC1, a version vector with
#: a msgpack map): a cursor is never mistaken for either.
CURSOR_MAGIC = 0xC2
#: An encoded cursor is at most this long (the container key is most of it).
MAX_CURSOR_BYTES = 64 * 1024


class Cursor:
    """A position in a Text or List that moves with the content around it.

    Made by ``text.cursor(index, side)`` or ``lst.cursor(index, side)``; see
    :meth:`crdtsync.Text.cursor`.
    """

    __slots__ = ("_container", "_anchor", "_side")

    def __init__(
        self, container: SequenceContainer[Any], anchor: tuple[int, int] | None, side: Side
    ) -> None:
        self._container = container
        #: The anchor element's id as made (a re-issue may have moved it since: see _dot);
        #: None: the end of the sequence (side "after") or its start ("before").
        self._anchor = anchor
        self._side: Side = side

    @property
    def container(self) -> SequenceContainer[Any]:
        """The Text or List this cursor is in."""
        return self._container

    @property
    def side(self) -> Side:
        """``"after"``: the cursor stays before the element that was at its index (it
        moves right when someone types at it); ``"before"``: it stays after the element
        before it (text typed at it goes after the cursor)."""
        return self._side

    def _dot(self) -> tuple[int, int] | None:
        anchor = self._anchor
        if anchor is None:
            return None
        renamed = self._container._doc._renamed_replicas.get(anchor[0])
        return anchor if renamed is None else (renamed, anchor[1])

    @property
    def index(self) -> int:
        """The cursor's position now: 0 .. len(container)."""
        seq = self._container._seq
        dot = self._dot()
        if dot is None:
            return seq.vis_len if self._side == "after" else 0
        run = self._container._doc._ids.find(dot[0], dot[1])
        if run is None or run.seq is not seq:  # (anchors are checked when made)
            raise LookupError("the cursor's element is not in its container")
        pos = seq.position_of(run)
        if run.deleted:
            return pos  # where the element was
        pos += dot[1] - run.counter
        return pos if self._side == "after" else pos + 1

    def encode(self) -> bytes:
        """This cursor as bytes, for :meth:`crdtsync.Doc.decode_cursor` on any replica of
        the document (through presence, say)."""
        key = self._container._key
        dot = self._dot()
        body = [key[0] + key[1], None if dot is None else list(dot), self._side == "after"]
        packed: bytes = msgpack.packb(body)
        return bytes([CURSOR_MAGIC]) + packed

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is Cursor
            and other._container is self._container
            and other._dot() == self._dot()
            and other._side == self._side
        )

    def __hash__(self) -> int:
        return hash((id(self._container), self._dot(), self._side))

    def __repr__(self) -> str:
        return f"Cursor({self._container.name!r}, index={self.index}, side={self._side!r})"


def make_cursor(container: SequenceContainer[Any], index: int, side: str) -> Cursor:
    """The cursor at ``index`` of ``container`` (0 <= index <= len)."""
    if side not in ("after", "before"):
        raise ValueError(f'side is "after" or "before", not {side!r}')
    seq = container._seq
    anchor: tuple[int, int] | None = None
    at = index if side == "after" else index - 1
    if 0 <= at < seq.vis_len:
        run, offset = seq.locate(at)
        anchor = (run.replica, run.counter + offset)
    return Cursor(container, anchor, "after" if side == "after" else "before")


def _fail(why: str) -> DecodeError:
    return DecodeError(f"not a cursor: {why}")


def decode_cursor(doc: Doc, data: bytes | bytearray | memoryview) -> Cursor:
    """The cursor :meth:`Cursor.encode` wrote, on ``doc``.

    DecodeError for bytes that are no cursor; LookupError for a cursor whose element
    ``doc`` does not hold yet (apply the sender's updates first)."""
    data = bytes(data)
    if not data or data[0] != CURSOR_MAGIC or len(data) > MAX_CURSOR_BYTES:
        raise _fail("wrong first byte or too long")
    try:
        body = msgpack.unpackb(data[1:], raw=False, strict_map_key=True)
    except Exception as exc:
        raise _fail(f"malformed ({type(exc).__name__})") from None
    if type(body) is not list or len(body) != 3:
        raise _fail("expected [container, element, side]")
    raw_key, dot, after = body
    if type(raw_key) is not str or not raw_key or type(after) is not bool:
        raise _fail("bad container key or side")
    kind, name = raw_key[0], raw_key[1:]
    if kind in "TL" and not valid_child_name(name):
        raise _fail("bad nested container key")
    if kind not in "tlTL":
        raise _fail("a cursor is in a Text or a List")
    if dot is not None:
        if (
            type(dot) is not list
            or len(dot) != 2
            or type(dot[0]) is not int
            or type(dot[1]) is not int
            or not 0 <= dot[0] <= MAX_REPLICA_ID
            or not 1 <= dot[1] <= MAX_CLOCK
        ):
            raise _fail("bad element id")
        dot = (dot[0], dot[1])
    container: Any = doc._container((kind, name))
    cursor = Cursor(container, dot, "after" if after else "before")
    held = cursor._dot()
    if held is not None:
        run = doc._ids.find(*held)
        if run is None or run.seq is not container._seq:
            raise LookupError(
                f"this document does not hold the element {dot} of the cursor in "
                f"{container.name!r} (apply the sender's updates first)"
            )
    return cursor
