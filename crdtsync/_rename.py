"""Re-issuing a replica's changes under another replica id.

When a document finds that someone else holds changes under its own replica id (a process
restarted without its state, or two live documents given the same fixed id), its own
changes collide with theirs counter for counter. If every change it holds under that id is
its own, the collision is repaired by renaming: the document's whole state is rewritten as if
a fresh replica had made those changes, and the rewritten changes go out like new ones.

Counters are kept (a replica's counters only need to be dense from 1), so the rewrite maps
each dot ``(old, c)`` to ``(new, c)`` wherever a dot can appear: segments, insert origins
and deleters, delete targets, superseded and removed set dots, and facts. A container that
is a list element is named after its element's dot, so container keys are rewritten too
(with every key of a container inside one).
"""

from __future__ import annotations

from typing import Any

from crdtsync import _encoding as enc
from crdtsync._dotruns import normalized
from crdtsync._encoding import Entry, Segment, Update
from crdtsync._nesting import RootKey, child_name, parse_child_name
from crdtsync._values import ChildRef

__all__ = ["rename_key", "rename_replica"]


def rename_key(key: RootKey, old: int, new: int) -> RootKey:
    """``key`` with every list element of replica ``old`` in its path moved to ``new``."""
    if key[0].islower():
        return key
    parsed = parse_child_name(key[1])
    if parsed is None:  # (decoded keys are canonical; nothing else names a container)
        return key
    parent, slot = parsed
    renamed_parent = rename_key(parent, old, new)
    if slot[0] == "e" and slot[1] == old:
        slot = ("e", new, slot[2])
    elif renamed_parent == parent:
        return key
    return (key[0], child_name(renamed_parent, slot))


def rename_replica(update: Update, old: int, new: int) -> Update:
    """``update`` with every change and reference of replica ``old`` moved to ``new``
    (which must not appear in it)."""

    keys: dict[RootKey, RootKey] = {}

    def root(key: RootKey) -> RootKey:
        renamed = keys.get(key)
        if renamed is None:
            renamed = keys[key] = rename_key(key, old, new)
        return renamed

    def dot(d: Any) -> Any:
        return (new, d[1]) if d is not None and d[0] == old else d

    def dots(ds: list[Any]) -> list[Any]:
        return [dot(d) for d in ds]

    def content(c: Any) -> Any:
        if type(c) is not list or ChildRef not in map(type, c):
            return c
        return [
            ChildRef(v.kind, v.basis, dot(v.alias))
            if type(v) is ChildRef and v.alias is not None
            else v
            for v in c
        ]

    def anchor(a: Any) -> Any:
        return a if a is None or a[0] != old else (new, a[1], a[2])

    def ranges(rs: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        return [(new if r == old else r, c, n) for r, c, n in rs]

    def version(v: dict[int, int]) -> dict[int, int]:
        return {(new if r == old else r): c for r, c in v.items()}

    def entry(e: Entry) -> Entry:
        tag = e[0]
        if tag == enc.SKIP:
            return e
        e = e[:2] + (root(e[2]),) + e[3:]
        if tag == enc.INS:
            return e[:4] + (dot(e[4]), content(e[5])) + e[6:7] + (dot(e[7]),)
        if tag == enc.DEL:
            return e[:3] + (ranges(e[3]),)
        if tag == enc.SET_ADD:
            return e[:4] + (dots(e[4]),)
        if tag == enc.SET_REM:
            return e[:3] + (dots(e[3]),)
        if tag == enc.MARK:
            return e[:6] + (anchor(e[6]), anchor(e[7]))
        return e  # SKIP, map writes and counter totals name no other dot

    out = Update()
    for seg in update.segments:
        replica = new if seg.replica == old else seg.replica
        out.segments.append(Segment(replica, seg.start, seg.end, [entry(e) for e in seg.entries]))
    for fact in update.facts:
        key = root(fact[1])
        if fact[0] == enc.FACT_DELETE:
            out.facts.append((fact[0], key, dot(fact[2]), ranges(fact[3])))
        else:  # FACT_LIVE
            live = normalized(ranges(fact[3]))  # (the renamed replica's runs move)
            out.facts.append((fact[0], key, version(fact[2]), live, version(fact[4])))
    return out
