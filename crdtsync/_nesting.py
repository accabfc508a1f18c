"""How containers inside containers are named.

A nested container is keyed like a root, by a kind letter and a name, so everything that
works per container (sequences, maps, sets, counters, their updates, facts, deltas and
merges) works for it unchanged. Its kind letter is the upper-case one ("T" for a Text
inside something), which keeps nested keys apart from root names, whatever those are. Its
name says where it lives, so that every replica derives the same key for the same place:

    <len(parent)>:<parent> k <basis>:<map key>        a child at a key of a map
    <len(parent)>:<parent> e <replica>.<counter>      a child that is a list element

``parent`` is the parent's own key as a string (kind letter and name). ``basis`` is the
Lamport time of the map write the creating write replaced (0 for none): concurrent
creators that saw the same write there replace it and so name the same child, and a child
created after a delete gets a new, empty one. A list child is named by its element's id.

Names are canonical: :func:`parse_child_name` accepts only what :func:`child_name` writes,
so two different strings never name one container.
"""

from __future__ import annotations

import functools

__all__ = ["MapSlot", "ElementSlot", "Slot", "child_name", "parse_child_name", "parent_key"]

RootKey = tuple[str, str]
#: ("k", map key, basis) or ("e", replica, counter).
MapSlot = tuple[str, str, int]
ElementSlot = tuple[str, int, int]
Slot = MapSlot | ElementSlot

#: Deeper nesting than this is refused (it bounds the work of checking a name).
MAX_NESTING = 64
#: A nested container's name (its parents' names and map keys included) is at most this
#: long: checking one costs its length times its depth.
MAX_NAME = 64 * 1024
#: The bounds of the numbers in a name (replica ids; counters and Lamport times).
_MAX_REPLICA = 2**64 - 1
_MAX_CLOCK = 2**62 - 1


def child_name(parent: RootKey, slot: Slot) -> str:
    p = parent[0] + parent[1]
    if slot[0] == "k":
        return f"{len(p)}:{p}k{slot[2]}:{slot[1]}"
    return f"{len(p)}:{p}e{slot[1]}.{slot[2]}"


def _digits(s: str, i: int, stop: str) -> tuple[int, int] | None:
    """The decimal int at ``s[i:]`` up to ``stop`` (no sign, no leading zero) and the index
    after ``stop``; None if there is none."""
    j = s.find(stop, i)
    if j <= i:
        return None
    text = s[i:j]
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        return None
    return int(text), j + 1


@functools.lru_cache(maxsize=1 << 16)
def parse_child_name(name: str, depth: int = 0) -> tuple[RootKey, Slot] | None:
    """(parent key, slot) for a nested container's name; None if ``name`` is not one
    :func:`child_name` writes (or nests deeper than :data:`MAX_NESTING`)."""
    if depth > MAX_NESTING or len(name) > MAX_NAME:
        return None
    head = _digits(name, 0, ":")
    if head is None:
        return None
    n, i = head
    if n < 1 or i + n >= len(name):
        return None
    p = name[i : i + n]
    parent = (p[0], p[1:])
    if parent[0] in "TLSMC":
        if parse_child_name(parent[1], depth + 1) is None:
            return None
    elif parent[0] not in "tlsmc":
        return None
    i += n
    tag = name[i]
    slot: Slot
    if tag == "k":
        if parent[0] not in "mM":
            return None
        basis = _digits(name, i + 1, ":")
        if basis is None or basis[0] > _MAX_CLOCK:
            return None
        slot = ("k", name[basis[1] :], basis[0])
    elif tag == "e":
        if parent[0] not in "lL":
            return None
        replica = _digits(name, i + 1, ".")
        if replica is None or replica[0] > _MAX_REPLICA:
            return None
        counter = name[replica[1] :]
        if not counter.isascii() or not counter.isdigit() or counter[0] == "0":
            return None
        if len(counter) > 19 or int(counter) > _MAX_CLOCK:
            return None
        slot = ("e", replica[0], int(counter))
    else:
        return None
    return (parent, slot) if child_name(parent, slot) == name else None


def valid_child_name(name: str) -> bool:
    return parse_child_name(name) is not None


def parent_key(key: RootKey) -> RootKey | None:
    """The key of the container holding the one keyed ``key`` (None for a root)."""
    if key[0] not in "TLSMC":
        return None
    parsed = parse_child_name(key[1])
    return None if parsed is None else parsed[0]


def nesting_depth(key: RootKey) -> int:
    """0 for a root, 1 for a container inside a root, and so on."""
    depth = 0
    probe: RootKey | None = key
    while probe is not None and probe[0] in "TLSMC":
        depth += 1
        probe = parent_key(probe)
    return depth
