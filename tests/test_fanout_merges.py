"""The merges a room's sessions send after a tick are put together from one shared merge
(crdtsync/sync/_fanout.py): each must bring a document to exactly the state the plain merge
of the same updates brings it to, whatever subset is asked for and whoever made what."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import crdtsync
from crdtsync import _encoding as enc
from crdtsync.sync._fanout import MergeBase, merge_all

REPLICAS = [11, 22, 33, 44]


@st.composite
def rounds(draw: st.DrawFn) -> tuple[bytes, list[bytes], list[int]]:
    """A shared starting state, then the updates of one tick: edits by several replicas
    (each update a transaction of one of them, some of them merges of several replicas'
    transactions, as a relay gets from another process), and subsets of them."""
    docs = {r: crdtsync.Doc(replica_id=r) for r in REPLICAS}
    start = crdtsync.Doc(replica_id=99)
    start.text("t").insert(0, "hello world")
    start.map("m")["k"] = 0
    base = start.get_update()
    for doc in docs.values():
        doc.apply_update(base)
    updates: list[bytes] = []
    for _ in range(draw(st.integers(1, 12))):
        r = draw(st.sampled_from(REPLICAS))
        doc = docs[r]
        text = doc.text("t")
        made: list[bytes] = []
        stop = doc.on_update(lambda u, _o, made=made: made.append(u))
        with doc.transaction():
            for _ in range(draw(st.integers(1, 3))):
                kind = draw(st.sampled_from(["ins", "del", "map", "set"]))
                if kind == "ins" or len(text) == 0:
                    text.insert(draw(st.integers(0, len(text))), draw(st.text("ab", min_size=1)))
                elif kind == "del":
                    text.delete(draw(st.integers(0, len(text) - 1)))
                elif kind == "map":
                    doc.map("m")["k"] = draw(st.integers(0, 9))
                else:
                    doc.set("s").add(draw(st.integers(0, 3)))
        stop()
        updates += made
    if len(updates) > 2 and draw(st.booleans()):  # a merge of two replicas' updates
        i = draw(st.integers(0, len(updates) - 2))
        updates[i : i + 2] = [crdtsync.merge_updates(updates[i : i + 2])]
    index = st.integers(0, len(updates) - 1)
    subsets = draw(st.lists(st.lists(index, min_size=1).map(lambda c: sorted(set(c))), min_size=1))
    return base, updates, subsets


def _state(base: bytes, update: bytes) -> object:
    doc = crdtsync.Doc(replica_id=7)
    doc.apply_update(base)
    doc.apply_update(update)
    return doc.to_py(), doc.version


@given(rounds())
def test_a_subset_merge_holds_what_the_plain_merge_holds(
    case: tuple[bytes, list[bytes], list[list[int]]],
) -> None:
    """Sessions ask for subsets in any order (the first may lack some updates that a later
    one has): each merge must hold exactly what the plain merge of its updates holds."""
    base, updates, subsets = case
    state: list[MergeBase | None] = [None]
    for chosen in subsets:
        subset = tuple(updates[i] for i in chosen)
        made = merge_all(subset, lambda u: enc.decode_update(u, None), state)
        assert _state(base, made) == _state(base, crdtsync.merge_updates(list(subset)))


def test_subsets_come_from_the_shared_merge_when_they_leave_out_whole_replicas() -> None:
    a, b = crdtsync.Doc(replica_id=1), crdtsync.Doc(replica_id=2)
    updates: list[bytes] = []
    for doc, word in ((a, "one"), (a, " two"), (b, "three")):
        stop = doc.on_update(lambda u, _o: updates.append(u))
        doc.text("t").insert(len(doc.text("t")), word)
        stop()
    base = MergeBase.build(updates, [enc.decode_update(u, None) for u in updates])
    assert base is not None
    assert base.whole == crdtsync.merge_updates(updates)  # byte for byte
    assert base.subset(updates[:2]) is not None  # leaves out replica 2 whole
    # Leaving out one of replica 1's updates but not the other is no cut by replica.
    assert base.subset([updates[0], updates[2]]) is None
    assert base.subset([crdtsync.merge_updates(updates[:2])]) is None  # not one of them
