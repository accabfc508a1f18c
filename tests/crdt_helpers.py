"""Helpers shared by the test modules (imported as a plain module: tests/ is on sys.path)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

import crdtsync
from crdtsync import _ids, _rga

# ---------------------------------------------------------------------------------------------
# budget: scale per-test example counts with the active hypothesis profile ("ci" == 60).


def budget(n: int) -> int:
    """``n`` examples under the ci profile, proportionally more/less under other profiles."""
    return max(1, round(n * settings().max_examples / 60))


# ---------------------------------------------------------------------------------------------
# Strategies

# Characters: mostly a small alphabet (so concurrent edits collide), some astral-plane emoji
# and other non-ASCII code points (text positions are code points).
# (single code points: skin-tone modifiers and regional indicators appear separately, so
# multi-code-point emoji get built and split by edits)
EMOJI = ["😀", "🎉", "👍", "🏽", "🇫", "🇷", "𝔘", "é", "ß", "中", "\x00", "\n"]
chars = st.one_of(st.sampled_from("abcxyz "), st.sampled_from(EMOJI))
small_text = st.text(alphabet=chars, min_size=1, max_size=6)
# Lone surrogates cannot be UTF-8 encoded, so crdtsync refuses them (tested separately).
encodable_chars = st.characters(exclude_categories=["Cs"])
any_text = st.text(alphabet=encodable_chars, min_size=1, max_size=8)

int64 = st.integers(-(2**63), 2**63 - 1)
finite_floats = st.floats(allow_nan=False)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    int64,
    finite_floats,
    st.text(alphabet=encodable_chars, max_size=8),
    st.binary(max_size=8),
)
# Values allowed in List and LWWMap: scalars and (nested) lists / str-keyed dicts of them.
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(encodable_chars, max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
# Set elements that never compare equal across types (1 == True == 1.0 in Python).
set_elements = st.one_of(
    st.none(), st.integers(-5, 5), st.text(encodable_chars, max_size=3), st.binary(max_size=2)
)
replica_ids = st.one_of(st.integers(0, 20), st.integers(0, 2**64 - 1))


def distinct_ids(n: int):
    return st.lists(replica_ids, min_size=n, max_size=n, unique=True)


# ---------------------------------------------------------------------------------------------
# Exact (type-aware) value comparison: True != 1 != 1.0, b"a" != "a", -0.0 != 0.0.


def tag(v: Any) -> Any:
    if v is None:
        return ("none",)
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, float):
        return ("float", v.hex() if not math.isnan(v) else "nan")
    if isinstance(v, str):
        return ("str", v)
    if isinstance(v, bytes | bytearray | memoryview):
        return ("bytes", bytes(v))
    if isinstance(v, list | tuple):
        return ("list", tuple(tag(x) for x in v))
    if isinstance(v, dict):
        return ("dict", frozenset((k, tag(x)) for k, x in v.items()))
    raise AssertionError(f"unexpected value type in document: {type(v).__name__}: {v!r}")


# ---------------------------------------------------------------------------------------------
# A document with one root of every type under fixed names.

TEXT, LIST, SET, MAP, COUNTER = "t", "l", "s", "m", "c"


def roots(doc: crdtsync.Doc):
    return (
        doc.text(TEXT),
        doc.list(LIST),
        doc.set(SET),
        doc.map(MAP),
        doc.counter(COUNTER),
    )


def snapshot(doc: crdtsync.Doc) -> dict[str, Any]:
    """Every root's value, in an exactly comparable form."""
    t, lst, s, m, c = roots(doc)
    text = str(t)
    assert len(text) == len(t)
    items = list(lst)
    assert len(items) == len(lst)
    elements = list(s)
    assert len(elements) == len(s) == len({tag(e) for e in elements}), "set iterates duplicates"
    keys = list(m)
    assert len(keys) == len(m) == len(set(keys))
    mapping = dict(m.items())
    assert sorted(mapping) == sorted(keys)
    return {
        TEXT: text,
        LIST: tag(items),
        SET: frozenset(tag(e) for e in elements),
        MAP: tag(mapping),
        COUNTER: c.value,
    }


