"""ORSet: an add-wins observed-remove set (ORSWOT: no tombstones)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import msgpack

from crdtsync._encoding import NO_DOTS
from crdtsync._values import Element, check_element
from crdtsync.types._base import Container
from crdtsync.types.events import SetEvent

if TYPE_CHECKING:
    from crdtsync._doc import Doc

__all__ = ["ORSet"]

Dot = tuple[int, int]


#: An element's identity in a set: a str is its own key (the common case costs nothing);
#: any other element is keyed by its msgpack bytes, so 1, True and 1.0 stay distinct (as
#: they are on the wire) and NaN equals itself. A str never equals a bytes object, so the
#: two kinds of key cannot collide.
Key = str | bytes


def element_key(element: Any) -> Key:
    """The key identifying ``element`` in a set (see :data:`Key`)."""
    if type(element) is str:
        return element
    return msgpack.packb(element)  # type: ignore[no-any-return]


def canonical_encoding(element: Any) -> bytes:
    """The canonical encoding of ``element`` (its msgpack bytes): two elements are the
    same exactly when these are equal, and unlike keys they order against each other."""
    return msgpack.packb(element)  # type: ignore[no-any-return]


class ORSet(Container[SetEvent]):
    """A shared set where a concurrent add and remove of the same element keeps it.

    Every add is tagged with a fresh dot; a remove drops the dots it has seen. An add the
    remover had not seen carries a dot it did not drop, so the element survives. Removed
    dots leave nothing behind: the document's version vector is the causal context.

    >>> import crdtsync
    >>> a, b = crdtsync.Doc(replica_id=1), crdtsync.Doc(replica_id=2)
    >>> a.set("tags").add("red")
    >>> b.apply_update(a.get_update())
    >>> b.set("tags").discard("red")     # b removes the add it saw ...
    >>> a.set("tags").add("red")         # ... while a adds it again concurrently
    >>> a.apply_update(b.get_update(a.version)); b.apply_update(a.get_update(b.version))
    >>> sorted(a.set("tags")), sorted(b.set("tags"))
    (['red'], ['red'])
    """

    __slots__ = ("_live", "_others", "_owner", "_touched")
    _kind = "s"

    def __init__(self, doc: Doc, name: str, nested: bool = False) -> None:
        super().__init__(doc, name, nested)
        # An element is held in as few objects as possible (sets of 100k elements are
        # common): its live dot, or a sorted tuple of them only when concurrent adds left
        # several; no copy of a str element besides its key.
        #: element key -> its live dot, or a sorted tuple of two or more live dots
        #: (Dot | tuple[Dot, ...]: told apart by the type of the first item)
        self._live: dict[Key, Any] = {}
        #: element key -> element, for the elements that are not str (a str is its key)
        self._others: dict[bytes, Element] = {}
        #: live dot -> element key
        self._owner: dict[Dot, Key] = {}
        #: replica -> highest counter of a change to this set (to tell if a peer lacks any)
        self._touched: dict[int, int] = {}

    # ---- public API ---------------------------------------------------------------------

    def add(self, element: Element) -> None:
        """Add ``element`` (None, bool, int, float, str or bytes)."""
        check_element(element)
        self._doc._local_set_add(self, element)

    def discard(self, element: Element) -> None:
        """Remove ``element`` if present."""
        check_element(element)
        dots = self._dots(element_key(element))
        if dots:
            self._doc._local_set_remove(self, dots)

    def remove(self, element: Element) -> None:
        """Remove ``element``; KeyError if it is absent."""
        check_element(element)
        if element_key(element) not in self._live:
            raise KeyError(element)
        self.discard(element)

    def __contains__(self, element: object) -> bool:
        try:
            return element_key(element) in self._live
        except (TypeError, ValueError, OverflowError):
            return False

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[Element]:
        if not self._others:
            return iter(list(self._live))
        others = self._others
        return iter([key if isinstance(key, str) else others[key] for key in self._live])

    def __repr__(self) -> str:
        return f"ORSet({self.name!r}, {set(self)!r})"

    def _clear_content(self) -> None:
        if self._owner:
            self._doc._local_set_remove(self, self._live_dots())

    def to_py(self) -> set[Element]:
        """The elements as a plain set (the same as :meth:`to_set`)."""
        return self.to_set()

    def to_set(self) -> set[Element]:
        """The current elements as a Python set (1 and True collapse there, as in Python)."""
        return set(self)

    # ---- state changes (called by the document) ------------------------------------------

    def _element(self, key: Key) -> Element:
        return key if isinstance(key, str) else self._others[key]

    def _dots(self, key: Key) -> Sequence[Dot]:
        """The live dots of the element with this key, sorted (``NO_DOTS`` if absent)."""
        held = self._live.get(key)
        if held is None:
            return NO_DOTS
        if type(held[0]) is int:
            return [held]
        return list(held)

    def _dots_of(self, element: Any) -> Sequence[Dot]:
        return self._dots(element_key(element))

    def _touch(self, dot: Dot) -> None:
        if dot[1] > self._touched.get(dot[0], 0):
            self._touched[dot[0]] = dot[1]

    def _add_dot(self, element: Any, dot: Dot, key: Key | None = None) -> bool:
        """Record a live add (``key``: the element's, if the caller has it); True if the
        element became visible."""
        touched = self._touched  # (self._touch inline: a set's state is one call per dot)
        if dot[1] > touched.get(dot[0], 0):
            touched[dot[0]] = dot[1]
        if key is None:
            key = element_key(element)
        live = self._live
        held = live.get(key)
        self._owner[dot] = key
        if held is None:
            live[key] = dot
            if isinstance(key, bytes):
                self._others[key] = element
            return True
        if type(held[0]) is int:
            if held != dot:
                live[key] = (held, dot) if held < dot else (dot, held)
        elif dot not in held:
            live[key] = tuple(sorted((*held, dot)))
        return False

    def _remove_dots(self, dots: Any) -> list[Any]:
        """Drop these dots; return the elements that disappeared."""
        gone = []
        live, owner = self._live, self._owner
        for dot in dots:
            key = owner.pop(dot, None)
            if key is None:
                continue
            held = live[key]
            if type(held[0]) is int:  # the element's only dot
                del live[key]
                gone.append(key if isinstance(key, str) else self._others.pop(key))
            else:
                rest = tuple(d for d in held if d != dot)
                live[key] = rest[0] if len(rest) == 1 else rest
        return gone

    def _live_dots(self) -> list[Dot]:
        return sorted(self._owner)
