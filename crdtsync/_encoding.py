"""The update wire format (version 1): the one module that knows bytes.

An update is ``b"\\xc1\\x01"`` followed by one msgpack array::

    [replicas, roots, segments]            or    [replicas, roots, segments, facts]

* ``replicas``: the replica ids the update mentions; everything else refers to them by
  index, so a 64-bit id is written once.
* ``roots``: root container keys as strings, a kind letter then the name
  (``t`` text, ``l`` list, ``s`` set, ``m`` map, ``c`` counter).
* ``segments``: each a flat array ``[replica_index, first_counter, tag, fields..., tag,
  fields...]``: consecutive changes of one replica, the first at ``first_counter``; each
  change occupies as many counters as it says (an insert: its length; others: one).
* ``facts``: statements that belong to no single counter (a delete of elements the
  receiver already has, the live dots of a set).

docs/format.md specifies every tag and field. Decoding validates everything before the
caller touches a document, so a :class:`DecodeError` always leaves it unchanged.
"""

from __future__ import annotations

import operator
import zlib
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import msgpack

from crdtsync._bulk import BULK_BYTES, without_gc
from crdtsync._clock import MAX_CLOCK, MAX_REPLICA_ID, PREFIX
from crdtsync._dotruns import dot_runs, is_normal, normalized
from crdtsync._errors import DecodeError
from crdtsync._nesting import valid_child_name
from crdtsync._order import Columns, Order, OrderInvalid, entries, pack, read
from crdtsync._values import ChildRef, is_element, is_value

Dot = tuple[int, int]
RootKey = tuple[str, str]  # (kind letter, name)

ROOT_KINDS = frozenset("tlsmc")
#: Containers inside containers (format 2): the kind letter in upper case, the name
#: naming the parent and the place in it (see crdtsync._nesting).
NESTED_KINDS = frozenset("TLSMC")
ANY_KINDS = ROOT_KINDS | NESTED_KINDS
SEQ_KINDS = frozenset("tlTL")
MAP_KINDS = frozenset("mM")
TEXT_KINDS = frozenset("tT")
SET_KINDS = frozenset("sS")
COUNTER_KINDS = frozenset("cC")

#: The body of a format-2 update ends with this item: one that names nested containers
#: or holds a child reference (a map entry or list element holding a container). Readers
#: of format 1 refuse it (an array of 5 items), so they never misread one.
FORMAT_NESTED = 2
#: The msgpack extension type of a child reference: payload msgpack [kind, basis] (or
#: [kind, 0, replica, counter]), at most MAX_CHILD_EXT bytes.
EXT_CHILD = 1
MAX_CHILD_EXT = 32

# Change tags inside a segment. Changes apply to the segment's *current root* (initially
# root 0, changed by ROOT) and take their Lamport time as counter + *current offset*
# (initially 0, changed by LAMPORT): in the common case neither is written.
SKIP = 0  # internal only; written as -n: n counters whose changes need no data here
#          (superseded, or their effects are stated elsewhere)
INS = 1  # origin, content: a run of inserted elements
INS_DELETED = 2  # origin, content | length, deleter: a run of deleted elements
DEL = 3  # [replica, counter, length]*: a delete (takes one counter)
MAP_SET = 4  # key, value
MAP_DEL = 5  # key
SET_ADD = 6  # element, [replica, counter]* (dots of the element it supersedes)
SET_REM = 7  # [replica, counter]* (dots it removes)
COUNTER = 8  # increments, decrements (this replica's running totals)
ROOT = 9  # root index: the current root from here on (takes no counter)
LAMPORT = 10  # offset: the current Lamport offset from here on (takes no counter)
INS_NEXT = 11  # content: INS whose origin is the previous counter of this replica
INS_DELETED_NEXT = 12  # content | length, deleter: INS_DELETED, origin as for INS_NEXT
MARK = 13  # name, value, start, end: rich-text formatting of a Text (format 2 only)

# Fact tags.
FACT_DELETE = 0  # root, deleter replica, deleter counter, [replica, counter, length]*
FACT_LIVE = 1  # root, [replica, counter]* (sender's version), [replica, counter]* (live
#               dots), [replica, counter]* (the last change to the set by each replica)
FACT_ORDER = 2  # root, packed columns (bin), visible characters, kept deleted characters:
#                a long text's whole sequence with its document order (crdtsync._order),
#                its runs SKIPped in the segments

#: The superseded dots of a SET_ADD that supersedes none: one shared object, and a tuple,
#: so that the entries of a transaction of many adds hold no object the cyclic garbage
#: collector must keep visiting.
NO_DOTS: tuple[Dot, ...] = ()

#: Every counter and Lamport time an update carries, including the last one of a run, is at
#: most this (the clock ceiling, see crdtsync._clock.CLOCK_CEILING).
MAX_COUNTER = MAX_CLOCK

#: Entries are tuples whose first two items are (tag, counter):
#:   (INS, c, root, lamport, origin, content, length, deleter)  content None: dropped
#:   (DEL, c, root, targets)            (MAP_SET, c, root, lamport, key, value)
#:   (MAP_DEL, c, root, lamport, key)   (SET_ADD, c, root, element, superseded_dots)
#:   (SET_REM, c, root, dots)           (COUNTER, c, root, increments, decrements)
#:   (SKIP, c, n)                      (MARK, c, root, lamport, name, value, start, end)
#: where a MARK anchor is (replica, counter, after) or None (the text's start / end).
Entry = tuple[Any, ...]


@dataclass(slots=True)
class Segment:
    replica: int
    start: int
    end: int  # exclusive
    entries: list[Entry]


@dataclass(slots=True)
class Update:
    segments: list[Segment] = field(default_factory=list)
    #: (FACT_DELETE, root, deleter, [(replica, counter, length)...]) or
    #: (FACT_LIVE, root, {replica: counter}, [(replica, counter, length)...] (the live
    #: dots as sorted, maximal runs), {replica: counter}) (either wire form)
    facts: list[tuple[Any, ...]] = field(default_factory=list)
    #: What :func:`coverage` returns, once someone who worked it out anyway left it here
    #: (an update is not changed after decoding). Read-only: it may be shared.
    covers: dict[int, int] | None = field(default=None, compare=False, repr=False)
    #: To encode: texts stated with their document order (``FACT_ORDER``, see
    #: crdtsync._order), whose runs the segments leave out (SKIP). Decoding never fills it.
    orders: list[Order] = field(default_factory=list, compare=False, repr=False)
    #: Decoded: the texts that arrived in document order, by root key. Their runs are in
    #: the segments too (as INS entries, origins worked out), so that nothing needs this;
    #: a document that holds none of a text can take it whole (see crdtsync._integrate).
    in_order: dict[RootKey, Order] | None = field(default=None, compare=False, repr=False)
    #: Left by ``check_ready`` for ``integrate`` straight after it: the document and the run
    #: it found there holding each origin it held before (a merge need not look each one
    #: up twice). Valid only until that document changes; integrate takes them only for
    #: the same document and checks each is still long enough.
    origin_runs: tuple[Any, dict[Any, Any]] | None = field(default=None, compare=False, repr=False)

    @property
    def bare(self) -> list[Segment]:
        """The segments, maybe with SKIPs where the runs of ``in_order`` go: for a reader
        that needs only their spans or takes those texts whole (see DeferredUpdate)."""
        return self.segments


