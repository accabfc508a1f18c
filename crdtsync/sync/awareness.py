"""Presence (awareness): who is here, their cursor and selection. Ephemeral, never stored.

Each replica owns one state (any value a LWWMap could hold, or None once it left) with
its own clock; the highest clock wins. A state not renewed within ``timeout`` seconds is
dropped, so a client that vanishes without saying goodbye disappears from everyone's
view. Time is whatever the application passes to :meth:`Presence.tick` (seconds, any
monotonic origin): nothing here reads a clock.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from crdtsync._callbacks import report_callback_error, subscribe
from crdtsync._clock import CLOCK_CEILING
from crdtsync._values import check_value

__all__ = ["Presence", "PresenceChange", "DEFAULT_PRESENCE_TIMEOUT", "PRESENCE_CLOCK_CEILING"]


#: Like Yjs's awareness protocol: a state unheard of for 30 s is gone; renew at half that.
DEFAULT_PRESENCE_TIMEOUT = 30.0
#: Presence clocks at or above this are ignored (the clock ceiling of updates): a forged
#: clock near 2**63 would otherwise make its replica jump past what peers accept.
PRESENCE_CLOCK_CEILING = CLOCK_CEILING


@dataclass(frozen=True)
class PresenceChange:
    """Replicas whose presence appeared, changed or went away in one step."""

    joined: frozenset[int]
    updated: frozenset[int]
    left: frozenset[int]
    origin: Any
    local: bool


class Presence:
    """The presence states of a document's replicas, as seen by one replica.

    >>> alice, bob = Presence(1), Presence(2)
    >>> alice.set_local({"name": "Alice", "cursor": 3})
    >>> bob.apply(alice.encode_states())
    >>> bob.states
    {1: {'name': 'Alice', 'cursor': 3}}
    >>> alice.set_local(None)          # leaving
    >>> bob.apply(alice.encode_states())
    >>> bob.states
    {}
    """

    def __init__(self, replica_id: int, *, timeout: float = DEFAULT_PRESENCE_TIMEOUT) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.replica_id = replica_id
        self.timeout = timeout
        self._now = 0.0
        #: replica -> [clock, state or None, time last heard of]
        self._meta: dict[int, list[Any]] = {}
        self._renewed = 0.0
        self._listeners: list[Callable[[PresenceChange], None]] = []
        self._error_listeners: list[Callable[[Exception], None]] = []

    # ---- reading -----------------------------------------------------------------------

    @property
    def states(self) -> dict[int, Any]:
        """Every known replica's current state (replicas that left are absent)."""
        return {r: copy.deepcopy(m[1]) for r, m in self._meta.items() if m[1] is not None}

    @property
    def local(self) -> Any:
        """This replica's own state (None: not present)."""
        meta = self._meta.get(self.replica_id)
        return None if meta is None else copy.deepcopy(meta[1])

    def on_change(self, callback: Callable[[PresenceChange], None]) -> Callable[[], None]:
        """Call ``callback(change)`` after each step that changed someone's presence.

        A callback that raises does not stop the others or the step: the exception is
        logged to the ``crdtsync`` logger and passed to :meth:`on_callback_error`
        listeners."""
        return subscribe(self._listeners, callback)

    def on_callback_error(self, callback: Callable[[Exception], None]) -> Callable[[], None]:
        """Call ``callback(exc)`` for every exception an :meth:`on_change` callback raises
        (transport clients pass it to their ``on_error`` hook).

        >>> presence, seen = Presence(1), []
        >>> _ = presence.on_callback_error(seen.append)
        >>> _ = presence.on_change(lambda change: 1 / 0)
        >>> presence.set_local({"name": "Ann"})
        >>> presence.states, seen
        ({1: {'name': 'Ann'}}, [ZeroDivisionError('division by zero')])
        """
        return subscribe(self._error_listeners, callback)

    # ---- local changes -------------------------------------------------------------------

    def set_local(self, state: Any) -> None:
        """Publish this replica's state (None: leave)."""
        if state is not None:
            check_value(state)
        meta = self._meta.get(self.replica_id)
        clock = 0 if meta is None else meta[0] + 1
        existed = meta is not None and meta[1] is not None
        self._meta[self.replica_id] = [clock, copy.deepcopy(state), self._now]
        self._renewed = self._now
        me: set[int] = {self.replica_id}
        if state is None:
            self._emit(set(), set(), me if existed else set(), origin=None, local=True)
        elif existed:
            self._emit(set(), me, set(), origin=None, local=True)
        else:
            self._emit(me, set(), set(), origin=None, local=True)

    def tick(self, now: float) -> bool:
        """Advance time to ``now``: drop states not heard of within the timeout; renew our
        own state (a new clock, same value) at half the timeout. True if there is something
        new to send (see :meth:`encode_states`)."""
        self._now = now
        left = set()
        for replica, meta in list(self._meta.items()):
            if replica != self.replica_id and now - meta[2] >= self.timeout:
                if meta[1] is not None:
                    left.add(replica)
                del self._meta[replica]
        if left:
            self._emit(set(), set(), left, origin="timeout", local=False)
        own = self._meta.get(self.replica_id)
        if own is not None and own[1] is not None and now - self._renewed >= self.timeout / 2:
            own[0] += 1
            own[2] = now
            self._renewed = now
            self._emit(set(), {self.replica_id}, set(), origin="renew", local=True)
            return True
        return False

    # ---- wire --------------------------------------------------------------------------------

    def encode_states(self, replicas: Iterable[int] | None = None) -> list[tuple[int, int, Any]]:
        """(replica, clock, state) for the given replicas (default: all known)."""
        chosen = (
            self._meta
            if replicas is None
            else {r: self._meta[r] for r in replicas if r in self._meta}
        )
        return [(r, m[0], m[1]) for r, m in chosen.items()]

    def apply(self, states: Iterable[tuple[int, int, Any]], origin: Any = None) -> None:
        """Merge remote states: a higher clock wins; our own entry is never overwritten by a
        stale echo (a higher remote clock for us means we restarted, so we jump past it)."""
        joined, updated, left = set(), set(), set()
        for replica, clock, state in states:
            if clock >= PRESENCE_CLOCK_CEILING - 1:
                continue  # (- 1: our own jump past it must stay below the ceiling too)
            meta = self._meta.get(replica)
            if replica == self.replica_id:
                if meta is None or clock >= meta[0]:
                    # Someone remembers an older incarnation of us (we restarted): jump past
                    # its clock and make sure peers hear our state with the new clock.
                    state = None if meta is None else meta[1]
                    self._meta[replica] = [clock + 1, state, self._now]
                    if state is not None:
                        self._emit(set(), {replica}, set(), origin="renew", local=True)
                continue
            if meta is not None and clock <= meta[0]:
                if clock == meta[0]:
                    meta[2] = self._now  # a renewal: same clock, still here
                continue
            was = meta is not None and meta[1] is not None
            self._meta[replica] = [clock, copy.deepcopy(state), self._now]
            if state is None:
                if was:
                    left.add(replica)
            elif was:
                updated.add(replica)
            else:
                joined.add(replica)
        if joined or updated or left:
            self._emit(joined, updated, left, origin=origin, local=False)

    def _emit(
        self, joined: set[int], updated: set[int], left: set[int], *, origin: Any, local: bool
    ) -> None:
        change = PresenceChange(
            frozenset(joined), frozenset(updated), frozenset(left), origin, local
        )
        for callback in list(self._listeners):
            try:
                callback(change)
            except Exception as exc:
                # A session or client listening after this one must still hear of it.
                report_callback_error(
                    exc, f"presence on_change callback {callback!r} raised", self._error_listeners
                )
