"""Encoding a document's state (or the part a peer lacks) as one update.

The state form differs from the updates transactions emit: instead of replaying every
change, it describes what the changes left behind. Sequence runs carry their deleted
flag; superseded map writes, removed set adds and delete changes become SKIP entries
(their counters are covered, their effect is stated elsewhere); deletes of elements the
peer already holds become delete facts; a changed set sends its live dots so that the peer
can drop the ones we removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import compress, islice, repeat
from operator import attrgetter, is_, itemgetter, not_
from typing import TYPE_CHECKING, Any

from crdtsync import _encoding as enc
from crdtsync._dotruns import dot_runs
from crdtsync._encoding import Entry, Segment, Update
from crdtsync._order import order_of
from crdtsync._rga import Run
from crdtsync.types.counter import Counter
from crdtsync.types.lwwmap import LWWMap
from crdtsync.types.orset import ORSet
from crdtsync.types.text import SequenceContainer, Text

if TYPE_CHECKING:
    from crdtsync._doc import Doc


def _mergeable(prev: list[Any], run: Run, content: Any) -> bool:
    """Whether ``run``, whose first counter is the next after the INS entry ``prev``'s
    (being built; the caller checked that), continues it seamlessly."""
    if (
        prev[2] is not run.seq.key
        or prev[3] + prev[6] != run.lamport
        or run.origin != (run.replica, run.counter - 1)
    ):
        return False
    pdel = prev[7]
    if pdel is None or not run.deleted:
        return pdel is None and not run.deleted
    # Two tombstones merge when one replica deleted both (keep its higher counter) and both
    # or neither kept their content.
    return pdel[0] == run.deleter[0] and (prev[5] is None) == (content is None)  # type: ignore[index]


def _run_entries(runs: Iterable[Run], lo: int, gc: bool) -> Iterable[list[Any]]:
    """INS entries (as mutable lists) for the runs, from counter ``lo`` on, merged."""
    prev: list[Any] | None = None
    for run in runs:
        content = run.content
        counter, lamport, length, origin = run.counter, run.lamport, run.length, run.origin
        if counter < lo:
            k = lo - counter
            counter, lamport, length = lo, lamport + k, length - k
            origin = (run.replica, lo - 1)
            if content is not None:
                content = content[k:]
        if run.deleted and gc:
            content = None
        if (
            prev is not None
            and prev[1] + prev[6] == counter == run.counter  # (tested here: most runs fail it)
            and _mergeable(prev, run, content)
        ):
            if content is not None:
                prev[5] = prev[5] + content
            prev[6] += length
            if run.deleted and run.deleter[1] > prev[7][1]:  # type: ignore[index]
                prev[7] = run.deleter
            continue
        if prev is not None:
            yield prev
        prev = [
            enc.INS,
            counter,
            run.seq.key,
            lamport,
            origin,
            content,
            length,
            run.deleter if run.deleted else None,
        ]
    if prev is not None:
        yield prev


def state_update(doc: Doc, since: Mapping[int, int]) -> Update:
    """What a replica at ``since`` lacks, in state form."""
    since = {r: c for r, c in since.items() if c}  # a plain dict: looked up once per run
    vv = doc._vv
    lows = {r: since.get(r, 0) + 1 for r, top in vv.items() if top >= since.get(r, 0) + 1}
    extra: dict[int, list[Entry]] = {r: [] for r in lows}
    facts: list[tuple[Any, ...]] = []

    def want(replica: int, counter: int) -> bool:
        lo = lows.get(replica)
        return lo is not None and counter >= lo

    delete_facts: dict[tuple[Any, Any], list[tuple[int, int, int]]] = {}
    for key, root in sorted(doc._roots.items()):
        if isinstance(root, Text) and root._marks:
            for m in root._marks:
                if want(m.replica, m.counter):
                    mark: Entry = (
                        enc.MARK,
                        m.counter,
                        key,
                        m.lamport,
                        m.name,
                        m.value,
                        m.start,
                        m.end,
                    )
                    extra[m.replica].append(mark)
        if isinstance(root, LWWMap):
            for name, e in root._entries.items():
                lo = lows.get(e.replica)  # (want inline: per entry)
                if lo is not None and e.counter >= lo:
                    if e.deleted:
                        entry: Entry = (enc.MAP_DEL, e.counter, key, e.lamport, name)
                    else:
                        entry = (enc.MAP_SET, e.counter, key, e.lamport, name, e.value)
                    extra[e.replica].append(entry)
        elif isinstance(root, ORSet):
            non_str = root._others
            for (r, c), ekey in root._owner.items():  # (want and _element inline: per element)
                lo = lows.get(r)
                if lo is not None and c >= lo:
                    element = ekey if isinstance(ekey, str) else non_str[ekey]
                    extra[r].append((enc.SET_ADD, c, key, element, enc.NO_DOTS))
            if any(c > since.get(r, 0) for r, c in root._touched.items()):
                live = dot_runs(root._live_dots())
                facts.append((enc.FACT_LIVE, key, dict(vv), live, dict(root._touched)))
        elif isinstance(root, Counter):
            for r, c in root._dots.items():
                if want(r, c):
                    extra[r].append((enc.COUNTER, c, key, root._inc[r], root._dec[r]))
        elif isinstance(root, SequenceContainer) and since:
            # Deletes of elements the peer holds, by deletes it has not seen.
            for run in root._seq.runs():
                if not run.deleted:
                    continue
                held = since.get(run.replica, 0)
                if run.counter > held:
                    continue
                deleter = run.deleter
                assert deleter is not None
                if deleter[1] <= since.get(deleter[0], 0):
                    continue
                n = min(run.length, held - run.counter + 1)
                ranges = delete_facts.setdefault((key, deleter), [])
                if (
                    ranges
                    and ranges[-1][0] == run.replica
                    and ranges[-1][1] + ranges[-1][2] == run.counter
                ):
                    ranges[-1] = (run.replica, ranges[-1][1], ranges[-1][2] + n)
                else:
                    ranges.append((run.replica, run.counter, n))
    for (key, deleter), ranges in delete_facts.items():
        facts.append((enc.FACT_DELETE, key, deleter, ranges))

    update = Update(facts=facts)
    gc = doc._gc
    ordered: set[Any] = set()
    in_orders: dict[int, int] = {}  # replica -> how many of its runs the orders hold
    if not since:
        # A whole state: each long text as columns with its document order, which a
        # receiver can take whole (see crdtsync._order).
        sequences = [root for root in doc._roots.values() if isinstance(root, SequenceContainer)]
        every: list[Run] | None = None  # every sequence's runs in id order, once needed
        for key, root in doc._roots.items():
            if key[0] == "t" and isinstance(root, Text) and _many_runs(root._seq):
                seq = root._seq
                if every is None:
                    ids = doc._ids
                    every = [run for r in sorted(ids.replicas()) for run in ids.runs_from(r, 0)]
                by_id = every
                if len(sequences) > 1:  # (the id index holds every sequence's runs)
                    by_id = list(compress(every, map(is_, map(_SEQ_OF, every), repeat(seq))))
                order = order_of(seq, by_id, gc)
                if order is not None:
                    update.orders.append(order)
                    ordered.add(key)
                    for r, count in order.pieces_of().items():
                        in_orders[r] = in_orders.get(r, 0) + count
    for r, lo in sorted(lows.items()):
        top = vv[r]
        own: Iterable[Run] = doc._ids.runs_from(r, lo)
        if r in in_orders and in_orders[r] == doc._ids.count(r):
            own = ()  # (every run of this replica is in an order: the commonest case)
        elif ordered:
            mine = list(own)
            own = compress(mine, map(not_, map(ordered.__contains__, map(_ROOT_OF, mine))))
        runs = _run_entries(own, lo, gc)
        others = sorted(extra[r], key=itemgetter(1))
        entries: list[Entry] = []
        c = lo
        oi = 0
        n_others = len(others)
        for run_entry in runs:
            rc = run_entry[1]
            while oi < n_others and others[oi][1] < rc:
                c = _emit(entries, others[oi], c)
                oi += 1
            if rc > c:  # (_emit inline: one call less per run of text)
                entries.append((enc.SKIP, c, rc - c))
            entries.append(tuple(run_entry))
            c = rc + run_entry[6]
        for other in others[oi:]:  # (_emit inline: every element of a set's state is one)
            oc = other[1]
            if oc > c:
                entries.append((enc.SKIP, c, oc - c))
            entries.append(other)
            c = oc + 1  # (only inserts, never among these, span more than one counter)
        if c <= top:
            entries.append((enc.SKIP, c, top - c + 1))
        update.segments.append(Segment(r, lo, top + 1, entries))
    return update


_ROOT_OF = attrgetter("seq.key")
_SEQ_OF = attrgetter("seq")

#: A text of fewer runs than this keeps the per-replica form in a whole state: the order's
#: columns cost more bytes than they save on a short text, and nothing is slow there.
MIN_ORDER_RUNS = 256


def _many_runs(seq: Any) -> bool:
    return sum(1 for _ in islice(seq.runs(), MIN_ORDER_RUNS)) >= MIN_ORDER_RUNS


def _emit(entries: list[Entry], entry: Entry, c: int) -> int:
    """Append ``entry`` after a SKIP over any gap; return the next free counter."""
    if entry[1] > c:
        entries.append((enc.SKIP, c, entry[1] - c))
    entries.append(entry)
    return int(entry[1]) + enc.entry_span(entry)
