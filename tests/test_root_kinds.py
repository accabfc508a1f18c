"""One root name, several types: replicas that create the same name as different types at
the same time keep every one of those roots, and end equal whatever the delivery order.

Locally a name has one type (asking for it as another raises TypeError); a root is
identified by (type, name), so a remote update that introduces a second type for a name
adds a second root rather than being refused or dropped.
"""

from __future__ import annotations

from typing import Any

import pytest
from crdt_helpers import budget, tag
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync

KINDS = ("text", "list", "set", "map", "counter")
ACCESSORS = {
    "text": crdtsync.Doc.text,
    "list": crdtsync.Doc.list,
    "set": crdtsync.Doc.set,
    "map": crdtsync.Doc.map,
    "counter": crdtsync.Doc.counter,
}
KIND_OF = {"t": "text", "l": "list", "s": "set", "m": "map", "c": "counter"}
LETTER = {kind: letter for letter, kind in KIND_OF.items()}


def edit(doc: crdtsync.Doc, kind: str, name: str, n: int) -> None:
    root: Any = ACCESSORS[kind](doc, name)
    if kind == "text":
        root.insert(0, f"{doc.replica_id}:{n}")
    elif kind == "list":
        root.append([doc.replica_id, n])
    elif kind == "set":
        root.add(f"{doc.replica_id}:{n}")
    elif kind == "map":
        root[str(doc.replica_id)] = n
    else:
        root.increment(n + 1)


def value(root: Any) -> Any:
    if isinstance(root, crdtsync.Text):
        return str(root)
    if isinstance(root, crdtsync.List):
        return tag(list(root))
    if isinstance(root, crdtsync.ORSet):
        return frozenset(tag(e) for e in root)
    if isinstance(root, crdtsync.LWWMap):
        return tag(dict(root))
    return root.value


def state(doc: crdtsync.Doc) -> dict[tuple[str, str], Any]:
    return {(KIND_OF[k], name): value(root) for (k, name), root in doc._roots.items()}


@settings(max_examples=budget(60))
@given(
    choices=st.lists(
        st.tuples(st.sampled_from(KINDS), st.sampled_from(["c", "d"]), st.integers(0, 3)),
        min_size=2,
        max_size=4,
    ),
    data=st.data(),
)
def test_concurrent_roots_of_one_name_converge_in_any_order(
    choices: list[tuple[str, str, int]], data: st.DataObject
) -> None:
    docs = [crdtsync.Doc(replica_id=i + 1) for i in range(len(choices))]
    updates: list[bytes] = []
    for doc, (kind, name, n) in zip(docs, choices, strict=True):
        doc.on_update(lambda u, o: updates.append(u))
        for k in range(n + 1):
            edit(doc, kind, name, k)
    updates += [doc.get_update() for doc in docs]
    for doc in docs:
        for u in data.draw(st.permutations(updates)):
            doc.apply_update(u)
    expected = state(docs[0])
    created = {(kind, name) for kind, name, _ in choices}
    assert set(expected) == created  # nothing dropped, nothing invented
    for doc in docs:
        assert state(doc) == expected
        for kind, name in created:  # each root reachable by its own accessor
            assert ACCESSORS[kind](doc, name) is doc._roots[(LETTER[kind], name)]
        for kind in KINDS:
            for name in ("c", "d"):
                if (kind, name) not in created and any(n == name for _, n in created):
                    with pytest.raises(TypeError):
                        ACCESSORS[kind](doc, name)


@pytest.mark.parametrize("first", ["text", "counter"])
def test_text_and_counter_named_c_in_both_orders(first: str) -> None:
    a, b = crdtsync.Doc(replica_id=1), crdtsync.Doc(replica_id=2)
    a.text("c").insert(0, "hello")
    b.counter("c").increment(5)
    with pytest.raises(TypeError, match="exists as a Text"):
        a.counter("c")
    with pytest.raises(TypeError, match="exists as a Counter"):
        b.text("c")
    ua, ub = a.get_update(), b.get_update()
    for doc, order in ((a, [ub]), (b, [ua])):
        for u in order if first == "text" else order[::-1]:
            doc.apply_update(u)
    for doc in (a, b):
        assert str(doc.text("c")) == "hello" and doc.counter("c").value == 5
        with pytest.raises(TypeError):
            doc.map("c")
    # Later edits to either root keep flowing.
    a.counter("c").increment()
    b.text("c").insert(5, "!")
    a.apply_update(b.get_update(a.version))
    b.apply_update(a.get_update(b.version))
    assert state(a) == state(b) == {("text", "c"): "hello!", ("counter", "c"): 6}
