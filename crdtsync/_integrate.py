"""Merging a decoded remote update into a document.

Two steps, so that a document either takes a whole update or stays as it was:
:func:`check_ready` only reads (is the update causally ready, is every reference what it
claims to be?) and :func:`integrate` then applies it without any step that can fail.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING, Any

from crdtsync import _encoding as enc
from crdtsync._bulk import without_gc
from crdtsync._dotruns import DotRuns
from crdtsync._encoding import Entry, RootKey, Segment, Update
from crdtsync._errors import DecodeError
from crdtsync.types._marks import Mark
from crdtsync.types.orset import element_key

if TYPE_CHECKING:
    from crdtsync._doc import Doc
    from crdtsync._order import Order
    from crdtsync.types._base import Container

Dot = tuple[int, int]


class _InsertIndex:
    """The update's own insert entries by replica, to resolve origins inside the update.

    A replica's entries are indexed when an origin first names it: in a merge of many
    replicas' keystrokes, an origin inside the update is nearly always the same replica's
    previous keystroke, and indexing every replica's entries for it cost more than the
    rest of the check."""

    def __init__(self, update: Update) -> None:
        self.segments: dict[int, list[Segment]] = {}
        for seg in update.segments:
            self.segments.setdefault(seg.replica, []).append(seg)
        self.entries: dict[int, list[Entry]] = {}
        self.starts: dict[int, list[int]] = {}

    def _index(self, replica: int) -> list[int]:
        entries = [
            e for seg in self.segments.get(replica, ()) for e in seg.entries if e[0] == enc.INS
        ]
        entries.sort(key=lambda e: e[1])
        self.entries[replica] = entries
        starts = self.starts[replica] = [e[1] for e in entries]
        return starts

    def lamport_of(self, dot: Dot, root: RootKey) -> int | None:
        starts = self.starts.get(dot[0])
        if starts is None:
            starts = self._index(dot[0])
        if not starts:
            return None
        i = bisect_right(starts, dot[1]) - 1
        if i < 0:
            return None
        e = self.entries[dot[0]][i]
        if dot[1] >= e[1] + e[6] or e[2] != root:
            return None
        return int(e[3]) + dot[1] - int(e[1])


def check_ready(doc: Doc, update: Update) -> dict[int, int] | Dot:
    """The version the document will hold after ``update`` (a dict), or, if it must wait,
    a dot ``(replica, counter)`` that must be held before it is worth asking again.

    Raises :class:`DecodeError` when the update names, as an origin, something the
    document holds that is not an element of that sequence (or is not older than the
    element): no later update can make such an update valid.
    """
    vv = doc._vv
    tops: dict[int, int] = {}
    segments = update.segments if update.in_order is None else update.bare
    if len(segments) > 1 and len({s.replica for s in segments}) < len(segments):
        # A replica's segments in counter order (one segment per replica, as in a merge of
        # many replicas' keystrokes, needs no sort).
        segments = sorted(segments, key=lambda s: (s.replica, s.start))
    for seg in segments:
        cur = tops.get(seg.replica)
        if cur is None:
            cur = vv.get(seg.replica, 0)
        if seg.start > cur + 1:
            return (seg.replica, seg.start - 1)
        tops[seg.replica] = max(cur, seg.end - 1)

    def held(replica: int, counter: int) -> bool:
        top = tops.get(replica)
        return counter <= (vv.get(replica, 0) if top is None else top)

    inside: _InsertIndex | None = None
    in_order = update.in_order
    found: dict[Dot, Any] = {}
    update.origin_runs = None  # (set when the update is ready: a waiting one keeps no runs)
    ids = doc._ids
    INS = enc.INS
    for seg in update.segments if in_order is None else taken_whole(doc, update)[1]:
        have = vv.get(seg.replica, 0)
        for e in seg.entries:
            tag = e[0]
            if tag == INS:
                if e[1] <= have:
                    if e[1] + e[6] - 1 > have:
                        _check_continues(doc, seg.replica, have, e)
                    continue
                origin = e[4]
                if origin is None:
                    continue
                o_replica, o_counter = origin
                if o_counter <= vv.get(o_replica, 0):  # held before this update
                    run = ids.find(o_replica, o_counter)
                    if run is None or run.seq.key != e[2]:
                        raise DecodeError(f"origin {origin} is not an element of {e[2][1]!r}")
                    found[origin] = run
                    lamport: int | None = run.lamport + o_counter - run.counter
                elif not held(o_replica, o_counter):
                    return (o_replica, o_counter)
                elif in_order is not None and e[2] in in_order:
                    continue  # (an origin the order implies: decoding checked it)
                else:
                    if inside is None:
                        inside = _InsertIndex(update)
                    lamport = inside.lamport_of(origin, e[2])
                    if lamport is None:
                        raise DecodeError(f"origin {origin} is not an element of {e[2][1]!r}")
                if lamport >= e[3]:
                    raise DecodeError("an element must be newer than its origin")
            elif e[1] <= have:
                continue
            elif tag == enc.DEL:
                for r, c, n in e[3]:
                    if not held(r, c + n - 1):
                        return (r, c + n - 1)
            elif tag == enc.SET_ADD or tag == enc.SET_REM:
                for dot in e[4] if tag == enc.SET_ADD else e[3]:
                    if not held(*dot):
                        return (dot[0], dot[1])
            elif tag == enc.MARK:
                for anchor in (e[6], e[7]):
                    if anchor is None:
                        continue
                    a_replica, a_counter = anchor[0], anchor[1]
                    if a_counter <= vv.get(a_replica, 0):
                        run = ids.find(a_replica, a_counter)
                        if run is None or run.seq.key != e[2]:
                            raise DecodeError(f"mark anchor {anchor} is not in {e[2][1]!r}")
                    elif not held(a_replica, a_counter):
                        return (a_replica, a_counter)
                    else:
                        if inside is None:
                            inside = _InsertIndex(update)
                        if inside.lamport_of((a_replica, a_counter), e[2]) is None:
                            raise DecodeError(f"mark anchor {anchor} is not in {e[2][1]!r}")
    for fact in update.facts:
        if fact[0] == enc.FACT_DELETE:
            if not held(*fact[2]):
                return (fact[2][0], fact[2][1])
            for r, c, n in fact[3]:
                if not held(r, c + n - 1):
                    return (r, c + n - 1)
        else:
            for r, c in (*fact[2].items(), *fact[4].items()):
                if not held(r, c):
                    return (r, c)
            for r, c, n in fact[3]:  # held is a prefix of each replica's counters
                if not held(r, c + n - 1):
                    return (r, c + n - 1)
    update.origin_runs = (doc, found)
    return tops


def integrate_keystrokes(doc: Doc, data: bytes, update: Update, origin: Any) -> bool:
    """Integrate the commonest remote updates, keystrokes (one replica's, or a relay's merge
    of many replicas' typed within a tick), without the general machinery of
    :func:`check_ready` and :func:`integrate`; False, with nothing done, for any other
    update.

    It takes an update whose every segment continues its replica's changes (one segment
    per replica) with live inserts and deletes in sequences that exist and have no
    observers, where every origin is held before the update or typed earlier in the same
    segment, every delete targets what is held or what the update inserts, and every
    Lamport time is newer than its origin's. Everything is checked before anything changes,
    then it applies the changes as :func:`integrate` does (inserts by Lamport time, then
    deletes). Anything else (a duplicate, a gap, a bad origin, events to build) goes the
    general way, which parks, drops or refuses it.
    """
    if update.facts or update.in_order is not None or doc._deep:
        return False
    segments = update.segments
    if not segments:
        return False
    if len(data) >= BULK_CHANGES and sum(len(s.entries) for s in segments) >= BULK_CHANGES:
        return False  # integrate pauses the garbage collector for these
    vv = doc._vv
    roots = doc._roots
    find = doc._ids.find
    INS, DEL = enc.INS, enc.DEL
    # Each replica's highest counter once its segment (seen so far) is in: what a delete
    # may target (a later segment's inserts are not counted: the general way takes those).
    tops: dict[int, int] = {}
    # (lamport, replica, sequence, entry, the run holding its origin if held before)
    inserts: list[tuple[int, int, Any, Entry, Any]] = []
    deletes: list[tuple[Any, Dot, list[tuple[int, int, int]]]] = []
    key: Any = None
    seq: Any = None
    for seg in segments:
        replica = seg.replica
        # (So one segment per replica: two would both start here, which decoding refuses.)
        if seg.start != vv.get(replica, 0) + 1:
            return False
        tops[replica] = seg.end - 1
        entries = seg.entries
        for e in entries:
            tag = e[0]
            if tag == INS:
                _, _, root, lamport, dot, _, _, deleter = e
                if deleter is not None:
                    return False
            elif tag == DEL:
                root = e[2]
            else:
                return False
            if root is not key:
                container: Any = roots.get(root)
                if container is None or container._observers:
                    return False
                key, seq = root, container._seq
            if tag == INS:
                run = None
                if dot is not None:
                    o_replica, o_counter = dot
                    if o_counter <= vv.get(o_replica, 0):
                        run = find(o_replica, o_counter)
                        if (
                            run is None
                            or run.seq is not seq
                            or run.lamport + o_counter - run.counter >= lamport
                        ):
                            return False
                    elif o_replica != replica or not _typed_before(entries, o_counter, e):
                        return False
                inserts.append((lamport, replica, seq, e, run))
            else:
                for r, c, n in e[3]:
                    top = tops.get(r)
                    if c + n - 1 > (vv.get(r, 0) if top is None else top):
                        return False
                deletes.append((seq, (replica, e[1]), e[3]))
    if len(segments) > 1:
        # Origins before the elements that name them, as in _integrate ((Lamport, replica)
        # pairs are unique, so the sequences are never compared).
        inserts.sort()
    lamport = doc._lamport
    # (A run found above is still in its sequence here: inserts split runs but never fold
    # one into another, which only deletes do, and they come after.)
    for time, r, seq, e, left in inserts:
        seq.integrate(r, e[1], time, e[4], e[5], e[6], None, False, left)
        if time + e[6] - 1 > lamport:
            lamport = time + e[6] - 1
    gc = doc._gc
    for seq, deleter, ranges in deletes:
        for r, c, n in ranges:
            seq.delete_range(r, c, n, deleter, gc, None)
    vv.update(tops)
    update.covers = tops  # (one segment per replica: tops is the update's coverage)
    doc._lamport = lamport
    # No observers here, so no events: only the listeners (see Doc._publish).
    doc._notify(doc._internal_callbacks, data, origin, None)
    doc._notify(doc._update_callbacks, data, origin, None)
    return True


def _typed_before(entries: list[Entry], counter: int, e: Entry) -> bool:
    """Whether ``counter`` of the segment's replica is an element that an insert before
    ``e`` (one of ``entries``) made in the same sequence, older than ``e``."""
    if counter >= e[1]:
        return False
    for j in range(entries.index(e) - 1, -1, -1):
        prev = entries[j]
        if prev[1] <= counter:
            return bool(
                prev[0] == enc.INS
                and counter < prev[1] + prev[6]
                and prev[2] == e[2]
                and prev[3] + counter - prev[1] < e[3]
            )
    return False


def _check_continues(doc: Doc, replica: int, have: int, e: Entry) -> None:
    """A run we hold the start of must continue an element we hold in the same sequence,
    with the Lamport time the run implies."""
    run = doc._ids.find(replica, have)
    if run is None or run.seq.key != e[2] or run.lamport + have - run.counter != e[3] + have - e[1]:
        raise DecodeError(f"run {replica}:{e[1]} does not continue what this document holds")


def _container(doc: Doc, key: RootKey, create: bool) -> Container[Any] | None:
    root = doc._roots.get(key)
    if root is None and create:
        root = doc._container(key)
    return root


#: Updates with at least this many changes pause the cyclic garbage collector while they
#: integrate (see :mod:`crdtsync._bulk`), whatever their size in bytes.
BULK_CHANGES = 1000


def integrate(doc: Doc, data: bytes, update: Update, tops: dict[int, int], origin: Any) -> None:
    """Apply a ready update (see :func:`check_ready`) and notify listeners."""
    # (Every change takes at least a byte: a shorter update needs no count.)
    if update.in_order is not None or (
        len(data) >= BULK_CHANGES and sum(len(s.entries) for s in update.segments) >= BULK_CHANGES
    ):
        without_gc(lambda: _integrate(doc, data, update, tops, origin))
    else:
        _integrate(doc, data, update, tops, origin)


def _integrate(doc: Doc, data: bytes, update: Update, tops: dict[int, int], origin: Any) -> None:
    txn = doc._new_remote_txn(origin)
    saved, doc._txn = doc._txn, txn
    try:
        vv = doc._vv
        drop_content = doc._gc
        inserts: list[tuple[int, int, Entry]] = []
        others: list[tuple[int, Entry]] = []
        held_tombstones: list[tuple[Entry, int, int]] = []
        lamport = doc._lamport
        if update.in_order is None:
            whole, segments = _NONE_WHOLE, update.segments
        else:
            whole, segments = taken_whole(doc, update)
            for root, order in whole.items():
                _container(doc, root, True)._seq.defer(order, drop_content)  # type: ignore[union-attr]
                if order.last_lamport > lamport:
                    lamport = order.last_lamport
        for seg in segments:
            r = seg.replica
            have = vv.get(r, 0)
            for e in seg.entries:
                c = e[1]
                if e[0] == enc.INS:
                    if whole and e[2] in whole:
                        continue
                    n = e[6]
                    if c <= have and e[7] is not None:
                        # We hold these elements but may not know they were deleted.
                        held_tombstones.append((e, r, min(n, have - c + 1)))
                    if c + n - 1 <= have:
                        continue
                    if c <= have:
                        k = have - c + 1
                        content = e[5][k:] if e[5] is not None else None
                        e = (enc.INS, c + k, e[2], e[3] + k, (r, have), content, n - k, e[7])
                    inserts.append((e[3], r, e))
                elif c > have and e[0] != enc.SKIP:
                    others.append((r, e))

        if len(segments) > 1:
            # Origins before the elements that name them: an origin is older by Lamport
            # time. (One replica's changes are in that order already, and (Lamport,
            # replica) pairs are unique, so the entries themselves are never compared.)
            inserts.sort()
        container: Any = None
        key = None
        hints = update.origin_runs
        found = hints[1] if hints is not None and hints[0] is doc else _NO_RUNS
        update.origin_runs = None  # (the runs are about to change)
        for _, r, e in inserts:
            if e[2] is not key:
                key = e[2]
                container = _container(doc, key, True)
                seq_integrate = container._seq.integrate
                observed = bool(container._observers or doc._deep)
            left = found.get(e[4]) if found else None
            deleter = e[7]
            if deleter is None:
                pos = seq_integrate(r, e[1], e[3], e[4], e[5], e[6], None, observed, left)
                if observed:
                    txn._delta_for(container).insert(pos, e[5])
            else:
                content = None if drop_content else e[5]
                seq_integrate(r, e[1], e[3], e[4], content, e[6], deleter, False, left)
            if e[3] + e[6] > lamport:
                lamport = e[3] + e[6] - 1

        effect = False
        removals: list[tuple[Any, list[Dot]]] = []
        for r, e in others:
            tag = e[0]
            if tag == enc.DEL:
                _delete(doc, txn, e[2], [((r, e[1]), e[3])])
            elif tag == enc.MAP_SET or tag == enc.MAP_DEL:
                container = _container(doc, e[2], True)
                deleted = tag == enc.MAP_DEL
                value = None if deleted else e[5]
                if container._write(e[3], r, e[1], e[4], value, deleted) and (
                    container._observers or doc._deep
                ):
                    txn._changes_for(container).keys.add(e[4])
                lamport = max(lamport, e[3])
            elif tag == enc.SET_ADD:
                container = _container(doc, e[2], True)
                key = element_key(e[3])
                if container._add_dot(e[3], (r, e[1]), key) and (container._observers or doc._deep):
                    txn._changes_for(container).added.setdefault(key, e[3])
                if e[4]:
                    removals.append((container, e[4]))
            elif tag == enc.SET_REM:
                container = _container(doc, e[2], True)
                container._touch((r, e[1]))
                removals.append((container, e[3]))
            elif tag == enc.MARK:
                container = _container(doc, e[2], True)
                txn._take_mark(container, Mark(r, e[1], e[3], e[4], e[5], e[6], e[7]))
                lamport = max(lamport, e[3])
            elif tag == enc.COUNTER:
                container = _container(doc, e[2], True)
                moved = container._merge(r, e[1], e[3], e[4])
                if moved and (container._observers or doc._deep):
                    txn._changes_for(container).amount += moved
        for e, r, n in held_tombstones:
            effect |= _delete(doc, txn, e[2], [(e[7], [(r, e[1], n)])])
        for container, dots in removals:
            doc._note_set_removed(txn, container, container._remove_dots(dots))

        facts = update.facts
        k, n_facts = 0, len(facts) if facts else 0  # (no call for the commonest: none)
        while k < n_facts:
            fact = facts[k]
            k += 1
            if fact[0] == enc.FACT_DELETE:
                # A merge's deletes: one fact per deleting keystroke, taken a text at a time.
                deletes = [(fact[2], fact[3])]
                while k < n_facts and facts[k][0] == enc.FACT_DELETE and facts[k][1] == fact[1]:
                    deletes.append((facts[k][2], facts[k][3]))
                    k += 1
                effect |= _delete(doc, txn, fact[1], deletes)
            else:
                container = _container(doc, fact[1], True)
                if container is None:
                    continue
                version = fact[2]
                # Removes reach us folded into this fact, so take over the sender's record
                # of the last change by each replica: we must pass the fact on in turn.
                for dot in fact[4].items():
                    container._touch(dot)
                dead = DotRuns(fact[3]).dead(container._owner, version)
                if dead:
                    effect = True
                    doc._note_set_removed(txn, container, container._remove_dots(dead))

        advanced = False
        for r, top in tops.items():
            if top > vv.get(r, 0):
                vv[r] = top
                advanced = True
        doc._lamport = lamport
    finally:
        doc._txn = saved
    # The update is in: whatever a callback does now cannot undo it, and none is skipped.
    doc._publish(data, txn, advanced or effect, None)


_NONE_WHOLE: dict[RootKey, Order] = {}  # (never changed)
_NO_RUNS: dict[Dot, Any] = {}  # (never changed)


def taken_whole(doc: Doc, update: Update) -> tuple[dict[RootKey, Order], list[Segment]]:
    """The texts of ``update.in_order`` this document takes whole, as they came (it holds
    nothing of them yet and nobody observes them: a text taken whole makes no events), and
    the segments to read for the rest: bare when it takes every one of them."""
    whole: dict[RootKey, Order] = {}
    in_order = update.in_order
    if in_order is None or doc._deep:
        return whole, update.segments
    vv = doc._vv
    for key, order in in_order.items():
        container: Any = doc._roots.get(key)
        if container is not None and (container._observers or not container._seq.is_blank()):
            continue
        if any(vv.get(r, 0) >= first for r, (first, _) in order.spans.items()):
            continue  # (ids this document holds as something else: the general way)
        whole[key] = order
    return whole, update.bare if len(whole) == len(in_order) else update.segments


def _delete(
    doc: Doc, txn: Any, key: RootKey, deletes: list[tuple[Dot, list[tuple[int, int, int]]]]
) -> bool:
    """Delete id ranges in one sequence, each list by its deleter; True if anything
    visible went away."""
    container: Any = _container(doc, key, False)
    if container is None:
        return False
    seq = container._seq
    positions: list[tuple[int, int]] | None = [] if container._observers or doc._deep else None
    before = seq.vis_len
    delete_range, gc = seq.delete_range, doc._gc
    for deleter, ranges in deletes:
        for r, c, n in ranges:
            delete_range(r, c, n, deleter, gc, positions)
    if positions:
        delta = txn._delta_for(container)
        for pos, n in positions:
            delta.delete(pos, n)
    return bool(seq.vis_len != before)
