"""Sets of dots held as runs ``(replica, first counter, length)``.

A set's live dots are mostly runs of one replica's consecutive counters (a replica adding
many elements in a row), so the live-dots fact of a set carries them as runs: a set of
100k elements built by one replica is one run on the wire, not 100k pairs.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from typing import Any

Dot = tuple[int, int]
DotRun = tuple[int, int, int]  # replica, first counter, length

__all__ = ["DotRun", "DotRuns", "dot_runs", "is_normal", "normalized"]


def dot_runs(dots: Iterable[Dot]) -> list[DotRun]:
    """The dots (sorted, distinct) as maximal runs of consecutive counters.

    >>> dot_runs([(1, 1), (1, 2), (1, 3), (1, 7), (2, 1)])
    [(1, 1, 3), (1, 7, 1), (2, 1, 1)]
    """
    out: list[DotRun] = []
    replica = first = last = -1
    for r, c in dots:
        if r == replica and c == last + 1:
            last = c
            continue
        if replica >= 0:
            out.append((replica, first, last - first + 1))
        replica, first, last = r, c, c
    if replica >= 0:
        out.append((replica, first, last - first + 1))
    return out


def normalized(runs: Iterable[DotRun]) -> list[DotRun]:
    """The same dots as sorted, maximal runs (runs given in any order, overlapping or not).

    >>> normalized([(2, 1, 1), (1, 4, 2), (1, 1, 3), (1, 5, 4)])
    [(1, 1, 8), (2, 1, 1)]
    """
    out: list[DotRun] = []
    for r, c, n in sorted(runs):
        if out and out[-1][0] == r and c <= out[-1][1] + out[-1][2]:
            _, first, length = out[-1]
            out[-1] = (r, first, max(length, c + n - first))
        else:
            out.append((r, c, n))
    return out


def is_normal(runs: list[DotRun]) -> bool:
    """Whether the runs are sorted and maximal (no two overlap or touch), as
    :func:`normalized` makes them.

    >>> is_normal([(1, 1, 3), (1, 5, 1), (2, 1, 1)]), is_normal([(1, 1, 3), (1, 4, 1)])
    (True, False)
    """
    for j in range(len(runs) - 1):
        (r, c, n), (r2, c2, _) = runs[j], runs[j + 1]
        if r2 < r or (r2 == r and c2 <= c + n):
            return False
    return True


class DotRuns:
    """Membership of dots in runs, in O(log runs) per look-up.

    >>> live = DotRuns([(1, 1, 3), (2, 5, 1)])
    >>> (1, 3) in live, (1, 4) in live, (2, 5) in live, (3, 1) in live
    (True, False, True, False)
    """

    __slots__ = ("_starts", "_ends")

    def __init__(self, runs: Iterable[DotRun]) -> None:
        #: replica -> the first counters of its runs, ascending, and where each run ends
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for r, c, n in normalized(runs):
            self._starts.setdefault(r, []).append(c)
            self._ends.setdefault(r, []).append(c + n)

    def __contains__(self, dot: Any) -> bool:
        r, c = dot
        starts = self._starts.get(r)
        if starts is None:
            return False
        i = bisect_right(starts, c) - 1
        return i >= 0 and c < self._ends[r][i]

    def dead(self, dots: Iterable[Dot], version: dict[int, int]) -> list[Dot]:
        """The dots that ``version`` covers and these runs do not hold (:meth:`__contains__`
        inline: a state's fact is checked against every dot of a set).

        >>> DotRuns([(1, 1, 3)]).dead([(1, 2), (1, 4), (1, 9), (2, 1)], {1: 5, 2: 1})
        [(1, 4), (2, 1)]
        """
        starts, ends = self._starts, self._ends
        out = []
        for dot in dots:
            r, c = dot
            if c > version.get(r, 0):
                continue
            firsts = starts.get(r)
            if firsts is not None:
                i = bisect_right(firsts, c) - 1
                if i >= 0 and c < ends[r][i]:
                    continue
            out.append(dot)
        return out
