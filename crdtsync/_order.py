"""A text's whole sequence as columns: the ``FACT_ORDER`` form of a whole state.

A state lists each replica's changes by counter with their origins, so a receiver must
place every run by the RGA rule, one search each, to learn the order. A text's whole state
can instead be sent as its runs ("pieces") with their places in the document: columns of
numbers in id order (grouped by replica, by counter within one), the place of each piece,
and the visible characters as one string in document order. A receiver can then read the
text (``str``) at once and build the runs only when something needs them.

Origins are not sent, because the order implies them: every element is newer than its
origin, and everything between an element and its origin lies in the subtrees of its newer
siblings, so everything in between is newer too. An element's origin is therefore the
nearest element to its left that is older by ``(lamport, replica)`` (the head if none is),
and any order of distinct timestamps is the RGA order of the origins it implies
(:func:`implied_origins`). An origin must also be older by Lamport time alone, which a
receiver checks with one pass in document order, needed only where two replicas' Lamport
times meet (one replica's never do: they rise with its counters).

:func:`read` checks everything a receiver must refuse (with whole-list operations: a state
has many pieces) and keeps the packed columns; :meth:`Order.columns`, :class:`Placed`
and :func:`entries` expand them on demand. The wire layout is in docs/format.md, section 4.1.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import accumulate, chain, compress, groupby, repeat
from operator import add, attrgetter, le, lt, sub
from typing import TYPE_CHECKING, Any

import msgpack

if TYPE_CHECKING:
    from crdtsync._rga import Run, Sequence

Dot = tuple[int, int]

LIVE = 0  # a piece's state: visible, its characters in ``live``
KEPT = 1  # deleted, its characters kept in ``dead``
DROPPED = 2  # deleted, its characters dropped (garbage-collected): only its length

#: The packed columns, in this order (docs/format.md, section 4.1).
N_COLUMNS = 9

_STATES = bytes([LIVE, KEPT, DROPPED])
_NOT_KEPT = bytes([LIVE, DROPPED])


class OrderInvalid(Exception):
    """The order section breaks a rule (the decoder turns it into a DecodeError)."""


class Columns:
    """A text's pieces in id order: grouped by replica (``replicas[g]`` has ``counts[g]``
    pieces), by counter within a group; one item per piece in ``counters`` to ``places``
    (``places``: its index in document order); one deleter per piece that is not LIVE."""

    __slots__ = ("replicas", "counts", "counters", "lamports", "lengths", "states", "places")

    def __init__(
        self,
        replicas: list[int],
        counts: list[int],
        counters: list[int],
        lamports: list[int],
        lengths: list[int],
        states: list[int],
        places: list[int],
    ) -> None:
        self.replicas = replicas
        self.counts = counts
        self.counters = counters
        self.lamports = lamports
        self.lengths = lengths
        self.states = states
        self.places = places

    def piece_replicas(self) -> list[int]:
        """The replica of each piece."""
        return list(chain.from_iterable(map(repeat, self.replicas, self.counts)))


class Order:
    """One text's order. The sender builds it from a sequence (:func:`order_of`, with the
    columns as they go on the wire); the receiver gets it from :func:`read`, holding the
    packed columns and what the document needs before it expands them."""

    __slots__ = ("key", "live", "dead", "spans", "last_lamport", "_blob", "_table", "_source")

    def __init__(self, key: Any, live: str, dead: str) -> None:
        self.key = key
        self.live = live  # the visible characters, in document order
        self.dead = dead  # the kept characters of KEPT pieces, in document order
        #: Replica -> (first counter, end) of its pieces (end exclusive).
        self.spans: dict[int, tuple[int, int]] = {}
        self.last_lamport = 0  # the highest Lamport time of any element
        self._blob = b""  # the packed columns (read) ...
        self._table: list[int] = []  # ... whose replica indices name these ids
        #: (sent) The columns as on the wire, with replica ids for table indices and the
        #: deleters' replicas one per deleted piece.
        self._source: tuple[list[Any], ...] = ()

    def pieces_of(self) -> dict[int, int]:
        """(sent) Replica -> how many of its runs this order holds."""
        return dict(zip(self._source[0], self._source[1], strict=True))

    def columns(self) -> tuple[Columns, list[Dot]]:
        """(read) The pieces and the deleters (one per non-LIVE piece, in id order)."""
        return _parse(msgpack.unpackb(self._blob), self._table)


# ---- the sender -------------------------------------------------------------------------


_CONTENT = attrgetter("content")
_DELETED = attrgetter("deleted")


def order_of(seq: Sequence, by_id: list[Run], gc: bool) -> Order | None:
    """``seq``'s order (``gc``: without deleted characters), or None if a replica's Lamport
    times do not rise with its counters (a peer's odd history: the per-replica form
    carries it). ``by_id``: its runs in id order (replica by replica, by counter), as the
    id index holds them.

    One pass over the runs writes the columns as they go on the wire, with replica ids
    where the wire has table indices (:func:`pack` maps them): a long text has many runs,
    scattered in memory, and reading each once costs less than a pass per column."""
    in_doc = list(seq.runs())
    place = dict(zip(map(id, in_doc), range(len(in_doc)), strict=True)).__getitem__
    replicas: list[int] = []
    firsts: list[int] = []  # the index of each replica's first piece
    steps: list[int] = []
    jumps: list[int] = []
    lens: list[int] = []
    states: list[int] = []
    moves: list[int] = []
    who: list[int] = []
    dsteps: list[int] = []
    step, size, state, move = steps.append, lens.append, states.append, moves.append
    rep = None
    end = lam_end = before = offset = 0
    for k, run in enumerate(by_id):
        r, c, lam, n = run.replica, run.counter, run.lamport, run.length
        if r != rep:
            replicas.append(r)
            firsts.append(k)
            rep, end, lam_end, offset = r, 1, 1, 0
        if lam < lam_end:
            return None
        step(c - end)
        if lam - c != offset:
            jumps += (k, lam - c - offset)
            offset = lam - c
        end, lam_end = c + n, lam + n
        size(n)
        at = place(id(run))
        move(at - before)
        before = at
        if run.deleted:
            state(DROPPED if gc or run.content is None else KEPT)
            deleter = run.deleter
            assert deleter is not None
            who.append(deleter[0])
            dsteps.append(deleter[1] - end)
        else:
            state(LIVE)
    counts = list(map(sub, [*firsts[1:], len(steps)], firsts))
    order = Order(seq.key, seq.value(), "")  # (the visible characters, often cached)
    if not gc:
        kept = map(_CONTENT, compress(in_doc, map(_DELETED, in_doc)))
        order.dead = "".join(filter(None, kept))
    order._source = (replicas, counts, steps, jumps, lens, states, moves, who, dsteps)
    return order


def pack(order: Order, index: Any) -> list[Any]:
    """The packed columns of ``order`` (``index``: replica id -> table index)."""
    replicas, counts, steps, jumps, lens, states, moves, who, dsteps = order._source
    table = {r: index(r) for r in set(who)}
    by: list[int] = []  # the deleters' replicas, as runs: [table index, count]*
    for i, group in groupby(map(table.__getitem__, who)):
        by += (i, len(list(group)))
    return [list(map(index, replicas)), counts, steps, jumps, lens, states, moves, by, dsteps]


# ---- the receiver -----------------------------------------------------------------------


def read(
    key: Any, raw: Any, blob: bytes, table: list[int], live: Any, dead: Any, max_counter: int
) -> Order:
    """Check an order's unpacked columns ``raw`` (the bytes ``blob``) and return it, kept
    packed. ``table``: the update's replica ids. Raises :class:`OrderInvalid`.

    Every check is a pass of a builtin over a whole column (a state has many pieces):
    about twenty of them, against one Python step per piece for the per-replica form."""
    if type(live) is not str or type(dead) is not str:
        raise OrderInvalid("an order's characters are strings")
    if type(raw) is not list or len(raw) != N_COLUMNS:
        raise OrderInvalid(f"an order's columns are an array of {N_COLUMNS} arrays")
    totals: list[int] = []
    for col in raw:
        # (A sum of numbers stays an int only if all of them are ints or bools; a bool
        # counts as the integer it equals, and _parse keeps it out of the runs.)
        try:
            total = sum(col) if type(col) is list else None
        except TypeError:
            total = None
        if type(total) is not int:
            raise OrderInvalid("an order's columns are arrays of integers")
        totals.append(total)
    reps, counts, steps, jumps, lens, states, moves, by, dsteps = raw
    n = len(lens)
    if not reps or len(counts) != len(reps) or min(counts) < 1 or totals[1] != n:
        raise OrderInvalid("an order's pieces are grouped by replica, at least one each")
    if not len(steps) == len(states) == len(moves) == n:
        raise OrderInvalid("an order's columns are arrays of one length")
    if len(jumps) % 2 or len(by) % 2:
        raise OrderInvalid("an order's Lamport jumps and deleter runs are pairs")
    at, changes = jumps[0::2], jumps[1::2]
    if min(reps) < 0 or max(reps) >= len(table) or len(set(reps)) != len(reps):
        raise OrderInvalid("an order's replicas are distinct table indices")
    if min(lens) < 1:
        raise OrderInvalid("a piece's length is positive")
    if min(steps) < 0:
        raise OrderInvalid("two pieces share an id (or are out of counter order)")
    if at:
        if min(at) < 0 or max(at) >= n or not all(map(lt, at, at[1:])):
            raise OrderInvalid("an order's Lamport jumps name pieces in order")
        # (Elsewhere a replica's Lamport times rise as its counters do, which the steps
        # showed.)
        if min(map(add, map(steps.__getitem__, at), changes)) < 0:
            raise OrderInvalid("a replica's Lamport times must rise with its counters")
    try:
        # (With no kept characters, no piece may be KEPT: one pass checks both.)
        unknown = bytes(states).translate(None, _STATES if dead else _NOT_KEPT)
    except ValueError:  # (a number outside 0 .. 255)
        unknown = b"?"
    if unknown:
        raise OrderInvalid("unknown piece state" if dead else "kept pieces but no characters")
    if len(live) != totals[4] - sum(compress(lens, states)):
        raise OrderInvalid("the visible characters do not match the live pieces")
    if dead and len(dead) != sum(compress(lens, map(KEPT.__eq__, states))):
        raise OrderInvalid("the kept characters do not match the kept pieces")
    places = list(accumulate(moves))
    if min(places) < 0 or max(places) >= n or len(set(places)) != n:
        raise OrderInvalid("the pieces' places are not an order of them")
    order = Order(key, live, dead)
    ids = list(map(table.__getitem__, reps))
    if len(ids) == 1:
        sums = [(0, n, totals[2], sum(changes), totals[4])]
    else:
        sums = [
            (
                a,
                b,
                sum(steps[a:b]),
                sum(changes[bisect_left(at, a) : bisect_left(at, b)]),
                sum(lens[a:b]),
            )
            for a, b in _slices_of(counts)
        ]
    for r, (a, _, steps_sum, offsets_sum, lens_sum) in zip(ids, sums, strict=True):
        first = 1 + steps[a]
        end = 1 + steps_sum + lens_sum
        last = end - 1 + offsets_sum  # (the last element's Lamport time: the highest)
        if end - 1 > max_counter or last > max_counter:
            raise OrderInvalid("counter overflow")
        order.spans[r] = (first, end)
        order.last_lamport = max(order.last_lamport, last)
    who, runs = by[0::2], by[1::2]
    deleted = n - states.count(LIVE)
    if len(dsteps) != deleted or (runs and min(runs) < 1) or sum(runs) != deleted:
        raise OrderInvalid("an order has one deleter per deleted piece")
    if who:
        if min(who) < 0 or max(who) >= len(table):
            raise OrderInvalid("replica index out of range")
        # A deleter's counter is the step from its piece's end (last counter + 1), which
        # lies in 2 .. the highest end: when no step is below -1 and none takes the highest
        # end past the limit (the commonest case: what one deletes one typed before), no
        # counter can be out of range; else each is worked out.
        ends = max(end for _, end in order.spans.values())
        if min(dsteps) < -1 or max(dsteps) + ends > max_counter:
            ends_of = _ends(_counters(counts, steps, lens), lens, states)
            counters = list(map(add, dsteps, ends_of))
            if min(counters) < 1 or max(counters) > max_counter:
                raise OrderInvalid("deleter counter out of range")
    if len(ids) > 1:
        cols = _columns(raw, ids, places)
        if not _apart(cols):
            implied_origins(*_in_doc_order(cols)[1:])  # (raises if one is not older)
    order._blob = blob
    order._table = table
    return order


def _parse(raw: list[Any], table: list[int]) -> tuple[Columns, list[Dot]]:
    """The columns of an order :func:`read` has checked. The lengths are made ints: the
    whole-column checks take a bool for the integer it equals (telling them apart would
    cost a call per item at every load), and the lengths are the one column whose items
    reach the runs as they are, so no bool ever lands in a run or in a later update."""
    raw = [*raw[:4], list(map(int, raw[4])), *raw[5:]]
    cols = _columns(raw, list(map(table.__getitem__, raw[0])), list(accumulate(raw[6])))
    counters = map(add, raw[8], _ends(cols.counters, cols.lengths, cols.states))
    by = raw[7]
    who = chain.from_iterable(map(repeat, map(table.__getitem__, by[0::2]), by[1::2]))
    return cols, list(zip(who, counters, strict=True))


def _counters(counts: list[int], steps: list[int], lens: list[int]) -> list[int]:
    """Each piece's first counter, from the steps (see :func:`order_of`)."""
    counters: list[int] = []
    for a, b in _slices_of(counts):
        counters += accumulate(map(add, steps[a:b], [1, *lens[a : b - 1]]))
    return counters


