"""Whole states carry each long text as columns with the document order
(``FACT_ORDER``, crdtsync._order), and a document that holds none of such a text takes it
whole, building its runs only when something needs them.

The order implies every origin (the nearest older element to the left), so the first
property checks that claim on documents the engine built itself; the others check that a
state in this form decodes to the same entries as the per-replica form, that it loads to
the same document (taken whole into an empty text, or integrated the ordinary way into
one that holds some of it), that a text taken whole answers every call as a built one
does, whichever call comes first, and that a broken order is a DecodeError that changes
nothing.
"""

from __future__ import annotations

import random
from typing import Any

import msgpack
import pytest
from crdt_helpers import budget
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync import _encoding as enc
from crdtsync import _state


@pytest.fixture(autouse=True, scope="module")
def _every_text_in_order() -> Any:
    """Short texts too (a whole state orders only texts of MIN_ORDER_RUNS runs or more)."""
    saved = _state.MIN_ORDER_RUNS
    _state.MIN_ORDER_RUNS = 1
    yield
    _state.MIN_ORDER_RUNS = saved


def _per_replica_state(doc: crdtsync.Doc) -> bytes:
    """``doc``'s whole state in the per-replica form (no text in order)."""
    saved = _state.MIN_ORDER_RUNS
    _state.MIN_ORDER_RUNS = 10**9
    try:
        return doc.get_update()
    finally:
        _state.MIN_ORDER_RUNS = saved


def _deferred(doc: crdtsync.Doc, name: str = "t") -> bool:
    return type(doc.text(name)._seq).__name__ == "_Deferred"


ops = st.lists(
    st.tuples(
        st.integers(0, 2),  # which replica
        st.sampled_from(["ins", "ins", "del", "sync", "other"]),
        st.integers(0, 10_000),
        st.text("abcxyz", min_size=1, max_size=5),
    ),
    max_size=60,
)


def _edit(docs: list[crdtsync.Doc], script: list[tuple[int, str, int, str]]) -> None:
    for who, op, at, s in script:
        doc = docs[who]
        text = doc.text("t")
        if op == "ins":
            text.insert(at % (len(text) + 1), s)
        elif op == "del" and len(text):
            i = at % len(text)
            text.delete(i, min(len(s), len(text) - i))
        elif op == "sync":
            other = docs[(who + 1) % len(docs)]
            doc.apply_update(other.get_update(doc.version))
        elif op == "other":  # (other sequences' changes between the text's, same replica)
            doc.list("l").append(at)
            doc.map("m").text("n").insert(0, s)


def _docs(gc: bool) -> list[crdtsync.Doc]:
    return [crdtsync.Doc(replica_id=r, gc=gc) for r in (11, 2**63 + 5, 7)]


def _implied_origins(runs: list[Any]) -> list[tuple[int, int] | None]:
    """The nearest element to the left older by (lamport, replica), element by element."""
    elements = [
        (run.replica, run.counter + k, run.lamport + k) for run in runs for k in range(run.length)
    ]
    out = []
    for i, (r, _, lam) in enumerate(elements):
        origin = None
        for j in range(i - 1, -1, -1):
            rj, cj, lj = elements[j]
            if (lj, rj) < (lam, r):
                origin = (rj, cj)
                break
        out.append(origin)
    return out


@settings(max_examples=budget(40))
@given(ops, st.booleans())
def test_the_document_order_implies_every_origin(script: Any, gc: bool) -> None:
    docs = _docs(gc)
    _edit(docs, script)
    for doc in docs:
        runs = list(doc.text("t")._seq.runs())
        true_origins = [
            run.origin if k == 0 else (run.replica, run.counter + k - 1)
            for run in runs
            for k in range(run.length)
        ]
        assert _implied_origins(runs) == true_origins


