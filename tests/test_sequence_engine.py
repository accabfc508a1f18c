"""The sequence engine's own bookkeeping, checked after every step with tiny blocks.

The convergence and model tests see only values; these check what makes look-ups fast:
block and chunk numbering, their visible lengths, the (lazily rebuilt) Fenwick trees with
the held-back change, the per-replica id index and the local-edit hint. Blocks are shrunk to
four runs and chunks to three blocks so that a short hypothesis run splits blocks and chunks
at the front, middle and end many times (and id-index chunks are shrunk to three runs
likewise).
"""

from __future__ import annotations

from typing import Any

import pytest
from crdt_helpers import budget, check_ids, check_sequence, small_text
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import crdtsync
from crdtsync import _ids, _rga


class SmallBlocks(RuleBasedStateMachine):
    """Two replicas edit one text; updates travel late, out of order and twice."""

    @initialize()
    def setup(self) -> None:
        self.docs = [crdtsync.Doc(1), crdtsync.Doc(2)]
        self.inbox: list[list[bytes]] = [[], []]
        for i, doc in enumerate(self.docs):
            doc.on_update(lambda u, o, i=i: self.inbox[1 - i].append(u))

    @rule(who=st.integers(0, 1), data=st.data(), s=small_text)
    def insert(self, who: int, data: Any, s: str) -> None:
        text = self.docs[who].text("t")
        pos = data.draw(st.one_of(st.just(0), st.just(len(text)), st.integers(0, len(text))))
        text.insert(pos, s)

    @rule(who=st.integers(0, 1), data=st.data())
    def delete(self, who: int, data: Any) -> None:
        text = self.docs[who].text("t")
        if len(text):
            pos = data.draw(st.integers(0, len(text) - 1))
            text.delete(pos, data.draw(st.integers(1, min(5, len(text) - pos))))

    @precondition(lambda self: any(self.inbox))
    @rule(who=st.integers(0, 1), data=st.data(), again=st.booleans())
    def deliver(self, who: int, data: Any, again: bool) -> None:
        box = self.inbox[who]
        if box:
            i = data.draw(st.integers(0, len(box) - 1))
            update = box[i] if again else box.pop(i)
            self.docs[who].apply_update(update)

    @rule(who=st.integers(0, 1))
    def resync(self, who: int) -> None:
        doc, other = self.docs[who], self.docs[1 - who]
        doc.apply_update(other.get_update(doc.version))

    @invariant()
    def bookkeeping_holds(self) -> None:
        for doc in self.docs:
            check_sequence(doc.text("t")._seq)
            check_ids(doc)


@pytest.fixture(autouse=True)
def _tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_rga, "MAX_BLOCK_RUNS", 4)
    monkeypatch.setattr(_rga, "MAX_CHUNK_BLOCKS", 3)
    monkeypatch.setattr(_ids, "MAX_CHUNK", 3)


def test_bookkeeping_with_tiny_blocks() -> None:
    SmallBlocks.TestCase().runTest()