def _columns(raw: list[Any], ids: list[int], places: list[int]) -> Columns:
    """Absolute counters and Lamport times from the steps and offsets."""
    _, counts, steps, jumps, lens, states, _, _, _ = raw
    counters = _counters(counts, steps, lens)
    offsets = [0] * len(lens)
    _scatter(offsets, jumps[0::2], jumps[1::2])
    lamports: list[int] = []
    for a, b in _slices_of(counts):
        lamports += map(add, counters[a:b], accumulate(offsets[a:b]))
    return Columns(ids, counts, counters, lamports, lens, states, places)


def _slices_of(counts: list[int]) -> Iterator[tuple[int, int]]:
    """Each group's pieces, as a slice of the columns."""
    a = 0
    for count in counts:
        yield a, a + count
        a += count


def _ends(counters: list[int], lens: list[int], states: list[int]) -> Iterator[int]:
    """The end (last counter + 1) of each deleted piece, in id order (deleters are written
    as steps from it)."""
    return compress(map(add, counters, lens), states)


def _apart(cols: Columns) -> bool:
    """Whether no two elements share a Lamport time (then no implied origin can have its
    element's Lamport time). Intervals are disjoint iff, both ends sorted, each end is at
    most the next start."""
    starts = sorted(cols.lamports)
    ends = sorted(map(add, cols.lamports, cols.lengths))
    return all(map(le, ends[:-1], starts[1:]))


