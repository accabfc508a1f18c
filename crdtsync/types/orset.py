"""ORSet: an add-wins observed-remove set (ORSWOT: no tombstones)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import msgpack

from crdtsync._values import Element, check_element
from crdtsync.types._base import Container
from crdtsync.types.events import SetEvent

if TYPE_CHECKING:
    from crdtsync._doc import Doc

__all__ = ["ORSet"]

Dot = tuple[int, int]


def element_key(element: Any) -> bytes:
    """Identity of an element: its msgpack bytes, so 1, True and 1.0 stay distinct (as they
    are on the wire) and NaN equals itself."""
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

    __slots__ = ("_elements", "_owner", "_touched")
    _kind = "s"

    def __init__(self, doc: Doc, name: str, nested: bool = False) -> None:
        super().__init__(doc, name, nested)
        #: element key -> (element, live dots)
        self._elements: dict[bytes, tuple[Element, set[Dot]]] = {}
        #: live dot -> element key
        self._owner: dict[Dot, bytes] = {}
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
        entry = self._elements.get(element_key(element))
        if entry is not None:
            self._doc._local_set_remove(self, sorted(entry[1]))

    def remove(self, element: Element) -> None:
        """Remove ``element``; KeyError if it is absent."""
        check_element(element)
        if element_key(element) not in self._elements:
            raise KeyError(element)
        self.discard(element)

    def __contains__(self, element: object) -> bool:
        try:
            return element_key(element) in self._elements
        except (TypeError, ValueError, OverflowError):
            return False

    def __len__(self) -> int:
        return len(self._elements)

    def __iter__(self) -> Iterator[Element]:
        return iter([element for element, _ in self._elements.values()])

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

    def _dots_of(self, element: Any) -> list[Dot]:
        entry = self._elements.get(element_key(element))
        return sorted(entry[1]) if entry else []

    def _touch(self, dot: Dot) -> None:
        if dot[1] > self._touched.get(dot[0], 0):
            self._touched[dot[0]] = dot[1]

    def _add_dot(self, element: Any, dot: Dot) -> bool:
        """Record a live add; True if the element became visible."""
        self._touch(dot)
        key = element_key(element)
        entry = self._elements.get(key)
        if entry is None:
            self._elements[key] = (element, {dot})
            self._owner[dot] = key
            return True
        entry[1].add(dot)
        self._owner[dot] = key
        return False

    def _remove_dots(self, dots: Any) -> list[Any]:
        """Drop these dots; return the elements that disappeared."""
        gone = []
        for dot in dots:
            key = self._owner.pop(dot, None)
            if key is None:
                continue
            element, live = self._elements[key]
            live.discard(dot)
            if not live:
                del self._elements[key]
                gone.append(element)
        return gone

    def _live_dots(self) -> list[Dot]:
        return sorted(self._owner)
