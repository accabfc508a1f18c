"""Whole states carry each text in document order (``FACT_ORDER``, crdtsync._order).

The order implies every origin (the nearest older element to the left), so the first
property checks that claim on documents the engine built itself; the others check that a
state in this form loads to the same document, by the one-pass build into an empty text
and by ordinary integration into one that already has some of it, and that a broken
order is a DecodeError that changes nothing.
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
from crdtsync._integrate import _build_in_order


@pytest.fixture(autouse=True, scope="module")
def _every_text_in_order() -> Any:
    """Short texts too (a whole state orders only texts of MIN_ORDER_RUNS runs or more)."""
    saved = _state.MIN_ORDER_RUNS
    _state.MIN_ORDER_RUNS = 1
    yield
    _state.MIN_ORDER_RUNS = saved


ops = st.lists(
    st.tuples(
        st.integers(0, 2),  # which replica
        st.sampled_from(["ins", "ins", "del", "sync"]),
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
    assert dict(fresh.map("m")) == {"k": 1}
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


def test_an_empty_text_is_built_in_one_pass_and_an_observed_one_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = crdtsync.Doc(replica_id=1)
    a.text("t").insert(0, "hello world")
    a.text("t").delete(2, 3)
    state = a.get_update()
    built: list[Any] = []

    def spy(doc: Any, update: Any) -> Any:
        out = _build_in_order(doc, update)
        built.append(set(out))
        return out

    monkeypatch.setattr("crdtsync._integrate._build_in_order", spy)
    b = crdtsync.Doc(replica_id=2)
    b.apply_update(state)
    assert built == [{("t", "t")}] and str(b.text("t")) == "he world"
    c = crdtsync.Doc(replica_id=3)
    seen: list[Any] = []
    c.text("t").observe(seen.append)
    c.apply_update(state)
    assert built[-1] == set() and str(c.text("t")) == "he world" and seen


def _order_fact(state: bytes) -> tuple[list[Any], list[Any]]:
    import zlib

    body = state[2:]
    if state[1] == 2:
        body = zlib.decompress(body)
    unpacked = msgpack.unpackb(body, strict_map_key=False)
    facts = unpacked[3]
    return unpacked, next(f for f in facts if f[0] == enc.FACT_ORDER)


def _repack(body: list[Any]) -> bytes:
    return enc.PREFIX + msgpack.packb(body)


def _broken_variants(state: bytes) -> list[bytes]:
    body, fact = _order_fact(state)
    out = []
    # Field by field: a wrong type, a wrong length, out of range, inconsistent text.
    for field, value in [
        (2, [99] * len(fact[2])),  # replica index out of range
        (3, [*fact[3], 1]),  # columns of different lengths
        (3, ["x"] * len(fact[3])),  # not integers
        (3, [-5] * len(fact[3])),  # counters below 1
        (5, [0] * len(fact[5])),  # lengths of 0
        (6, [7] * len(fact[6])),  # unknown state
        (8, fact[8] + "extra"),  # more visible characters than live pieces
        (7, [*fact[7], 0, 1]),  # a deleter too many
        (4, [-fact[3][0] - 10] + fact[4][1:]),  # a Lamport time below 1
    ]:
        broken = list(fact)
        broken[field] = value
        copy = [*body[:3], [broken if f is fact else f for f in body[3]]]
        out.append(_repack(copy))
    return out


def test_a_broken_order_is_a_decode_error_that_changes_nothing() -> None:
    a = crdtsync.Doc(replica_id=1)
    b = crdtsync.Doc(replica_id=2)
    a.text("t").insert(0, "abcdef")
    b.apply_update(a.get_update())
    b.text("t").insert(3, "XYZ")
    a.text("t").delete(1, 2)
    a.apply_update(b.get_update(a.version))
    state = a.get_update()
    fresh = crdtsync.Doc(replica_id=3)
    fresh.apply_update(state)  # (the unbroken state loads)
    for bad in _broken_variants(state):
        target = crdtsync.Doc(replica_id=4)
        with pytest.raises(crdtsync.DecodeError):
            target.apply_update(bad)
        assert dict(target.version) == {} and str(target.text("t")) == ""


def test_an_implied_origin_must_be_strictly_older() -> None:
    # Two replicas' pieces at one Lamport time, the older replica first: the second's
    # implied origin would be the first, at the same Lamport time.
    tables = [[1, 2], ["tt"]]
    fact = [enc.FACT_ORDER, 0, [0, 1], [1, -1], [0, 0], [1, 1], [0, 0], [], "ab", ""]
    segments = [[0, 1, -1], [1, 1, -1]]
    bad = _repack([*tables, segments, [fact]])
    with pytest.raises(crdtsync.DecodeError, match="not older"):
        crdtsync.Doc(replica_id=3).apply_update(bad)
    # The other way round (newer replica first) is a valid order: two siblings.
    fact[2] = [1, 0]
    good = _repack([*tables, segments, [fact]])
    doc = crdtsync.Doc(replica_id=3)
    doc.apply_update(good)
    assert str(doc.text("t")) == "ab"
    # One replica's two pieces with one id.
    fact = [enc.FACT_ORDER, 0, [0, 0], [1, -1], [0, 1], [1, 1], [0, 0], [], "ab", ""]
    bad = _repack([[1], ["tt"], [[0, 1, -2]], [fact]])
    with pytest.raises(crdtsync.DecodeError, match="share an id"):
        crdtsync.Doc(replica_id=3).apply_update(bad)
