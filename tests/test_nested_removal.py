"""Removing a container from its parent drops its content from the state.

A removed child is emptied with ordinary edits in the removing transaction, so its content
goes the way of deleted text (gc drops it) and, should a concurrent creator bring the same
child back, it holds only what was made without seeing the removal, on every replica.
"""

from __future__ import annotations

import random

import pytest

import crdtsync


def _words(n: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("abcdefghij klmnop") for _ in range(n))


def _sync(*docs: crdtsync.Doc) -> None:
    for _ in range(2):
        for a in docs:
            for b in docs:
                if a is not b:
                    b.apply_update(a.get_update(b.version))


def _filled(doc: crdtsync.Doc) -> crdtsync.LWWMap:
    card = doc.map("board").map("card")
    card.text("title").insert(0, _words(5000))
    cells = card.list("cells")
    cells.append_container(crdtsync.Text).insert(0, _words(5000, 2))
    cells.append_container(crdtsync.LWWMap)["k"] = _words(2000, 3)
    card.set("tags").add(_words(2000, 4))
    card.counter("likes").increment(7)
    return card


@pytest.mark.parametrize("how", ["del key", "overwrite key", "del element"])
def test_removed_content_leaves_the_state(how: str) -> None:
    doc = crdtsync.Doc(1)
    if how == "del element":
        holder = doc.list("cards")
        card = holder.append_container(crdtsync.LWWMap)
        card.text("title").insert(0, _words(12000))
        card.list("l").append_container(crdtsync.Text).insert(0, _words(3000))
    else:
        _filled(doc)
    full = len(doc.get_update())
    assert full > 6000
    if how == "del key":
        del doc.map("board")["card"]
    elif how == "overwrite key":
        doc.map("board")["card"] = "plain"
    else:
        del doc.list("cards")[0]
    after = doc.get_update()
    assert len(after) < full / 20
    fresh = crdtsync.Doc(2)
    fresh.apply_update(after)
    assert fresh.to_py() == doc.to_py()


def test_re_created_child_starts_empty_on_every_replica() -> None:
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    _filled(a)
    _sync(a, b)
    del b.map("board")["card"]
    _sync(a, b)
    again = a.map("board").map("card")
    assert again.to_py() == {}
    again.text("title").insert(0, "new")
    _sync(a, b)
    assert a.to_py() == b.to_py() == {"board": {"card": {"title": "new"}}}


def test_a_concurrent_creator_brings_back_only_what_the_remover_did_not_see() -> None:
    """c creates the same child as a did, concurrently (both replace the same write); b
    removes a's child after seeing it; c's creation wins the key by Lamport time. On every
    replica and in every order of delivery the child holds c's edits only."""
    a, b, c = crdtsync.Doc(1), crdtsync.Doc(2), crdtsync.Doc(3)
    a.map("m").text("t").insert(0, "from a")
    _sync(a, b)
    del b.map("m")["t"]
    for _ in range(50):  # c's clock runs ahead, so its creating write wins the key
        c.counter("busy").increment()
    c.map("m").text("t").insert(0, "from c")
    updates = [a.get_update(), b.get_update(), c.get_update()]
    results = []
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]):
        d = crdtsync.Doc(9)
        for i in order:
            d.apply_update(updates[i])
        results.append(d.to_py())
    _sync(a, b, c)
    assert results == [a.to_py()] * 4
    assert a.to_py() == b.to_py() == c.to_py()
    assert a.to_py()["m"] == {"t": "from c"}


def test_an_edit_inside_a_concurrently_removed_child_stays_invisible() -> None:
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.map("m").text("t").insert(0, "hello")
    _sync(a, b)
    b.map("m").text("t").insert(5, " world")
    del a.map("m")["t"]
    _sync(a, b)
    assert a.to_py() == b.to_py() == {"m": {}}
    assert a.map("m").text("t").to_py() == ""  # a new, empty child
    _sync(a, b)
    assert b.to_py() == {"m": {"t": ""}}


def test_creators_that_saw_different_writes_at_the_key_agree_on_one_child() -> None:
    a, b, c = crdtsync.Doc(1), crdtsync.Doc(2), crdtsync.Doc(3)
    a.map("m")["k"] = "plain"
    b.apply_update(a.get_update())  # b has seen the plain value, c has not
    b.map("m").text("k").insert(0, "B")
    c.map("m").text("k").insert(0, "C")
    _sync(a, b, c)
    assert a.to_py() == b.to_py() == c.to_py()
    assert a.to_py()["m"]["k"] in ("B", "C")  # one creating write wins, everywhere


def test_nesting_is_bounded_and_what_is_allowed_round_trips() -> None:
    from crdtsync._nesting import MAX_NESTING

    doc = crdtsync.Doc(1)
    m = doc.map("r")
    for _ in range(MAX_NESTING):
        m = m.map("k")
    with pytest.raises(ValueError, match="nest at most"):
        m.map("k")
    with pytest.raises(ValueError, match="nest at most"):
        m.list("l")  # (the list would be one level too deep as well)
    fresh = crdtsync.Doc(2)
    fresh.apply_update(doc.get_update())
    assert fresh.to_py() == doc.to_py()


def test_removal_is_one_update_and_a_failing_delete_changes_nothing() -> None:
    doc = crdtsync.Doc(1)
    _filled(doc)
    sent: list[bytes] = []
    doc.on_update(lambda update, origin: sent.append(update))
    with pytest.raises(IndexError):
        del doc.list("nothing")[3]
    assert sent == []
    del doc.map("board")["card"]
    assert len(sent) == 1