@pytest.mark.parametrize("updates", [0, 1])
def test_bookkeeping_when_bursts_drop_the_trees(
    updates: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``_TREE_UPDATES`` changes to other blocks without a query, the position trees
    are dropped rather than updated: the next query must rebuild what it reads."""
    monkeypatch.setattr(_rga, "_TREE_UPDATES", updates)
    SmallBlocks.TestCase().runTest()


def test_typing_at_the_front_of_a_long_text_keeps_the_bookkeeping() -> None:
    doc = crdtsync.Doc(1)
    text = doc.text("t")
    for i in range(300):  # a long text of separate runs
        text.insert((i * 7) % (len(text) + 1), "ab"[i % 2])
    seq = text._seq
    for i in range(300):  # block and chunk splits at the front
        text.insert(i % 5, "x")
        if i % 3 == 0:
            text.delete(i % 7, 2)
        assert seq.locate(len(text) - 1)  # keep the Fenwick trees built, to be updated
        check_sequence(seq)
    assert len(seq.chunks) > 8
    copy = crdtsync.Doc(2)
    copy.apply_update(doc.get_update())
    assert str(copy.text("t")) == str(text)


@settings(max_examples=budget(30))
@given(
    typed=st.lists(st.tuples(st.integers(0, 3), small_text), min_size=8, max_size=30),
    seed=st.randoms(use_true_random=False),
)
def test_concurrent_siblings_in_any_order(typed: list[tuple[int, str]], seed: Any) -> None:
    """Many replicas insert at the same few places of a shared text at once; merged in
    shuffled orders, the texts agree (a remote run passes whole blocks of newer siblings
    by their ``low``: one too high would put it after an older one in some orders)."""
    base = crdtsync.Doc(1)
    base.text("t").insert(0, "abc")
    start = base.get_update()
    updates = []
    for n, (at, s) in enumerate(typed):
        doc = crdtsync.Doc(n + 2)
        doc.apply_update(start)
        doc.text("t").insert(at, s)
        if n % 3 == 0:  # a reply typed after an earlier replica's insert
            doc.apply_update(updates[-1] if updates else start)
            doc.text("t").insert(at, s[::-1])
        updates.append(doc.get_update())
    texts = set()
    for _ in range(3):
        seed.shuffle(updates)
        doc = crdtsync.Doc(99)
        for update in [start, *updates]:
            doc.apply_update(update)
        check_sequence(doc.text("t")._seq)
        texts.add(str(doc.text("t")))
    assert len(texts) == 1


def test_loading_a_state_keeps_the_bookkeeping() -> None:
    doc = crdtsync.Doc(1)
    text = doc.text("t")
    for i in range(200):  # every insert its own run: many blocks
        text.insert((i * 7) % (len(text) + 1), "ab"[i % 2])
        if i % 5 == 0:
            text.delete(i % len(text), 1)
    loaded = crdtsync.Doc(2)
    loaded.apply_update(doc.get_update())
    assert str(loaded.text("t")) == str(text)
    check_sequence(loaded.text("t")._seq)
    check_ids(loaded)


class FakeRun:
    """What the id index reads of a run."""

    def __init__(self, replica: int, counter: int, length: int) -> None:
        self.replica, self.counter, self.length = replica, counter, length

    def __repr__(self) -> str:
        return f"FakeRun({self.replica}, {self.counter}, {self.length})"


@settings(max_examples=budget(200))
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 60), st.integers(1, 50)), max_size=60))
def test_id_index_against_a_model(ops: list[tuple[int, int, int]]) -> None:
    """Runs added in any counter order, removed, and moved back, in chunks of three: every
    look-up agrees with a plain sorted list."""
    ids = _ids.IdIndex()
    model: list[FakeRun] = []  # one replica (7), sorted by counter, non-overlapping
    for op, slot, extra in ops:
        if op == 0 or not model:  # add a run in a free gap at counter slot * 10
            c = slot * 10 + 1
            if all(r.counter + r.length <= c or c + 5 <= r.counter for r in model):
                run = FakeRun(7, c, 5)
                ids.add(run)  # type: ignore[arg-type]
                model.append(run)
                model.sort(key=lambda r: r.counter)
        elif op == 1:
            run = model.pop(slot % len(model))
            ids.remove(run)  # type: ignore[arg-type]
        elif op == 2:  # move a run's start back into free space before it
            k = slot % len(model)
            run = model[k]
            floor = model[k - 1].counter + model[k - 1].length if k else 1
            new = max(floor, run.counter - extra % 4)
            run.length += run.counter - new
            ids.move_start(run, new)  # type: ignore[arg-type]
        for probe in range(0, 620, 7):
            held = [r for r in model if r.counter <= probe < r.counter + r.length]
            assert ids.find(7, probe) is (held[0] if held else None)
            later = [r.counter for r in model if r.counter > probe]
            assert ids.next_start(7, probe) == (later[0] if later else None)
            assert list(ids.runs_from(7, probe)) == [
                r for r in model if r.counter + r.length > probe
            ]
        assert ids.replicas() == ([7] if model else [])
