"""merge_updates: combine updates into one, from their bytes alone (no Doc needed)."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

import msgpack

from crdtsync import _encoding as enc
from crdtsync._encoding import Entry, Segment, Update
from crdtsync._values import ChildRef

__all__ = ["merge_updates", "split_update"]


def _trim(e: Entry, k: int) -> Entry:
    """Drop the first ``k`` counters of a multi-counter entry."""
    if e[0] == enc.SKIP:
        return (enc.SKIP, e[1] + k, e[2] - k)
    r_origin = (None, e[1] + k - 1)  # replaced by the caller (needs the replica)
    content = e[5][k:] if e[5] is not None else None
    return (enc.INS, e[1] + k, e[2], e[3] + k, r_origin, content, e[6] - k, e[7])


def _continues(prev: Entry, e: Entry, replica: int) -> bool:
    """Whether INS ``e`` extends INS ``prev`` into one run (keystrokes typed in a row)."""
    if prev[0] != enc.INS or e[0] != enc.INS or prev[2] != e[2]:
        return False
    end = prev[1] + prev[6]
    if e[1] != end or e[3] != prev[3] + prev[6] or e[4] != (replica, end - 1):
        return False
    if (prev[5] is None) != (e[5] is None):
        return False
    if prev[7] is None or e[7] is None:
        return prev[7] is None and e[7] is None
    return bool(prev[7][0] == e[7][0])


def _join(prev: Entry, e: Entry) -> Entry:
    content = None if prev[5] is None else prev[5] + e[5]
    deleter = prev[7] if e[7] is None or (prev[7] and prev[7][1] >= e[7][1]) else e[7]
    return (enc.INS, prev[1], prev[2], prev[3], prev[4], content, prev[6] + e[6], deleter)


def merge_updates(
    updates: Iterable[bytes], *, max_inflated_size: int | None = enc.DEFAULT_MAX_INFLATED_SIZE
) -> bytes:
    """One update equivalent to applying all of ``updates`` (in any order).

    Works on the bytes alone. Changes present in several inputs appear once; where one
    input holds a change as data and another only covers its counter (a SKIP), the data is
    kept; a tombstone dropped in favour of a live copy of the same run keeps its delete as
    a delete fact. docs/format.md, section 12, specifies the result exactly. The result is
    never compressed; an invalid input raises :class:`~crdtsync.DecodeError`, and so does a
    compressed input that would inflate beyond ``max_inflated_size`` (64 MiB by default;
    None for bytes you trust, such as your own document's updates).

    >>> import crdtsync
    >>> doc = crdtsync.Doc()
    >>> updates = []
    >>> _ = doc.on_update(lambda update, origin: updates.append(update))
    >>> for ch in "abc":
    ...     doc.text("t").insert(len(doc.text("t")), ch)
    >>> fresh = crdtsync.Doc()
    >>> fresh.apply_update(crdtsync.merge_updates(updates))
    >>> str(fresh.text("t"))
    'abc'
    """
    return merge_parsed([enc.decode_update(data, max_inflated_size) for data in updates])


def merge_parsed(updates: Iterable[Update]) -> bytes:
    """merge_updates on decoded updates, which it leaves as they were (a relay decodes
    each update once and merges it into many recipients' messages)."""
    return enc.encode_update(merged_update(updates))


def merged_update(updates: Iterable[Update]) -> Update:
    """merge_parsed, before encoding."""
    by_replica: dict[int, list[Entry]] = {}
    facts: list[tuple[Any, ...]] = []
    for parsed in updates:
        for seg in parsed.segments:
            by_replica.setdefault(seg.replica, []).extend(seg.entries)
        facts.extend(parsed.facts)

    merged = Update()
    for replica, entries in sorted(by_replica.items()):
        # Data before SKIPs at the same counter, longer before shorter.
        entries.sort(key=lambda e: (e[1], e[0] == enc.SKIP, -enc.entry_span(e)))
        out: list[Entry] = []
        start = covered = 0
        for e in entries:
            c, span = e[1], enc.entry_span(e)
            if out and c < covered:
                last = out[-1]
                if last[0] == enc.SKIP and e[0] != enc.SKIP and last[1] <= c:
                    # Data inside a SKIP: cut the SKIP around it.
                    tail_end = last[1] + last[2]
                    out.pop()
                    if c > last[1]:
                        out.append((enc.SKIP, last[1], c - last[1]))
                    out.append(e)
                    if c + span < tail_end:
                        out.append((enc.SKIP, c + span, tail_end - c - span))
                    covered = max(tail_end, c + span)
                    continue
                if c + span <= covered:
                    if e[0] == enc.INS and e[7] is not None:
                        facts.append((enc.FACT_DELETE, e[2], e[7], [(replica, c, span)]))
                    continue
                k = covered - c
                if e[0] == enc.INS and e[7] is not None:
                    facts.append((enc.FACT_DELETE, e[2], e[7], [(replica, c, k)]))
                e = _trim(e, k)
                if e[0] == enc.INS:
                    e = e[:4] + ((replica, e[1] - 1),) + e[5:]
            if not out or c > covered:
                if out:
                    merged.segments.append(Segment(replica, start, covered, out))
                out = []
                start = e[1]
            if out and _continues(out[-1], e, replica):
                out[-1] = _join(out[-1], e)
            else:
                out.append(e)
            covered = e[1] + enc.entry_span(e)
        if out:
            merged.segments.append(Segment(replica, start, covered, out))
    seen: set[str] = set()
    for fact in facts:
        key = repr(fact)
        if key not in seen:
            seen.add(key)
            merged.facts.append(fact)
    return merged


def _packed_size(value: Any) -> int:
    """The msgpack size of ``value``, a child reference counted at its largest."""
    return len(msgpack.packb(value, default=_as_placeholder))


def _as_placeholder(obj: Any) -> Any:
    if type(obj) is ChildRef:
        return b"\0" * enc.MAX_CHILD_EXT  # (an extension is at most this, plus its header)
    raise TypeError(f"cannot measure {type(obj).__name__}")


def _entry_size(e: Entry) -> int:
    """Rough encoded size of an entry (tables and headers are budgeted separately)."""
    if e[0] == enc.SKIP:
        return 9
    return _packed_size([x for x in e[2:] if not isinstance(x, tuple)]) + 24


def _cut_insert(e: Entry, replica: int, budget: int) -> list[Entry]:
    """Cut a long insert run into runs whose content fits ``budget`` bytes."""
    content = e[5]
    if content is None:
        return [e]
    pieces: list[Entry] = []
    start = 0
    while start < len(content):
        if isinstance(content, str):
            stop = min(len(content), start + max(1, budget // 4))  # up to 4 UTF-8 bytes each
        else:
            stop, size = start, 0
            while stop < len(content):
                size += _packed_size(content[stop]) + 1
                if size > budget and stop > start:
                    break
                stop += 1
        c = e[1] + start
        origin = e[4] if start == 0 else (replica, c - 1)
        pieces.append(
            (enc.INS, c, e[2], e[3] + start, origin, content[start:stop], stop - start, e[7])
        )
        start = stop
    return pieces


def split_update(data: bytes, max_bytes: int) -> list[bytes]:
    """Cut an update into updates of about ``max_bytes`` or less, in counter order.

    Every part is about ``max_bytes`` or less both as sent and, if compressed, inflated.
    Cuts fall between changes (a long insert run is cut into shorter runs); facts travel in
    the last part. Together the parts are equivalent to the input: applying them all, in any
    order, gives the same state. Each part is a valid update on its own; a part waits in the
    pending buffer until the parts before it are in. A single change larger than the limit
    (a huge map value) stays whole.

    >>> import crdtsync, random
    >>> doc = crdtsync.Doc()
    >>> rnd = random.Random(1)
    >>> doc.text("t").insert(0, "".join(rnd.choice("abcdefghij") for _ in range(5000)))
    >>> parts = split_update(doc.get_update(), 1000)
    >>> len(parts) > 4 and all(len(p) <= 1000 for p in parts)
    True
    >>> fresh = crdtsync.Doc()
    >>> for part in parts:
    ...     fresh.apply_update(part)
    >>> len(fresh.text("t"))
    5000
    """
    if _fits(data, max_bytes):
        return [data]
    # What a replica sends is its own integrated state, however large it inflates.
    parsed = enc.decode_update(data, None)
    budget = max(64, max_bytes - 128)  # room for the envelope, tables and headers
    parts: list[Update] = [Update()]
    size = 0

    def place(replica: int, e: Entry) -> None:
        nonlocal size
        cost = _entry_size(e)
        current = parts[-1]
        if size + cost > budget and current.segments:
            current = Update()
            parts.append(current)
            size = 0
        size += cost
        last = current.segments[-1] if current.segments else None
        span = enc.entry_span(e)
        if last is not None and last.replica == replica and last.end == e[1]:
            last.entries.append(e)
            last.end += span
        else:
            current.segments.append(Segment(replica, e[1], e[1] + span, [e]))

    for seg in parsed.segments:
        for e in seg.entries:
            if e[0] == enc.INS and _entry_size(e) > budget:
                for piece in _cut_insert(e, seg.replica, budget - 32):
                    place(seg.replica, piece)
            else:
                place(seg.replica, e)
    # Facts come after every change (they refer to changes anywhere in the update); a
    # delete fact with many ranges is cut into several.
    for fact in parsed.facts:
        for piece in _cut_fact(fact, budget):
            cost = (
                len(
                    msgpack.packb(
                        [list(x) if isinstance(x, tuple) else x for x in piece[2:]], default=repr
                    )
                )
                + 32
            )
            if size + cost > budget and (parts[-1].segments or parts[-1].facts):
                parts.append(Update())
                size = 0
            size += cost
            parts[-1].facts.append(piece)
    return [
        enc.deflate_update(enc.encode_update(part)) for part in parts if part.segments or part.facts
    ]


def _fits(data: bytes, max_bytes: int) -> bool:
    """Whether ``data`` is at most ``max_bytes`` long, compressed *and* inflated: a receiver
    may refuse a compressed update whose body exceeds its message limit (see
    ``decode_update(max_inflated_size=...)``), so parts are cut by their inflated size."""
    if len(data) > max_bytes:
        return False
    if bytes(data[:2]) != enc.DEFLATED_PREFIX:
        return True
    inflater = zlib.decompressobj()
    try:
        inflater.decompress(bytes(data[2:]), max(1, max_bytes - 2))
    except zlib.error:
        return False  # decode_update will say what is wrong with it
    return inflater.eof and not inflater.unconsumed_tail


def _cut_fact(fact: tuple[Any, ...], budget: int) -> list[tuple[Any, ...]]:
    """A delete fact with more ranges than fit ``budget`` as several facts (the live-dots
    fact of a set must stay whole: it speaks for every dot of the set)."""
    if fact[0] != enc.FACT_DELETE:
        return [fact]
    per_part = max(1, budget // 24)  # a range costs at most ~20 bytes
    ranges = fact[3]
    return [
        (enc.FACT_DELETE, fact[1], fact[2], ranges[i : i + per_part])
        for i in range(0, len(ranges), per_part)
    ]
