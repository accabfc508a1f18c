"""Give memory that closed connections held back to the operating system (glibc only;
elsewhere these do nothing).

glibc's malloc serves blocks of 128 KiB and more with their own mappings, unmapped on free,
but after such a block is freed it raises that threshold (up to 32 MiB) so that later
blocks of that size come from the heap, which it rarely returns. A server that received
large messages would then keep their peak for good, long after the connections that sent
them closed. Fixing the threshold keeps large blocks (messages, parts of transfers, send
queues) in their own mappings, so freeing them shrinks the process.

The threshold sits above 256 KiB: asyncio reads every socket into a fresh 256 KiB buffer and
msgpack packs every message into one, and with a lower threshold each of them was a mapping
made and unmapped again (two system calls and a page fault per message, thousands a second
in a busy room: about a tenth of the relay's time at 100 typists). The heap's share is
given back by :func:`release_free_memory`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

__all__ = ["keep_large_blocks_unmappable", "release_free_memory"]

log = logging.getLogger("crdtsync.server")

_M_MMAP_THRESHOLD = -3  # mallopt parameter numbers, from glibc's malloc.h
_THRESHOLD = 512 << 10


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, looked up once (find_library runs ldconfig: never per call)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def keep_large_blocks_unmappable() -> bool:
    """Fix glibc's mmap threshold at 512 KiB; False (and nothing done) without glibc."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False  # not glibc (musl, macOS): their allocators behave otherwise
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD))
    if not done:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused")
    return done


def release_free_memory() -> bool:
    """Return the heap's free pages to the operating system (glibc's ``malloc_trim``):
    blocks below the mmap threshold (messages of a few KiB to 512 KiB, queued for slow
    readers) come from the heap, whose free middle pages stay in the process until then."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))
