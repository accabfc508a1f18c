"""Deep observation: which ``observe_deep`` callbacks see an event, and at what path.

A change inside a container reaches the deep observers of every container it can be
reached from at the end of the transaction, each with the event's ``path`` from that
observer down to the changed container: map keys and current list indices. A change inside
a child that is no longer reachable (removed in the same transaction, or concurrently)
reaches the child's own observers only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from crdtsync._nesting import parent_key
from crdtsync._values import ChildRef

if TYPE_CHECKING:
    from crdtsync.types._base import Container

__all__ = ["deep_event_lists"]

DeepCallback = Callable[[list[Any]], None]


def _step(child: Container[Any], parent: Container[Any]) -> str | int | None:
    """The key or current index under which ``parent`` holds ``child``; None if it does
    not hold it (any more)."""
    slot = child._slot()
    if slot[0] == "k":
        entry = parent._entries.get(slot[1])  # type: ignore[attr-defined]
        value = None if entry is None or entry.deleted else entry.value
        if type(value) is not ChildRef or value.basis != slot[2] or value.kind != child._kind:
            return None
        return slot[1]
    run = child._doc._ids.find(int(slot[1]), slot[2])
    seq = parent._seq  # type: ignore[attr-defined]
    if run is not None and not run.deleted:
        return seq.position_of(run) + slot[2] - run.counter  # type: ignore[no-any-return]
    # An element put back by an undo holds the container under the deleted one's name.
    dot = (slot[1], slot[2])
    pos = 0
    for other in seq.runs():
        if other.deleted:
            continue
        for offset, value in enumerate(other.content):
            if type(value) is ChildRef and value.alias == dot:
                return pos + offset
        pos += other.length
    return None


def _observers_above(target: Container[Any]) -> Iterator[tuple[Container[Any], tuple[Any, ...]]]:
    """Each container ``target`` is reachable from (itself first) that has deep observers,
    with the path from it down to ``target``."""
    steps: list[Any] = []
    current = target
    roots = target._doc._roots
    while True:
        if current._deep_observers:
            yield current, tuple(reversed(steps))
        key = parent_key(current._key)
        parent = None if key is None else roots.get(key)
        if parent is None:
            return
        step = _step(current, parent)
        if step is None:
            return
        steps.append(step)
        current = parent


def deep_event_lists(
    events: list[tuple[Container[Any], Any]],
) -> list[tuple[DeepCallback, list[Any]]]:
    """For one transaction's events, each deep callback and the events it gets (each a
    copy with ``path`` set from its observed container, shallowest first)."""
    per_observed: dict[int, tuple[Container[Any], list[Any]]] = {}
    for target, event in events:
        for observed, path in _observers_above(target):
            found = per_observed.get(id(observed))
            if found is None:
                found = per_observed[id(observed)] = (observed, [])
            found[1].append(dataclasses.replace(event, path=path))
    calls: list[tuple[DeepCallback, list[Any]]] = []
    for observed, observed_events in per_observed.values():
        observed_events.sort(key=lambda event: len(event.path))
        for callback in list(observed._deep_observers):
            calls.append((callback, list(observed_events)))
    return calls
