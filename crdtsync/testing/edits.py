"""Edit operations that apply to any document, and ways to compare documents.

An edit names a root by type and name and says what to do to it; :func:`apply_edit` runs it
on a :class:`~crdtsync.Doc`, clamping positions to the current length so that any edit fits
any replica, whatever it holds. Hypothesis strategies that generate edits live in
:mod:`crdtsync.testing.strategies`; :func:`random_edits` makes them from a seeded
``random.Random`` without hypothesis.

>>> import crdtsync
>>> from crdtsync.testing import TextInsert, TextDelete, MapSet, apply_edits, snapshot
>>> doc = crdtsync.Doc()
>>> apply_edits(doc, [TextInsert("notes", 99, "hello"), TextDelete("notes", 0, 1),
...                   MapSet("meta", "owner", "ann")])
3
>>> snapshot(doc)
{'meta': {'owner': 'ann'}, 'notes': 'ello'}
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from crdtsync._doc import Doc
from crdtsync.types import Counter, List, LWWMap, ORSet, Text
from crdtsync.types.orset import canonical_encoding

__all__ = [
    "KINDS",
    "DEFAULT_ROOTS",
    "CounterAdd",
    "Edit",
    "ListDelete",
    "ListInsert",
    "MapDelete",
    "MapSet",
    "SetAdd",
    "SetDiscard",
    "TextDelete",
    "TextInsert",
    "Transact",
    "apply_edit",
    "apply_edits",
    "assert_converged",
    "random_edits",
    "snapshot",
]

#: The five root types, by the name the strategies use for them.
KINDS: Final = ("text", "list", "set", "map", "counter")
#: The root each kind's edits use unless told otherwise (one name per type, so that no
#: name is ever asked for as two types).
DEFAULT_ROOTS: Final[Mapping[str, str]] = {k: k for k in KINDS}


@dataclass(frozen=True)
class TextInsert:
    """Insert ``text`` into the Text ``root`` at ``index`` (clamped to ``0..len``)."""

    root: str
    index: int
    text: str


@dataclass(frozen=True)
class TextDelete:
    """Delete up to ``length`` characters of the Text ``root`` from ``index`` (clamped)."""

    root: str
    index: int
    length: int = 1


@dataclass(frozen=True)
class ListInsert:
    """Insert ``value`` into the List ``root`` at ``index`` (clamped to ``0..len``)."""

    root: str
    index: int
    value: Any


@dataclass(frozen=True)
class ListDelete:
    """Delete up to ``length`` values of the List ``root`` from ``index`` (clamped)."""

    root: str
    index: int
    length: int = 1


@dataclass(frozen=True)
class SetAdd:
    """Add ``element`` to the ORSet ``root``."""

    root: str
    element: Any


@dataclass(frozen=True)
class SetDiscard:
    """Remove ``element`` from the ORSet ``root`` if it is there."""

    root: str
    element: Any


@dataclass(frozen=True)
class MapSet:
    """Write ``value`` under ``key`` in the LWWMap ``root``."""

    root: str
    key: str
    value: Any


@dataclass(frozen=True)
class MapDelete:
    """Delete ``key`` from the LWWMap ``root`` if it is there."""

    root: str
    key: str


@dataclass(frozen=True)
class CounterAdd:
    """Add ``amount`` to the Counter ``root`` (negative: decrement; 0: nothing)."""

    root: str
    amount: int


@dataclass(frozen=True)
class Transact:
    """Apply ``edits`` in one transaction (one update on the wire)."""

    edits: tuple[Edit, ...]


Edit = (
    TextInsert
    | TextDelete
    | ListInsert
    | ListDelete
    | SetAdd
    | SetDiscard
    | MapSet
    | MapDelete
    | CounterAdd
    | Transact
)


def _delete_span(index: int, length: int, size: int) -> tuple[int, int] | None:
    if size == 0 or length <= 0:
        return None
    start = min(max(index, 0), size - 1)
    return start, min(length, size - start)


def apply_edit(doc: Doc, edit: Edit) -> bool:
    """Apply ``edit`` to ``doc``; False if it had nothing to act on (a delete on an empty
    sequence, a delete of an absent key, a zero increment).

    Positions are clamped to the current length, so an edit generated for one replica can
    be replayed on any other:

    >>> import crdtsync
    >>> doc = crdtsync.Doc()
    >>> apply_edit(doc, TextInsert("t", 1000, "abc")), str(doc.text("t"))
    (True, 'abc')
    >>> apply_edit(doc, TextDelete("t", 1000, 5)), str(doc.text("t"))
    (True, 'ab')
    >>> apply_edit(doc, ListDelete("l", 0))
    False
    """
    if isinstance(edit, Transact):
        with doc.transaction():
            done = [apply_edit(doc, e) for e in edit.edits]
        return any(done)
    if isinstance(edit, TextInsert | ListInsert):
        seq: Text | List = (
            doc.text(edit.root) if isinstance(edit, TextInsert) else doc.list(edit.root)
        )
        index = min(max(edit.index, 0), len(seq))
        if isinstance(edit, TextInsert):
            if not edit.text:
                return False
            doc.text(edit.root).insert(index, edit.text)
        else:
            doc.list(edit.root).insert(index, edit.value)
        return True
    if isinstance(edit, TextDelete | ListDelete):
        seq = doc.text(edit.root) if isinstance(edit, TextDelete) else doc.list(edit.root)
        span = _delete_span(edit.index, edit.length, len(seq))
        if span is None:
            return False
        seq.delete(*span)
        return True
    if isinstance(edit, SetAdd):
        doc.set(edit.root).add(edit.element)
        return True
    if isinstance(edit, SetDiscard):
        orset = doc.set(edit.root)
        if edit.element not in orset:
            return False
        orset.discard(edit.element)
        return True
    if isinstance(edit, MapSet):
        doc.map(edit.root)[edit.key] = edit.value
        return True
    if isinstance(edit, MapDelete):
        lww = doc.map(edit.root)
        if edit.key not in lww:
            return False
        del lww[edit.key]
        return True
    counter = doc.counter(edit.root)
    if edit.amount > 0:
        counter.increment(edit.amount)
    elif edit.amount < 0:
        counter.decrement(-edit.amount)
    else:
        return False
    return True


def apply_edits(doc: Doc, edits: Iterable[Edit]) -> int:
    """Apply each edit in turn (each its own transaction); return how many acted."""
    return sum(apply_edit(doc, e) for e in edits)


# ---- random edits without hypothesis ---------------------------------------------------------

_WORDS = ("a", "b", "xy", "hello ", "é", "😀", "\n", "中文")
_ELEMENTS: tuple[Any, ...] = ("a", "b", "c", 1, True, None, b"x", 2.5)
_KEYS = ("a", "b", "c", "d")
_VALUES: tuple[Any, ...] = (None, True, 0, -7, 2**40, 1.5, "v", b"\x00", [1, "x"], {"k": [None]})


def random_edits(
    rng: random.Random,
    n: int,
    *,
    kinds: Sequence[str] = KINDS,
    roots: Mapping[str, str] = DEFAULT_ROOTS,
    max_index: int = 64,
) -> list[Edit]:
    """``n`` random edits over ``kinds`` (a quick, hypothesis-free source of edits).

    Deterministic for a seeded ``rng``:

    >>> import random
    >>> random_edits(random.Random(7), 3) == random_edits(random.Random(7), 3)
    True
    """
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    out: list[Edit] = []
    for _ in range(n):
        kind = rng.choice(kinds)
        root = roots[kind]
        delete = rng.random() < 0.35
        index = rng.randint(0, max_index)
        if kind == "text":
            out.append(
                TextDelete(root, index, rng.randint(1, 4))
                if delete
                else TextInsert(root, index, rng.choice(_WORDS))
            )
        elif kind == "list":
            out.append(
                ListDelete(root, index, rng.randint(1, 2))
                if delete
                else ListInsert(root, index, rng.choice(_VALUES))
            )
        elif kind == "set":
            element = rng.choice(_ELEMENTS)
            out.append(SetDiscard(root, element) if delete else SetAdd(root, element))
        elif kind == "map":
            key = rng.choice(_KEYS)
            out.append(MapDelete(root, key) if delete else MapSet(root, key, rng.choice(_VALUES)))
        else:
            out.append(CounterAdd(root, rng.randint(-5, 9)))
    return out


# ---- comparing documents -----------------------------------------------------------------------


def snapshot(doc: Doc) -> dict[str, Any]:
    """Every non-empty root's value by name: Text -> str, List -> list, ORSet -> frozenset,
    LWWMap -> dict, Counter -> int (containers inside lists and maps as ``to_py()`` gives
    them).

    Empty roots (and counters at 0) are left out: a replica that merely looked at a root
    holds the same state as one that never did.

    >>> import crdtsync
    >>> doc = crdtsync.Doc()
    >>> doc.set("tags").add("red"); doc.counter("views").increment(2)
    >>> _ = doc.text("unused")
    >>> snapshot(doc)
    {'tags': frozenset({'red'}), 'views': 2}
    """
    out: dict[str, Any] = {}
    for name, root in doc.roots().items():
        value: Any
        if isinstance(root, Text):
            value = str(root)
        elif isinstance(root, List):
            value = root.to_py()  # (containers inside as plain Python too)
        elif isinstance(root, ORSet):
            value = frozenset(root)
        elif isinstance(root, LWWMap):
            value = root.to_py()
        elif isinstance(root, Counter):
            value = root.value
        else:  # pragma: no cover - every root is one of the five types
            raise TypeError(f"unexpected root type {type(root).__name__}")
        if value:
            out[name] = value
    return dict(sorted(out.items()))


def _exact(value: Any) -> Any:
    """A form of ``value`` in which 1, True and 1.0 (and 0.0, -0.0) differ."""
    if value is None or isinstance(value, str | bytes):
        return (type(value).__name__, value)
    if isinstance(value, bool | int):
        return (type(value).__name__, value)
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else value.hex())
    if isinstance(value, list | tuple):
        return ("list", tuple(_exact(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _exact(v)) for k, v in value.items())))
    if isinstance(value, frozenset | set):
        return ("set", tuple(sorted(canonical_encoding(v) for v in value)))
    raise TypeError(f"unexpected value type {type(value).__name__}")


def _exact_roots(doc: Doc) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, root in doc.roots().items():
        if isinstance(root, ORSet):
            keys = tuple(sorted(canonical_encoding(v) for v in root))
            if keys:
                out[name] = ("set", keys)
    for name, value in snapshot(doc).items():
        if name not in out:
            out[name] = _exact(value)
    return out


def assert_converged(docs: Iterable[Doc]) -> None:
    """Raise AssertionError unless every doc holds the same values and the same version.

    Values are compared exactly (``1``, ``True`` and ``1.0`` differ), root by root, and the
    message names the first root that differs.

    >>> import crdtsync
    >>> a, b = crdtsync.Doc(), crdtsync.Doc()
    >>> a.text("t").insert(0, "x")
    >>> assert_converged([a, b])
    Traceback (most recent call last):
    ...
    AssertionError: root 't' differs between replica 0 and replica 1: 'x' != (absent)
    >>> b.apply_update(a.get_update())
    >>> assert_converged([a, b])
    """
    docs = list(docs)
    if len(docs) < 2:
        return
    first = docs[0]
    want = _exact_roots(first)
    for i, doc in enumerate(docs[1:], 1):
        got = _exact_roots(doc)
        for name in sorted(set(want) | set(got)):
            if want.get(name) != got.get(name):
                mine = snapshot(first).get(name, "(absent)")
                theirs = snapshot(doc).get(name, "(absent)")
                raise AssertionError(
                    f"root {name!r} differs between replica 0 and replica {i}: "
                    f"{_show(mine)} != {_show(theirs)}"
                )
        if doc.version != first.version:
            raise AssertionError(
                f"versions differ between replica 0 and replica {i}: "
                f"{dict(first.version)} != {dict(doc.version)}"
            )


def _show(value: Any) -> str:
    text = value if value == "(absent)" else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
