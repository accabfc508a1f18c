"""Nested List and LWWMap against plain Python, and each rule of nested containers.

The machine edits a tree of containers on one replica while a mirror replica receives every
update at once; a model made of plain Python (with a marker type per container kind, so
that a child map and a dict value stay apart) takes the same edits, and after every step
both replicas' ``to_py()`` equal the model's. It also keeps (version, state) snapshots and
checks that ``get_update(v)`` brings a document at ``v`` to the present.

The unit tests below pin each semantic rule with concrete replicas.
"""

from __future__ import annotations

import copy
import itertools

import msgpack
import pytest
from crdt_helpers import Recorder, budget, small_text, sync_pair, tag, values
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from nested_helpers import EMPTY, KINDS, check_tree, fresh_from, ptag, state

import crdtsync
from crdtsync.types._base import Container

# ---------------------------------------------------------------------------------------------
# The model: marker types for containers, plain values for values.


class MText(str):
    pass


class MList(list):
    pass


class MMap(dict):
    pass


class MSet(set):
    pass


class MCounter(int):
    pass


MODEL_KIND = {MText: "t", MList: "l", MMap: "m", MSet: "s", MCounter: "c"}
MODEL_EMPTY = {"t": MText, "l": MList, "m": MMap, "s": MSet, "c": MCounter}
CONTAINER_TYPES = tuple(MODEL_KIND)


def plain(model):
    """The model as ``to_py()`` shows it."""
    if isinstance(model, MText):
        return str(model)
    if isinstance(model, MCounter):
        return int(model)
    if isinstance(model, MSet):
        return set(model)
    if isinstance(model, MMap):
        return {k: plain(v) for k, v in model.items()}
    if isinstance(model, MList):
        return [plain(v) for v in model]
    return model  # a plain value, left as it is


def model_children(model) -> list[tuple[object, object]]:
    """(key or index, child) for the containers inside, in the order ``children()`` uses."""
    if isinstance(model, MMap):
        return [(k, model[k]) for k in sorted(model) if isinstance(model[k], CONTAINER_TYPES)]
    if isinstance(model, MList):
        return [(i, v) for i, v in enumerate(model) if isinstance(v, CONTAINER_TYPES)]
    return []


KEYS = ["a", "b", "c"]
METHOD = {"t": "text", "l": "list", "m": "map", "s": "set", "c": "counter"}
SET_POOL = ["x", "y", 1, b"z", None]
paths = st.lists(st.integers(0, 100), max_size=4)
kinds = st.sampled_from(sorted(KINDS))
plain_values = st.one_of(st.integers(-3, 3), st.sampled_from(["v", None, True]), values)


class NestedModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.doc = crdtsync.Doc(31)
        self.mirror = crdtsync.Doc(32)
        self.doc.on_update(lambda update, origin: self.mirror.apply_update(update))
        self.model = {"root": MMap(), "items": MList()}
        self.snapshots = [(self.doc.version, self.doc.get_update(), copy.deepcopy(self.model))]

    def top(self, doc, name):
        return doc.map(name) if name == "root" else doc.list(name)

    def locate(self, name, path):
        """The container and its model reached by ``path`` from the root ``name``, and the
        route (keys and indices) to it."""
        c, m, route = self.top(self.doc, name), self.model[name], []
        for step in path:
            kids = model_children(m)
            choice = step % (len(kids) + 1)
            if choice == 0:
                break
            where, m = kids[choice - 1]
            c = c[where]
            route.append(where)
        return c, m, route

    def replace(self, name, route, new):
        """Put ``new`` (an immutable model leaf: text or counter) at ``route``."""
        if not route:
            self.model[name] = new
            return
        holder = self.model[name]
        for where in route[:-1]:
            holder = holder[where]
        holder[route[-1]] = new

    # -- maps ----------------------------------------------------------------------------------

    @rule(path=paths, key=st.sampled_from(KEYS), kind=kinds)
    def map_child(self, path, key, kind):
        c, m, _ = self.locate("root", path)
        if not isinstance(m, MMap):
            return
        held = m.get(key)
        before = self.doc.version
        if isinstance(held, CONTAINER_TYPES) and MODEL_KIND[type(held)] != kind:
            with pytest.raises(TypeError):
                getattr(c, METHOD[kind])(key)
            assert self.doc.version == before  # nothing written
            return
        child = getattr(c, METHOD[kind])(key)
        assert isinstance(child, KINDS[kind]) and child.parent is c and c[key] is child
        if isinstance(held, CONTAINER_TYPES):
            assert self.doc.version == before  # got, not created
        else:
            m[key] = MODEL_EMPTY[kind]()
            assert child.to_py() == EMPTY[kind]

    @rule(path=paths, key=st.sampled_from(KEYS), v=plain_values)
    def map_set(self, path, key, v):
        c, m, _ = self.locate("root", path)
        if isinstance(m, MMap):
            c[key] = v
            m[key] = copy.deepcopy(v)

    @rule(path=paths, key=st.sampled_from(KEYS))
    def map_delete(self, path, key):
        c, m, _ = self.locate("root", path)
        if isinstance(m, MMap):
            if key in m:
                del c[key]
                del m[key]
            else:
                with pytest.raises(KeyError):
                    del c[key]

    # -- lists ---------------------------------------------------------------------------------

    @rule(name=st.sampled_from(["root", "items"]), path=paths, pos=st.integers(0, 100), kind=kinds)
    def list_child(self, name, path, pos, kind):
        c, m, _ = self.locate(name, path)
        if isinstance(m, MList):
            i = pos % (len(m) + 1)
            child = c.insert_container(i, KINDS[kind])
            assert c[i] is child and child.parent is c
            m.insert(i, MODEL_EMPTY[kind]())

    @rule(
        name=st.sampled_from(["root", "items"]),
        path=paths,
        pos=st.integers(0, 100),
        v=plain_values,
        append=st.booleans(),
    )
    def list_insert(self, name, path, pos, v, append):
        c, m, _ = self.locate(name, path)
        if isinstance(m, MList):
            if append:
                c.append(v)
                m.append(copy.deepcopy(v))
            else:
                i = pos % (len(m) + 1)
                c.insert(i, v)
                m.insert(i, copy.deepcopy(v))

    @rule(name=st.sampled_from(["root", "items"]), path=paths, pos=st.integers(-100, 100))
    def list_delete(self, name, path, pos):
        c, m, _ = self.locate(name, path)
        if isinstance(m, MList) and m:
            i = pos % len(m) - (len(m) if pos < 0 else 0)  # negative indices too
            del c[i]
            del m[i]

    # -- leaves --------------------------------------------------------------------------------

    @rule(
        name=st.sampled_from(["root", "items"]), path=paths, pos=st.integers(0, 100), s=small_text
    )
    def text_insert(self, name, path, pos, s):
        c, m, route = self.locate(name, path)
        if isinstance(m, MText):
            i = pos % (len(m) + 1)
            c.insert(i, s)
            self.replace(name, route, MText(m[:i] + s + m[i:]))

    @rule(name=st.sampled_from(["root", "items"]), path=paths, pos=st.integers(0, 100))
    def text_delete(self, name, path, pos):
        c, m, route = self.locate(name, path)
        if isinstance(m, MText) and m:
            i = pos % len(m)
            n = 1 + pos % (len(m) - i)
            c.delete(i, n)
            self.replace(name, route, MText(m[:i] + m[i + n :]))

    @rule(
        name=st.sampled_from(["root", "items"]),
        path=paths,
        e=st.sampled_from(SET_POOL),
        add=st.booleans(),
    )
    def set_edit(self, name, path, e, add):
        c, m, _ = self.locate(name, path)
        if isinstance(m, MSet):
            if add:
                c.add(e)
                m.add(e)
            else:
                c.discard(e)
                m.discard(e)

    @rule(name=st.sampled_from(["root", "items"]), path=paths, n=st.integers(-5, 5))
    def counter_edit(self, name, path, n):
        c, m, route = self.locate(name, path)
        if isinstance(m, MCounter):
            c.increment(n) if n >= 0 else c.decrement(-n)
            self.replace(name, route, MCounter(m + n))

    @rule(
        path=paths,
        key=st.sampled_from(KEYS),
        kind=st.sampled_from("tlm"),
        s=small_text,
        v=plain_values,
    )
    def fill_new_child_in_one_transaction(self, path, key, kind, s, v):
        """Create a child and put something in it, as one update."""
        c, m, _ = self.locate("root", path)
        if not isinstance(m, MMap) or isinstance(m.get(key), CONTAINER_TYPES):
            return
        with self.doc.transaction():
            child = getattr(c, METHOD[kind])(key)
            if kind == "t":
                child.insert(0, s)
                m[key] = MText(s)
            elif kind == "l":
                child.append(v)
                child.append_container(crdtsync.Counter).increment(2)
                m[key] = MList([copy.deepcopy(v), MCounter(2)])
            else:
                child[key] = v
                child.text("inner").insert(0, s)
                m[key] = MMap({key: copy.deepcopy(v), "inner": MText(s)})

    # -- state transfer ------------------------------------------------------------------------

    @rule()
    def snapshot(self):
        self.snapshots.append((self.doc.version, self.doc.get_update(), copy.deepcopy(self.model)))

    @rule(data=st.data())
    def delta_since_snapshot(self, data):
        v, saved, old = data.draw(st.sampled_from(self.snapshots), label="snapshot")
        behind = fresh_from(saved, 33)
        assert self.view(behind) == ptag({k: plain(x) for k, x in old.items()})
        assert behind.version == v
        behind.apply_update(self.doc.get_update(v))
        assert self.view(behind) == self.expected()
        assert behind.version == self.doc.version
        assert not behind.pending

    @rule()
    def fresh_copy(self):
        copy_ = fresh_from(self.doc.get_update(), 34)
        assert self.view(copy_) == self.expected()
        assert copy_.version == self.doc.version

    # -- the check -----------------------------------------------------------------------------

    def view(self, doc):
        return ptag({"root": doc.map("root").to_py(), "items": doc.list("items").to_py()})

    def expected(self):
        return ptag({k: plain(x) for k, x in self.model.items()})

    @invariant()
    def matches_model(self):
        want = self.expected()
        assert self.view(self.doc) == want
        assert self.view(self.mirror) == want
        assert self.mirror.version == self.doc.version
        assert not self.mirror.pending
        for d in (self.doc, self.mirror):
            check_tree(d.map("root"))
            check_tree(d.list("items"))


