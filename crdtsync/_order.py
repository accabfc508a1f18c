"""A text's elements in document order: the ``FACT_ORDER`` form of a whole state.

A state lists each replica's changes by counter, so a receiver must place every run by
the RGA rule, one search each, to learn the order. A text's whole state can instead be
sent in the order itself: one piece per run, left to right, as columns (replica, first
counter, Lamport time, length, deleted or not, by whom), with the visible characters as
one string. Origins are not sent, because the order implies them: every element is newer
than its origin, and everything between an element and its origin lies in the subtrees of
its newer siblings, so everything in between is newer too. An element's origin is
therefore the nearest element to its left that is older by ``(lamport, replica)`` (the
head if none is), and any order of distinct timestamps is the RGA order of the origins
it implies. The receiver works them out in one pass with a stack (:func:`expand`) and
checks that each is strictly older by Lamport time, as every origin must be.

Decoding checks the columns with whole-list operations (types, ranges, lengths, that no
two pieces share an id, that each replica's Lamport times rise with its counters) and
then expands the pieces into ordinary insert entries, so that every reader of an update
sees the same entries as from the per-replica form. A document whose text is still empty
builds the runs straight from the order (:meth:`Sequence.build`), with no search.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import accumulate, compress, repeat
from operator import add, le
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crdtsync._rga import Sequence

Dot = tuple[int, int]

LIVE = 0  # a piece's state: visible, its characters in ``live``
KEPT = 1  # deleted, its characters kept in ``dead``
DROPPED = 2  # deleted, its characters dropped (garbage-collected): only its length


class OrderInvalid(Exception):
    """The order section breaks a rule (the decoder turns it into a DecodeError)."""


class Order:
    """A text root's runs in document order, as parallel lists (one item per piece)."""

    __slots__ = (
        "key",
        "replicas",
        "counters",
        "lamports",
        "lengths",
        "states",
        "deleters",
        "live",
        "dead",
        "origins",
        "contents",
        "lowest",
    )

    def __init__(
        self,
        key: Any,
        replicas: list[int],
        counters: list[int],
        lamports: list[int],
        lengths: list[int],
        states: list[int],
        deleters: list[Dot],
        live: str,
        dead: str,
    ) -> None:
        self.key = key
        self.replicas = replicas
        self.counters = counters
        self.lamports = lamports
        self.lengths = lengths
        self.states = states
        #: The deleter of each deleted piece, in order (as many as non-LIVE states).
        self.deleters = deleters
        self.live = live  # the visible characters, in order
        self.dead = dead  # the kept characters of KEPT pieces, in order
        #: Worked out by :func:`expand`: each piece's origin and content.
        self.origins: list[Dot | None] = []
        self.contents: list[str | None] = []
        #: Decoded: each replica's lowest counter among the pieces.
        self.lowest: dict[int, int] = {}


def order_of(seq: Sequence, gc: bool) -> Order | None:
    """``seq`` in document order, one piece per run (``gc``: without deleted
    characters), or None if its Lamport times do not rise with each replica's counters
    (a peer's odd history: then the per-replica form carries it)."""
    runs = list(seq.runs())
    deleted = [run.deleted for run in runs]
    if gc:
        states = [DROPPED if d else LIVE for d in deleted]
    else:
        states = [
            (DROPPED if run.content is None else KEPT) if run.deleted else LIVE for run in runs
        ]
    order = Order(
        seq.key,
        [run.replica for run in runs],
        [run.counter for run in runs],
        [run.lamport for run in runs],
        [run.length for run in runs],
        states,
        [run.deleter for run in compress(runs, deleted)],  # type: ignore[misc]
        "".join([run.content for run in runs if not run.deleted]),
        "" if gc else "".join([run.content for run in compress(runs, map(KEPT.__eq__, states))]),
    )
    try:
        _by_id(order)
    except OrderInvalid:
        return None
    return order


def check(order: Order, n_replicas: int, max_counter: int) -> None:
    """Check the columns' lengths, ranges and characters (whole-list operations: a state
    has many pieces). The decoder has checked that they are arrays of integers;
    ``replicas`` still holds table indices (the caller checks the deleters)."""
    n = len(order.replicas)
    if not n:
        raise OrderInvalid("an order has at least one piece")
    if not len(order.counters) == len(order.lengths) == len(order.states) == n:
        raise OrderInvalid("an order's columns are arrays of one length")
    if min(order.replicas) < 0 or max(order.replicas) >= n_replicas:
        raise OrderInvalid("replica index out of range")
    if min(order.lengths) < 1 or min(order.counters) < 1 or min(order.lamports) < 1:
        raise OrderInvalid("counters, Lamport times and lengths are positive")
    if (
        max(map(add, order.counters, order.lengths)) > max_counter + 1
        or max(map(add, order.lamports, order.lengths)) > max_counter + 1
    ):
        raise OrderInvalid("counter overflow")
    if min(order.states) < LIVE or max(order.states) > DROPPED:
        raise OrderInvalid("unknown piece state")
    if type(order.live) is not str or type(order.dead) is not str:
        raise OrderInvalid("an order's characters are strings")
    states = order.states
    lengths = order.lengths
    if len(order.live) != sum(compress(lengths, map((LIVE).__eq__, states))):
        raise OrderInvalid("the visible characters do not match the live pieces")
    if len(order.dead) != sum(compress(lengths, map((KEPT).__eq__, states))):
        raise OrderInvalid("the kept characters do not match the kept pieces")