@settings(max_examples=budget(60))
@given(ops, st.booleans(), st.integers(0, 2**32))
def test_a_state_in_document_order_loads_to_the_same_document(
    script: Any, gc: bool, seed: int
) -> None:
    docs = _docs(gc)
    _edit(docs, script)
    a = docs[0]
    a.map("m")["k"] = 1  # other roots ride along in the per-replica form
    state = a.get_update()
    fresh = crdtsync.Doc(replica_id=99, gc=gc)
    fresh.apply_update(state)
    assert str(fresh.text("t")) == str(a.text("t"))
    assert fresh.version == a.version
    assert fresh.get_update() == state
    assert fresh.map("m")["k"] == 1 and fresh.to_py() == a.to_py()
    # Edits after the load go on converging with the source.
    rng = random.Random(seed)
    for doc in (fresh, a):
        text = doc.text("t")
        text.insert(rng.randint(0, len(text)), "Q")
    fresh.apply_update(a.get_update(fresh.version))
    a.apply_update(fresh.get_update(a.version))
    assert str(fresh.text("t")) == str(a.text("t"))
    # A replica holding part of it already takes the state the ordinary way.
    part = docs[1]
    part.apply_update(state)
    part.apply_update(a.get_update(part.version))
    a.apply_update(part.get_update(a.version))
    assert str(part.text("t")) == str(a.text("t"))
    assert part.version == a.version


@settings(max_examples=budget(60))
@given(ops, st.booleans())
def test_an_ordered_state_decodes_to_the_entries_of_the_per_replica_form(
    script: Any, gc: bool
) -> None:
    docs = _docs(gc)
    _edit(docs, script)
    a = docs[0]
    a.text("u").insert(0, "second text")  # two ordered texts, one replica in both
    a.map("m")["k"] = 1
    ordered = enc.decode_update(a.get_update())
    plain = enc.decode_update(_per_replica_state(a))
    assert ordered.in_order is not None and plain.in_order is None
    # The per-replica form folds a replica's adjacent tombstones under the latest of
    # their deleters; the order keeps each run's own.
    assert _elements(ordered, exact=False) == _elements(plain, exact=False)
    held = [
        (run.replica, run.counter + k, run.lamport + k, run.deleter)
        for name in ("t", "u")
        for run in a.text(name)._seq.runs()
        for k in range(run.length)
    ]
    assert sorted(held) == sorted(
        (e[0], e[1], e[3], e[6]) for e in _elements(ordered) if len(e) == 7 and e[2][0] == "t"
    )
    assert [(s.replica, s.start, s.end) for s in ordered.segments] == [
        (s.replica, s.start, s.end) for s in plain.segments
    ]
    assert ordered.facts == plain.facts


def _meaning(value: Any) -> Any:
    """An update as what it says (runs may be cut differently), anything else as is."""
    if not isinstance(value, bytes):
        return value
    update = enc.decode_update(value)
    return sorted(map(repr, _elements(update, exact=False))), sorted(map(repr, update.facts))


def _elements(update: enc.Update, exact: bool = True) -> list[Any]:
    """Every change, an insert element by element (a run may be cut in two places);
    ``exact=False``: whether an element is deleted, not by whom."""
    out: list[Any] = []
    for seg in update.segments:
        for e in seg.entries:
            if e[0] == enc.SKIP:
                continue
            if e[0] != enc.INS:
                out.append((seg.replica, e))
                continue
            _, c, key, lam, origin, content, n, deleter = e
            for k in range(n):
                out.append(
                    (
                        seg.replica,
                        c + k,
                        key,
                        lam + k,
                        origin if k == 0 else (seg.replica, c + k - 1),
                        None if content is None else content[k],
                        deleter if exact else deleter is not None,
                    )
                )
    return out


