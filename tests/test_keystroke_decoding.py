"""The keystroke decoder (a shortcut for one-edit text updates) against the general one.

For every body it accepts, the shortcut must give exactly what the general decoder gives;
for every body the general decoder refuses, the shortcut must decline (return None) so the
refusal happens in one place.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from crdt_helpers import budget
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync import _encoding as enc


def keystroke_bodies() -> list[Any]:
    """Bodies of real keystroke updates: typing on, typing elsewhere, a foreign origin,
    a Lamport jump, one- and multi-range deletes."""
    a, b = crdtsync.Doc(2**63 + 1), crdtsync.Doc(5)
    ups: list[bytes] = []
    a.on_update(lambda u, o: ups.append(u))
    ta = a.text("t")
    ta.insert(0, "hello")
    ta.insert(5, "!")  # typing on
    ta.insert(0, ">")  # at the head
    ta.insert(3, "😀")  # inside its own run
    b.apply_update(a.get_update())
    b.text("t").insert(2, "bb")
    a.apply_update(b.get_update(a.version))  # a's next insert has a foreign origin
    ta.insert(4, "x")
    ta.delete(1, 1)
    ta.delete(0, len(ta))  # several ranges
    return [msgpack.unpackb(u[2:]) for u in ups]


TOP = 2**62 - 1  # the clock ceiling is 2**62: every counter and Lamport time is at most TOP


def ceiling_bodies() -> list[Any]:
    """Keystroke-shaped bodies whose counters or Lamport times sit at the clock ceiling."""
    out: list[Any] = []
    for content in ("a", "abc"):
        n = len(content)
        for c in (TOP - n, TOP - n + 1, TOP - n + 2):
            out.append([[9], ["tt"], [[0, c, 1, None, content]]])
            out.append([[9], ["tt"], [[0, c, 11, content]]])
        for lamport in (TOP - n, TOP - n + 1, TOP - n + 2):
            out.append([[9], ["tt"], [[0, 5, 10, lamport - 5, 1, None, content]]])
            out.append([[9, 4], ["tt"], [[0, 5, 10, lamport - 5, 1, [1, TOP], content]]])
    for c, length in ((TOP, 1), (TOP - 1, 2), (TOP - 1, 3), (TOP + 1, 1)):
        out.append([[9], ["tt"], [[0, 6, 3, [0, c, length]]]])
    out.append([[9], ["tt"], [[0, TOP + 1, 3, [0, 1, 1]]]])
    return out


BODIES = keystroke_bodies() + ceiling_bodies()


def general(body: Any) -> enc.Update | None:
    try:
        return enc._decode_general(body)
    except enc._Invalid:
        return None


def test_the_real_keystrokes_take_the_shortcut() -> None:
    for body in keystroke_bodies():
        fast = enc._decode_keystroke(body)
        assert fast is not None, body
        assert fast == general(body)


def accepted_by_the_rule(body: Any) -> bool:
    """Whether every clock in a ceiling body is at most TOP (what both decoders enforce)."""
    seg = body[2][0]
    c = seg[1]
    if seg[2] == 3:
        _, rc, n = seg[3]
        return c <= TOP and rc + n - 1 <= TOP
    offset = seg[3] if seg[2] == 10 else 0
    n = len(seg[-1])
    origin_ok = not (type(seg[-2]) is list and seg[-2][1] > TOP)
    return c + n - 1 <= TOP and c + offset + n - 1 <= TOP and origin_ok


def test_both_decoders_hold_the_clock_ceiling() -> None:
    for body in ceiling_bodies():
        expected = general(body)
        assert (expected is not None) == accepted_by_the_rule(body), body
        fast = enc._decode_keystroke(body)
        assert fast == expected, body
        update = b"\xc1\x01" + msgpack.packb(body)
        doc = crdtsync.Doc(1)
        if expected is None:
            with pytest.raises(crdtsync.DecodeError):
                doc.apply_update(update)
            assert doc.version == {}


def test_other_updates_decline() -> None:
    doc = crdtsync.Doc(3)
    doc.list("l").append(1)
    doc.map("m")["k"] = 1
    with doc.transaction():
        doc.text("t").insert(0, "ab")
        doc.text("t").insert(0, "c")
    body = msgpack.unpackb(doc.get_update()[2:])
    assert enc._decode_keystroke(body) is None
    assert enc._decode_general(body).segments


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(
        [0, 1, 2, 2**62 - 2, 2**62 - 1, 2**62, 2**63 - 2, 2**63 - 1, 2**63, 2**64 - 1, 2**64]
        + [-(2**63), -(2**62 - 1), 1.0]
    ),
    st.text(max_size=3),
    st.lists(st.integers(-1, 3), max_size=3),
)


def nearby(draw: Any, value: Any) -> Any:
    """A value close to ``value`` (ints shifted a little) or of another kind."""
    if type(value) is int and draw(st.booleans()):
        return value + draw(st.integers(-3, 3))
    return draw(scalars)


def mutate(draw: Any, value: Any) -> Any:
    """A copy of ``value`` with one leaf changed, or one item removed or duplicated."""
    if type(value) is not list or not value:
        return nearby(draw, value)
    out = list(value)
    i = draw(st.integers(0, len(value) - 1))
    action = draw(st.integers(0, 5))
    if action == 0:
        del out[i]
    elif action == 1:
        out.insert(i, out[i])
    else:
        out[i] = mutate(draw, out[i])
    return out


BOUNDARY = [
    None, True, False, -1, 0, 1, 2, 3, 2**62 - 3, 2**62 - 2, 2**62 - 1, 2**62, -(2**62 - 1),
    -(2**62), 2**63 - 2, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63),
    1.0, "", "a", "😀", "lt", "mt", "tu", [], [0], [0, 1], [1, 1], [2, 1], [0, 0], [0, 1, 1],
    b"x",
]  # fmt: skip


def leaf_variants(value: Any) -> list[Any]:
    """Every body that differs from ``value`` in one place: a leaf replaced by a boundary
    value (or shifted by one), a list item removed or duplicated."""
    if type(value) is not list:
        shifted = [value - 1, value + 1] if type(value) is int else []
        return [v for v in (*BOUNDARY, *shifted) if v is not value]
    out: list[Any] = []
    for i, item in enumerate(value):
        out.append(value[:i] + value[i + 1 :])
        out.append(value[:i] + [item] + value[i:])
        out.extend(value[:i] + [v] + value[i + 1 :] for v in leaf_variants(item))
    return out


def test_shortcut_agrees_with_the_general_decoder_one_change_away() -> None:
    for body in BODIES:
        for variant in leaf_variants(body):
            expected = general(variant)  # first: it caches the root keys it reads
            fast = enc._decode_keystroke(variant)
            if fast is not None:
                assert fast == expected, variant


@settings(max_examples=budget(400))
@given(st.data())
def test_shortcut_agrees_with_the_general_decoder_on_mutants(data: Any) -> None:
    body = data.draw(st.sampled_from(BODIES))
    for _ in range(data.draw(st.integers(1, 3))):
        shaped = type(body) is list and len(body) == 3 and type(body[2]) is list and body[2]
        if shaped and data.draw(st.booleans()):  # most checks are on the one change
            body = [body[0], body[1], [mutate(data.draw, body[2][0])]]
        else:
            body = mutate(data.draw, body)
    expected = general(body)
    fast = enc._decode_keystroke(body)
    if fast is not None:
        assert fast == expected, body
