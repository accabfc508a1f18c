"""Change events delivered to ``observe`` callbacks, one per container per transaction.

Sequence events carry a Quill/Yjs-style *delta*: a list of ``{"retain": n}``,
``{"insert": content}`` and ``{"delete": n}`` operations that turn the old value into the
new one when applied from the start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crdtsync._values import Element
    from crdtsync.types.counter import Counter
    from crdtsync.types.list import List
    from crdtsync.types.lwwmap import LWWMap
    from crdtsync.types.orset import ORSet
    from crdtsync.types.text import Text

__all__ = [
    "CounterEvent",
    "ListEvent",
    "MapEvent",
    "SetEvent",
    "TextEvent",
    "apply_delta",
]


@dataclass(frozen=True)
class _Event:
    #: The container that changed.
    target: Any
    #: The ``origin`` of the transaction (or of ``apply_update``) that made the change.
    origin: Any
    #: True for a change made on this replica, False for one merged from a peer.
    local: bool
    #: For an event delivered to :meth:`~crdtsync.types.Container.observe_deep`: the map
    #: keys and list indices from the observed container down to ``target`` (``()`` for
    #: events delivered to ``observe``, and for the observed container itself).
    path: tuple[str | int, ...] = field(default=(), kw_only=True)


@dataclass(frozen=True)
class TextEvent(_Event):
    """A Text changed; ``delta`` has str inserts.

    >>> import crdtsync
    >>> doc = crdtsync.Doc()
    >>> text = doc.text("t")
    >>> seen = []
    >>> unsubscribe = text.observe(lambda event: seen.append(event.delta))
    >>> text.insert(0, "hello")
    >>> text.delete(1, 3)
    >>> seen
    [[{'insert': 'hello'}], [{'retain': 1}, {'delete': 3}]]
    """

    target: Text
    delta: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ListEvent(_Event):
    """A List changed; ``delta`` has list inserts."""

    target: List
    delta: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class MapEvent(_Event):
    """An LWWMap changed; ``keys_changed`` are the keys whose visible value changed."""

    target: LWWMap
    keys_changed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SetEvent(_Event):
    """An ORSet changed; elements that appeared and disappeared."""

    target: ORSet
    added: frozenset[Element] = frozenset()
    removed: frozenset[Element] = frozenset()


@dataclass(frozen=True)
class CounterEvent(_Event):
    """A Counter changed by ``delta``."""

    target: Counter
    delta: int = 0


def apply_delta(value: Any, delta: list[dict[str, Any]]) -> Any:
    """Apply a sequence delta to a str or list and return the result.

    Each op is a dict with exactly one key: ``{"retain": n}`` or ``{"delete": n}`` (n a
    positive int, not reaching past the end of ``value``) or ``{"insert": content}`` (a str
    for a str ``value``, a list for a list). Anything else raises ValueError, and
    ``value`` must be a str or a list (TypeError).

    >>> apply_delta("hello", [{"retain": 1}, {"delete": 3}, {"insert": "ipp"}])
    'hippo'
    >>> apply_delta(["a", "b"], [{"retain": 1}, {"insert": ["x"]}])
    ['a', 'x', 'b']
    >>> apply_delta("hi", [{"retain": 3}])
    Traceback (most recent call last):
    ...
    ValueError: delta op 0 {'retain': 3} reaches past the end (length 2)
    """
    if not isinstance(value, str | list):
        raise TypeError(f"apply_delta applies to a str or a list, not {type(value).__name__}")
    if not isinstance(delta, list | tuple):
        raise ValueError(f"a delta is a list of ops, not {type(delta).__name__}")
    content_type = str if isinstance(value, str) else list
    out: list[Any] = []
    i = 0
    for k, op in enumerate(delta):
        if type(op) is not dict or len(op) != 1:
            raise ValueError(f"delta op {k} {op!r}: expected a dict with one key")
        ((name, arg),) = op.items()
        if name == "insert":
            if not isinstance(arg, content_type) or not arg:
                kind = content_type.__name__
                raise ValueError(f"delta op {k} {op!r}: inserts a non-empty {kind}")
            out.append(arg)
            continue
        if name not in ("retain", "delete"):
            raise ValueError(f"delta op {k} {op!r}: unknown op (retain, insert or delete)")
        if type(arg) is not int or arg < 1:
            raise ValueError(f"delta op {k} {op!r}: {name} takes a positive int")
        if i + arg > len(value):
            raise ValueError(f"delta op {k} {op!r} reaches past the end (length {len(value)})")
        if name == "retain":
            out.append(value[i : i + arg])
        i += arg
    out.append(value[i:])
    if isinstance(value, str):
        return "".join(out)
    return [v for part in out for v in part]


class DeltaBuilder:
    """Composes a transaction's sequence edits, in the order they happen, into one delta."""

    __slots__ = ("_ops",)

    def __init__(self) -> None:
        # Items: ["r", n] retain, ["i", content] insert, ["d", n] delete.
        self._ops: list[list[Any]] = []

    def _seek(self, pos: int) -> int:
        """Index of the item starting at ``pos`` (splitting one if needed)."""
        ops = self._ops
        cur = 0
        i = 0
        while i < len(ops):
            if cur == pos:
                return i
            kind, v = ops[i]
            if kind == "d":
                i += 1
                continue
            size = v if kind == "r" else len(v)
            if pos < cur + size:
                k = pos - cur
                if kind == "r":
                    ops[i : i + 1] = [["r", k], ["r", size - k]]
                else:
                    ops[i : i + 1] = [["i", v[:k]], ["i", v[k:]]]
                return i + 1
            cur += size
            i += 1
        if pos > cur:
            ops.append(["r", pos - cur])
        return len(ops)

    def insert(self, pos: int, content: Any) -> None:
        i = self._seek(pos)
        self._ops.insert(i, ["i", content])

    def delete(self, pos: int, length: int) -> None:
        i = self._seek(pos)
        ops = self._ops
        while length > 0:
            if i == len(ops):
                ops.append(["d", length])
                return
            kind, v = ops[i]
            if kind == "d":
                i += 1
                continue
            size = v if kind == "r" else len(v)
            take = min(size, length)
            length -= take
            if kind == "r":
                if take < size:
                    ops[i : i + 1] = [["d", take], ["r", size - take]]
                else:
                    ops[i] = ["d", take]
                i += 1
            elif take < size:
                ops[i] = ["i", v[take:]]
            else:
                del ops[i]

    def build(self) -> list[dict[str, Any]]:
        merged: list[list[Any]] = []
        for kind, v in self._ops:
            if merged and merged[-1][0] == kind:
                merged[-1][1] = merged[-1][1] + v
            elif kind == "i" and merged and merged[-1][0] == "d":
                # Canonical order: an insert goes before a delete at the same place.
                if len(merged) >= 2 and merged[-2][0] == "i":
                    merged[-2][1] = merged[-2][1] + v
                else:
                    merged.insert(len(merged) - 1, ["i", v])
            else:
                merged.append([kind, v])
        while merged and merged[-1][0] == "r":
            merged.pop()
        names = {"r": "retain", "i": "insert", "d": "delete"}
        return [{names[k]: v} for k, v in merged if v]
