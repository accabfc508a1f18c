"""Merged updates for the many sessions of one document (a relay's room).

After a tick, the sessions of a room each send their peer the room's new updates minus the
ones that peer sent: most share one merge, and each peer that sent something needs the
merge of all the others. Merging each of those afresh costs the square of the updates per
tick. Instead, the merge of the whole set is encoded once with every segment packed on
its own, and the merge of a subset is put together from those segments, when the subset
leaves out whole replicas (every update in it touches none of the replicas of the updates
left out, the usual case: a client's updates hold its own changes only). Otherwise, and
for updates with facts or format 2 content, the subset is merged on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from crdtsync import _encoding as enc
from crdtsync._encoding import Update
from crdtsync._merge import merge_parsed, merged_update

__all__ = ["MergeBase", "merge_all"]


class MergeBase:
    """The merge of ``updates``, kept as packed segments that subsets are built from."""

    __slots__ = ("updates", "replicas", "tables", "segments", "whole")

    def __init__(
        self,
        updates: Sequence[bytes],
        replicas: dict[bytes, frozenset[int]],
        tables: list[object],
        segments: list[tuple[int, bytes]],
    ) -> None:
        self.updates = updates
        self.replicas = replicas  # update -> the replicas its segments belong to
        self.tables = tables
        self.segments = segments  # (replica, packed segment) of the merge
        self.whole = enc.join_segments(tables, [packed for _, packed in segments])

    @classmethod
    def build(cls, updates: Sequence[bytes], parsed: Sequence[Update]) -> MergeBase | None:
        """The base for ``updates`` (decoded as ``parsed``); None if their merge cannot
        be split by replica (facts, format 2)."""
        if any(p.facts for p in parsed):
            return None
        merged = merged_update(parsed)
        parts = enc.encode_segments(merged)
        if parts is None:
            return None
        tables, packed = parts
        replicas = {
            u: frozenset(seg.replica for seg in p.segments)
            for u, p in zip(updates, parsed, strict=True)
        }
        segments = [(seg.replica, data) for seg, data in zip(merged.segments, packed, strict=True)]
        return cls(updates, replicas, tables, segments)

    def subset(self, updates: Sequence[bytes]) -> bytes | None:
        """The merge of ``updates``, if they are some of this base's and leave out whole
        replicas; None otherwise."""
        replicas = self.replicas
        if len(updates) > len(replicas) or any(u not in replicas for u in updates):
            return None
        chosen = set(updates)
        if len(chosen) == len(replicas):
            return self.whole
        left_out: set[int] = set()
        for u in self.updates:
            if u not in chosen:
                left_out |= replicas[u]
        if any(replicas[u] & left_out for u in chosen):
            return None  # a replica with changes both in and out of the subset
        return self.without(left_out)

    def without(self, replicas: set[int]) -> bytes:
        """The merge of the updates that touch none of ``replicas``, when every other
        update touches only those (which the caller knows)."""
        kept = [packed for r, packed in self.segments if r not in replicas]
        return enc.join_segments(self.tables, kept)


def merge_all(
    updates: tuple[bytes, ...], parse: Callable[[bytes], Update], state: list[MergeBase | None]
) -> bytes:
    """The merge of ``updates``: from ``state[0]`` (the last base) where it can be, else
    merged here (and kept as the new base)."""
    base = state[0]
    if base is not None:
        out = base.subset(updates)
        if out is not None:
            return out
    parsed = [parse(u) for u in updates]
    first = parsed[0].segments[0].replica if parsed[0].segments else None
    if all(seg.replica == first for p in parsed for seg in p.segments):
        return merge_parsed(parsed)  # one replica's (a client's own edits): nothing to cut
    if base is not None and not base.replicas.keys().isdisjoint(updates):
        # The same tick as the base, which the first sessions polled may have asked for
        # without their own updates: build the base of all of them, which the other
        # sessions' merges are cut from, or each would cost a merge of the whole tick.
        union = list(base.replicas)
        union += [u for u in dict.fromkeys(updates) if u not in base.replicas]
        if len(union) <= 2 * len(updates) + 16:
            wider = MergeBase.build(union, [parse(u) for u in union])
            if wider is not None:
                state[0] = wider
                out = wider.subset(updates)
                if out is not None:
                    return out
    fresh = MergeBase.build(updates, parsed)
    if fresh is None:
        return merge_parsed(parsed)
    state[0] = fresh
    return fresh.whole