TestNestedModel = NestedModel.TestCase
TestNestedModel.settings = settings(max_examples=budget(100))


# ---------------------------------------------------------------------------------------------
# Concrete cases, one per rule.


def pair(gc: bool = True) -> tuple[crdtsync.Doc, crdtsync.Doc]:
    return crdtsync.Doc(1, gc=gc), crdtsync.Doc(2, gc=gc)


def updates_of(doc: crdtsync.Doc, edit) -> list[bytes]:
    rec = Recorder(doc)
    edit()
    rec.unsubscribe()
    return rec.take()


def deliver(doc: crdtsync.Doc, updates: list[bytes]) -> None:
    for u in updates:
        doc.apply_update(u)


def is_format_2(update: bytes) -> bool:
    body = msgpack.unpackb(update[2:], raw=False, strict_map_key=False, ext_hook=lambda c, d: None)
    return len(body) == 5


# -- 1. concurrent creation at one key: one child -----------------------------------------------


FILL = {
    "t": lambda c, who: c.insert(0, who),
    "l": lambda c, who: c.append(who),
    "m": lambda c, who: c.__setitem__(who, who),
    "s": lambda c, who: c.add(who),
    "c": lambda c, who: c.increment(1 if who == "A" else 10),
}
BOTH = {
    "t": lambda v: sorted(v) == ["A", "B"],
    "l": lambda v: sorted(v) == ["A", "B"],
    "m": lambda v: v == {"A": "A", "B": "B"},
    "s": lambda v: v == {"A", "B"},
    "c": lambda v: v == 11,
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("a_first", [True, False])
@pytest.mark.parametrize("seen_value", [False, True])
def test_concurrent_creation_at_one_key_merges(kind, a_first, seen_value):
    """Both replicas create the same kind of child at "k" without seeing each other; the
    child they share holds both edits, whichever update arrives first. With ``seen_value``
    the key held a plain value both had seen (the creations replace the same write)."""
    a, b = pair()
    if seen_value:
        a.map("m")["k"] = "plain"
        sync_pair(a, b)
    base = a.get_update()
    ua = updates_of(a, lambda: FILL[kind](getattr(a.map("m"), METHOD[kind])("k"), "A"))
    ub = updates_of(b, lambda: FILL[kind](getattr(b.map("m"), METHOD[kind])("k"), "B"))
    assert len(ua) == len(ub) == 2  # create, then fill
    deliver(a, ub)
    deliver(b, ua)
    third = fresh_from(base, 3)
    deliver(third, ua + ub if a_first else ub + ua)
    assert not third.pending
    for d in (a, b, third):
        got = d.map("m")["k"]
        assert isinstance(got, KINDS[kind])
        assert BOTH[kind](got.to_py()), (kind, got.to_py())
        assert d.map("m").to_py() == a.map("m").to_py()
    assert a.version == b.version == third.version


def test_concurrent_text_creation_every_delivery_order():
    """Two replicas each create "title" and type two keystrokes (three updates each); a
    third replica gets the six updates in every order (keystrokes before their child's
    creation included): always one text holding all four characters."""
    a, b = pair()
    ua = updates_of(a, lambda: a.map("m").text("title"))
    ua += updates_of(a, lambda: a.map("m")["title"].insert(0, "x"))
    ua += updates_of(a, lambda: a.map("m")["title"].insert(1, "y"))
    ub = updates_of(b, lambda: b.map("m").text("title"))
    ub += updates_of(b, lambda: b.map("m")["title"].insert(0, "p"))
    ub += updates_of(b, lambda: b.map("m")["title"].insert(1, "q"))
    sync_pair(a, b)
    want = str(a.map("m")["title"])
    assert want == str(b.map("m")["title"]) and sorted(want) == ["p", "q", "x", "y"]
    for order in itertools.permutations(ua + ub):
        c = crdtsync.Doc(3)
        deliver(c, order)
        assert c.to_py() == {"m": {"title": want}}
        assert c.version == a.version and not c.pending


# -- 2. delete, then re-create: a new, empty child ----------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_recreate_after_delete_starts_empty(kind):
    a, b = pair()
    m = a.map("m")
    FILL[kind](getattr(m, METHOD[kind])("k"), "A")
    del m["k"]
    assert "k" not in m and m.to_py() == {}
    again = getattr(m, METHOD[kind])("k")
    assert again.to_py() == EMPTY[kind]
    assert m.to_py() == {"k": EMPTY[kind]}
    b.apply_update(a.get_update())
    assert b.map("m").to_py() == {"k": EMPTY[kind]}


def test_recreate_on_another_replica_after_its_delete():
    """a creates and fills; b deletes; c, having seen the delete, re-creates: empty, on
    every replica, even when a's old edits (made before it saw the delete) arrive last."""
    a, b, c = crdtsync.Doc(1), crdtsync.Doc(2), crdtsync.Doc(3)
    a.map("m").text("k").insert(0, "old")
    sync_pair(a, b)
    del b.map("m")["k"]
    sync_pair(b, c)
    late = updates_of(a, lambda: a.map("m")["k"].insert(3, " and more"))  # before a sees it
    fresh = c.map("m").text("k")
    assert str(fresh) == ""
    fresh.insert(0, "new")
    for d in (a, b, c):
        for other in (a, b, c):
            if other is not d:
                d.apply_update(other.get_update(d.version))
        deliver(d, late)
    for d in (a, b, c):
        assert d.map("m").to_py() == {"k": "new"}, d.map("m").to_py()
    assert a.version == b.version == c.version


def test_recreate_after_delete_then_old_child_edit_is_invisible():
    """a deletes and re-creates while b edits the old child: b's edit does not come back."""
    a, b = pair()
    a.map("m").list("k").append(1)
    sync_pair(a, b)
    del a.map("m")["k"]
    a.map("m").list("k").append(2)
    b.map("m")["k"].append(3)  # into the child a deleted
    sync_pair(a, b)
    assert a.map("m").to_py() == b.map("m").to_py() == {"k": [2]}


# -- 3. concurrent delete and edit inside: the delete wins --------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("deleter_first", [True, False])
def test_concurrent_delete_beats_edits_inside(kind, deleter_first):
    a, b = pair()
    FILL[kind](getattr(a.map("m"), METHOD[kind])("k"), "A")
    sync_pair(a, b)
    base = a.get_update()
    ua = updates_of(a, lambda: a.map("m").__delitem__("k"))
    # many edits inside, so that b's Lamport clock runs far ahead of a's delete
    ub = []
    for i in range(5):
        ub += updates_of(b, lambda i=i: FILL[kind](b.map("m")["k"], f"B{i}"))
    c = fresh_from(base, 3)
    c_first, c_second = (ua, ub) if deleter_first else (ub, ua)
    deliver(c, c_first + c_second)
    deliver(a, ub)
    deliver(b, ua)
    for d in (a, b, c):
        assert "k" not in d.map("m")
        assert d.map("m").to_py() == {}
    assert a.version == b.version == c.version


def test_concurrent_delete_of_list_element_beats_edits_inside():
    a, b = pair()
    a.list("l").append_container(crdtsync.LWWMap)["n"] = 1
    a.list("l").append("tail")
    sync_pair(a, b)
    del a.list("l")[0]
    b.list("l")[0]["n"] = 2
    b.list("l")[0].text("deep").insert(0, "x")
    sync_pair(a, b)
    assert a.to_py() == b.to_py() == {"l": ["tail"]}


# -- 4. different kinds at one key: last writer wins, everywhere the same -----------------------


@pytest.mark.parametrize("ka,kb", [("t", "l"), ("m", "c"), ("s", "t"), ("l", "m")])
@pytest.mark.parametrize("ahead", ["a", "b", "tie"])
def test_different_kinds_at_one_key(ka, kb, ahead):
    """Concurrent creations of two kinds: the write with the higher (Lamport, replica)
    wins; a tie in Lamport time goes to the higher replica id (b here)."""
    a, b = pair()
    for doc, who in ((a, "a"), (b, "b")):
        if ahead == who:
            for i in range(3):
                doc.map("m")[f"pad{i}"] = i  # push the Lamport clock
    FILL[ka](getattr(a.map("m"), METHOD[ka])("k"), "A")
    FILL[kb](getattr(b.map("m"), METHOD[kb])("k"), "B")
    third = crdtsync.Doc(3)
    third.apply_update(b.get_update())
    third.apply_update(a.get_update())
    sync_pair(a, b)
    winner, kind = ("A", ka) if ahead == "a" else ("B", kb)
    for d in (a, b, third):
        got = d.map("m")["k"]
        assert isinstance(got, KINDS[kind])
        expect = crdtsync.Doc(9)
        FILL[kind](getattr(expect.map("x"), METHOD[kind])("k"), winner)
        assert ptag(got.to_py()) == ptag(expect.map("x")["k"].to_py())
    assert state(a) == state(b) == state(third)
    loser = kb if kind == ka else ka
    for d in (a, b):
        with pytest.raises(TypeError):
            getattr(d.map("m"), METHOD[loser])("k")


# -- 5. get-or-create over a value or another kind ------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_child_over_plain_value_replaces_it(kind):
    a, b = pair()
    a.map("m")["k"] = {"plain": [1, 2]}
    b.apply_update(a.get_update())
    child = getattr(a.map("m"), METHOD[kind])("k")
    assert a.map("m")["k"] is child
    assert a.map("m").to_py() == {"k": EMPTY[kind]}
    b.apply_update(a.get_update(b.version))
    assert b.map("m").to_py() == {"k": EMPTY[kind]}


@pytest.mark.parametrize("held,asked", list(itertools.permutations("tlmsc", 2)))
def test_child_over_another_kind_raises_type_error(held, asked):
    a = crdtsync.Doc(1)
    rec = Recorder(a)
    FILL[held](getattr(a.map("m"), METHOD[held])("k"), "A")
    rec.take()
    before = (a.get_update(), a.version, state(a))
    with pytest.raises(TypeError):
        getattr(a.map("m"), METHOD[asked])("k")
    assert (a.get_update(), a.version, state(a)) == before
    assert rec.take() == []  # nothing was written or sent
    # the same kind is got, not re-created
    assert getattr(a.map("m"), METHOD[held])("k") is a.map("m")["k"]
    assert a.version == before[1]


# -- 6. list elements holding children ----------------------------------------------------------


def test_del_list_element_holding_a_child():
    a, b = pair()
    lst = a.list("cards")
    first = lst.append_container(crdtsync.LWWMap)
    first.text("name").insert(0, "milk")
    lst.append("plain")
    second = lst.insert_container(1, crdtsync.Text)
    second.insert(0, "note")
    assert a.to_py() == {"cards": [{"name": "milk"}, "note", "plain"]}
    b.apply_update(a.get_update())
    del lst[0]
    assert lst[0] is second and second.parent is lst
    assert a.to_py() == {"cards": ["note", "plain"]}
    del lst[-2]
    assert a.to_py() == {"cards": ["plain"]}
    b.apply_update(a.get_update(b.version))
    assert b.to_py() == {"cards": ["plain"]}
    assert fresh_from(a.get_update()).to_py() == {"cards": ["plain"]}


def test_list_slice_delete_over_children():
    a = crdtsync.Doc(1)
    lst = a.list("l")
    for k in "tlmsc":
        lst.append_container(KINDS[k])
    del lst[1:4]
    assert [type(x) for x in lst] == [crdtsync.Text, crdtsync.Counter]
    assert fresh_from(a.get_update()).to_py() == {"l": ["", 0]}


# -- 7. edits inside a child arriving before the child -------------------------------------------


def test_child_edit_before_its_creation_same_author():
    a, b = pair()
    create = updates_of(a, lambda: a.map("m").text("k"))
    edit = updates_of(a, lambda: a.map("m")["k"].insert(0, "hello"))
    b.apply_update(edit[0])
    assert b.to_py().get("m", {}) == {}
    b.apply_update(create[0])
    assert b.to_py() == {"m": {"k": "hello"}}
    assert b.version == a.version and not b.pending


def test_child_edit_before_its_creation_other_author():
    """b edits the child a created; c gets b's edit first, then a's creation."""
    a, b, c = crdtsync.Doc(1), crdtsync.Doc(2), crdtsync.Doc(3)
    create = updates_of(a, lambda: a.list("l").append_container(crdtsync.LWWMap))
    deliver(b, create)
    edit = updates_of(b, lambda: b.list("l")[0].list("inner").append("x"))
    deep = updates_of(b, lambda: b.list("l")[0]["inner"].append_container(crdtsync.Text))
    deeper = updates_of(b, lambda: b.list("l")[0]["inner"][1].insert(0, "y"))
    for u in deeper + deep + edit:
        c.apply_update(u)
        assert c.to_py().get("l", []) == []
    c.apply_update(create[0])
    assert c.to_py() == b.to_py() == {"l": [{"inner": ["x", "y"]}]}
    assert c.version == b.version and not c.pending


def test_creating_a_child_whose_edits_arrived_first():
    """c holds b's edit of the Text a created (not a's creation), then creates the Text at
    that key itself: the same child, so b's edit shows at once."""
    a, b, c = crdtsync.Doc(1), crdtsync.Doc(2), crdtsync.Doc(3)
    create = updates_of(a, lambda: a.map("m").text("k"))
    deliver(b, create)
    edit = updates_of(b, lambda: b.map("m")["k"].insert(0, "x"))
    deliver(c, edit)
    assert str(c.map("m").text("k")) == "x"
    deliver(c, create)
    sync_pair(a, c)
    sync_pair(b, c)
    assert a.to_py() == b.to_py() == c.to_py() == {"m": {"k": "x"}}


# -- 8. deltas and merges -------------------------------------------------------------------------


def test_deltas_carry_nested_content():
    a, b = pair()
    board = a.map("board")
    board.text("title").insert(0, "plan")
    b.apply_update(a.get_update())
    seen = b.version
    cards = board.list("cards")
    card = cards.append_container(crdtsync.LWWMap)
    card.text("name").insert(0, "milk")
    card.set("tags").add("food")
    board["title"].insert(4, "!")
    delta = a.get_update(seen)
    assert is_format_2(delta)
    assert len(delta) < len(a.get_update())
    b.apply_update(delta)
    want = {"board": {"title": "plan!", "cards": [{"name": "milk", "tags": {"food"}}]}}
    assert a.to_py() == b.to_py() == want
    assert a.version == b.version
    # a delta of a delete inside a child
    seen = b.version
    card["name"].delete(0, 2)
    del card["tags"]
    b.apply_update(a.get_update(seen))
    assert b.to_py() == a.to_py() == {"board": {"title": "plan!", "cards": [{"name": "lk"}]}}


def test_merge_updates_of_nested_updates():
    a = crdtsync.Doc(1)
    rec = Recorder(a)
    m = a.map("m")
    m.text("t").insert(0, "ab")
    m["t"].insert(2, "c")
    m.list("l").append_container(crdtsync.Counter).increment(3)
    del m["t"]
    m.text("t").insert(0, "z")
    ups = rec.take()
    merged = crdtsync.merge_updates(ups)
    assert is_format_2(merged)
    for d in (fresh_from(merged), fresh_from(crdtsync.merge_updates(reversed(ups)))):
        assert d.to_py() == a.to_py() == {"m": {"t": "z", "l": [3]}}
        assert d.version == a.version
    # merged halves, applied in reverse
    d = crdtsync.Doc(5)
    d.apply_update(crdtsync.merge_updates(ups[len(ups) // 2 :]))
    d.apply_update(crdtsync.merge_updates(ups[: len(ups) // 2]))
    assert d.to_py() == a.to_py() and not d.pending


@given(
    seed_edits=st.lists(
        st.tuples(st.sampled_from("tlmsc"), st.sampled_from(["a", "b"]), small_text),
        min_size=1,
        max_size=8,
    ),
    order=st.randoms(use_true_random=False),
)
@settings(max_examples=budget(40))
def test_nested_updates_any_order(seed_edits, order):
    """Nested updates from two replicas, shuffled, with duplicates, merged or not."""
    a, b = pair()
    ups = []
    for i, (kind, key, s) in enumerate(seed_edits):
        d = (a, b)[i % 2]
        rec = Recorder(d)
        m = d.map("m")
        held = m.get(key)
        if isinstance(held, Container) and held._kind != kind:
            del m[key]
        child = getattr(m, METHOD[kind])(key)
        FILL[kind](child, s) if kind != "c" else child.increment(len(s))
        if i % 3 == 2:
            sync_pair(a, b)
        ups += rec.take()
        rec.unsubscribe()
    sync_pair(a, b)
    want = state(a)
    assert state(b) == want
    shuffled = ups + order.sample(ups, min(3, len(ups)))
    order.shuffle(shuffled)
    c = crdtsync.Doc(3)
    deliver(c, shuffled)
    assert state(c) == want and c.version == a.version and not c.pending
    assert state(fresh_from(crdtsync.merge_updates(shuffled))) == want


# -- 9. the rest of the contract ------------------------------------------------------------------


def test_parent_and_to_py():
    doc = crdtsync.Doc(1)
    board = doc.map("board")
    title = board.text("title")
    cards = board.list("cards")
    card = cards.insert_container(0, crdtsync.LWWMap)
    assert title.parent is board and cards.parent is board and card.parent is cards
    assert board.parent is None
    assert cards[0] is card and board["cards"] is cards and "title" in board
    card["done"] = False
    assert doc.to_py() == {"board": {"title": "", "cards": [{"done": False}]}}
    with pytest.raises(TypeError):
        cards.insert_container(0, dict)
    with pytest.raises(TypeError):
        cards.append_container(crdtsync.Doc)


def test_a_dict_value_is_not_a_child_map():
    doc = crdtsync.Doc(1)
    m = doc.map("m")
    m["k"] = {"a": 1}
    assert not isinstance(m["k"], Container)
    child = m.map("k")  # replaces the value
    assert child.to_py() == {} and tag(m.to_py()) == tag({"k": {}})


def test_deleted_child_content_is_dropped_from_the_state():
    doc = crdtsync.Doc(1)  # gc on (the default): deleted text leaves no content behind
    doc.text("plain").insert(0, "gone-text")
    doc.text("plain").delete(0, 9)
    assert b"gone-text" not in doc.get_update()  # the rule for plain text
    doc.map("m").text("k").insert(0, "secret")
    del doc.map("m")["k"]
    assert b"secret" not in doc.get_update()


@pytest.mark.parametrize("where", ["map", "list"])
def test_replica_id_reissue_with_nested_containers(where):
    a = crdtsync.Doc(5)
    if where == "map":
        a.map("m").text("t").insert(0, "x")
    else:
        a.list("m").append_container(crdtsync.Text).insert(0, "x")
    twin = crdtsync.Doc(5)
    twin.text("z").insert(0, "y")
    a.apply_update(twin.get_update())  # a re-issues its own changes under a fresh id
    assert a.replica_id != 5
    want = {"m": {"t": "x"} if where == "map" else ["x"], "z": "y"}
    assert a.to_py() == want
    assert fresh_from(a.get_update()).to_py() == want


def test_nesting_past_the_limit_is_refused_or_round_trips():
    from crdtsync._nesting import MAX_NESTING

    doc = crdtsync.Doc(1)
    m = doc.map("r")
    try:
        for _ in range(MAX_NESTING + 3):
            m = m.map("k")
        m["x"] = 1
    except ValueError:
        pass  # refusing to nest so deep is fine: the document must stay loadable
    assert m.parent is not None and m.name == "k"
    assert fresh_from(doc.get_update()).to_py() == doc.to_py()


def test_concurrent_creators_that_saw_different_states_of_the_key():
    """They replace different writes, so they create different children (docs/types.md):
    one creating write wins, the same on every replica."""
    a, b, c = crdtsync.Doc(1), crdtsync.Doc(2), crdtsync.Doc(3)
    a.map("m")["k"] = "v"
    b.apply_update(a.get_update())  # b has seen the value, c has not
    b.map("m").text("k").insert(0, "B")  # concurrently with ...
    c.map("m").text("k").insert(0, "C")  # ... this creation of the same kind at "k"
    for x, y in itertools.permutations((a, b, c), 2):
        x.apply_update(y.get_update(x.version))
    assert state(a) == state(b) == state(c)
    assert str(a.map("m")["k"]) in ("B", "C")
