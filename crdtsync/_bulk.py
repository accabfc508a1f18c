"""Pausing Python's cyclic garbage collector around bulk work.

Decoding and integrating a large update (loading a state, a merge after a long offline
spell) allocates many long-lived objects and no cyclic garbage; the collector would
otherwise rescan the growing heap again and again, which costs up to half the time.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Updates of at least this many bytes are decoded with the collector paused (integration
#: pauses it by number of changes: see ``_integrate.BULK_CHANGES``).
BULK_BYTES = 8192


def without_gc(work: Callable[[], T]) -> T:
    """``work()`` with the cyclic collector paused (left alone if already paused)."""
    if not gc.isenabled():
        return work()
    gc.disable()
    try:
        return work()
    finally:
        gc.enable()