def _calls(rng: random.Random) -> list[tuple[str, Any]]:
    """Calls on a text and its document, each returning something comparable."""
    return [
        ("str", lambda d: str(d.text("t"))),
        ("len", lambda d: len(d.text("t"))),
        (
            "item",
            lambda d: d.text("t")[rng.randrange(len(d.text("t")))] if len(d.text("t")) else "",
        ),
        ("slice", lambda d: d.text("t")[1:-1]),
        ("iter", lambda d: "".join(d.text("t"))),
        ("in", lambda d: "ab" in d.text("t")),
        ("delta", lambda d: d.text("t").to_delta()),
        ("version", lambda d: dict(d.version)),
        ("cursor", lambda d: d.text("t").cursor(len(d.text("t")) // 2).index),
        ("insert", lambda d: d.text("t").insert(len(d.text("t")) // 3, "Z")),
        ("delete", lambda d: d.text("t").delete(0, min(2, len(d.text("t"))))),
        ("format", lambda d: d.text("t").format(0, len(d.text("t")), {"b": True})),
        ("state", lambda d: crdtsync.Doc(replica_id=5).apply_update(d.get_update())),
        ("diff", lambda d: d.get_update({11: 1})),
    ]


@settings(max_examples=budget(60))
@given(ops, st.booleans(), st.integers(0, 2**32))
def test_a_text_taken_whole_answers_every_call_as_a_built_one(
    script: Any, gc: bool, seed: int
) -> None:
    docs = _docs(gc)
    _edit(docs, script)
    docs[0].text("u").insert(0, "another")
    state = docs[0].get_update()
    plain = _per_replica_state(docs[0])
    rng = random.Random(seed)
    calls = _calls(rng)
    first = rng.randrange(len(calls))
    order = [first, *rng.sample(range(len(calls)), len(calls))]
    lazy = crdtsync.Doc(replica_id=99, gc=gc)
    lazy.apply_update(state)
    built = crdtsync.Doc(replica_id=99, gc=gc)
    built.apply_update(plain)
    assert not _deferred(built)
    if len(docs[0].text("t")):
        assert _deferred(lazy) and _deferred(lazy, "u")
    for i in order:
        name, call = calls[i]
        state_before = rng.getstate()
        got = call(lazy)
        rng.setstate(state_before)
        assert _meaning(got) == _meaning(call(built)), name
        assert str(lazy.text("u")) == str(built.text("u"))
    assert _meaning(lazy.get_update()) == _meaning(built.get_update())
    # A peer's edit after all that reaches both alike.
    peer = docs[1]
    peer.text("t").insert(0, "P")
    for doc in (lazy, built):
        doc.apply_update(peer.get_update(doc.version))
    assert str(lazy.text("t")) == str(built.text("t"))


def test_reading_a_text_taken_whole_builds_nothing() -> None:
    a = crdtsync.Doc(replica_id=1)
    a.text("t").insert(0, "hello world")
    a.text("t").delete(2, 3)
    a.text("u").insert(0, "second")
    b = crdtsync.Doc(replica_id=2)
    b.apply_update(a.get_update())
    assert _deferred(b) and _deferred(b, "u")
    assert str(b.text("t")) == "he world" and len(b.text("t")) == 8
    assert b.to_py()["t"] == "he world" and dict(b.version) == dict(a.version)
    assert _deferred(b) and _deferred(b, "u")
    # The first look-up by id builds every text taken whole (they share the id index).
    b.text("u").insert(0, ">")
    assert not _deferred(b) and not _deferred(b, "u")
    assert str(b.text("t")) == "he world" and str(b.text("u")) == ">second"


def test_an_observed_or_started_text_is_not_taken_whole() -> None:
    a = crdtsync.Doc(replica_id=1)
    a.text("t").insert(0, "hello world")
    state = a.get_update()
    c = crdtsync.Doc(replica_id=3)
    seen: list[Any] = []
    c.text("t").observe(seen.append)
    c.apply_update(state)
    assert not _deferred(c) and str(c.text("t")) == "hello world" and seen
    d = crdtsync.Doc(replica_id=4)
    d.text("t").insert(0, "mine")
    d.apply_update(state)
    assert not _deferred(d) and sorted(str(d.text("t"))) == sorted("minehello world")


def _body_of(update: bytes) -> Any:
    """An update's body, unpacked (inflated first if it came compressed)."""
    import zlib

    body = update[2:] if update[1] == 1 else zlib.decompress(update[2:])
    return msgpack.unpackb(body, strict_map_key=False)


def _order_fact(state: bytes) -> tuple[list[Any], list[Any], list[Any]]:
    """The body, the order fact and its unpacked columns."""
    unpacked = _body_of(state)
    fact = next(f for f in unpacked[3] if f[0] == enc.FACT_ORDER)
    return unpacked, fact, msgpack.unpackb(fact[2])


def _with(body: list[Any], fact: list[Any], columns: list[Any] | None, **fields: Any) -> bytes:
    changed = list(fact)
    if columns is not None:
        changed[2] = msgpack.packb(columns)
    for name, value in fields.items():
        changed[{"live": 3, "dead": 4, "blob": 2}[name]] = value
    copy = [*body[:3], [changed if f is fact else f for f in body[3]]]
    return enc.PREFIX + msgpack.packb(copy)


def _broken_variants(state: bytes) -> list[bytes]:
    body, fact, cols = _order_fact(state)
    out = []
    # Column by column: a wrong type, a wrong length, out of range, inconsistent text.
    for index, value in [
        (0, [99] * len(cols[0])),  # replica index out of range
        (1, [c + 1 for c in cols[1]]),  # counts that do not add up
        (2, [*cols[2], 1]),  # columns of different lengths
        (2, ["x"] * len(cols[2])),  # not integers
        (2, [1.5] + cols[2][1:]),  # not integers (a float)
        (2, [-5] * len(cols[2])),  # a counter below 1 (or two pieces with one id)
        (3, [0, -cols[2][0] - 10]),  # a Lamport time below 1
        (3, [1, 0, 0, 0]),  # Lamport jumps out of piece order
        (3, [len(cols[4]), 1]),  # a Lamport jump past the last piece
        (3, [0]),  # not pairs
        (4, [0] * len(cols[4])),  # lengths of 0
        (5, [7] * len(cols[5])),  # unknown state
        (6, [0] * len(cols[6])),  # places that are no order
        (7, [*cols[7][:-1], cols[7][-1] + 1]),  # a deleter too many
        (7, [*cols[7], 0, 0]),  # a run of no deleters
        (7, [99, cols[7][1], *cols[7][2:]]),  # a deleter's replica out of range
        (8, [10**19] * len(cols[8])),  # deleter counters out of range
    ]:
        broken = list(cols)
        broken[index] = value
        out.append(_with(body, fact, broken))
    out.append(_with(body, fact, cols[:-1]))  # a column missing
    out.append(_with(body, fact, None, live=fact[3] + "extra"))  # more characters than pieces
    out.append(_with(body, fact, None, dead=7))  # not a string
    out.append(_with(body, fact, None, blob=[1, 2]))  # not packed
    out.append(_with(body, fact, None, blob=b"\xc1"))  # not msgpack
    return out


def _two_replicas_text() -> crdtsync.Doc:
    """A document (gc off) whose text two replicas wrote and one deleted from."""
    a = crdtsync.Doc(replica_id=1, gc=False)
    b = crdtsync.Doc(replica_id=2)
    a.text("t").insert(0, "abcdef")
    b.apply_update(a.get_update())
    b.text("t").insert(3, "XYZ")
    a.text("t").delete(1, 2)
    a.apply_update(b.get_update(a.version))
    return a


def test_a_broken_order_is_a_decode_error_that_changes_nothing() -> None:
    state = _two_replicas_text().get_update()
    fresh = crdtsync.Doc(replica_id=3)
    fresh.apply_update(state)  # (the unbroken state loads)
    for k, bad in enumerate(_broken_variants(state)):
        target = crdtsync.Doc(replica_id=4)
        with pytest.raises(crdtsync.DecodeError):
            target.apply_update(bad)
            print("variant", k, "was taken")
        assert dict(target.version) == {} and str(target.text("t")) == ""


def _one_text(pieces: list[tuple[int, int, int, int, int]], live: str) -> bytes:
    """A state of one text from (replica index, counter, Lamport time, length, place)
    pieces, listed in id order, all live; replicas 1 and 2."""
    reps: list[int] = []
    counts: list[int] = []
    steps, offsets, lens, moves = [], [], [], []
    last: dict[int, tuple[int, int, int]] = {}
    place = 0
    for r, c, lam, n, p in pieces:
        if reps and reps[-1] == r:
            counts[-1] += 1
        else:
            reps.append(r)
            counts.append(1)
        end, off = (last[r][0], last[r][1]) if r in last else (1, 0)
        steps.append(c - end)
        if lam - c != off:
            offsets += (len(lens), (lam - c) - off)
        lens.append(n)
        moves.append(p - place)
        place = p
        last[r] = (c + n, lam - c, 0)
    columns = [reps, counts, steps, offsets, lens, [0] * len(lens), moves, [], []]
    fact = [enc.FACT_ORDER, 0, msgpack.packb(columns), live, ""]
    segments = [
        [r, 1, -max(c + n - 1 for rr, c, _, n, _ in pieces if rr == r)] for r in sorted(set(reps))
    ]
    return enc.PREFIX + msgpack.packb([[1, 2], ["tt"], segments, [fact]])


def test_an_implied_origin_must_be_strictly_older() -> None:
    # Two replicas' pieces at one Lamport time, the older replica first: the second's
    # implied origin would be the first, at the same Lamport time.
    bad = _one_text([(0, 1, 1, 1, 0), (1, 1, 1, 1, 1)], "ab")
    with pytest.raises(crdtsync.DecodeError, match="not older"):
        crdtsync.Doc(replica_id=3).apply_update(bad)
    # The other way round (newer replica first) is a valid order: two siblings.
    good = _one_text([(0, 1, 1, 1, 1), (1, 1, 1, 1, 0)], "ba")
    doc = crdtsync.Doc(replica_id=3)
    doc.apply_update(good)
    assert str(doc.text("t")) == "ba"
    doc.text("t").insert(1, "-")
    assert str(doc.text("t")) == "b-a"
    # One replica's two pieces with one id, or out of counter order.
    for pieces in ([(0, 1, 1, 2, 0), (0, 2, 5, 1, 1)], [(0, 3, 3, 1, 0), (0, 1, 1, 1, 1)]):
        with pytest.raises(crdtsync.DecodeError, match="share an id"):
            crdtsync.Doc(replica_id=3).apply_update(
                _one_text(pieces, "abc"[: 3 - (pieces[0][3] == 1)])
            )
    # Lamport times that fall as counters rise.
    bad = _one_text([(0, 1, 5, 1, 0), (0, 2, 3, 1, 1)], "ab")
    with pytest.raises(crdtsync.DecodeError, match="rise"):
        crdtsync.Doc(replica_id=3).apply_update(bad)


def test_a_gc_document_drops_the_kept_characters_of_a_text_taken_whole() -> None:
    a = crdtsync.Doc(replica_id=1, gc=False)
    a.text("t").insert(0, "hello world")
    a.text("t").delete(0, 6)
    state = a.get_update()
    lazy = crdtsync.Doc(replica_id=2, gc=True)
    lazy.apply_update(state)
    built = crdtsync.Doc(replica_id=2, gc=True)
    built.apply_update(_per_replica_state(a))
    assert _deferred(lazy)
    assert lazy.get_update() == built.get_update()
    assert [r.content for r in lazy.text("t")._seq.runs()] == [None, "world"]


def test_a_text_whose_ids_the_document_holds_as_something_else_is_refused() -> None:
    # Two documents under one replica id (a copied profile, say): the second's text takes
    # counters the first gave a map entry, which the receiver already holds. Taken whole,
    # those ids would be two things at once; the ordinary way refuses the state.
    first = crdtsync.Doc(replica_id=1)
    first.map("m")["k"] = 1
    second = crdtsync.Doc(replica_id=1)
    second.text("t").insert(0, "hello")
    second.text("t").insert(2, "--")
    for state in (second.get_update(), _per_replica_state(second)):
        doc = crdtsync.Doc(replica_id=2)
        doc.apply_update(first.get_update())
        before = doc.get_update()
        with pytest.raises(crdtsync.DecodeError, match="does not continue"):
            doc.apply_update(state)
        assert doc.get_update() == before and str(doc.text("t")) == ""


def test_a_mixed_document_keeps_its_text_deferred_while_other_sequences_change() -> None:
    # One replica's changes to a long text, a list and a nested text, interleaved: its
    # segment holds the other sequences' entries around the SKIPs the text's runs fill.
    a = crdtsync.Doc(replica_id=1)
    rng = random.Random(7)
    t, lst, nested = a.text("t"), a.list("l"), a.map("m").text("n")
    for i in range(300):
        t.insert(rng.randint(0, len(t)), "xy")
        if i % 5 == 0:
            lst.append(i)
            nested.insert(len(nested), "n")
        if i % 3 == 0 and len(t) > 2:
            t.delete(rng.randrange(len(t) - 1))
    lazy = crdtsync.Doc(replica_id=2)
    lazy.apply_update(a.get_update())
    assert _deferred(lazy) and lazy.to_py() == a.to_py()
    # The other sequences take local and remote edits (id look-ups, runs added) while the
    # text stays unbuilt.
    lazy.list("l").append("mine")
    lazy.map("m").text("n").insert(0, ">")
    before = a.version
    a.list("l").insert(0, "theirs")
    nested.insert(3, "+")
    lazy.apply_update(a.get_update(before))
    assert _deferred(lazy)
    # A remote edit to the text looks its origin up by id: that builds it, and finds it.
    before = a.version
    t.insert(11, "Q")
    lazy.apply_update(a.get_update(before))
    assert not _deferred(lazy)
    a.apply_update(lazy.get_update(a.version))
    assert lazy.to_py() == a.to_py()


def test_a_mixed_state_whose_text_overlaps_another_change_is_refused() -> None:
    a = crdtsync.Doc(replica_id=1)  # (gc: deleted pieces carry only a length)
    t, lst = a.text("t"), a.list("l")
    for i in range(40):
        t.insert(len(t) // 2, "ab")
        lst.append(i)
        t.delete(len(t) // 3)
    state = a.get_update()
    crdtsync.Doc(replica_id=2).apply_update(state)  # (the unbroken state loads)
    body, fact, cols = _order_fact(state)
    k = cols[5].index(2)  # a deleted piece: one longer, the later ones move up one counter
    cols[4][k] += 1
    target = crdtsync.Doc(replica_id=3)
    with pytest.raises(crdtsync.DecodeError, match="overlaps a change"):
        target.apply_update(_with(body, fact, cols))
    assert dict(target.version) == {} and target.to_py() == {}


def _bools_in(value: Any) -> int:
    """How many bools ``value`` holds, inside packed order columns too."""
    if type(value) is bool:
        return 1
    if type(value) is bytes:
        try:
            return _bools_in(msgpack.unpackb(value))
        except Exception:
            return 0
    if type(value) is list:
        return sum(map(_bools_in, value))
    return 0


def test_a_bool_in_an_order_column_counts_as_its_integer_and_goes_no_further() -> None:
    """Whole-column checks cannot tell ``true`` from 1 (docs/format.md, section 4.1): a
    reader takes it as that integer, and nothing it writes afterwards holds a bool."""
    a = _two_replicas_text()
    state = a.get_update()
    body, fact, cols = _order_fact(state)
    swapped = 0
    for col in cols:  # the first 0 or 1 of every column that has one becomes a bool
        k = next((i for i, v in enumerate(col) if v in (0, 1)), None)
        if k is not None:
            col[k] = bool(col[k])
            swapped += 1
    assert swapped >= 6
    sly = _with(body, fact, cols)
    assert _bools_in(_body_of(sly)) == swapped
    taker = crdtsync.Doc(replica_id=3)
    taker.apply_update(sly)
    assert str(taker.text("t")) == str(a.text("t"))
    taker.text("t").insert(0, ">")  # builds the runs
    runs = list(taker.text("t")._seq.runs())
    assert all(type(r.length) is int and type(r.counter) is int for r in runs)
    assert all(type(r.lamport) is int for r in runs)
    peer = crdtsync.Doc(replica_id=4)
    peer.apply_update(state)
    for update in (taker.get_update(), taker.get_update(peer.version), taker.get_update({1: 2})):
        assert _bools_in(_body_of(update)) == 0
    peer.apply_update(taker.get_update(peer.version))
    assert str(peer.text("t")) == str(taker.text("t"))
    expanded = crdtsync.Doc(replica_id=5)
    expanded.text("t").insert(0, "own")  # not blank: the order is expanded into entries
    expanded.apply_update(sly)
    runs = list(expanded.text("t")._seq.runs())
    assert all(type(r.length) is int for r in runs)
    assert _bools_in(_body_of(expanded.get_update())) == 0


def test_a_dropped_tombstone_whose_length_came_as_a_bool_reaches_a_peer_as_an_int() -> None:
    a = crdtsync.Doc(replica_id=1)
    a.text("t").insert(0, "abcdef")
    a.text("t").delete(2, 1)  # a one-character tombstone, its character dropped
    body, fact, cols = _order_fact(a.get_update())
    cols[4][cols[4].index(1)] = True
    taker = crdtsync.Doc(replica_id=3)
    taker.apply_update(_with(body, fact, cols))
    taker.text("t").insert(0, ">")
    peer = crdtsync.Doc(replica_id=4)
    # The peer claims the ">" already, so what it gets is replica 1's runs in the
    # per-replica form, where the tombstone's length is written as an int field.
    peer.apply_update(taker.get_update({3: 1}))
    assert str(peer.text("t")) == "abdef"
