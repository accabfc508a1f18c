"""Counter: a PN-counter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crdtsync.types._base import Container
from crdtsync.types.events import CounterEvent

if TYPE_CHECKING:
    from crdtsync._doc import Doc

__all__ = ["Counter"]

#: Totals travel as unsigned 64-bit ints.
_MAX_TOTAL = 2**64 - 1


class Counter(Container[CounterEvent]):
    """A shared integer that many replicas increment and decrement at once.

    Each replica keeps its own running totals of increments and decrements; merging takes
    the larger total per replica, so updates can be repeated or reordered freely, and the
    value is the sum of all increments minus all decrements.

    >>> import crdtsync
    >>> a, b = crdtsync.Doc(), crdtsync.Doc()
    >>> a.counter("likes").increment(3)
    >>> b.counter("likes").decrement()
    >>> a.apply_update(b.get_update()); b.apply_update(a.get_update())
    >>> a.counter("likes").value, b.counter("likes").value
    (2, 2)
    """

    __slots__ = ("_inc", "_dec", "_dots", "_value")
    _kind = "c"

    def __init__(self, doc: Doc, name: str, nested: bool = False) -> None:
        super().__init__(doc, name, nested)
        self._inc: dict[int, int] = {}
        self._dec: dict[int, int] = {}
        #: replica -> counter of its latest change to this counter
        self._dots: dict[int, int] = {}
        self._value = 0

    @property
    def value(self) -> int:
        """The current total."""
        return self._value

    def increment(self, n: int = 1) -> None:
        """Add ``n`` (a non-negative int; use :meth:`decrement` to subtract)."""
        self._change(n, 0)

    def decrement(self, n: int = 1) -> None:
        """Subtract ``n`` (a non-negative int)."""
        self._change(0, n)

    def _change(self, inc: int, dec: int) -> None:
        for n in (inc, dec):
            if type(n) is not int and (isinstance(n, bool) or not isinstance(n, int)):
                raise TypeError(f"counter steps are ints, not {type(n).__name__}")
            if n < 0:
                raise ValueError("counter steps are non-negative; use the other method")
        me = self._doc.replica_id
        if self._inc.get(me, 0) + inc > _MAX_TOTAL or self._dec.get(me, 0) + dec > _MAX_TOTAL:
            raise OverflowError("a replica's running total must stay below 2**64")
        if inc or dec:
            self._doc._local_counter(self, int(inc), int(dec))

    def __int__(self) -> int:
        return self._value

    def __repr__(self) -> str:
        return f"Counter({self.name!r}, {self._value})"

    def _clear_content(self) -> None:
        try:
            if self._value > 0:
                self.decrement(self._value)
            elif self._value < 0:
                self.increment(-self._value)
        except OverflowError:
            pass  # (a running total at its ceiling: the value stays, it is one int)

    def to_py(self) -> int:
        """The value as an int."""
        return self._value

    def _merge(self, replica: int, counter: int, inc: int, dec: int) -> int:
        """Join one replica's totals; return how much the value moved."""
        old_inc = self._inc.get(replica, 0)
        old_dec = self._dec.get(replica, 0)
        new_inc, new_dec = max(old_inc, inc), max(old_dec, dec)
        if counter > self._dots.get(replica, 0):
            self._dots[replica] = counter
        self._inc[replica], self._dec[replica] = new_inc, new_dec
        delta = (new_inc - old_inc) - (new_dec - old_dec)
        self._value += delta
        return delta
