"""Unit tests for LWWMap (last-writer-wins map with str keys)."""

from __future__ import annotations

import pytest
from crdt_helpers import budget, distinct_ids, fresh_from, int64, sync_pair, tag, values
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync


def make() -> crdtsync.LWWMap:
    return crdtsync.Doc(1).map("m")


def test_type_is_exported():
    assert isinstance(crdtsync.Doc().map("x"), crdtsync.LWWMap)


def test_basic_operations():
    m = make()
    assert len(m) == 0 and dict(m) == {} and "a" not in m
    m["a"] = 1
    m["b"] = [1, {"x": None}]
    m["a"] = "one"
    assert m["a"] == "one"
    assert m["b"] == [1, {"x": None}]
    assert len(m) == 2
    assert "a" in m and "c" not in m
    assert sorted(m) == ["a", "b"]  # iteration over keys
    assert dict(m) == {"a": "one", "b": [1, {"x": None}]}
    assert dict(m.items()) == dict(m)
    assert m.get("a") == "one"
    assert m.get("zz") is None
    assert m.get("zz", 5) == 5
    del m["a"]
    assert "a" not in m and len(m) == 1
    assert m.get("a", "gone") == "gone"
    m["a"] = None  # None is a value, not a deletion
    assert "a" in m and m["a"] is None and len(m) == 2


def test_missing_key_errors():
    m = make()
    with pytest.raises(KeyError):
        m["nope"]
    with pytest.raises(KeyError):
        del m["nope"]
    m["k"] = 1
    del m["k"]
    with pytest.raises(KeyError):
        del m["k"]
    with pytest.raises(KeyError):
        m["k"]


@pytest.mark.parametrize("key", [1, None, b"k", 1.5, ("t",)], ids=repr)
def test_non_str_keys_raise_type_error(key):
    m = make()
    with pytest.raises(TypeError):
        m[key] = 1
    assert len(m) == 0


@pytest.mark.parametrize(
    "bad", [object(), {1, 2}, 1j, [object()], {"a": {"b": {2}}}], ids=lambda v: type(v).__name__
)
def test_bad_values_raise_type_error(bad):
    doc = crdtsync.Doc(1)
    m = doc.map("m")
    m["k"] = "keep"
    v = doc.version
    with pytest.raises(TypeError):
        m["k"] = bad
    with pytest.raises(TypeError):
        m["new"] = bad
    assert dict(m) == {"k": "keep"}
    assert doc.version == v


def test_caller_mutation_does_not_leak():
    doc = crdtsync.Doc(1)
    m = doc.map("m")
    v = {"inner": [1]}
    m["k"] = v
    v["inner"].append(2)
    v["other"] = 1
    assert m["k"] == {"inner": [1]}
    m["k"]["inner"].append(3)
    assert m["k"] == {"inner": [1]}
    assert fresh_from(doc.get_update()).map("m")["k"] == {"inner": [1]}


@given(st.lists(st.tuples(st.sampled_from("abcd😀"), st.one_of(st.none(), values)), max_size=20))
@settings(max_examples=budget(60))
def test_matches_dict_model(ops):
    doc = crdtsync.Doc(3)
    m = doc.map("m")
    model: dict = {}
    for key, val in ops:
        if val is None and key in model:
            del m[key]
            del model[key]
        else:
            m[key] = val
            model[key] = val
        assert len(m) == len(model)
    assert tag(dict(m)) == tag(model)
    assert tag(dict(fresh_from(doc.get_update()).map("m"))) == tag(model)


@given(ids=distinct_ids(2), first=st.integers(0, 1), later_value=values)
@settings(max_examples=budget(40))
def test_causally_later_write_wins(ids, first, later_value):
    docs = [crdtsync.Doc(ids[0]), crdtsync.Doc(ids[1])]
    w1, w2 = docs[first], docs[1 - first]
    # w1 makes lots of writes (high Lamport time), w2 sees them, then overwrites once
    for i in range(10):
        w1.map("m")["k"] = f"early-{i}"
        w1.map("m")["other"] = i
    sync_pair(w1, w2)
    w2.map("m")["k"] = later_value
    sync_pair(w1, w2)
    for d in docs:
        assert tag(d.map("m")["k"]) == tag(later_value)


@given(ids=distinct_ids(2), first=st.integers(0, 1))
@settings(max_examples=budget(30))
def test_causally_later_delete_wins_and_later_set_wins(ids, first):
    docs = [crdtsync.Doc(ids[0]), crdtsync.Doc(ids[1])]
    a, b = docs[first], docs[1 - first]
    for i in range(5):
        a.map("m")["k"] = i
    sync_pair(a, b)
    del b.map("m")["k"]
    sync_pair(a, b)
    assert "k" not in a.map("m") and "k" not in b.map("m")
    b.map("m")["z"] = 0
    a.map("m")["k"] = "back"
    sync_pair(a, b)
    assert a.map("m")["k"] == b.map("m")["k"] == "back"


def test_concurrent_writes_equal_lamport_higher_replica_wins():
    for lo, hi in [(1, 2), (5, 2**64 - 1), (0, 1)]:
        a, b = crdtsync.Doc(lo), crdtsync.Doc(hi)
        a.map("m")["k"] = "from-lo"
        b.map("m")["k"] = "from-hi"
        sync_pair(a, b)
        assert a.map("m")["k"] == b.map("m")["k"] == "from-hi"


def test_concurrent_writes_higher_lamport_wins():
    lo, hi = crdtsync.Doc(1), crdtsync.Doc(2)
    for i in range(5):
        lo.map("m")[f"x{i}"] = i  # advance lo's Lamport clock
    lo.map("m")["k"] = "from-lo"
    hi.map("m")["k"] = "from-hi"
    sync_pair(lo, hi)
    assert lo.map("m")["k"] == hi.map("m")["k"] == "from-lo"


@given(ids=distinct_ids(3), vals=st.lists(int64, min_size=3, max_size=3))
@settings(max_examples=budget(30))
def test_concurrent_writes_converge_in_any_delivery_order(ids, vals):
    docs = [crdtsync.Doc(i) for i in ids]
    ups = []
    for d, v in zip(docs, vals, strict=True):
        d.map("m")["k"] = v
        ups.append(d.get_update())
    results = set()
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        fresh = crdtsync.Doc()
        for k in order:
            fresh.apply_update(ups[k])
        results.add(fresh.map("m")["k"])
    for d in docs:
        for u in ups:
            d.apply_update(u)
        results.add(d.map("m")["k"])
    assert len(results) == 1
    # all three writes have the same Lamport time: the highest replica id wins
    assert results == {vals[ids.index(max(ids))]}
