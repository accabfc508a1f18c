"""What the relay checks in a client's update before any of it is applied or stored.

Ownership of replica ids (who may bring new changes under which id) lives in the relay,
which knows connections and identities. The checks here need only the room's document:

- :func:`implausible_clock`: counters or Lamport times that jump further than any client
  could have got by editing (a bound on how fast one update can use up the clock ceiling
  that every writer of a room shares);
- :func:`equivocation`: a change at a dot the room already holds, with other content than
  the room holds for it (two documents writing under one replica id, or a forgery);
- :func:`unbacked_facts`: delete and set facts that would change the room without a
  change of the update (a new counter) to carry them, so that nothing would ever send
  their effect to a replica that holds the dot they are attributed to.

Each returns a description of the first problem, or None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crdtsync import _encoding as enc
from crdtsync._dotruns import DotRuns
from crdtsync._encoding import Update
from crdtsync.types.counter import Counter
from crdtsync.types.lwwmap import LWWMap
from crdtsync.types.orset import ORSet, element_key

if TYPE_CHECKING:
    from crdtsync._doc import Doc

__all__ = ["equivocation", "implausible_clock", "unbacked_facts"]


def implausible_clock(doc: Doc, update: Update, max_jump: int) -> str | None:
    """Whether ``update`` brings more than ``max_jump`` new counters in all, a counter more
    than ``max_jump`` past what the room holds, or a Lamport time more than ``max_jump``
    past the room's clock. An honest client's Lamport clock is at most the room's plus the
    changes it made that the room lacks, so one bound covers both."""
    vv = doc._vv
    new = 0
    for seg in update.segments:
        have = vv.get(seg.replica, 0)
        if seg.end - 1 > have:
            new += seg.end - 1 - max(have, seg.start - 1)
    if new > max_jump:
        return f"{new} new counters in one update (at most {max_jump})"
    for fact in update.facts:
        if fact[0] == enc.FACT_DELETE:
            r, c = fact[2]
            if c > vv.get(r, 0) + max_jump:
                return f"a delete attributed to {r}:{c}, far past the room's counter"
    ceiling = doc._lamport + max_jump
    for seg in update.segments:
        have = vv.get(seg.replica, 0)
        for e in seg.entries:
            tag = e[0]
            if tag == enc.INS:
                top = e[3] + e[6] - 1
            elif tag == enc.MAP_SET or tag == enc.MAP_DEL or tag == enc.MARK:
                top = e[3]
            else:
                continue
            if top > ceiling and e[1] + enc.entry_span(e) - 1 > have:
                return f"Lamport time {top} is far past the room's clock {doc._lamport}"
    return None


def equivocation(doc: Doc, update: Update) -> str | None:
    """The first change of ``update`` at a dot the room holds whose content differs from
    what the room holds there, described; None if there is none.

    What the room can compare is what it still holds of each dot: every sequence element
    (tombstones too: root, Lamport time, origin; content unless garbage-collected), what a
    held delete removed, map entries not overwritten since, set adds not removed since, and
    a counter's totals at its replica's last change. A dot whose effect the room no longer
    holds (an overwritten map entry, a removed set add), or holds only in a form this
    cannot find by dot (a map entry under another key than the change names), cannot be
    compared and passes.
    """
    vv = doc._vv
    for seg in update.segments:
        r = seg.replica
        have = vv.get(r, 0)
        if seg.start > have:
            continue
        for e in seg.entries:
            c = e[1]
            if c > have:
                break  # entries are in counter order
            tag = e[0]
            if tag == enc.SKIP:
                continue
            if tag == enc.INS:
                why = _insert_differs(doc, r, e, min(e[6], have - c + 1))
            elif doc._ids.find(r, c) is not None:
                why = "is no insert, but the room holds an element there"
            elif tag == enc.DEL:
                why = _delete_differs(doc, e[2], e[3])
            elif tag == enc.MAP_SET or tag == enc.MAP_DEL:
                why = _map_write_differs(doc, r, e)
            elif tag == enc.SET_ADD:
                why = _set_add_differs(doc, r, e)
            elif tag == enc.SET_REM:
                why = _set_remove_differs(doc, e[2], e[3])
            elif tag == enc.COUNTER:
                why = _counter_differs(doc, r, e)
            else:
                why = None
            if why is not None:
                return f"change {r}:{c} {why}"
    return None


def unbacked_facts(doc: Doc, update: Update) -> str | None:
    """A fact of ``update`` (a whole update, not a part of a transfer) that would change
    the room although no new change of the update is behind it, described; None if none.

    A delete fact attributed to a dot the room holds must remove nothing the room still
    shows: the room holds that delete, so it removed its targets already. A set fact that
    removes elements must come with the new change that removed them (a counter of some
    replica past the room's, up to the last change that replica made to the set).
    """
    vv = doc._vv
    tops: dict[int, int] | None = None  # what the update covers, found once if needed
    for fact in update.facts:
        if fact[0] == enc.FACT_DELETE:
            r, c = fact[2]
            if c <= vv.get(r, 0):
                why = _delete_differs(doc, fact[1], fact[3])
                if why is not None:
                    return f"the delete {r}:{c}, which the room holds, {why}"
        else:
            _, key, version, live, touched = fact
            root = doc._roots.get(key)
            if not isinstance(root, ORSet):
                continue
            if not DotRuns(live).dead(root._owner, version):
                continue
            if tops is None:
                tops = enc.coverage(update)
            if not any(c > vv.get(r, 0) and tops.get(r, 0) >= c for r, c in touched.items()):
                return f"the state of set {key[1]!r} removes elements no new change removes"
    return None


# ---- comparing one change with what the room holds -------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """Values equal as the wire format sees them (types exact, NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return bool(a == b or (a != a and b != b))
    if type(a) is list:
        return len(a) == len(b) and all(map(_same, a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    return bool(a == b)


def _insert_differs(doc: Doc, r: int, e: enc.Entry, n: int) -> str | None:
    """Compare the first ``n`` elements of the INS entry ``e`` with the room's."""
    ids = doc._ids
    c, key, lamport, origin, content, deleter = e[1], e[2], e[3], e[4], e[5], e[7]
    # Deleted by a change the room holds: the room took that delete, so shows none of it.
    held_delete = deleter is not None and deleter[1] <= doc._vv.get(deleter[0], 0)
    k, end = c, c + n
    while k < end:
        run = ids.find(r, k)
        if run is None or run.seq.key != key:
            return f"inserts into {key[1]!r} where the room holds another change"
        into = k - run.counter
        if run.lamport + into != lamport + (k - c):
            return "has another Lamport time than the room holds"
        held_origin = run.origin if into == 0 else (r, k - 1)
        sent_origin = origin if k == c else (r, k - 1)
        if held_origin != sent_origin:
            return "has another origin than the room holds"
        if held_delete and not run.deleted:
            return f"says a delete the room holds removed {r}:{k}, which the room shows"
        m = min(run.counter + run.length, end) - k
        if content is not None and run.content is not None:
            sent = content[k - c : k - c + m]
            held = run.content[into : into + m]
            if type(sent) is str:
                if sent != held:
                    return "inserts other content than the room holds"
            elif not _same(list(sent), list(held)):
                return "inserts other values than the room holds"
        k += m
    return None


def _delete_differs(doc: Doc, key: Any, ranges: list[tuple[int, int, int]]) -> str | None:
    """A held delete's targets must all be deleted in the room (by it or another)."""
    root = doc._roots.get(key)
    if root is None:
        return None
    ids, seq = doc._ids, getattr(root, "_seq", None)
    for tr, tc, tn in ranges:
        k, end = tc, tc + tn
        while k < end:
            run = ids.find(tr, k)
            if run is None:
                nxt = ids.next_start(tr, k)
                if nxt is None:
                    break
                k = nxt
                continue
            if run.seq is seq and not run.deleted:
                return f"did not remove {tr}:{k}, which the room shows"
            k = run.counter + run.length
    return None


def _map_write_differs(doc: Doc, r: int, e: enc.Entry) -> str | None:
    root = doc._roots.get(e[2])
    if not isinstance(root, LWWMap):
        return None
    held = root._entries.get(e[4])
    if held is None or held.replica != r or held.counter != e[1]:
        return None  # overwritten since (or never seen here): nothing to compare
    deleted = e[0] == enc.MAP_DEL
    if held.lamport != e[3] or held.deleted != deleted:
        return f"writes key {e[4]!r} otherwise than the room holds"
    if not deleted and not _same(held.value, e[5]):
        return f"writes another value to key {e[4]!r} than the room holds"
    return None


def _set_add_differs(doc: Doc, r: int, e: enc.Entry) -> str | None:
    root = doc._roots.get(e[2])
    if not isinstance(root, ORSet):
        return None
    held = root._owner.get((r, e[1]))
    if held is not None and held != element_key(e[3]):
        return "adds another element than the room holds"
    return None


def _set_remove_differs(doc: Doc, key: Any, dots: list[tuple[int, int]]) -> str | None:
    root = doc._roots.get(key)
    if isinstance(root, ORSet) and any(d in root._owner for d in dots):
        return "removes less than the room's copy of it removed"
    return None


def _counter_differs(doc: Doc, r: int, e: enc.Entry) -> str | None:
    root = doc._roots.get(e[2])
    if not isinstance(root, Counter) or root._dots.get(r) != e[1]:
        return None
    if root._inc[r] != e[3] or root._dec[r] != e[4]:
        return "has other totals than the room holds"
    return None
