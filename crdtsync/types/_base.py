"""What every root container shares: its document, its key and its observers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from crdtsync._callbacks import subscribe
from crdtsync._nesting import (
    MAX_NAME,
    MAX_NESTING,
    Slot,
    nesting_depth,
    parent_key,
    parse_child_name,
)

if TYPE_CHECKING:
    from crdtsync._doc import Doc

#: The event type a container's observers receive (TextEvent for a Text, and so on).
E = TypeVar("E")


class Container(Generic[E]):
    """Base of the five root types. Containers are made by ``Doc.text()`` and friends.

    Generic in the event its observers receive, so that a type checker knows a Text's
    callback gets a :class:`~crdtsync.TextEvent`, a Counter's a
    :class:`~crdtsync.CounterEvent`, and so on.
    """

    __slots__ = ("_doc", "_key", "_observers", "_deep_observers")
    _kind = ""

    def __init__(self, doc: Doc, name: str, nested: bool = False) -> None:
        self._doc = doc
        # A container inside another is keyed by its kind letter in upper case and a name
        # that says where it lives (see crdtsync._nesting).
        self._key = (self._kind.upper() if nested else self._kind, name)
        self._observers: list[Callable[[E], None]] = []
        self._deep_observers: list[Callable[[list[Any]], None]] = []

    @property
    def name(self) -> str:
        """The root name this container was created under (for a container inside
        another: its key in the parent map, or its element's place as a string)."""
        if self._key[0].islower():
            return self._key[1]
        slot = self._slot()
        return slot[1] if slot[0] == "k" else f"{slot[1]}.{slot[2]}"  # type: ignore[return-value]

    def _slot(self) -> Slot:
        parsed = parse_child_name(self._key[1])
        assert parsed is not None  # (checked when the key was made or decoded)
        return parsed[1]

    @property
    def parent(self) -> Container[Any] | None:
        """The container holding this one: an LWWMap or a List; None for a root.

        >>> import crdtsync
        >>> doc = crdtsync.Doc()
        >>> title = doc.map("card").text("title")
        >>> title.parent is doc.map("card"), doc.map("card").parent
        (True, None)
        """
        key = parent_key(self._key)
        return None if key is None else self._doc._container(key)

    def to_py(self) -> Any:
        """This container's content as plain Python, containers inside it included."""
        raise NotImplementedError

    def _local_depth_check(self, key: str = "") -> None:
        """Refuse a child that would nest deeper, or be named longer, than every peer
        accepts (``key``: the map key it would be at)."""
        if nesting_depth(self._key) + 1 > MAX_NESTING:
            raise ValueError(f"containers nest at most {MAX_NESTING} levels deep")
        if len(self._key[1]) + len(key) + 64 > MAX_NAME:
            raise ValueError(
                f"a nested container's name (its parents' names and map keys) is at most "
                f"{MAX_NAME} characters long"
            )

    def _clear_content(self) -> None:
        """Remove everything this container holds, containers inside it first, with
        ordinary local edits (inside the caller's transaction).

        Removing a container from its parent does this: the removed content then goes
        like deleted text (gc drops it from the state), and if a concurrent creator brings
        the same child back it holds only what was made without seeing the removal, on
        every replica alike."""
        raise NotImplementedError

    @property
    def doc(self) -> Doc:
        """The document this container belongs to."""
        return self._doc

    def observe(self, callback: Callable[[E], None]) -> Callable[[], None]:
        """Call ``callback(event)`` after each transaction that changed this container.

        Returns a function that unsubscribes. Events arrive after the change is complete,
        for local edits and for merged remote updates alike. The event's type follows the
        container: TextEvent, ListEvent, MapEvent, SetEvent or CounterEvent. A callback that
        raises stops neither the other callbacks nor sync: the exception is logged and
        reported (see :meth:`crdtsync.Doc.on_callback_error`); after a local edit it is
        re-raised once every callback ran, while ``apply_update`` does not raise for it.

        >>> import crdtsync
        >>> doc = crdtsync.Doc()
        >>> def on_likes(event: crdtsync.CounterEvent) -> None:
        ...     print("likes moved by", event.delta)
        >>> unsubscribe = doc.counter("likes").observe(on_likes)
        >>> doc.counter("likes").increment(2)
        likes moved by 2
        >>> unsubscribe()
        """
        return subscribe(self._observers, callback)

    def observe_deep(self, callback: Callable[[list[Any]], None]) -> Callable[[], None]:
        """Call ``callback(events)`` once after each transaction that changed this
        container or any container inside it, at any depth; returns a function that
        unsubscribes.

        ``events`` holds one event per changed container (the same types
        :meth:`observe` delivers), shallowest first, each with ``.target`` the changed
        container and ``.path`` the way down to it from this one: map keys and list
        indices as they are after the transaction (``()`` for this container itself).
        Changes inside a child removed by then are not reported here. Errors a callback
        raises are handled as for :meth:`observe`.

        >>> import crdtsync
        >>> doc = crdtsync.Doc()
        >>> board = doc.map("board")
        >>> cards = board.list("cards")
        >>> seen = []
        >>> unsubscribe = board.observe_deep(
        ...     lambda events: seen.append([(type(e).__name__, e.path) for e in events]))
        >>> with doc.transaction():
        ...     card = cards.append_container(crdtsync.LWWMap)
        ...     card.text("title").insert(0, "milk")
        >>> for event in seen[0]:
        ...     print(*event)
        ListEvent ('cards',)
        MapEvent ('cards', 0)
        TextEvent ('cards', 0, 'title')
        >>> unsubscribe()
        """
        callbacks = self._deep_observers
        doc = self._doc
        callbacks.append(callback)
        doc._deep += 1

        def unsubscribe() -> None:
            if callback in callbacks:
                callbacks.remove(callback)
                doc._deep -= 1

        return unsubscribe
