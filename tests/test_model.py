"""Model-based tests: Text against ``str`` and List against ``list`` under random edits.

Besides comparing with the model after every step, the machines keep (version, whole-state)
snapshots and check that ``get_update(since=v)`` brings a document at ``v`` to the present, and
that a fresh document loaded from ``get_update()`` equals the live one.
"""

from __future__ import annotations

from crdt_helpers import EMOJI, budget, tag, values
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import crdtsync

ins_text = st.text(
    alphabet=st.one_of(
        st.sampled_from("abcdefg \n"),
        st.sampled_from(EMOJI),
        st.characters(exclude_categories=["Cs"]),
    ),
    min_size=1,
    max_size=12,
)


class TextMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.doc = crdtsync.Doc(11)
        self.text = self.doc.text("t")
        self.model = ""
        self.snapshots: list[tuple[crdtsync.VersionVector, bytes, str]] = [
            (self.doc.version, self.doc.get_update(), "")
        ]

    @rule(data=st.data(), s=ins_text)
    def insert(self, data, s):
        i = data.draw(st.integers(0, len(self.model)), label="index")
        self.text.insert(i, s)
        self.model = self.model[:i] + s + self.model[i:]

    @rule(s=ins_text)
    def append(self, s):
        self.text.insert(len(self.text), s)
        self.model += s

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data):
        i = data.draw(st.integers(0, len(self.model) - 1), label="index")
        n = data.draw(st.integers(1, min(len(self.model) - i, 20)), label="length")
        self.text.delete(i, n)
        self.model = self.model[:i] + self.model[i + n :]

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete_one(self, data):
        i = data.draw(st.integers(0, len(self.model) - 1), label="index")
        self.text.delete(i)
        self.model = self.model[:i] + self.model[i + 1 :]

    @rule(data=st.data(), s=ins_text)
    def transaction(self, data, s):
        """Several edits in one transaction."""
        with self.doc.transaction():
            for _ in range(data.draw(st.integers(1, 4), label="edits")):
                if self.model and data.draw(st.booleans(), label="delete?"):
                    i = data.draw(st.integers(0, len(self.model) - 1))
                    n = data.draw(st.integers(1, len(self.model) - i))
                    self.text.delete(i, n)
                    self.model = self.model[:i] + self.model[i + n :]
                else:
                    i = data.draw(st.integers(0, len(self.model)))
                    self.text.insert(i, s)
                    self.model = self.model[:i] + s + self.model[i:]

    @rule()
    def snapshot(self):
        self.snapshots.append((self.doc.version, self.doc.get_update(), self.model))

    @rule(data=st.data())
    def delta_since_snapshot(self, data):
        v, state, old = data.draw(st.sampled_from(self.snapshots), label="snapshot")
        behind = crdtsync.Doc(12)
        behind.apply_update(state)
        assert str(behind.text("t")) == old
        assert behind.version == v
        behind.apply_update(self.doc.get_update(v))
        assert str(behind.text("t")) == self.model
        assert behind.version == self.doc.version

    @rule()
    def fresh_copy(self):
        copy = crdtsync.Doc(13)
        copy.apply_update(self.doc.get_update())
        assert str(copy.text("t")) == self.model
        assert copy.version == self.doc.version
        assert not copy.pending

    @rule(data=st.data())
    def read_checks(self, data):
        if self.model:
            i = data.draw(st.integers(-len(self.model), len(self.model) - 1), label="i")
            assert self.text[i] == self.model[i]
        i = data.draw(st.integers(-3, len(self.model) + 3), label="i")
        j = data.draw(st.integers(-3, len(self.model) + 3), label="j")
        assert self.text[i:j] == self.model[i:j]

    @invariant()
    def matches_model(self):
        assert str(self.text) == self.model
        assert len(self.text) == len(self.model)


TestTextModel = TextMachine.TestCase
TestTextModel.settings = settings(max_examples=budget(150))


list_values = st.one_of(st.integers(-3, 3), st.sampled_from(["a", "😀", None, True]), values)


class ListMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.doc = crdtsync.Doc(21)
        self.lst = self.doc.list("l")
        self.model: list = []
        self.snapshots = [(self.doc.version, self.doc.get_update(), [])]

    @rule(data=st.data(), v=list_values)
    def insert(self, data, v):
        i = data.draw(st.integers(0, len(self.model)), label="index")
        self.lst.insert(i, v)
        self.model.insert(i, v)

    @rule(v=list_values)
    def append(self, v):
        self.lst.append(v)
        self.model.append(v)

    @rule(vs=st.lists(list_values, max_size=5))
    def extend(self, vs):
        self.lst.extend(vs)
        self.model.extend(vs)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data):
        i = data.draw(st.integers(-len(self.model), len(self.model) - 1), label="index")
        del self.lst[i]
        del self.model[i]

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete_range_in_transaction(self, data):
        i = data.draw(st.integers(0, len(self.model) - 1), label="index")
        n = data.draw(st.integers(1, len(self.model) - i), label="length")
        with self.doc.transaction():
            for _ in range(n):
                del self.lst[i]
        del self.model[i : i + n]

    @rule()
    def snapshot(self):
        self.snapshots.append((self.doc.version, self.doc.get_update(), list(self.model)))

    @rule(data=st.data())
    def delta_since_snapshot(self, data):
        v, state, old = data.draw(st.sampled_from(self.snapshots), label="snapshot")
        behind = crdtsync.Doc(22)
        behind.apply_update(state)
        assert tag(list(behind.list("l"))) == tag(old)
        behind.apply_update(self.doc.get_update(v))
        assert tag(list(behind.list("l"))) == tag(self.model)
        assert behind.version == self.doc.version

    @rule()
    def fresh_copy(self):
        copy = crdtsync.Doc(23)
        copy.apply_update(self.doc.get_update())
        assert tag(list(copy.list("l"))) == tag(self.model)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def getitem(self, data):
        i = data.draw(st.integers(-len(self.model), len(self.model) - 1), label="index")
        assert tag(self.lst[i]) == tag(self.model[i])

    @invariant()
    def matches_model(self):
        assert len(self.lst) == len(self.model)
        assert tag(list(self.lst)) == tag(self.model)


TestListModel = ListMachine.TestCase
TestListModel.settings = settings(max_examples=budget(150))
