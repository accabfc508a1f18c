"""The decoder's fast path for typed-text segments (``_typed_segment``) must agree with the
general loop on every input of the shapes it looks at, valid or not: the same segment when
the loop accepts it, and no answer of its own (so the loop's error) when the loop refuses."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from crdtsync import _encoding as enc

MAX = enc.MAX_COUNTER
# Every combination of values at and around each field's bounds, of the wrong type, and of
# the wrong shape: each check the fast path makes (and each it must not skip) is crossed.
REPLICA_INDEXES = [0, 1, 2, -1, "x"]
COUNTERS = [0, 1, 2, 5, MAX - 1, MAX, MAX + 1, "x"]
OFFSETS = [-6, -5, -1, 0, 3, MAX - 5, MAX, MAX + 1, "x"]
TAGS = [enc.INS, enc.INS_NEXT, enc.DEL]
FIFTHS = [None, 0, 1, 3, 4, [0, 1], [1, 4], [2, 1], [0, 0], [0, MAX + 1], "x", [0], "a", ""]
SIXTHS = [(), ("a",), ("ab",), ("",), (1,), (["a"],)]
ROOTS = [[("t", "t")], [("l", "x")], [("T", "t\x00x")], []]


def _outcome(decode: Any, seg: list[Any], reader: Any) -> Any:
    try:
        return decode(seg, reader)
    except (enc._Invalid, IndexError, TypeError) as exc:
        return type(exc)


def test_fast_path_agrees_with_the_loop() -> None:
    taken = 0
    for roots in ROOTS:
        reader = enc._Reader([5, 6], roots)
        for seg in (
            [ri, c, enc.LAMPORT, off, tag, fifth, *sixth]
            for ri, c, off, tag, fifth, sixth in itertools.product(
                REPLICA_INDEXES, COUNTERS, OFFSETS, TAGS, FIFTHS, SIXTHS
            )
        ):
            expected = _outcome(enc._decode_segment_loop, seg, reader)
            typed = enc._typed_segment(seg, reader) if len(seg) >= 6 else None
            if typed is not None:
                taken += 1
                assert typed == expected, seg
            assert _outcome(enc._decode_segment, seg, reader) == expected, seg
    assert taken > 200  # the fast path is exercised, not only bypassed


@pytest.mark.parametrize(
    "seg",
    [
        [0, 5, enc.LAMPORT, 3, enc.INS_NEXT, "a"],
        [1, 5, enc.LAMPORT, 3, enc.INS, [0, 4], "ab"],
        [0, 5, enc.LAMPORT, 3, enc.INS, 2, "a"],
        [0, 5, enc.LAMPORT, 3, enc.INS, None, "a"],
    ],
)
def test_the_keystroke_shapes_take_the_fast_path(seg: list[Any]) -> None:
    reader = enc._Reader([5, 6], [("t", "t")])
    typed = enc._typed_segment(seg, reader)
    assert typed is not None and typed == enc._decode_segment_loop(seg, reader)
