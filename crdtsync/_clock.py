"""Clocks: dots and version vectors.

A *dot* ``(replica, counter)`` names one change: every replica numbers its own changes
1, 2, 3, ... without gaps. A version vector maps each replica to the highest counter
integrated from it, which (because counters are dense and integrated in order) describes
exactly the set of changes a replica holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import msgpack

from crdtsync._errors import DecodeError

__all__ = ["CLOCK_CEILING", "MAX_CLOCK", "MAX_REPLICA_ID", "VersionVector", "Dot"]

Dot = tuple[int, int]

#: Replica ids are unsigned 64-bit integers.
MAX_REPLICA_ID = 2**64 - 1

#: Counters and Lamport times stay below this ceiling, a quarter of the 64-bit range, so
#: that sums of two clock values (a counter plus a run length, a counter plus a Lamport
#: offset) never overflow a signed 64-bit integer in any implementation. Decoders refuse
#: updates and version vectors beyond it (DecodeError) and a local edit that would pass it
#: raises OverflowError without changing anything (docs/format.md, section 2.4).
CLOCK_CEILING = 2**62
MAX_CLOCK = CLOCK_CEILING - 1

#: First bytes of every encoded version vector and update: 0xC1 is never used by msgpack,
#: so a stray msgpack document cannot be mistaken for ours; the second byte is the format.
MAGIC = 0xC1
FORMAT = 1
PREFIX = bytes((MAGIC, FORMAT))


def _check_entry(replica: Any, counter: Any) -> None:
    if type(replica) is not int or not 0 <= replica <= MAX_REPLICA_ID:
        raise ValueError(f"replica id must be an int in [0, 2**64), got {replica!r}")
    if type(counter) is not int or not 0 <= counter <= MAX_CLOCK:
        raise ValueError(f"counter must be an int in [0, 2**62), got {counter!r}")


class VersionVector(Mapping[int, int]):
    """What a replica has integrated: replica id -> highest counter (absent means 0).

    Read-only and hashable. ``a <= b`` means b has seen everything a has; ``a | b`` is the
    pointwise maximum. As with :class:`collections.Counter`, ``v[r]`` is 0 for a replica
    the vector does not list, while ``r in v`` stays False and iteration, ``len`` and
    ``dict(v)`` show only the listed replicas. Counters are ints in ``[0, 2**62)``.

    >>> v = VersionVector({7: 2})
    >>> v[7], v[8], 8 in v, dict(v)
    (2, 0, False, {7: 2})
    >>> a = VersionVector({1: 3, 2: 1})
    >>> b = VersionVector({1: 5})
    >>> a <= b, (a | b) == VersionVector({1: 5, 2: 1})
    (False, True)
    >>> VersionVector.decode(a.encode()) == a
    True
    """

    __slots__ = ("_entries", "_hash")

    def __init__(self, mapping: Mapping[int, int] | Iterable[tuple[int, int]] | None = None):
        entries: dict[int, int] = {}
        if mapping is not None:
            items = mapping.items() if isinstance(mapping, Mapping) else mapping
            for replica, counter in items:
                _check_entry(replica, counter)
                if counter:
                    entries[replica] = counter
        self._entries = entries
        self._hash: int | None = None

    @classmethod
    def _trusted(cls, entries: dict[int, int]) -> VersionVector:
        """Wrap a dict the caller will not mutate again (no copy, no checks)."""
        vv = cls.__new__(cls)
        vv._entries = {r: c for r, c in entries.items() if c}
        vv._hash = None
        return vv

    def __getitem__(self, replica: int) -> int:
        # Absent means "nothing integrated from that replica", so 0 rather than KeyError.
        return self._entries.get(replica, 0)

    def __contains__(self, replica: object) -> bool:
        # Mapping's default would ask __getitem__, which never raises KeyError here.
        return replica in self._entries

    def __iter__(self) -> Iterator[int]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, replica: int, default: Any = 0) -> Any:
        """The counter for ``replica``; 0 (not None) when it is absent."""
        return self._entries.get(replica, default)

    def __le__(self, other: object) -> bool:
        if not isinstance(other, VersionVector):
            return NotImplemented
        theirs = other._entries
        return all(theirs.get(r, 0) >= c for r, c in self._entries.items())

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, VersionVector):
            return NotImplemented
        return other <= self

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, VersionVector):
            return NotImplemented
        return self <= other and self != other

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, VersionVector):
            return NotImplemented
        return other < self

    def __or__(self, other: object) -> VersionVector:
        if not isinstance(other, VersionVector):
            return NotImplemented
        merged = dict(self._entries)
        for r, c in other._entries.items():
            if c > merged.get(r, 0):
                merged[r] = c
        return VersionVector._trusted(merged)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, VersionVector):
            return self._entries == other._entries
        if isinstance(other, Mapping):
            return self._entries == {r: c for r, c in other.items() if c}
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._entries.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"VersionVector({self._entries!r})"

    def concurrent_with(self, other: VersionVector) -> bool:
        """True when neither vector has seen everything the other has."""
        return not self <= other and not other <= self

    def encode(self) -> bytes:
        """Bytes for the wire: the magic prefix, then a msgpack map replica -> counter."""
        return PREFIX + bytes(msgpack.packb(self._entries))

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> VersionVector:
        """Inverse of :meth:`encode`; raises :class:`DecodeError` on anything else."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError("a version vector is bytes")
        data = bytes(data)
        if data[:2] != PREFIX:
            raise DecodeError("not a crdtsync version vector (bad magic or format)")
        try:
            from crdtsync._encoding import unpack_bounded  # _encoding imports this module

            body = unpack_bounded(memoryview(data)[2:])
        except Exception as exc:  # msgpack raises several unrelated types
            raise DecodeError(f"malformed version vector: {exc}") from None
        if not isinstance(body, dict):
            raise DecodeError("malformed version vector: expected a map")
        try:
            return cls(body)
        except ValueError as exc:
            raise DecodeError(f"malformed version vector: {exc}") from None
