"""Change events delivered to ``observe`` callbacks, one per container per transaction.

Sequence events carry a Quill/Yjs-style *delta*: a list of ``{"retain": n}``,
``{"insert": content}`` and ``{"delete": n}`` operations that turn the old value into the
new one when applied from the start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

    delta: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ListEvent(_Event):
    """A List changed; ``delta`` has list inserts."""

    delta: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class MapEvent(_Event):
    """An LWWMap changed; ``keys_changed`` are the keys whose visible value changed."""

    keys_changed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SetEvent(_Event):
    """An ORSet changed; elements that appeared and disappeared."""

    added: frozenset[Any] = frozenset()
    removed: frozenset[Any] = frozenset()


@dataclass(frozen=True)
class CounterEvent(_Event):
    """A Counter changed by ``delta``."""

    delta: int = 0


def apply_delta(value: Any, delta: list[dict[str, Any]]) -> Any:
    """Apply a sequence delta to a str or list and return the result.

    >>> apply_delta("hello", [{"retain": 1}, {"delete": 3}, {"insert": "ipp"}])
    'hippo'
    """
    out = []
    i = 0
    for op in delta:
        if "retain" in op:
            out.append(value[i : i + op["retain"]])
            i += op["retain"]
        elif "delete" in op:
            i += op["delete"]
        else:
            out.append(op["insert"])
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