def fresh_from(update: bytes, **kw: Any) -> crdtsync.Doc:
    d = crdtsync.Doc(**kw)
    d.apply_update(update)
    return d


def sync_all(docs: Sequence[crdtsync.Doc]) -> None:
    """Bring every doc level using get_update(since=version) both ways through docs[0]."""
    hub = docs[0]
    for d in docs[1:]:
        hub.apply_update(d.get_update(hub.version))
    for d in docs[1:]:
        d.apply_update(hub.get_update(d.version))


def sync_pair(a: crdtsync.Doc, b: crdtsync.Doc) -> None:
    b.apply_update(a.get_update(b.version))
    a.apply_update(b.get_update(a.version))


class Recorder:
    """Captures the updates a doc emits through on_update."""

    def __init__(self, doc: crdtsync.Doc) -> None:
        self.updates: list[bytes] = []
        self.origins: list[Any] = []
        self.unsubscribe = doc.on_update(self._cb)

    def _cb(self, update: bytes, origin: Any) -> None:
        assert isinstance(update, bytes | bytearray), type(update)
        self.updates.append(bytes(update))
        self.origins.append(origin)

    def take(self) -> list[bytes]:
        out, self.updates, self.origins = self.updates, [], []
        return out


def random_edit_all(doc: crdtsync.Doc, rnd: random.Random, n: int = 1) -> None:
    """n random local operations over all root types (each its own transaction)."""
    t, lst, s, m, c = roots(doc)
    for _ in range(n):
        op = rnd.randrange(9)
        if op == 0 or (op == 1 and len(t) == 0):
            t.insert(rnd.randint(0, len(t)), rnd.choice(["a", "bc", "😀", "xyz", "é"]))
        elif op == 1:
            i = rnd.randrange(len(t))
            t.delete(i, rnd.randint(1, len(t) - i))
        elif op == 2 or (op == 3 and len(lst) == 0):
            lst.insert(rnd.randint(0, len(lst)), rnd.choice([1, "v", None, [1, {"k": b"x"}], 2.5]))
        elif op == 3:
            del lst[rnd.randrange(len(lst))]
        elif op == 4:
            s.add(rnd.choice(["a", "b", 1, b"z", None]))
        elif op == 5:
            s.discard(rnd.choice(["a", "b", 1, b"z", None]))
        elif op == 6:
            m[rnd.choice("pqr")] = rnd.choice([1, "w", [True, None], {"x": 1.5}])
        elif op == 7:
            k = rnd.choice("pqr")
            if k in m:
                del m[k]
        else:
            if rnd.random() < 0.5:
                c.increment(rnd.randint(1, 5))
            else:
                c.decrement(rnd.randint(1, 5))


def apply_text_delta(old: str, delta: Iterable[dict[str, Any]]) -> str:
    out: list[str] = []
    pos = 0
    for op in delta:
        assert len(op) == 1, f"delta op with several keys: {op!r}"
        if "retain" in op:
            n = op["retain"]
            assert isinstance(n, int) and n > 0, op
            assert pos + n <= len(old), (old, list(delta))
            out.append(old[pos : pos + n])
            pos += n
        elif "delete" in op:
            n = op["delete"]
            assert isinstance(n, int) and n > 0, op
            assert pos + n <= len(old), (old, list(delta))
            pos += n
        elif "insert" in op:
            s = op["insert"]
            assert isinstance(s, str) and s, op
            out.append(s)
        else:
            raise AssertionError(f"unknown delta op {op!r}")
    out.append(old[pos:])
    return "".join(out)


def apply_list_delta(old: list[Any], delta: Iterable[dict[str, Any]]) -> list[Any]:
    out: list[Any] = []
    pos = 0
    for op in delta:
        assert len(op) == 1, f"delta op with several keys: {op!r}"
        if "retain" in op:
            n = op["retain"]
            assert isinstance(n, int) and n > 0, op
            assert pos + n <= len(old)
            out.extend(old[pos : pos + n])
            pos += n
        elif "delete" in op:
            n = op["delete"]
            assert isinstance(n, int) and n > 0, op
            assert pos + n <= len(old)
            pos += n
        elif "insert" in op:
            vals = op["insert"]
            assert isinstance(vals, list) and vals, op
            out.extend(vals)
        else:
            raise AssertionError(f"unknown delta op {op!r}")
    out.extend(old[pos:])
    return out


