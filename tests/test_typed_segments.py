"""The decoder's fast path for keystroke-shaped segments (``_simple_segment``) must agree
with the general loop on every input of the shapes it looks at, valid or not: the same
segment when the loop accepts it, and no answer of its own (so the loop's error) when the
loop refuses."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from crdtsync import _encoding as enc

MAX = enc.MAX_COUNTER
# Every combination of values at and around each field's bounds, of the wrong type, and of
# the wrong shape: each check the fast path makes (and each it must not skip) is crossed.
REPLICA_INDEXES = [0, 1, 2, -1, "x", True]
COUNTERS = [0, 1, 2, 5, MAX - 1, MAX, MAX + 1, "x"]
OFFSETS = [-6, -5, -1, 0, 3, MAX - 5, MAX, MAX + 1, "x"]
TAGS = [enc.INS, enc.INS_NEXT, enc.DEL, enc.INS_DELETED, 1.0]
FIFTHS = [None, 0, 1, 3, 4, [0, 1], [1, 4], [2, 1], [0, 0], [0, MAX + 1], "x", [0], "a", ""]
SIXTHS = [(), ("a",), ("ab",), ("",), (1,), (["a"],)]
RANGES = [
    [0, 1, 1],
    [1, 4, 2, 0, 2, 1],
    [2, 1, 1],
    [0, 0, 1],
    [0, 1, 0],
    [0, MAX, 1],
    [0, MAX, 2],
    [0, 1],
    [],
    "x",
    [0, "x", 1],
]
KEY = ("t", "t")


def _outcome(decode: Any, *args: Any) -> Any:
    try:
        return decode(*args)
    except (enc._Invalid, IndexError, TypeError) as exc:
        return type(exc)


def _segments() -> Any:
    for ri, c, off, tag, fifth, sixth in itertools.product(
        REPLICA_INDEXES, COUNTERS, OFFSETS, TAGS, FIFTHS, SIXTHS
    ):
        yield [ri, c, enc.LAMPORT, off, tag, fifth, *sixth]
    for ri, c, tag, fifth, sixth in itertools.product(
        REPLICA_INDEXES, COUNTERS, TAGS, FIFTHS, SIXTHS
    ):
        yield [ri, c, tag, fifth, *sixth]
    for ri, c, ranges, extra in itertools.product(
        REPLICA_INDEXES, COUNTERS, RANGES, [(), (enc.DEL, [0, 1, 1])]
    ):
        yield [ri, c, enc.DEL, ranges, *extra]


def test_fast_path_agrees_with_the_loop() -> None:
    reader = enc._Reader([5, 6], [KEY])
    taken = 0
    for seg in _segments():
        expected = _outcome(enc._decode_segment_loop, seg, reader)
        fast = enc._simple_segment(seg, [5, 6], KEY)
        if fast is not None:
            taken += 1
            assert fast == expected, seg
    assert taken > 500  # the fast path is exercised, not only bypassed


@pytest.mark.parametrize(
    "seg",
    [
        [0, 5, enc.LAMPORT, 3, enc.INS_NEXT, "a"],
        [1, 5, enc.LAMPORT, 3, enc.INS, [0, 4], "ab"],
        [0, 5, enc.LAMPORT, 3, enc.INS, 2, "a"],
        [0, 5, enc.LAMPORT, 3, enc.INS, None, "a"],
        [0, 5, enc.INS_NEXT, "a"],
        [1, 5, enc.INS, [0, 4], "ab"],
        [0, 5, enc.DEL, [1, 2, 3, 0, 1, 1]],
    ],
)
def test_the_keystroke_shapes_take_the_fast_path(seg: list[Any]) -> None:
    reader = enc._Reader([5, 6], [KEY])
    fast = enc._simple_segment(seg, [5, 6], KEY)
    assert fast is not None and fast == enc._decode_segment_loop(seg, reader)


def test_a_merge_of_keystrokes_decodes_as_the_loop_decodes_it() -> None:
    """Through decode_update: segments of both paths in one update, in order."""
    import msgpack

    segs = [[0, 5, enc.INS_NEXT, "a"], [1, 2, enc.MAP_SET, "k", 1], [1, 4, enc.DEL, [0, 5, 1]]]
    body = [[5, 6], ["tt"], segs]
    data = enc.PREFIX + msgpack.packb(body)
    with pytest.raises(enc.DecodeError):  # a map write into a text root
        enc.decode_update(data)
    segs[1] = [1, 2, enc.INS, None, "xy"]
    update = enc.decode_update(enc.PREFIX + msgpack.packb(body))
    reader = enc._Reader([5, 6], [KEY])
    assert update.segments == [enc._decode_segment_loop(s, reader) for s in segs]