def _by_id(order: Order) -> list[int]:
    """Piece indices sorted by id; raises unless the pieces' ids are disjoint and each
    replica's Lamport times rise with its counters (so no two elements share a
    ``(lamport, replica)`` time)."""
    reps, lens, ctrs, lams = order.replicas, order.lengths, order.counters, order.lamports
    distinct = set(reps)
    if len(distinct) == 1:
        keys, times = ctrs, lams
    else:
        # One int per (replica, counter) that sorts by replica, then counter; the same
        # for Lamport times (both stay below 2**62).
        rank = {r: i << 63 for i, r in enumerate(distinct)}
        wide = list(map(rank.__getitem__, reps))
        keys = list(map(add, wide, ctrs))
        times = list(map(add, wide, lams))
    by_id = sorted(range(len(keys)), key=keys.__getitem__)
    sorted_lens = list(map(lens.__getitem__, by_id))
    starts = list(map(keys.__getitem__, by_id))
    if not all(map(le, map(add, starts[:-1], sorted_lens), starts[1:])):
        raise OrderInvalid("two pieces share an id")
    # Lamport times rise along the same sort.
    firsts = list(map(times.__getitem__, by_id))
    if not all(map(le, map(add, firsts[:-1], sorted_lens), firsts[1:])):
        raise OrderInvalid("a replica's Lamport times must rise with its counters")
    return by_id


def deleted_lasts(order: Order) -> Iterable[int]:
    """The last counter of each deleted piece, in order (deleters are written as steps
    from it)."""
    ctrs, lens, states = order.counters, order.lengths, order.states
    return map(add, compress(ctrs, states), map((-1).__add__, compress(lens, states)))


def _scatter(target: list[Any], indices: Iterable[int], values: Iterable[Any]) -> None:
    """``target[i] = v`` for each pair (at C speed: a state has many pieces)."""
    deque(map(target.__setitem__, indices, values), maxlen=0)


def _slices(text: str, lengths: list[int]) -> list[str]:
    """``text`` cut into consecutive pieces of ``lengths``."""
    ends = list(accumulate(lengths))
    return list(map(text.__getitem__, map(slice, [0, *ends[:-1]], ends)))


def expand(order: Order) -> tuple[list[int], list[Any]]:
    """Work out every piece's origin and content; return the replicas and the insert
    entries of the pieces, both sorted by id. ``order.replicas`` and its deleters
    hold replica ids by now."""
    from crdtsync import _encoding as enc

    by_id = _by_id(order)
    reps, ctrs, lams, lens = order.replicas, order.counters, order.lamports, order.lengths
    n = len(reps)
    origins: list[Dot | None] = [None] * n
    # The elements left of the current piece that may still be someone's origin: a stack
    # of pieces (their first ``count`` elements), oldest at the bottom.
    stack: list[int] = []
    counts: list[int] = []
    for i in range(n):
        lam, rep = lams[i], reps[i]
        while stack:
            j = stack[-1]
            m = lam - lams[j]  # how many of j's elements have an older Lamport time
            k = counts[-1]
            if m <= 0:
                if m == 0 and reps[j] < rep:
                    raise OrderInvalid("an element's implied origin is not older than it")
                stack.pop()
                counts.pop()
                continue
            if m < k:
                if reps[j] < rep:
                    # j's element at the same Lamport time is older by replica, so it would
                    # be the origin: an origin must be strictly older.
                    raise OrderInvalid("an element's implied origin is not older than it")
                counts[-1] = m
            else:
                m = k
            origins[i] = (reps[j], ctrs[j] + m - 1)
            break
        stack.append(i)
        counts.append(lens[i])
    order.origins = origins
    states = order.states
    contents: list[str | None] = [None] * n
    for state, text in ((LIVE, order.live), (KEPT, order.dead)):
        if text:
            indices = list(compress(range(n), map(state.__eq__, states)))
            _scatter(contents, indices, _slices(text, list(map(lens.__getitem__, indices))))
    order.contents = contents
    deleters: list[Dot | None] = [None] * n
    _scatter(deleters, compress(range(n), states), order.deleters)
    entries = list(
        zip(repeat(enc.INS), ctrs, repeat(order.key), lams, origins, contents, lens, deleters)
    )
    return list(map(reps.__getitem__, by_id)), list(map(entries.__getitem__, by_id))