_SEGMENTS: Any = Update.__dict__["segments"]  # (the slot, under DeferredUpdate's property)


class DeferredUpdate(Update):
    """A decoded update whose ordered texts' runs are not in its segments yet: the first
    read of ``segments`` puts them in (they were checked when decoded), so every reader
    sees the same entries as from the per-replica form, while ``bare`` spares a document
    that takes the texts whole the work of expanding them."""

    __slots__ = ("_bare",)
    _bare: list[Segment]

    @classmethod
    def of(cls, update: Update) -> DeferredUpdate:
        deferred = cls.__new__(cls)
        deferred._bare = update.segments
        _SEGMENTS.__set__(deferred, None)
        deferred.facts = update.facts
        deferred.covers = update.covers
        deferred.orders = update.orders
        deferred.in_order = update.in_order
        deferred.origin_runs = None
        return deferred

    @property
    def segments(self) -> list[Segment]:
        segments: list[Segment] | None = _SEGMENTS.__get__(self)
        if segments is None:
            segments = [Segment(s.replica, s.start, s.end, s.entries) for s in self._bare]
            assert self.in_order is not None
            _fill_in(segments, self.in_order)
            _SEGMENTS.__set__(self, segments)
        return segments

    @segments.setter
    def segments(self, value: list[Segment]) -> None:
        _SEGMENTS.__set__(self, value)

    @property
    def bare(self) -> list[Segment]:
        return self._bare


def coverage(update: Update) -> dict[int, int]:
    """Replica -> highest counter the update covers (do not change the dict)."""
    if update.covers is not None:
        return update.covers
    tops: dict[int, int] = {}
    for seg in update.segments if update.in_order is None else update.bare:
        if seg.end - 1 > tops.get(seg.replica, 0):
            tops[seg.replica] = seg.end - 1
    return tops


def entry_span(entry: Entry) -> int:
    tag = entry[0]
    if tag == INS:
        return int(entry[6])
    if tag == SKIP:
        return int(entry[2])
    return 1


#: The second byte 0x02 marks a body compressed with DEFLATE (zlib format, RFC 1950), as
#: Automerge compresses its larger columns: document states are mostly text, which shrinks
#: about threefold. Only state updates of at least DEFLATE_THRESHOLD bytes are compressed.
DEFLATED_PREFIX = bytes((PREFIX[0], 2))
DEFLATE_THRESHOLD = 1024
#: By default a compressed update may not inflate beyond this many bytes (a decompression
#: bomb is a DecodeError before msgpack sees it). It equals a sync session's default limit
#: on incoming messages (``DEFAULT_MAX_INCOMING_SIZE``), and a session passes its own
#: incoming limit instead: compression never admits a body the session would refuse sent
#: uncompressed. Together with msgpack's length limits (see :func:`unpack_bounded`) it
#: bounds what decoding one update may cost to a small multiple of the limit.
DEFAULT_MAX_INFLATED_SIZE = 64 << 20


def _pack(body: Any) -> bytes:
    packed: bytes = msgpack.packb(body)
    return packed


def _pack_child(obj: Any, seen: list[bool]) -> msgpack.ExtType:
    if type(obj) is ChildRef:
        seen.append(True)
        fields: list[Any] = [obj.kind, obj.basis]
        if obj.alias is not None:
            fields += obj.alias
        return msgpack.ExtType(EXT_CHILD, msgpack.packb(fields))
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _pack_update(body: list[Any], extended: bool = False) -> bytes:
    """Pack an update body; format 2 (a fifth item) if it needs it (``extended``: it names
    nested containers or holds changes only format 2 has; child references are found
    here)."""
    seen: list[bool] = []
    try:
        packed: bytes = msgpack.packb(body)
    except TypeError:  # a child reference: only msgpack's default hook can pack one
        packed = msgpack.packb(body, default=lambda o: _pack_child(o, seen))
    if extended or seen:
        if len(body) == 3:
            body = [*body, []]
        packed = msgpack.packb([*body, FORMAT_NESTED], default=lambda o: _pack_child(o, seen))
    return PREFIX + packed


# ---- encoding ------------------------------------------------------------------------


class _Tables:
    def __init__(self) -> None:
        self.replicas: dict[int, int] = {}
        self.roots: dict[RootKey, int] = {}
        self.nested = False  # whether a nested container's key is among the roots

    def replica(self, replica: int) -> int:
        index = self.replicas.get(replica)
        if index is None:
            index = self.replicas[replica] = len(self.replicas)
        return index

    def root(self, key: RootKey) -> int:
        index = self.roots.get(key)
        if index is None:
            index = self.roots[key] = len(self.roots)
            if key[0] in NESTED_KINDS:
                self.nested = True
        return index

    def dots(self, dots: Any) -> list[int]:
        flat: list[int] = []
        for r, c in dots:
            flat.append(self.replica(r))
            flat.append(c)
        return flat

    def anchor(self, anchor: Any) -> Any:
        return None if anchor is None else [self.replica(anchor[0]), anchor[1], anchor[2]]

    def dot_run_pairs(self, runs: Any) -> list[int]:
        """Runs of dots as the flat pairs the wire holds (in memory they stay runs)."""
        flat: list[int] = []
        for r, c, n in runs:
            index = self.replica(r)
            if n == 1:
                flat += (index, c)
            else:
                flat += [x for counter in range(c, c + n) for x in (index, counter)]
        return flat

    def ranges(self, ranges: Any) -> list[int]:
        flat: list[int] = []
        for r, c, n in ranges:
            flat.append(self.replica(r))
            flat.append(c)
            flat.append(n)
        return flat


def encode_update(update: Update) -> bytes:
    tables = _Tables()
    segments, extended = _encode_segments(update, tables)
    facts = _encode_facts(update, tables)
    body: list[Any] = [list(tables.replicas), [k + n for k, n in tables.roots], segments]
    if facts:
        body.append(facts)
    return _pack_update(body, extended or tables.nested)


