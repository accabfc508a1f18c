"""Rich-text marks on a Text (after Peritext).

A mark is a change that says "from here to there, attribute ``name`` is ``value``"
(``None`` removes the attribute). Its ends are anchored to characters, not to indices, so
they move with the text: an anchor sits *before* or *after* one character (or at the start
or end of the text), and a character is formatted by every mark whose start anchor comes
before it and whose end anchor comes after it, in the sequence's own order (deleted
characters keep their place as tombstones, so anchors on them stay valid). For each name
the mark with the highest (Lamport time, replica id) among those covering a character
wins, so concurrent formatting converges like concurrent map writes.

Which way a mark grows when someone types at its edge is decided when it is made, by where
its anchors go (its name's *expand* rule): text typed right after a bold word is bold
(the end anchor sits before the next character), text typed right after a link is not
(the end anchor sits after the link's last character).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from crdtsync._ids import IdIndex
    from crdtsync._rga import Sequence

__all__ = ["DEFAULT_EXPAND", "Anchor", "Mark", "Expand", "spans"]

#: (replica, counter, after): just after that character if ``after``, else just before.
Anchor = tuple[int, int, bool]
Expand = Literal["after", "before", "both", "none"]

#: How marks grow at their edges unless the document says otherwise: "after" (text typed
#: at the mark's end takes it, as bold does), "none" (neither end: links, comments),
#: "before", "both". ``Doc.mark_expand`` overrides these per name.
DEFAULT_EXPAND: Mapping[str, Expand] = {"link": "none", "href": "none", "comment": "none"}
FALLBACK_EXPAND: Expand = "after"


class Mark:
    """One formatting change: its dot, Lamport time, name, value and anchors (None: the
    start of the text for ``start``, its end for ``end``)."""

    __slots__ = ("replica", "counter", "lamport", "name", "value", "start", "end")

    def __init__(
        self,
        replica: int,
        counter: int,
        lamport: int,
        name: str,
        value: Any,
        start: Anchor | None,
        end: Anchor | None,
    ) -> None:
        self.replica = replica
        self.counter = counter
        self.lamport = lamport
        self.name = name
        self.value = value
        self.start = start
        self.end = end

    def __repr__(self) -> str:
        return f"Mark({self.name!r}={self.value!r}, {self.start} .. {self.end})"


def anchor_position(seq: Sequence, ids: IdIndex, anchor: Anchor) -> int:
    """The visible index an anchor stands at: characters at or after it are after it."""
    run = ids.find(anchor[0], anchor[1])
    assert run is not None and run.seq is seq  # (checked when the mark was taken in)
    pos = seq.position_of(run)
    if run.deleted:
        return pos
    pos += anchor[1] - run.counter
    return pos + 1 if anchor[2] else pos


def anchors_for(seq: Sequence, index: int, length: int, expand: Expand) -> tuple[Any, Any]:
    """The anchors of a mark on visible ``index .. index+length-1`` growing as ``expand``
    says (``length`` >= 1)."""
    if expand in ("before", "both"):
        start: Anchor | None = None if index == 0 else _anchor(seq, index - 1, True)
    else:
        start = _anchor(seq, index, False)
    last = index + length - 1
    if expand in ("after", "both"):
        end: Anchor | None = None if last + 1 >= seq.vis_len else _anchor(seq, last + 1, False)
    else:
        end = _anchor(seq, last, True)
    return start, end


def _anchor(seq: Sequence, index: int, after: bool) -> Anchor:
    run, offset = seq.locate(index)
    return (run.replica, run.counter + offset, after)


def spans(
    seq: Sequence, ids: IdIndex, marks: list[Mark], exclude: frozenset[int] = frozenset()
) -> list[tuple[int, int, dict[str, Any]]]:
    """The text cut where its attributes change: ``(start, end, attributes)`` covering
    ``0 .. len`` in order (attributes without the None values). Marks whose id() is in
    ``exclude`` are left out (to find what a transaction's marks changed)."""
    n = seq.vis_len
    if not n:
        return []
    cuts: dict[int, list[tuple[int, Mark]]] = {}
    for mark in marks:
        if id(mark) in exclude:
            continue
        lo = 0 if mark.start is None else anchor_position(seq, ids, mark.start)
        hi = n if mark.end is None else anchor_position(seq, ids, mark.end)
        if lo < hi:
            cuts.setdefault(lo, []).append((1, mark))
            cuts.setdefault(hi, []).append((-1, mark))
    out: list[tuple[int, int, dict[str, Any]]] = []
    active: dict[str, list[Mark]] = {}
    points = sorted(set(cuts) | {0, n})
    for at, nxt in zip(points, points[1:], strict=False):
        for step, mark in cuts.get(at, ()):
            group = active.setdefault(mark.name, [])
            if step > 0:
                group.append(mark)
            else:
                group.remove(mark)
        attrs: dict[str, Any] = {}
        for name, group in active.items():
            if group:
                top = max(group, key=lambda m: (m.lamport, m.replica))
                if top.value is not None:
                    attrs[name] = top.value
        if out and out[-1][2] == attrs:
            out[-1] = (out[-1][0], nxt, attrs)
        else:
            out.append((at, nxt, attrs))
    return out


def attributes_at(table: list[tuple[int, int, dict[str, Any]]], index: int) -> dict[str, Any]:
    for start, end, attrs in table:
        if start <= index < end:
            return attrs
    return {}


def attributed_delta(
    delta: list[dict[str, Any]],
    new: list[tuple[int, int, dict[str, Any]]],
    without: list[tuple[int, int, dict[str, Any]]] | None,
    length: int,
) -> list[dict[str, Any]]:
    """A transaction's plain-text delta with attributes: inserts cut by the attributes
    they have, and retained text whose attributes the transaction's marks changed as
    retains with the changed attributes (None: removed). ``new`` are the text's attribute
    runs now, ``without`` the runs without the transaction's marks (None: it has none),
    both in the text's current positions; ``length`` is the text's length."""
    out: list[dict[str, Any]] = []

    def put(op: dict[str, Any]) -> None:
        last = out[-1] if out else None
        same = last is not None and op.keys() == last.keys()
        if same and op.get("attributes") == last.get("attributes"):  # type: ignore[union-attr]
            (kind,) = [k for k in op if k != "attributes"]
            out[-1] = {**last, kind: last[kind] + op[kind]}  # type: ignore[index, dict-item]
            return
        out.append(op)

    pos = 0  # in the current text
    ops = list(delta)
    if without is not None:  # retain to the end, so that format changes past the ops show
        reached = sum(op.get("retain", 0) + len(op.get("insert", "")) for op in ops)
        if length > reached:
            ops.append({"retain": length - reached})
    for op in ops:
        if "insert" in op:
            content = op["insert"]
            for a, b, attrs in _pieces(new, pos, pos + len(content)):
                text = content[a - pos : b - pos]
                put({"insert": text, "attributes": dict(attrs)} if attrs else {"insert": text})
            pos += len(content)
        elif "delete" in op:
            put({"delete": op["delete"]})
        else:
            n = op["retain"]
            if without is None:
                put({"retain": n})
            else:
                points = {pos, pos + n}
                points.update(p for s, e, _ in new for p in (s, e))
                points.update(p for s, e, _ in without for p in (s, e))
                cut = sorted(p for p in points if pos <= p <= pos + n)
                for a, b in zip(cut, cut[1:], strict=False):
                    now, before = attributes_at(new, a), attributes_at(without, a)
                    changed = {k: now.get(k) for k in now.keys() | before.keys()}
                    changed = {k: v for k, v in changed.items() if v != before.get(k)}
                    put({"retain": b - a, "attributes": changed} if changed else {"retain": b - a})
            pos += n
    while out and set(out[-1]) == {"retain"}:
        out.pop()
    return out


def _pieces(
    table: list[tuple[int, int, dict[str, Any]]], lo: int, hi: int
) -> list[tuple[int, int, dict[str, Any]]]:
    """``lo .. hi`` cut by ``table``'s attribute runs."""
    out = []
    for start, end, attrs in table:
        a, b = max(start, lo), min(end, hi)
        if a < b:
            out.append((a, b, attrs))
    if not out and lo < hi:
        out.append((lo, hi, {}))
    return out
