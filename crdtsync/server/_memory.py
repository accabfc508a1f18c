"""Give memory that closed connections held back to the operating system.

glibc's malloc serves blocks of 128 KiB and more with their own mappings, unmapped on free,
but after such a block is freed it raises that threshold (up to 32 MiB) so that later
blocks of that size come from the heap, which it rarely returns. A server that received
large messages would then keep their peak for good, long after the connections that sent
them closed. Fixing the threshold keeps large blocks (messages, parts of transfers, send
queues) in their own mappings, so freeing them shrinks the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["keep_large_blocks_unmappable"]

log = logging.getLogger("crdtsync.server")

_M_MMAP_THRESHOLD = -3  # mallopt parameter numbers, from glibc's malloc.h
_THRESHOLD = 128 << 10


def keep_large_blocks_unmappable() -> bool:
    """Fix glibc's mmap threshold at 128 KiB; False (and nothing done) without glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl, macOS): their allocators behave otherwise
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD))
    if not done:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused")
    return done