# ---------------------------------------------------------------------------------------------
# The sequence engine's bookkeeping, checked against its runs.


def check_sequence(seq: _rga.Sequence) -> None:
    """Every derived structure of ``seq`` agrees with its runs."""
    held = seq._held_delta
    assert held == 0 or seq._held is not None
    # The structure as it stands, before any query flushes the held change or rebuilds a
    # dropped tree: numbering, sizes, lengths, and each tree that is built.
    assert seq.chunks
    for c, chunk in enumerate(seq.chunks):
        assert chunk.index == c
        assert 0 < len(chunk.blocks) <= _rga.MAX_CHUNK_BLOCKS
        lengths = []
        for i, block in enumerate(chunk.blocks):
            assert block.chunk is chunk and block.index == i
            assert 0 < len(block.runs) <= _rga.MAX_BLOCK_RUNS or len(seq.blocks) == 1
            assert block.vis == sum(r.length for r in block.runs if not r.deleted)
            keys = [(r.lamport, r.replica) for r in block.runs]
            assert block.low <= min(keys, default=_rga._NO_RUNS)
            # What the trees hold for it: its length less a change held back.
            lengths.append(block.vis - (held if block is seq._held else 0))
        assert chunk.vis == sum(lengths)
        if chunk.fen is not None:
            assert chunk.fen == _rga._fenwick(lengths)
    if seq._top is not None:
        assert seq._top == _rga._fenwick([chunk.vis for chunk in seq.chunks])
    # Every run reached by a plain walk, and every query agreeing with that walk.
    walk: list[tuple[_rga.Block, int]] = []  # (block, offset in it) for each position
    total = 0
    for block in seq.blocks:
        assert seq._block_start(block) == total
        start = total
        for run in block.runs:
            assert run.block is block and run.seq is seq and run.length > 0
            assert seq.ids.find(run.replica, run.counter) is run
            assert seq.ids.find(run.replica, run.counter + run.length - 1) is run
            if not run.deleted:
                assert seq.position_of(run) == total
                assert seq.locate(total) == (run, 0)
                walk.extend((block, total - start + k) for k in range(run.length))
                total += run.length
    assert seq.vis_len == total == sum(chunk.vis for chunk in seq.chunks)
    for pos in range(total):  # the Fenwick descents agree with the plain walk
        assert seq._find_block(pos) == walk[pos]
        run, offset = seq.locate(pos)
        assert seq.position_of(run) + offset == pos
    for after, before in zip(seq.blocks[1:], seq.blocks, strict=False):
        assert seq._next_block(before) is after
    assert seq._next_block(seq.blocks[-1]) is None


def check_ids(doc: crdtsync.Doc) -> None:
    """Each replica's runs sorted, in one list or in chunks (non-empty, within size, firsts
    in step), and every look-up agreeing with them."""
    ids = doc._ids
    for replica in ids.replicas():
        if replica in ids._chunked:
            ch = ids._chunked[replica]
            assert replica not in ids._starts
            assert ch.firsts == [starts[0] for starts in ch.starts]
            assert all(0 < len(chunk) <= _ids.MAX_CHUNK for chunk in ch.runs)
            flat = [c for starts in ch.starts for c in starts]
            runs = [run for chunk in ch.runs for run in chunk]
        else:
            flat, runs = ids._starts[replica], ids._runs[replica]
            assert 0 < len(flat) <= _ids.MAX_CHUNK
        assert flat == sorted(flat) == [run.counter for run in runs]
        assert list(ids.runs_from(replica, 0)) == runs
        for left, right in zip(runs, runs[1:], strict=False):
            assert left.counter + left.length <= right.counter
            assert ids.next_start(replica, left.counter) == right.counter