def encode_segments(update: Update) -> tuple[list[Any], list[bytes]] | None:
    """The update's tables (``[replicas, roots]``) and each of its segments packed on its
    own, for an update without facts that format 1 can hold (None otherwise): the
    segments of one table can be put together in any selection, see ``join_segments``."""
    tables = _Tables()
    segments, extended = _encode_segments(update, tables)
    if update.facts or update.orders or extended or tables.nested:
        return None
    pack = msgpack.Packer().pack  # (one packer for them all: packb makes one per call)
    try:
        packed = [pack(seg) for seg in segments]
    except TypeError:  # a child reference: format 2
        return None
    return [list(tables.replicas), [k + n for k, n in tables.roots]], packed


def join_segments(tables: list[Any], segments: list[bytes]) -> bytes:
    """The update made of ``segments`` (packed by ``encode_segments`` under ``tables``):
    a table may name replicas and roots no segment uses."""
    return PREFIX + _pack_tables(tables) + _array_header(len(segments)) + b"".join(segments)


def _pack_tables(tables: list[Any]) -> bytes:
    return b"\x93" + _pack(tables[0]) + _pack(tables[1])  # a body of three items


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def _encode_segments(update: Update, tables: _Tables) -> tuple[list[Any], bool]:
    segments = []
    extended = False
    for seg in update.segments:
        r = seg.replica
        out: list[Any] = [tables.replica(r), seg.start]
        root_index = 0  # the root a change applies to, until a ROOT entry says otherwise
        offset = 0  # lamport - counter, until a LAMPORT entry says otherwise
        key: Any = None  # the root key root_index stands for
        for e in seg.entries:
            tag = e[0]
            if tag == SKIP:
                out.append(-e[2])
                continue
            if e[2] is not key:
                key = e[2]
                index = tables.root(key)
                if index != root_index:
                    out += (ROOT, index)
                    root_index = index
            if tag in (INS, MAP_SET, MAP_DEL, MARK) and e[3] - e[1] != offset:
                offset = e[3] - e[1]
                out += (LAMPORT, offset)
            if tag == INS:
                _, c, _, _, origin, content, length, deleter = e
                # The commonest origin (the element just before, by counter) goes in the tag.
                nxt = origin is not None and origin[0] == r and origin[1] == c - 1
                if origin is None:
                    enc_origin: Any = None
                elif origin[0] == r:
                    enc_origin = c - 1 - origin[1]
                else:
                    enc_origin = [tables.replica(origin[0]), origin[1]]
                if deleter is None:
                    out += (INS_NEXT, content) if nxt else (INS, enc_origin, content)
                else:
                    if nxt:
                        out.append(INS_DELETED_NEXT)
                    else:
                        out += (INS_DELETED, enc_origin)
                    out += (
                        length if content is None else content,
                        deleter[1] - (c + length - 1)
                        if deleter[0] == r and deleter[1] > c + length - 1
                        else [tables.replica(deleter[0]), deleter[1]],
                    )
            elif tag == DEL:
                out += (DEL, tables.ranges(e[3]))
            elif tag == MAP_SET:
                out += (MAP_SET, e[4], e[5])
            elif tag == MAP_DEL:
                out += (MAP_DEL, e[4])
            elif tag == SET_ADD:
                out += (SET_ADD, e[3], tables.dots(e[4]) if e[4] else [])
            elif tag == SET_REM:
                out += (SET_REM, tables.dots(e[3]))
            elif tag == COUNTER:
                out += (COUNTER, e[3], e[4])
            elif tag == MARK:
                out += (MARK, e[4], e[5], tables.anchor(e[6]), tables.anchor(e[7]))
                extended = True
            else:  # pragma: no cover - internal misuse
                raise AssertionError(f"unknown entry tag {tag}")
        segments.append(out)
    return segments, extended


def _encode_facts(update: Update, tables: _Tables) -> list[Any]:
    facts = [_encode_order(order, tables) for order in update.orders]
    replica, root_of = tables.replica, tables.root
    index_of = tables.replicas.get  # (replica inline: a merge has a delete fact per keystroke)
    last_root: Any = None
    for fact in update.facts:
        if fact[0] == FACT_DELETE:
            _, root, deleter, ranges = fact
            if root is not last_root:
                last_root, root_index = root, root_of(root)
            d = index_of(deleter[0])
            if d is None:
                d = replica(deleter[0])
            if len(ranges) == 1:  # (most deletes: one keystroke's, one range)
                ((r, c, n),) = ranges
                i = index_of(r)
                flat = [replica(r) if i is None else i, c, n]
            else:
                flat = tables.ranges(ranges)
            facts.append([FACT_DELETE, root_index, d, deleter[1], flat])
        else:
            _, root, version, live, touched = fact
            facts.append(
                [
                    FACT_LIVE,
                    tables.root(root),
                    tables.dots(sorted(version.items())),
                    tables.dot_run_pairs(live),
                    tables.dots(sorted(touched.items())),
                ]
            )
    return facts


def _encode_order(order: Order, tables: _Tables) -> list[Any]:
    columns = msgpack.packb(pack(order, tables.replica))
    return [FACT_ORDER, tables.root(order.key), columns, order.live, order.dead]


#: Root key -> its one-entry root table, reused by every keystroke update (never mutated).
_ROOT_NAMES: dict[RootKey, list[str]] = {}


def encode_keystroke(replica: int, e: Entry) -> bytes | None:
    """The update for a transaction holding one live insert or one delete, built
    directly (the per-keystroke path); None when the general encoder is needed. The
    bytes are identical to what :func:`encode_update` produces."""
    tag = e[0]
    root = _ROOT_NAMES.get(e[2])
    if root is None:
        root = [e[2][0] + e[2][1]]
        if len(_ROOT_NAMES) < 4096:
            _ROOT_NAMES[e[2]] = root
    if tag == DEL:
        replicas = [replica]
        flat: list[int] = []
        for r, c, n in e[3]:
            if r != replica:
                return None
            flat += (0, c, n)
        return PREFIX + _pack(_body(replicas, root, [0, e[1], DEL, flat]))
    if tag != INS or e[7] is not None:
        return None
    if type(e[5]) is list and ChildRef in map(type, e[5]):
        return None  # a child reference: format 2
    c, origin = e[1], e[4]
    seg: list[Any] = [0, c]
    if e[3] != c:
        seg += (LAMPORT, e[3] - c)
    replicas = [replica]
    if origin is None:
        seg += (INS, None, e[5])
    elif origin[0] != replica:
        replicas.append(origin[0])
        seg += (INS, [1, origin[1]], e[5])
    elif origin[1] == c - 1:
        seg += (INS_NEXT, e[5])
    else:
        seg += (INS, c - 1 - origin[1], e[5])
    return PREFIX + _pack(_body(replicas, root, seg))


