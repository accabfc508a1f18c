"""Unit tests for ORSet (add-wins observed-remove set)."""

from __future__ import annotations

import pytest
from crdt_helpers import budget, distinct_ids, fresh_from, set_elements, sync_pair, tag
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync


def make() -> crdtsync.ORSet:
    return crdtsync.Doc(1).set("s")


def test_type_is_exported():
    assert isinstance(crdtsync.Doc().set("x"), crdtsync.ORSet)


def test_basic_operations():
    s = make()
    assert len(s) == 0 and list(s) == [] and "a" not in s
    s.add("a")
    s.add("b")
    s.add("a")  # idempotent
    assert len(s) == 2
    assert "a" in s and "b" in s and "c" not in s
    assert set(s) == {"a", "b"}
    s.discard("a")
    s.discard("zzz")  # absent: no error
    assert set(s) == {"b"}
    s.remove("b")
    assert len(s) == 0
    s.add("a")
    assert set(s) == {"a"}


def test_remove_absent_raises_key_error():
    doc = crdtsync.Doc(1)
    s = doc.set("s")
    s.add(1)
    v = doc.version
    with pytest.raises(KeyError):
        s.remove(2)
    s.remove(1)
    with pytest.raises(KeyError):
        s.remove(1)
    assert len(s) == 0
    assert doc.version != v  # the successful remove is a change


ELEMENTS = [None, True, 7, -(2**63), 2.5, "str", "😀", b"bytes", b"", ""]


def test_all_scalar_element_types_round_trip():
    doc = crdtsync.Doc(1)
    s = doc.set("s")
    for e in ELEMENTS:
        s.add(e)
    for e in ELEMENTS:
        assert e in s
    copy = fresh_from(doc.get_update()).set("s")
    assert {tag(e) for e in copy} == {tag(e) for e in s} == {tag(e) for e in ELEMENTS}


@pytest.mark.parametrize(
    "bad", [[1], {"a": 1}, {1}, object(), 1j, (1, [2])], ids=lambda v: type(v).__name__
)
def test_bad_elements_raise_type_error(bad):
    doc = crdtsync.Doc(1)
    s = doc.set("s")
    s.add("keep")
    v = doc.version
    with pytest.raises(TypeError):
        s.add(bad)
    assert set(s) == {"keep"}
    assert doc.version == v


def test_list_element_rejected_even_though_lists_are_values():
    with pytest.raises(TypeError):
        make().add([])
    with pytest.raises(TypeError):
        make().add({})


@given(st.lists(st.tuples(st.booleans(), set_elements), max_size=25))
@settings(max_examples=budget(60))
def test_matches_python_set_model(ops):
    doc = crdtsync.Doc(2)
    s = doc.set("s")
    model: set = set()
    for add, e in ops:
        if add:
            s.add(e)
            model.add(e)
        else:
            s.discard(e)
            model.discard(e)
        assert len(s) == len(model)
    assert {tag(e) for e in s} == {tag(e) for e in model}
    for e in model:
        assert e in s
    assert {tag(e) for e in fresh_from(doc.get_update()).set("s")} == {tag(e) for e in model}


@given(ids=distinct_ids(2), element=set_elements)
@settings(max_examples=budget(30))
def test_concurrent_add_and_remove_add_wins(ids, element):
    a, b = crdtsync.Doc(ids[0]), crdtsync.Doc(ids[1])
    a.set("s").add(element)
    sync_pair(a, b)
    assert element in b.set("s")
    # concurrently: a removes, b re-adds
    a.set("s").discard(element)
    b.set("s").add(element)
    sync_pair(a, b)
    assert element in a.set("s")
    assert element in b.set("s")


@given(ids=distinct_ids(2))
@settings(max_examples=budget(20))
def test_concurrent_add_of_unseen_element_and_discard_keeps_it(ids):
    a, b = crdtsync.Doc(ids[0]), crdtsync.Doc(ids[1])
    a.set("s").add("x")
    b.set("s").add("x")
    b.set("s").discard("x")  # removes only b's own add
    sync_pair(a, b)
    assert "x" in a.set("s") and "x" in b.set("s")


def test_observed_remove_propagates():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.set("s").add("x")
    b.set("s").add("x")
    sync_pair(a, b)
    a.set("s").remove("x")  # a has observed both adds
    sync_pair(a, b)
    assert "x" not in a.set("s") and "x" not in b.set("s")


