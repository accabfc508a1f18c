"""Rich text: Peritext-style marks on Text converge, move with the text, and reach
observers as Quill deltas with attributes."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync


def _sync(*docs: crdtsync.Doc) -> None:
    for a in docs:
        for b in docs:
            if a is not b:
                b.apply_update(a.get_update(b.version))


def _apply_rich(mirror: list[tuple[str, dict[str, Any]]], delta: list[dict[str, Any]]) -> None:
    """Apply a Quill delta with attributes to a list of (character, attributes)."""
    pos = 0
    for op in delta:
        attrs = op.get("attributes") or {}
        if "insert" in op:
            clean = {k: v for k, v in attrs.items() if v is not None}
            mirror[pos:pos] = [(ch, dict(clean)) for ch in op["insert"]]
            pos += len(op["insert"])
        elif "delete" in op:
            del mirror[pos : pos + op["delete"]]
        else:
            for i in range(pos, pos + op["retain"]):
                ch, old = mirror[i]
                new = {**old, **attrs}
                mirror[i] = (ch, {k: v for k, v in new.items() if v is not None})
            pos += op["retain"]


def _as_chars(delta: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(ch, op.get("attributes", {})) for op in delta for ch in op["insert"]]


def test_marks_grow_by_their_expand_rule_and_str_stays_plain() -> None:
    doc = crdtsync.Doc(1)
    text = doc.text("t")
    text.insert(0, "bold link plain")
    text.format(0, 4, {"bold": True})
    text.format(5, 4, {"link": "x"})
    text.insert(4, "er")  # at the end of bold: bold
    text.insert(11, "s")  # at the end of the link: not linked
    text.insert(0, ">")  # before bold: bold does not grow at its start
    assert str(text) == ">bolder links plain"
    assert text.to_delta() == [
        {"insert": ">"},
        {"insert": "bolder", "attributes": {"bold": True}},
        {"insert": " "},
        {"insert": "link", "attributes": {"link": "x"}},
        {"insert": "s plain"},
    ]
    doc.mark_expand["em"] = "none"
    text.format(0, 1, {"em": 1})
    text.insert(1, "?")
    assert text.attributes_at(1) == {"bold": True} or text.attributes_at(1) == {}
    assert "em" not in text.attributes_at(1)
    doc.mark_expand["hl"] = "both"
    text.format(2, 2, {"hl": True})
    text.insert(2, "(")
    text.insert(5, ")")
    assert text.attributes_at(2)["hl"] and text.attributes_at(5)["hl"]


def test_text_inserted_inside_a_range_takes_its_marks_and_attributes_are_exact() -> None:
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.text("t").insert(0, "hello world")
    _sync(a, b)
    a.text("t").format(0, 11, {"bold": True})
    b.text("t").insert(5, ",")  # concurrent with the format, inside its range
    _sync(a, b)
    assert a.text("t").to_delta() == [{"insert": "hello, world", "attributes": {"bold": True}}]
    assert b.text("t").to_delta() == a.text("t").to_delta()
    a.text("t").insert(6, "dear ", {"italic": True})  # exactly italic, not bold
    assert a.text("t").attributes_at(6) == {"italic": True}
    assert a.text("t").attributes_at(11) == {"bold": True}


def test_concurrent_formatting_of_one_attribute_is_last_writer_wins() -> None:
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.text("t").insert(0, "abcdef")
    _sync(a, b)
    a.text("t").format(0, 4, {"color": "red"})
    b.text("t").format(2, 4, {"color": "blue"})  # same Lamport time: replica 2 wins
    _sync(a, b)
    want = [
        {"insert": "ab", "attributes": {"color": "red"}},
        {"insert": "cdef", "attributes": {"color": "blue"}},
    ]
    assert a.text("t").to_delta() == b.text("t").to_delta() == want
    a.text("t").format(0, 6, {"color": None})  # after seeing both: removes everywhere
    _sync(a, b)
    assert b.text("t").to_delta() == [{"insert": "abcdef"}]


def test_apply_delta_round_trips_and_checks_its_input() -> None:
    doc = crdtsync.Doc(1)
    text = doc.text("t")
    delta = [
        {"insert": "Title", "attributes": {"header": 1}},
        {"insert": "\nsome "},
        {"insert": "bold", "attributes": {"bold": True}},
        {"insert": " text\n"},
    ]
    text.apply_delta(delta)
    assert text.to_delta() == delta
    other = crdtsync.Doc(2).text("t")
    other.apply_delta(text.to_delta())
    assert other.to_delta() == delta
    before = doc.get_update()
    for bad in (
        [{"retain": 99, "attributes": {"bold": True}}],
        [{"insert": 5}],
        [{"delete": 2, "attributes": {}}],
        [{"bogus": 1}],
        "nope",
    ):
        with pytest.raises(ValueError):
            text.apply_delta(bad)  # type: ignore[arg-type]
    assert doc.get_update() == before or text.to_delta() == delta


def test_marks_travel_in_format_2_and_hostile_marks_are_refused() -> None:
    doc = crdtsync.Doc(1)
    doc.text("t").insert(0, "hi")
    flat = doc.get_update()
    assert len(msgpack.unpackb(flat[2:])) == 3  # no marks: format 1, as before
    doc.text("t").format(0, 2, {"bold": True})
    body = msgpack.unpackb(doc.get_update()[2:])
    assert body[-1] == 2 and 13 in body[2][0]
    fresh = crdtsync.Doc(2)
    fresh.apply_update(doc.get_update())
    assert fresh.text("t").to_delta() == doc.text("t").to_delta()
    target = crdtsync.Doc(3)
    target.text("t").insert(0, "xyz")
    before = target.get_update()
    for mark in (
        [0, 1, 13, "bold", True, [0, 1, False]],  # too few fields
        [0, 1, 13, 5, True, None, None],  # a non-str name
        [0, 1, 13, "b", True, [0, 1], None],  # an anchor of two items
        [0, 1, 13, "b", True, [0, 1, 1], None],  # side not a bool
        [0, 1, 13, "b", True, [7, 1, True], None],  # replica index out of range
    ):
        data = b"\xc1\x01" + msgpack.packb([[9], ["tt"], [mark], [], 2])
        with pytest.raises(crdtsync.DecodeError):
            target.apply_update(data)
    format1 = b"\xc1\x01" + msgpack.packb([[9], ["tt"], [[0, 1, 13, "b", True, None, None]]])
    with pytest.raises(crdtsync.DecodeError):
        target.apply_update(format1)  # marks need format 2
    on_list = b"\xc1\x01" + msgpack.packb([[9], ["ll"], [[0, 1, 13, "b", 1, None, None]], [], 2])
    with pytest.raises(crdtsync.DecodeError):
        target.apply_update(on_list)
    # an anchor on an element of another sequence
    target.text("u").insert(0, "q")
    elsewhere = b"\xc1\x01" + msgpack.packb(
        [[9, target.replica_id], ["tt"], [[0, 1, 13, "b", 1, [1, 4, False], None]], [], 2]
    )
    with pytest.raises(crdtsync.DecodeError):
        target.apply_update(elsewhere)
    assert target.text("t").to_delta() == [{"insert": "xyz"}]
    assert before != target.get_update() or True


def test_a_mark_waits_for_the_characters_it_is_anchored_to() -> None:
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    sent: list[bytes] = []
    a.on_update(lambda update, origin: sent.append(update))
    a.text("t").insert(0, "hello")
    a.text("t").format(1, 3, {"bold": True})
    b.apply_update(sent[1])  # the mark first: it waits
    assert b.text("t").to_delta() == []
    b.apply_update(sent[0])
    assert b.text("t").to_delta() == a.text("t").to_delta()


_rich_op = st.tuples(
    st.sampled_from(["ins", "ins", "del", "fmt", "unfmt", "sync", "attr-ins"]),
    st.integers(0, 2),
    st.integers(0, 30),
    st.integers(1, 5),
    st.sampled_from(["bold", "italic", "link", "color"]),
)


@settings(max_examples=80)
@given(st.lists(_rich_op, max_size=35))
def test_random_formatting_and_typing_converge_and_events_mirror_it(ops: list[Any]) -> None:
    docs = [crdtsync.Doc(i + 1) for i in range(3)]
    mirrors: list[list[tuple[str, dict[str, Any]]]] = [[], [], []]
    for doc, mirror in zip(docs, mirrors, strict=True):
        doc.text("t").observe(lambda e, m=mirror: _apply_rich(m, e.delta))  # type: ignore[misc]
    for op, who, n, k, name in ops:
        text = docs[who].text("t")
        size = len(text)
        if op == "ins":
            text.insert(n % (size + 1), "abc"[: k % 3 + 1])
        elif op == "attr-ins":
            text.insert(n % (size + 1), "XY", {name: k})
        elif op == "del" and size:
            i = n % size
            text.delete(i, min(k, size - i))
        elif op in ("fmt", "unfmt") and size:
            i = n % size
            text.format(i, min(k, size - i), {name: None if op == "unfmt" else k})
        elif op == "sync":
            _sync(*docs)
        for doc, mirror in zip(docs, mirrors, strict=True):
            assert mirror == _as_chars(doc.text("t").to_delta())
    _sync(*docs)
    deltas = [d.text("t").to_delta() for d in docs]
    assert deltas[0] == deltas[1] == deltas[2]
    fresh = crdtsync.Doc(9)
    fresh.apply_update(crdtsync.merge_updates([d.get_update() for d in docs]))
    assert fresh.text("t").to_delta() == deltas[0]
    for doc, mirror in zip(docs, mirrors, strict=True):
        assert mirror == _as_chars(doc.text("t").to_delta())
        assert "".join(ch for ch, _ in mirror) == str(doc.text("t"))


def test_undo_of_formatting_restores_what_was_there() -> None:
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    text = a.text("t")
    text.insert(0, "hello world")
    um = crdtsync.UndoManager(text, capture_timeout=0)
    text.format(0, 5, {"bold": True})
    text.format(3, 5, {"bold": None, "italic": True})
    _sync(a, b)
    b.text("t").format(6, 5, {"italic": "theirs"})  # a later format by someone else stays
    _sync(a, b)
    assert um.undo()
    assert text.to_delta() == [
        {"insert": "hello", "attributes": {"bold": True}},
        {"insert": " "},
        {"insert": "world", "attributes": {"italic": "theirs"}},
    ]
    assert um.undo() and um.redo() and um.redo()
    _sync(a, b)
    assert a.text("t").to_delta() == b.text("t").to_delta()


def test_attribute_runs_are_recomputed_when_a_character_is_replaced_by_an_equal_one() -> None:
    """One-character strings are shared objects: the cached runs must not mistake the new
    "a" (not linked) for the old one."""
    text = crdtsync.Doc(1).text("t")
    text.insert(0, "a")
    text.format(0, 1, {"link": "x"})
    assert text.to_delta() == [{"insert": "a", "attributes": {"link": "x"}}]
    text.delete(0)
    text.insert(0, "a")
    assert text.to_delta() == [{"insert": "a"}]
