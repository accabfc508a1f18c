"""Helpers for the nested-container tests (imported as a plain module: tests/ is on sys.path).

``ptag`` turns ``to_py()`` output into an exactly comparable form (True != 1 != 1.0, sets
included); ``walk`` and ``children`` reach every container below a root; ``check_tree``
asserts what must hold of any reachable tree (lengths agree with contents, each child's
``parent`` is the container it was reached through).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crdt_helpers import tag

import crdtsync
from crdtsync.types._base import Container

KINDS = {
    "t": crdtsync.Text,
    "l": crdtsync.List,
    "m": crdtsync.LWWMap,
    "s": crdtsync.ORSet,
    "c": crdtsync.Counter,
}
#: What an empty container of each kind looks like in ``to_py()``.
EMPTY = {"t": "", "l": [], "m": {}, "s": set(), "c": 0}


def kind_of(container: Container[Any]) -> str:
    return container._kind


def ptag(v: Any) -> Any:
    """``tag`` extended to the sets ``to_py()`` returns for an ORSet."""
    if isinstance(v, set | frozenset):
        return ("set", frozenset(tag(e) for e in v))
    if isinstance(v, dict):
        return ("dict", frozenset((k, ptag(x)) for k, x in v.items()))
    if isinstance(v, list):
        return ("list", tuple(ptag(x) for x in v))
    return tag(v)


def children(container: Container[Any]) -> list[Container[Any]]:
    """The containers directly inside ``container`` (map keys sorted, list in order)."""
    if isinstance(container, crdtsync.LWWMap):
        out = []
        for k in sorted(container):
            v = container[k]
            if isinstance(v, Container):
                out.append(v)
        return out
    if isinstance(container, crdtsync.List):
        return [x for x in container.to_list() if isinstance(x, Container)]
    return []


def walk(container: Container[Any]) -> Iterator[Container[Any]]:
    yield container
    for child in children(container):
        yield from walk(child)


def pick(container: Container[Any], path: list[int]) -> Container[Any]:
    """Follow ``path`` down from ``container``: each step enters one of the children
    (``step`` modulo their number) until the path or the children run out; deterministic
    for a given tree, and as deep as the path is long."""
    for step in path:
        kids = children(container)
        if not kids:
            break
        container = kids[step % len(kids)]
    return container


def check_tree(container: Container[Any]) -> None:
    """Self-consistency of a reachable tree."""
    py = container.to_py()
    if isinstance(container, crdtsync.LWWMap):
        keys = list(container)
        assert len(keys) == len(container) == len(set(keys)) == len(py)
        assert sorted(keys) == sorted(py)
        for k in keys:
            v = container[k]
            assert k in container
            if isinstance(v, Container):
                assert v.parent is container, (k, v.parent, container)
                assert v is container[k], "m[k] is not the same object twice"
                assert ptag(v.to_py()) == ptag(py[k])
                check_tree(v)
            else:
                assert tag(v) == tag(py[k])
    elif isinstance(container, crdtsync.List):
        items = container.to_list()
        assert len(items) == len(container) == len(py)
        for i, v in enumerate(items):
            if isinstance(v, Container):
                assert v.parent is container
                assert container[i] is v
                assert ptag(v.to_py()) == ptag(py[i])
                check_tree(v)
            else:
                assert tag(v) == tag(py[i])
    elif isinstance(container, crdtsync.Text):
        assert py == str(container) and len(py) == len(container)
    elif isinstance(container, crdtsync.ORSet):
        assert len(py) == len(container)
    else:
        assert py == container.value


def state(doc: crdtsync.Doc) -> Any:
    """The whole document as an exactly comparable value."""
    return ptag(doc.to_py())


def fresh_from(update: bytes, replica_id: int = 987_654_321) -> crdtsync.Doc:
    """A new document loaded from ``update`` (crdtsync has no loader classmethod: a fresh
    Doc plus apply_update is the way)."""
    d = crdtsync.Doc(replica_id)
    d.apply_update(update)
    return d


def assert_refused_unchanged(doc: crdtsync.Doc, update: bytes) -> BaseException:
    """``update`` must raise a ValueError (DecodeError for bad bytes) and change nothing."""
    before_state, before_py, before_v = doc.get_update(), state(doc), doc.version
    before_pending = doc.pending
    try:
        doc.apply_update(update)
    except ValueError as exc:
        err = exc
    else:
        raise AssertionError(f"accepted a malformed update: {update!r}")
    assert doc.get_update() == before_state
    assert state(doc) == before_py
    assert doc.version == before_v
    assert doc.pending == before_pending
    return err
