"""A replica typing on from the end of its own latest run continues that run's Lamport times
(instead of jumping to one past its clock), so a run typed while others type elsewhere
stays one run, on every replica and on the wire.

That is only sound when the insert still sorts ahead of whatever its author saw after its
origin. The property test checks intention preservation: every element a replica placed
between two neighbours stays between them on every replica, whatever the delivery order.
"""

from __future__ import annotations

import random
from typing import Any

from crdt_helpers import budget, sync_all
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync import _encoding as enc

Dot = tuple[int, int]


def element_ids(text: crdtsync.Text) -> list[Dot]:
    """The ids of a text's elements in sequence order, tombstones included."""
    seq: Any = text._seq  # type: ignore[attr-defined]
    return [
        (run.replica, run.counter + k)
        for block in seq.blocks
        for run in block.runs
        for k in range(run.length)
    ]


def runs_of(text: crdtsync.Text, replica: int) -> int:
    seq: Any = text._seq  # type: ignore[attr-defined]
    return sum(run.replica == replica for block in seq.blocks for run in block.runs)


def test_typing_while_others_type_elsewhere_stays_one_run() -> None:
    a, b = crdtsync.Doc(replica_id=1), crdtsync.Doc(replica_id=2)
    a.text("t").insert(0, "x")
    b.apply_update(a.get_update())
    for _ in range(20):
        b.text("t").insert(0, "b")  # B's clock runs ahead of A's...
        a.apply_update(b.get_update(a.version))
        t = a.text("t")
        t.insert(len(t), "a")  # ...while A types on at the end
    b.apply_update(a.get_update(b.version))
    assert str(a.text("t")) == str(b.text("t")) == "b" * 20 + "x" + "a" * 20
    assert runs_of(a.text("t"), 1) == runs_of(b.text("t"), 1) == 1
    mine = [s for s in enc.decode_update(a.get_update()).segments if s.replica == 1]
    assert [len(s.entries) for s in mine] == [1]  # one change on the wire too


def test_an_insert_goes_ahead_of_a_newer_element_it_saw() -> None:
    """A types "a"; B types "x" right after it; A, having seen "x", types "b" right after
    "a" again. "b" continues A's latest run, but must still sort ahead of "x"."""
    for a_id, b_id in ((1, 2), (2, 1)):
        a, b = crdtsync.Doc(replica_id=a_id), crdtsync.Doc(replica_id=b_id)
        a.text("t").insert(0, "a")
        b.apply_update(a.get_update())
        b.text("t").insert(1, "x")
        a.apply_update(b.get_update(a.version))
        a.text("t").insert(1, "b")
        b.apply_update(a.get_update(b.version))
        assert str(a.text("t")) == str(b.text("t")) == "abx"


# One step: a replica first takes everything another holds (or nothing, if it names
# itself), then types (where: 0 = on from its last insert, 1 = after another replica's
# latest insert, 2 = anywhere; a seed for the place and the text); or a delivery of one
# update, newest first, or of everything (source, destination, everything).
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("type"),
            st.integers(0, 2),
            st.sampled_from([0, 0, 1, 1, 2]),
            st.integers(0, 10**6),
            st.integers(0, 2),
        ),
        st.tuples(st.just("send"), st.integers(0, 2), st.integers(0, 2), st.booleans()),
    ),
    max_size=40,
)


@settings(max_examples=budget(200))
@given(steps=steps, ids=st.permutations([3, 5, 8]))
def test_every_insert_stays_between_the_neighbours_its_author_saw(
    steps: list[tuple[Any, ...]], ids: list[int]
) -> None:
    check_intentions(steps, ids)


def check_intentions(steps: list[tuple[Any, ...]], ids: list[int]) -> None:
    docs = [crdtsync.Doc(replica_id=r) for r in ids]
    last: list[Dot | None] = [None] * len(docs)  # each replica's latest insert
    pending: list[list[bytes]] = [[] for _ in docs]  # updates on their way to each replica
    seen_between: list[tuple[Dot | None, Dot, Dot | None]] = []
    for step in steps:
        if step[0] == "type":
            _, i, where, seed, src = step
            if src != i:
                docs[i].apply_update(docs[src].get_update(docs[i].version))
            rnd = random.Random(seed)
            text = docs[i].text("t")
            order = element_ids(text)
            if where == 0 and last[i] is not None:
                at = order.index(last[i]) + 1  # type: ignore[arg-type]
            elif where == 1 and any(last[j] in order for j in range(len(docs)) if j != i):
                theirs = [last[j] for j in range(len(docs)) if j != i and last[j] in order]
                at = order.index(rnd.choice(theirs)) + 1  # type: ignore[arg-type]
            else:
                at = rnd.randint(0, len(order))
            before = docs[i].version
            text.insert(at, rnd.choice(["p", "qr", "stu"]))
            update = docs[i].get_update(before)
            after = element_ids(text)
            new = after[at : at + len(after) - len(order)]
            last[i] = new[-1]
            seen_between.append((after[at - 1] if at else None, new[0], None))
            for k, dot in enumerate(new):
                right = after[at + k + 1] if at + k + 1 < len(after) else None
                seen_between.append((None, dot, right))
            for j in range(len(docs)):
                if j != i:
                    pending[j].append(update)
        else:
            _, src, dst, everything = step
            if src != dst:
                # Out of order: the newest update first, or a whole diff.
                if everything:
                    docs[dst].apply_update(docs[src].get_update(docs[dst].version))
                elif pending[dst]:
                    docs[dst].apply_update(pending[dst].pop())
    sync_all(docs)
    final = element_ids(docs[0].text("t"))
    assert all(element_ids(d.text("t")) == final for d in docs)
    place = {dot: k for k, dot in enumerate(final)}
    for left, dot, right in seen_between:
        if left is not None:
            assert place[left] < place[dot]
        if right is not None:
            assert place[dot] < place[right]