def test_concurrent_removes_both_win():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.set("s").add("x")
    a.set("s").add("y")
    sync_pair(a, b)
    a.set("s").discard("x")
    b.set("s").discard("x")
    b.set("s").discard("y")
    sync_pair(a, b)
    assert set(a.set("s")) == set(b.set("s")) == set()


def test_readd_after_remove():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.set("s").add("x")
    sync_pair(a, b)
    b.set("s").remove("x")
    sync_pair(a, b)
    assert "x" not in a.set("s")
    a.set("s").add("x")
    sync_pair(a, b)
    assert "x" in b.set("s")


def test_remove_relayed_through_a_third_replica():
    """b learns of a's remove through a delta, then relays it to c with another delta."""
    a, b, c = crdtsync.Doc(1), crdtsync.Doc(2), crdtsync.Doc(3)
    a.set("s").add("x")
    b.apply_update(a.get_update())
    c.apply_update(a.get_update())
    a.set("s").remove("x")
    b.apply_update(a.get_update(b.version))
    c.apply_update(b.get_update(c.version))
    assert "x" not in b.set("s")
    assert "x" not in c.set("s")


def test_add_seen_directly_then_covered_by_relayed_state():
    """c holds a's add; b's whole state covers the add and its remove; then the remove arrives."""
    a = crdtsync.Doc(1)
    ups: list[bytes] = []
    a.on_update(lambda u, o: ups.append(u))
    a.set("s").add("z")
    a.set("s").remove("z")
    b = fresh_from(a.get_update())
    c = crdtsync.Doc(3)
    c.apply_update(ups[0])
    c.apply_update(b.get_update())
    c.apply_update(ups[1])
    assert "z" not in c.set("s")
    assert c.version == a.version


# A reference ORSWOT beside the real one: live dots -> element key, and a version vector.
# Three or four replicas add and discard a few colliding elements (1, True and 1.0 are
# distinct elements; "a" and b"a" too) and merge in random order, with duplicates and
# whole-state syncs: every replica's live dots must be exactly the model's, so an element
# that concurrent adds left with several dots keeps each of them until each is removed.
_POOL = [1, True, 1.0, "a", b"a", None]
_orswot_ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "add", "discard", "sync", "sync", "state"]),
        st.integers(0, 3),
        st.integers(0, 3),
        st.one_of(st.just("a"), st.sampled_from(_POOL)),  # "a" often: adds collide
    ),
    max_size=40,
)


def _model_merge(into: tuple[dict, dict], other: tuple[dict, dict]) -> None:
    live, vv = into
    o_live, o_vv = other
    kept = {d: k for d, k in live.items() if d in o_live or d[1] > o_vv.get(d[0], 0)}
    kept.update({d: k for d, k in o_live.items() if d in live or d[1] > vv.get(d[0], 0)})
    live.clear()
    live.update(kept)
    for r, c in o_vv.items():
        vv[r] = max(vv.get(r, 0), c)


@given(n=st.integers(3, 4), ops=_orswot_ops)
@settings(max_examples=budget(60))
def test_live_dots_match_a_reference_orswot(n, ops):
    from crdtsync.types.orset import canonical_encoding

    docs = [crdtsync.Doc(r + 1) for r in range(n)]
    models: list[tuple[dict, dict]] = [({}, {}) for _ in range(n)]
    for op, i, j, element in ops:
        i, j = i % n, j % n
        doc, (live, vv) = docs[i], models[i]
        key = canonical_encoding(element)
        if op in ("add", "discard"):
            mine = [d for d, k in live.items() if k == key]
            if op == "discard" and not mine:
                doc.set("s").discard(element)
                continue
            for d in mine:
                del live[d]
            vv[i + 1] = vv.get(i + 1, 0) + 1
            if op == "add":
                live[(i + 1, vv[i + 1])] = key
                doc.set("s").add(element)
            else:
                doc.set("s").discard(element)
        else:
            since = None if op == "state" else docs[j].version
            update = doc.get_update(since)
            docs[j].apply_update(update)
            docs[j].apply_update(update)  # a duplicate changes nothing
            _model_merge(models[j], models[i])
    for doc, (live, _) in zip(docs, models, strict=True):
        s = doc.set("s")
        assert s._live_dots() == sorted(live)
        assert sorted(canonical_encoding(e) for e in s) == sorted(set(live.values()))
        for element in _POOL:
            dots = sorted(d for d, k in live.items() if k == canonical_encoding(element))
            assert list(s._dots_of(element)) == dots
            assert (element in s) == bool(dots)