def _body(replicas: list[int], root: list[str], seg: list[Any]) -> list[Any]:
    """A one-segment body; a nested container's key needs format 2 (two more items)."""
    if root[0][0] in NESTED_KINDS:
        return [replicas, root, [seg], [], FORMAT_NESTED]
    return [replicas, root, [seg]]


# ---- decoding ------------------------------------------------------------------------


class _Invalid(Exception):
    pass


def _fail(why: str) -> _Invalid:
    return _Invalid(why)


def _int(value: Any, lo: int, hi: int, what: str) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise _fail(f"{what} must be an int in [{lo}, {hi}], got {value!r}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if type(value) is not list:
        raise _fail(f"{what} must be an array")
    return value


class _Reader:
    #: Format 2: child references may stand for map values and list elements.
    nested = False

    def __init__(self, replicas: list[int], roots: list[RootKey]) -> None:
        self.replicas = replicas
        self.roots = roots

    def replica(self, index: Any) -> int:
        return self.replicas[_int(index, 0, len(self.replicas) - 1, "replica index")]

    def root(self, index: Any, kinds: frozenset[str] | str) -> RootKey:
        key = self.roots[_int(index, 0, len(self.roots) - 1, "root index")]
        if key[0] not in kinds:
            raise _fail(f"root {key[1]!r} of kind {key[0]!r} cannot take this change")
        return key

    def dot(self, r: Any, c: Any) -> Dot:
        replicas = self.replicas
        if type(r) is int and 0 <= r < len(replicas) and type(c) is int and 1 <= c <= MAX_COUNTER:
            return (replicas[r], c)
        return (self.replica(r), _int(c, 1, MAX_COUNTER, "counter"))

    def anchor(self, value: Any) -> Any:
        """A mark anchor: nil, or [replica index, counter, after (bool)]."""
        if value is None:
            return None
        if type(value) is not list or len(value) != 3 or type(value[2]) is not bool:
            raise _fail("a mark anchor is nil or [replica, counter, after]")
        return (*self.dot(value[0], value[1]), value[2])

    def dots(self, value: Any) -> list[Dot]:
        flat = _list(value, "dots")
        if len(flat) % 2:
            raise _fail("dots come in pairs")
        return [self.dot(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]

    def dot_runs(self, value: Any) -> list[tuple[int, int, int]]:
        """Flat pairs ``replica_index, counter`` (checked as :meth:`dot` checks them) as
        sorted, maximal runs of consecutive counters, without a tuple per dot: the live
        dots of a set's state are one pair per element."""
        flat = _list(value, "dots")
        if len(flat) % 2:
            raise _fail("dots come in pairs")
        replicas = self.replicas
        n = len(replicas)

        def checked() -> Iterator[Dot]:
            for k in range(0, len(flat), 2):
                i, c = flat[k], flat[k + 1]
                ok = type(i) is int and 0 <= i < n and type(c) is int and 1 <= c <= MAX_COUNTER
                yield (replicas[i], c) if ok else self.dot(i, c)  # (dot: the precise error)

        runs = dot_runs(checked())
        # Sorted pairs (as writers send them) give sorted runs; anything else is put right.
        if not is_normal(runs):
            runs = normalized(runs)
        return runs

    def ranges(self, value: Any) -> list[tuple[int, int, int]]:
        flat = _list(value, "ranges")
        if len(flat) % 3 or not flat:
            raise _fail("ranges come in non-empty triples")
        out = []
        for i in range(0, len(flat), 3):
            r, c = self.dot(flat[i], flat[i + 1])
            n = _int(flat[i + 2], 1, MAX_COUNTER - c + 1, "range length")
            out.append((r, c, n))
        return out


def _content(value: Any, kind: str, nested: bool) -> tuple[Any, int]:
    if kind in "tT":
        if type(value) is not str or not value:
            raise _fail("text content must be a non-empty str")
        return value, len(value)
    if type(value) is not list or not value:
        raise _fail("list content must be a non-empty array")
    for v in value:
        if not (is_value(v) or (nested and _list_child(v))):
            raise _fail("unsupported value in list content")
    return value, len(value)


def _list_child(value: Any) -> bool:
    return type(value) is ChildRef and value.basis == 0


def _fields(seg: list[Any], i: int, width: int) -> list[Any]:
    """The ``width`` fields of a change starting at ``seg[i]``."""
    if i + width > len(seg):
        raise _fail("segment ends inside a change")
    return seg[i : i + width]


def _lamport(c: int, offset: int) -> int:
    value = c + offset
    if not 1 <= value <= MAX_COUNTER:
        raise _fail("Lamport time out of range")
    return value


def _simple_segment(seg: Any, replicas: list[int], key: RootKey) -> Segment | None:
    """A segment of one of the shapes of a keystroke, which nearly every segment of a
    relay's merge of keystrokes has: one delete, ``[replica, counter, DEL, ranges]``, or
    one live text run, ``[replica, counter, (LAMPORT, offset,) INS_NEXT, text]`` or
    ``[..., INS, origin, text]``, changing ``key`` (the first root, a text). Decoded with
    the checks of :func:`_decode_segment_loop` inline; None for anything else (valid or
    not), which the loop then decodes."""
    if type(seg) is not list or not 4 <= len(seg) <= 7:
        return None
    if len(seg) == 6 and seg[2] is LAMPORT and seg[4] is INS_NEXT:
        # The commonest of all: a character typed on, at a Lamport offset. (``is`` takes
        # only CPython's shared small ints, which msgpack returns: never True or 10.0; a
        # tag it misses is decoded below.)
        ri, c, _, offset, _, content = seg
        if (
            type(ri) is int
            and type(c) is int
            and type(offset) is int
            and type(content) is str
            and 0 <= ri < len(replicas)
            and content
        ):
            n = len(content)
            lamport = c + offset
            if 2 <= c <= MAX_COUNTER - n + 1 and 1 <= lamport <= MAX_COUNTER - n + 1:
                replica = replicas[ri]
                entry = (INS, c, key, lamport, (replica, c - 1), content, n, None)
                return Segment(replica, c, c + n, [entry])
        return None
    ri, c, tag = seg[0], seg[1], seg[2]
    if type(ri) is not int or not 0 <= ri < len(replicas):
        return None
    if type(c) is not int or not 1 <= c <= MAX_COUNTER:
        return None
    if type(tag) is not int:  # True == 1 and 3.0 == 3, but neither is a tag
        return None
    replica = replicas[ri]
    if tag == DEL:
        flat = seg[3]
        if len(seg) != 4 or type(flat) is not list or not flat or len(flat) % 3:
            return None
        ranges = []
        for i in range(0, len(flat), 3):
            rr, rc, n = flat[i], flat[i + 1], flat[i + 2]
            if (
                type(rr) is not int
                or not 0 <= rr < len(replicas)
                or type(rc) is not int
                or type(n) is not int
                or not 1 <= rc <= MAX_COUNTER
                or not 1 <= n <= MAX_COUNTER - rc + 1
            ):
                return None
            ranges.append((replicas[rr], rc, n))
        return Segment(replica, c, c + 1, [(DEL, c, key, ranges)])
    i = 2
    offset = 0
    if tag == LAMPORT:
        offset = seg[3]
        if type(offset) is not int or not -MAX_COUNTER <= offset <= MAX_COUNTER:
            return None
        tag = seg[4] if len(seg) > 4 and type(seg[4]) is int else None
        i = 4
    origin: Dot | None
    if tag == INS_NEXT and len(seg) == i + 2 and c >= 2:
        origin = (replica, c - 1)
    elif tag == INS and len(seg) == i + 3:
        raw = seg[i + 1]
        if raw is None:
            origin = None
        elif type(raw) is int and 0 <= raw <= c - 2:
            origin = (replica, c - 1 - raw)
        elif (
            type(raw) is list
            and len(raw) == 2
            and type(raw[0]) is int
            and 0 <= raw[0] < len(replicas)
            and type(raw[1]) is int
            and 1 <= raw[1] <= MAX_COUNTER
        ):
            origin = (replicas[raw[0]], raw[1])
        else:
            return None
    else:
        return None
    content = seg[-1]
    if type(content) is not str or not content:
        return None
    n = len(content)
    lamport = c + offset
    if c + n - 1 > MAX_COUNTER or not 1 <= lamport <= MAX_COUNTER - n + 1:
        return None
    return Segment(replica, c, c + n, [(INS, c, key, lamport, origin, content, n, None)])


def _decode_segment_loop(raw: Any, rd: _Reader) -> Segment:
    seg = _list(raw, "segment")
    if len(seg) < 2:
        raise _fail("segment needs a replica and a first counter")
    replica = rd.replica(seg[0])
    c = _int(seg[1], 1, MAX_COUNTER, "first counter")
    start = c
    entries: list[Entry] = []
    root_index = 0
    offset = 0
    key: tuple[RootKey, int] | None = None  # (the current sequence root, its index)
    set_key: tuple[RootKey, int] | None = None  # (the current set root, its index)
    i, n = 2, len(seg)

    while i < n:
        tag = seg[i]
        i += 1
        if type(tag) is not int:
            raise _fail(f"expected a change tag, got {tag!r}")
        # Inserts first: they are nearly every change of a state and of a keystroke.
        if INS <= tag <= INS_DELETED or INS_NEXT <= tag <= INS_DELETED_NEXT:
            # The hot path of loading a state: fields read in place, checks inlined.
            if key is None or key[1] != root_index:
                key = (rd.root(root_index, SEQ_KINDS), root_index)
            kind = key[0][0]
            deleted = tag in (INS_DELETED, INS_DELETED_NEXT)
            width = (1 if tag >= INS_NEXT else 2) + deleted
            if i + width > n:
                raise _fail("segment ends inside a change")
            if tag >= INS_NEXT:
                if c < 2:
                    raise _fail("no previous counter to be the origin")
                origin: Dot | None = (replica, c - 1)
            else:
                origin_raw = seg[i]
                i += 1
                if origin_raw is None:
                    origin = None
                elif type(origin_raw) is int:
                    origin = (replica, c - 1 - _int(origin_raw, 0, c - 2, "origin offset"))
                else:
                    pair = _list(origin_raw, "origin")
                    if len(pair) != 2:
                        raise _fail("origin is [replica, counter]")
                    origin = rd.dot(pair[0], pair[1])
            raw_content = seg[i]
            i += 1
            deleter = None
            if deleted and type(raw_content) is int:
                content, length = None, _int(raw_content, 1, MAX_COUNTER, "length")
            elif kind == "t" and type(raw_content) is str and raw_content:
                content, length = raw_content, len(raw_content)
            else:
                content, length = _content(raw_content, kind, rd.nested)
            if deleted:
                raw_deleter = seg[i]
                i += 1
                if type(raw_deleter) is int:
                    last = c + length - 1
                    deleter = (replica, last + _int(raw_deleter, 1, MAX_COUNTER - last, "deleter"))
                else:
                    pair = _list(raw_deleter, "deleter")
                    if len(pair) != 2:
                        raise _fail("deleter is [replica, counter]")
                    deleter = rd.dot(pair[0], pair[1])
            if c + length - 1 > MAX_COUNTER:
                raise _fail("counter overflow")
            lam = c + offset
            if not 1 <= lam <= MAX_COUNTER - length + 1:
                raise _fail("Lamport time out of range")
            entries.append((INS, c, key[0], lam, origin, content, length, deleter))
            c += length
            continue
        if tag < 0:
            count = _int(-tag, 1, MAX_COUNTER - c + 1, "skip length")
            entries.append((SKIP, c, count))
            c += count
            continue
        if tag == ROOT:
            (root_index,) = _fields(seg, i, 1)
            i += 1
            rd.root(root_index, ANY_KINDS)
            continue
        if tag == LAMPORT:
            (offset,) = _fields(seg, i, 1)
            i += 1
            offset = _int(offset, -MAX_COUNTER, MAX_COUNTER, "Lamport offset")
            continue
        if tag == DEL:
            (ranges,) = _fields(seg, i, 1)
            i += 1
            entries.append((DEL, c, rd.root(root_index, SEQ_KINDS), rd.ranges(ranges)))
        elif tag in (MAP_SET, MAP_DEL):
            width = 2 if tag == MAP_SET else 1
            fields = _fields(seg, i, width)
            i += width
            map_root = rd.root(root_index, MAP_KINDS)
            if type(fields[0]) is not str:
                raise _fail("map keys are str")
            if tag == MAP_SET:
                child = rd.nested and type(fields[1]) is ChildRef and fields[1].alias is None
                if not (child or is_value(fields[1])):
                    raise _fail("unsupported map value")
                entries.append((MAP_SET, c, map_root, _lamport(c, offset), fields[0], fields[1]))
            else:
                entries.append((MAP_DEL, c, map_root, _lamport(c, offset), fields[0]))
        elif tag == SET_ADD:
            # The hot path of loading a set: every element of a state is one of these.
            if i + 2 > n:
                raise _fail("segment ends inside a change")
            element, dots = seg[i], seg[i + 1]
            i += 2
            if set_key is None or set_key[1] != root_index:
                set_key = (rd.root(root_index, SET_KINDS), root_index)
            if not ((type(element) is str and element.isascii()) or is_element(element)):
                raise _fail("unsupported set element")
            superseded = NO_DOTS if type(dots) is list and not dots else rd.dots(dots)
            entries.append((SET_ADD, c, set_key[0], element, superseded))
        elif tag == SET_REM:
            (dots,) = _fields(seg, i, 1)
            i += 1
            entries.append((SET_REM, c, rd.root(root_index, SET_KINDS), rd.dots(dots)))
        elif tag == MARK:
            name, value, lo, hi = _fields(seg, i, 4)
            i += 4
            if not rd.nested:
                raise _fail("marks need format 2")
            if type(name) is not str or not is_value(value):
                raise _fail("a mark has a str name and a value")
            text_root = rd.root(root_index, TEXT_KINDS)
            entries.append(
                (
                    MARK,
                    c,
                    text_root,
                    _lamport(c, offset),
                    name,
                    value,
                    rd.anchor(lo),
                    rd.anchor(hi),
                )
            )
        elif tag == COUNTER:
            inc, dec = _fields(seg, i, 2)
            i += 2
            entries.append(
                (
                    COUNTER,
                    c,
                    rd.root(root_index, COUNTER_KINDS),
                    _int(inc, 0, 2**64 - 1, "total"),
                    _int(dec, 0, 2**64 - 1, "total"),
                )
            )
        else:
            raise _fail(f"unknown change tag {tag!r}")
        if c > MAX_COUNTER:
            raise _fail("counter overflow")
        c += 1
    if not entries:
        raise _fail("empty segment")
    return Segment(replica, start, c, entries)


def _decode_fact(raw: Any, rd: _Reader) -> tuple[Any, ...]:
    fact = _list(raw, "fact")
    if not fact or type(fact[0]) is not int:
        raise _fail("a fact starts with its tag")
    if fact[0] == FACT_DELETE and len(fact) == 5:
        return (
            FACT_DELETE,
            rd.root(fact[1], SEQ_KINDS),
            rd.dot(fact[2], fact[3]),
            rd.ranges(fact[4]),
        )
    if fact[0] == FACT_LIVE and len(fact) == 5:
        version: dict[int, int] = {}
        for r, c in rd.dots(fact[2]):
            version[r] = max(version.get(r, 0), c)
        touched: dict[int, int] = {}
        for r, c in rd.dots(fact[4]):
            touched[r] = max(touched.get(r, 0), c)
        return (FACT_LIVE, rd.root(fact[1], SET_KINDS), version, rd.dot_runs(fact[3]), touched)
    raise _fail("unknown fact")


#: Root table strings already parsed, so that keystroke updates reuse the same key tuple.
_ROOT_KEYS: dict[str, RootKey] = {}


def _decode_keystroke(body: Any) -> Update | None:
    """The update of one typed text insert or one delete, in exactly the shapes
    :func:`encode_keystroke` writes, decoded with every check inline; None for anything
    else (including anything invalid), which :func:`_decode_general` then handles in full."""
    if type(body) is not list or len(body) != 3:
        return None
    replicas, roots, segments = body
    if (
        type(replicas) is not list
        or type(roots) is not list
        or type(segments) is not list
        or len(roots) != 1
        or len(segments) != 1
        or not 1 <= len(replicas) <= 2
    ):
        return None
    for r in replicas:
        if type(r) is not int or not 0 <= r <= MAX_REPLICA_ID:
            return None
    if len(replicas) == 2 and replicas[0] == replicas[1]:
        return None
    raw_root = roots[0]
    key = _ROOT_KEYS.get(raw_root) if type(raw_root) is str else None
    if key is None or key[0] != "t":
        return None
    seg = _simple_segment(segments[0], replicas, key)
    return None if seg is None else Update([seg])


def _decode_body(body: Any, children: bool = False) -> Update:
    fast = None if children else _decode_keystroke(body)
    return fast if fast is not None else _decode_general(body, children)


def _decode_general(body: Any, children: bool = False) -> Update:
    """``children``: the body held child references (msgpack extensions), which only a
    format-2 body may."""
    if type(body) is not list or len(body) not in (3, 4, 5):
        raise _fail("an update is an array of 3 or 4 items (5 in format 2)")
    nested = len(body) == 5
    if nested and (body[4] != FORMAT_NESTED or type(body[4]) is not int):
        raise _fail(f"unsupported update format {body[4]!r}")
    if children and not nested:
        raise _fail("child references need format 2")
    kinds = ANY_KINDS if nested else ROOT_KINDS
    replicas = _list(body[0], "replica table")
    for r in replicas:
        _int(r, 0, MAX_REPLICA_ID, "replica id")
    if len(replicas) > 1 and len(set(replicas)) != len(replicas):
        raise _fail("duplicate replica id in the table")
    roots: list[RootKey] = []
    for raw in _list(body[1], "root table"):
        key = _ROOT_KEYS.get(raw) if type(raw) is str else None
        if key is None:
            if type(raw) is not str or not raw or raw[0] not in ANY_KINDS:
                raise _fail("a root key is a kind letter and a name")
            if raw[0] in NESTED_KINDS and not valid_child_name(raw[1:]):
                raise _fail("a nested container's key names its parent and place")
            key = (raw[0], raw[1:])
            if len(_ROOT_KEYS) < 4096:
                _ROOT_KEYS[raw] = key
        if key[0] not in kinds:
            raise _fail("nested containers need format 2")
        roots.append(key)
    rd = _Reader(replicas, roots)
    rd.nested = nested
    first = roots[0] if roots and roots[0][0] == "t" else None
    decoded = []
    for raw in _list(body[2], "segments"):
        seg = None if first is None else _simple_segment(raw, replicas, first)
        decoded.append(_decode_segment_loop(raw, rd) if seg is None else seg)
    update = Update(decoded)
    segments = update.segments
    if len(segments) > 1 and len({s.replica for s in segments}) < len(segments):
        spans = sorted((s.replica, s.start, s.end) for s in segments)
        for (r1, _, end1), (r2, start2, _) in zip(spans, spans[1:], strict=False):
            if r1 == r2 and start2 < end1:
                raise _fail("two segments of one replica overlap")
    if len(body) >= 4:
        orders: dict[RootKey, Order] = {}
        facts = update.facts
        n_replicas, n_roots = len(replicas), len(roots)
        for raw in _list(body[3], "facts"):
            if type(raw) is list and len(raw) == 5:
                # The commonest fact of a merge, the delete of one range, with the checks
                # of _decode_fact inline ([FACT_DELETE, root, replica, counter, [r, c, n]]);
                # any other shape, valid or not, goes the general way.
                tag, ri, dr, dc, flat = raw
                if (
                    tag == FACT_DELETE
                    and type(tag) is int
                    and type(ri) is int
                    and 0 <= ri < n_roots
                    and type(dr) is int
                    and 0 <= dr < n_replicas
                    and type(dc) is int
                    and 1 <= dc <= MAX_COUNTER
                    and type(flat) is list
                    and len(flat) == 3
                    and roots[ri][0] in SEQ_KINDS
                ):
                    fr, fc, fn = flat
                    if (
                        type(fr) is int
                        and 0 <= fr < n_replicas
                        and type(fc) is int
                        and type(fn) is int
                        and 1 <= fc <= MAX_COUNTER
                        and 1 <= fn <= MAX_COUNTER - fc + 1
                    ):
                        deleter = (replicas[dr], dc)
                        facts.append((FACT_DELETE, roots[ri], deleter, [(replicas[fr], fc, fn)]))
                        continue
            if type(raw) is list and raw and raw[0] == FACT_ORDER and type(raw[0]) is int:
                order = _decode_order(raw, rd)
                if order.key in orders:
                    raise _fail("two orders of one text")
                orders[order.key] = order
            else:
                facts.append(_decode_fact(raw, rd))
        if orders:
            return _take_orders(update, orders)
    return update


def _decode_order(raw: list[Any], rd: _Reader) -> Order:
    """A FACT_ORDER, checked (see crdtsync._order); its columns stay packed."""
    if len(raw) != 5:
        raise _fail("an order has five fields")
    _, root, blob, live, dead = raw
    key = rd.root(root, "t")
    if type(blob) is not bytes:
        raise _fail("an order's columns are packed in a bin")
    try:
        columns = unpack_bounded(blob)
    except (ValueError, TypeError, OverflowError, RecursionError):  # (msgpack's errors)
        raise _fail("an order's columns are not one msgpack value") from None
    try:
        return read(key, columns, blob, rd.replicas, live, dead, MAX_COUNTER)
    except OrderInvalid as exc:
        raise _fail(str(exc)) from None


def _take_orders(update: Update, orders: dict[RootKey, Order]) -> Update:
    """``update`` with the ordered texts' runs to go into the SKIPs their replicas' segments
    leave for them, which they must fit (checked here, by bisection over each replica's
    SKIPs: no step per piece). Put in when something first reads the segments (a
    :class:`DeferredUpdate`), or at once when two orders share a replica (their pieces must
    not overlap either: the general way sorts them together)."""
    update.in_order = orders
    by_replica: dict[int, list[Segment]] = {}
    for seg in update.segments:
        by_replica.setdefault(seg.replica, []).append(seg)
    owners: dict[int, int] = {}
    for order in orders.values():
        cols: Columns | None = None  # (unpacked once, if a fit needs checking)
        for r, (first, end) in order.spans.items():
            owners[r] = owners.get(r, 0) + 1
            segments = by_replica.get(r)
            if segments is None:
                raise _fail("an ordered run lies outside its replica's segments")
            if len(segments) == 1 and len(segments[0].entries) == 1:
                # (The commonest state: the replica's only change is one SKIP for them.)
                seg = segments[0]
                if seg.entries[0][0] != SKIP or first < seg.start or end > seg.end:
                    raise _fail("an ordered run overlaps a change or lies outside its segment")
            else:
                if cols is None:
                    cols, _ = order.columns()
                _check_fit(cols, r, sorted(segments, key=_START))
    if max(owners.values()) == 1:
        return DeferredUpdate.of(update)
    _fill_in(update.segments, orders)
    return update


def _check_fit(cols: Columns, replica: int, segments: list[Segment]) -> None:
    """Raise unless each of the pieces of ``replica`` lies inside one SKIP of its
    ``segments`` (in counter order)."""
    skips = [e for seg in segments for e in seg.entries if e[0] == SKIP]
    starts = [e[1] for e in skips]
    # Each piece's SKIP is the last one starting at or before it; the sentinel end in front
    # fails a piece that starts before every SKIP.
    ends = [-1, *map(operator.add, starts, map(_THIRD, skips))]
    g = cols.replicas.index(replica)
    a = sum(cols.counts[:g])
    b = a + cols.counts[g]
    firsts = cols.counters[a:b]
    lasts = map(operator.add, firsts, cols.lengths[a:b])
    holders = map(ends.__getitem__, map(bisect_right, repeat(starts), firsts))
    if not all(map(operator.le, lasts, holders)):
        raise _fail("an ordered run overlaps a change or lies outside its segment")


def _fill_in(segments: list[Segment], orders: dict[RootKey, Order]) -> None:
    """Put the ordered texts' runs into the SKIPs their replicas' segments leave for them
    (each must fall inside one), as INS entries with their origins worked out."""
    pieces: dict[int, list[Entry]] = {}
    for order in orders.values():
        for r, group in entries(order, INS).items():
            held = pieces.get(r)
            if held is None:
                pieces[r] = group
            else:
                held += group
                held.sort(key=_SECOND)  # (several texts' pieces of one replica)
    by_replica: dict[int, list[Segment]] = {}
    for seg in segments:
        by_replica.setdefault(seg.replica, []).append(seg)
    for replica, group in pieces.items():
        at = 0  # the next piece to place
        for seg in sorted(by_replica.get(replica, ()), key=_START):
            at, seg.entries = _spliced(seg, group, at)
        if at < len(group):
            raise _fail("an ordered run lies outside its replica's segments")


def _spliced(seg: Segment, group: list[Entry], at: int) -> tuple[int, list[Entry]]:
    """``seg``'s entries with ``group``'s pieces from ``at`` on put into its SKIPs."""
    if at < len(group) and group[at][1] < seg.start:
        raise _fail("an ordered run lies outside its replica's segments")
    if at == len(group) or group[at][1] >= seg.end:
        return at, seg.entries
    out: list[Entry] = []
    n = len(group)
    for e in seg.entries:
        c = e[1]
        if at < n and group[at][1] < c:
            raise _fail("an ordered run overlaps a change")
        if e[0] != SKIP:
            out.append(e)
            continue
        end = c + e[2]
        while at < n and group[at][1] < end:
            piece = group[at]
            if piece[1] < c:
                raise _fail("two ordered runs share an id")
            if piece[1] > c:
                out.append((SKIP, c, piece[1] - c))
            out.append(piece)
            c = piece[1] + piece[6]
            if c > end:
                raise _fail("an ordered run overlaps a change")
            at += 1
        if c < end:
            out.append((SKIP, c, end - c))
    if at < n and group[at][1] < seg.end:
        raise _fail("an ordered run overlaps a change")
    return at, out


_SECOND = operator.itemgetter(1)
_THIRD = operator.itemgetter(2)
_START = operator.attrgetter("start")


def _no_ext(code: int, data: bytes) -> Any:
    raise _Invalid("msgpack extension types are not used by crdtsync")


def _child_ext(code: int, data: bytes, seen: list[bool]) -> ChildRef:
    """A child reference (msgpack extension EXT_CHILD: [kind letter, basis] or, for a
    list element naming another element's child, [kind letter, 0, replica, counter])."""
    if code != EXT_CHILD or len(data) > MAX_CHILD_EXT:
        raise _Invalid("unknown msgpack extension type")
    try:
        fields = msgpack.unpackb(data, raw=False, use_list=True)
    except Exception:
        raise _Invalid("malformed child reference") from None
    if type(fields) is not list or len(fields) not in (2, 4):
        raise _Invalid("a child reference is [kind, basis] or [kind, 0, replica, counter]")
    kind, basis = fields[0], fields[1]
    if type(kind) is not str or kind not in ROOT_KINDS or len(kind) != 1:
        raise _Invalid("a child reference names a container kind")
    _int(basis, 0, MAX_COUNTER, "child basis")
    alias = None
    if len(fields) == 4:
        if basis != 0:
            raise _Invalid("an aliased child reference has basis 0")
        alias = (
            _int(fields[2], 0, MAX_REPLICA_ID, "replica id"),
            _int(fields[3], 1, MAX_COUNTER, "counter"),
        )
    seen.append(True)
    return ChildRef(kind, basis, alias)


def unpack_bounded(payload: bytes | bytearray | memoryview, ext_hook: Any = None) -> Any:
    """One msgpack value, with msgpack's own limits set from the payload's size.

    An n-byte payload holds no str or bin longer than n bytes, no array of more than n
    items and no map of more than n/2 entries, so a header claiming more is refused before
    msgpack allocates for it; the work and memory of parsing are then proportional to n.
    Extension types are refused unless ``ext_hook`` takes them (an update's child
    references), and msgpack's stack limit bounds nesting (values are checked to MAX_DEPTH
    levels afterwards). Raises what msgpack raises.
    """
    n = len(payload)
    return msgpack.unpackb(
        payload,
        raw=False,
        strict_map_key=False,
        use_list=True,
        ext_hook=_no_ext if ext_hook is None else ext_hook,
        max_str_len=n,
        max_bin_len=n,
        max_array_len=n,
        max_map_len=n // 2,
        max_ext_len=0 if ext_hook is None else MAX_CHILD_EXT,
    )


def _check_limit(max_inflated_size: Any) -> int | None:
    if max_inflated_size is None:
        return None
    if type(max_inflated_size) is not int or max_inflated_size < 1:
        raise TypeError(
            f"max_inflated_size must be a positive int or None, got {max_inflated_size!r}"
        )
    return max_inflated_size


def _inflate(data: bytes, limit: int | None) -> bytes:
    """Undo :func:`deflate_update`'s compression, refusing bodies above ``limit`` bytes
    (None: no limit)."""
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(data) if limit is None else inflater.decompress(data, limit)
    except zlib.error as exc:
        raise DecodeError(f"malformed compressed update: {exc}") from None
    # Stopped at the limit with input left, or with output still pending inside zlib.
    if limit is not None and (
        inflater.unconsumed_tail or (not inflater.eof and len(body) >= limit)
    ):
        raise DecodeError(f"compressed update inflates beyond the limit of {limit} bytes")
    if not inflater.eof or inflater.unused_data:
        raise DecodeError("malformed compressed update: truncated or trailing bytes")
    return body


#: zlib's fastest level: it compresses about four times faster than the default level 6,
#: for states about 10% larger (B4: 79.9 KB against 72.3 KB). Diffs are made on the path
#: of every resync, so their time matters more than the last bytes.
DEFLATE_LEVEL = 1


def deflate_update(data: bytes) -> bytes:
    """The same update with its body DEFLATE-compressed (second byte 0x02), when that is
    smaller; updates under :data:`DEFLATE_THRESHOLD` bytes are returned as they are."""
    if len(data) < DEFLATE_THRESHOLD or data[:2] != PREFIX:
        return data
    packed = DEFLATED_PREFIX + zlib.compress(data[2:], DEFLATE_LEVEL)
    return packed if len(packed) < len(data) else data


def decode_update(data: Any, max_inflated_size: int | None = DEFAULT_MAX_INFLATED_SIZE) -> Update:
    """Parse and fully validate an update; raise :class:`DecodeError` on any defect.

    A compressed update whose body inflates beyond ``max_inflated_size`` bytes (default
    :data:`DEFAULT_MAX_INFLATED_SIZE`, 64 MiB) is a DecodeError, found after inflating at
    most that many bytes. ``None`` lifts the limit, for bytes this program produced itself
    (a stored snapshot, say), never for bytes from a peer.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"an update is bytes, not {type(data).__name__}")
    limit = _check_limit(max_inflated_size)
    if len(data) >= BULK_BYTES:
        return without_gc(lambda: _decode_update(data, limit))
    return _decode_update(data, limit)


def _decode_update(data: bytes | bytearray | memoryview, limit: int | None) -> Update:
    magic = bytes(data[:2])
    if magic == PREFIX:
        payload = data[2:]
    elif magic == DEFLATED_PREFIX:
        payload = _inflate(bytes(data[2:]), limit)
    else:
        raise DecodeError("not a crdtsync update (bad magic or unsupported format)")
    try:
        seen: list[bool] = []
        body = unpack_bounded(payload, lambda code, data: _child_ext(code, data, seen))
        return _decode_body(body, bool(seen))
    except _Invalid as exc:
        raise DecodeError(f"malformed update: {exc}") from None
    except (
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        OverflowError,
        RecursionError,
    ) as exc:  # what msgpack raises for broken input
        raise DecodeError(f"malformed update: {type(exc).__name__}: {exc}") from None