def _scatter(target: list[Any], indices: Iterable[int], values: Iterable[Any]) -> None:
    """``target[i] = v`` for each pair (at C speed: a state has many pieces)."""
    deque(map(target.__setitem__, indices, values), maxlen=0)


def _slices(text: str, lengths: list[int]) -> list[str]:
    """``text`` cut into consecutive pieces of ``lengths``."""
    ends = list(accumulate(lengths))
    return list(map(text.__getitem__, map(slice, [0, *ends[:-1]], ends)))


def _in_doc_order(cols: Columns) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    """Document order: the piece at each place, and its replica, counter, Lamport time and
    length."""
    at = [0] * len(cols.places)
    _scatter(at, cols.places, range(len(at)))
    reps, ctrs, lams, lens = (
        list(map(col.__getitem__, at))
        for col in (cols.piece_replicas(), cols.counters, cols.lamports, cols.lengths)
    )
    return at, reps, ctrs, lams, lens


def implied_origins(
    reps: list[int], ctrs: list[int], lams: list[int], lens: list[int]
) -> list[Dot | None]:
    """Each piece's origin (in document order): the nearest element to its left older by
    ``(lamport, replica)``; raises unless it is older by Lamport time alone."""
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
    return origins


class Placed:
    """An order's pieces in document order, with origins and contents: what
    :meth:`crdtsync._rga.Sequence.build` takes."""

    __slots__ = (
        "pieces",
        "replicas",
        "counters",
        "lamports",
        "origins",
        "contents",
        "lengths",
        "deleters",
    )

    def __init__(self, order: Order, keep_dead: bool) -> None:
        cols, deleters = order.columns()
        self.pieces = cols  # (in id order)
        at, reps, ctrs, lams, lens = _in_doc_order(cols)
        self.replicas, self.counters, self.lamports, self.lengths = reps, ctrs, lams, lens
        self.origins = implied_origins(reps, ctrs, lams, lens)
        states = list(map(cols.states.__getitem__, at))
        n = len(at)
        contents: list[str | None] = [None] * n
        for state, text in ((LIVE, order.live), (KEPT, order.dead if keep_dead else "")):
            if text:
                indices = list(compress(range(n), map(state.__eq__, states)))
                _scatter(contents, indices, _slices(text, list(map(lens.__getitem__, indices))))
        self.contents = contents
        #: The deleter of each piece (None: live).
        self.deleters: list[Dot | None] = [None] * n
        _scatter(self.deleters, compress(cols.places, cols.states), deleters)


def entries(order: Order, ins: int) -> dict[int, list[tuple[Any, ...]]]:
    """The pieces as insert entries (tag ``ins``), by replica in counter order."""
    placed = Placed(order, True)
    cols = placed.pieces
    places = cols.places
    origins = list(map(placed.origins.__getitem__, places))
    contents = list(map(placed.contents.__getitem__, places))
    deleters = list(map(placed.deleters.__getitem__, places))
    rows = list(
        zip(
            repeat(ins),
            cols.counters,
            repeat(order.key),
            cols.lamports,
            origins,
            contents,
            cols.lengths,
            deleters,
        )
    )
    return {r: rows[a:b] for r, (a, b) in zip(cols.replicas, _slices_of(cols.counts), strict=True)}
