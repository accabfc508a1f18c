"""Hypothesis strategies for edits on every root type.

Importing this module does not import hypothesis; calling a strategy function does (and
raises ImportError with a hint when hypothesis is not installed).

Generated edits apply to any document (:func:`~crdtsync.testing.apply_edit` clamps
positions), so one script can be replayed on replicas in any state. A convergence check
of a few lines:

>>> import crdtsync
>>> from hypothesis import given, settings
>>> from hypothesis import strategies as st
>>> from crdtsync.testing import SimulatedNetwork, apply_edits
>>> from crdtsync.testing.strategies import edit_scripts
>>> @settings(max_examples=10, deadline=None)
... @given(scripts=st.lists(edit_scripts(max_size=8), min_size=2, max_size=3),
...        seed=st.integers(0, 2**32))
... def test_converges(scripts, seed):
...     net = SimulatedNetwork.mesh(len(scripts), seed=seed, latency=(1, 3), duplicate=0.2)
...     for peer, script in zip(net, scripts):
...         apply_edits(peer.doc, script)          # concurrent edits, then sync
...     net.run_until_quiet().assert_converged()
>>> test_converges()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from crdtsync.testing.edits import (
    DEFAULT_ROOTS,
    KINDS,
    CounterAdd,
    Edit,
    ListDelete,
    ListInsert,
    MapDelete,
    MapSet,
    SetAdd,
    SetDiscard,
    TextDelete,
    TextInsert,
    Transact,
)

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "ALPHABET",
    "counter_edits",
    "edit_scripts",
    "edits",
    "elements",
    "list_edits",
    "map_edits",
    "set_edits",
    "text_edits",
    "values",
]

#: Default characters for text: a few ASCII letters (so that concurrent edits collide),
#: astral-plane emoji, combining marks, CJK, newline and NUL (positions are code points).
ALPHABET = "abcxyz 😀🎉👍🏽é\u0301中\n\x00"


def _require() -> None:
    try:
        import hypothesis  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised in a subprocess
        raise ImportError(
            "crdtsync.testing.strategies needs hypothesis: pip install hypothesis"
        ) from exc


def values(max_leaves: int = 6) -> SearchStrategy[Any]:
    """Values a List or LWWMap holds: scalars (None, bool, 64-bit int, float, str, bytes)
    and lists / str-keyed dicts of them."""
    _require()
    from hypothesis import strategies as st

    text = st.text(st.characters(exclude_categories=["Cs"]), max_size=6)
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False),
        text,
        st.binary(max_size=6),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
        max_leaves=max_leaves,
    )


def elements() -> SearchStrategy[Any]:
    """ORSet elements from a small pool (so that replicas add and remove the same ones);
    1, True and 1.0 are distinct elements and all appear."""
    _require()
    from hypothesis import strategies as st

    return st.sampled_from(["a", "b", "c", "", 1, True, 1.0, 0, None, b"x"])


def text_edits(
    root: str = "text", *, alphabet: str = ALPHABET, max_insert: int = 6, max_index: int = 40
) -> SearchStrategy[Edit]:
    """Insertions and deletions in the Text ``root``."""
    _require()
    from hypothesis import strategies as st

    index = st.integers(0, max_index)
    return st.one_of(
        st.builds(
            TextInsert,
            st.just(root),
            index,
            st.text(st.sampled_from(alphabet), min_size=1, max_size=max_insert),
        ),
        st.builds(TextDelete, st.just(root), index, st.integers(1, max_insert)),
    )


def list_edits(
    root: str = "list", *, items: SearchStrategy[Any] | None = None, max_index: int = 20
) -> SearchStrategy[Edit]:
    """Insertions and deletions in the List ``root`` (``items``: the values inserted)."""
    _require()
    from hypothesis import strategies as st

    index = st.integers(0, max_index)
    return st.one_of(
        st.builds(ListInsert, st.just(root), index, items if items is not None else values()),
        st.builds(ListDelete, st.just(root), index, st.integers(1, 3)),
    )


def set_edits(
    root: str = "set", *, members: SearchStrategy[Any] | None = None
) -> SearchStrategy[Edit]:
    """Adds and discards in the ORSet ``root`` (``members``: the elements used)."""
    _require()
    from hypothesis import strategies as st

    pool = members if members is not None else elements()
    return st.one_of(
        st.builds(SetAdd, st.just(root), pool), st.builds(SetDiscard, st.just(root), pool)
    )


def map_edits(
    root: str = "map",
    *,
    keys: SearchStrategy[str] | None = None,
    items: SearchStrategy[Any] | None = None,
) -> SearchStrategy[Edit]:
    """Writes and deletes in the LWWMap ``root`` (a few keys by default, so that writes
    race)."""
    _require()
    from hypothesis import strategies as st

    key = keys if keys is not None else st.sampled_from(["a", "b", "c", "😀"])
    return st.one_of(
        st.builds(MapSet, st.just(root), key, items if items is not None else values()),
        st.builds(MapDelete, st.just(root), key),
    )


def counter_edits(root: str = "counter", *, max_step: int = 1000) -> SearchStrategy[Edit]:
    """Increments (positive amounts) and decrements (negative ones) of the Counter ``root``."""
    _require()
    from hypothesis import strategies as st

    return st.builds(CounterAdd, st.just(root), st.integers(-max_step, max_step))


def edits(
    kinds: Sequence[str] = KINDS, *, roots: Mapping[str, str] | None = None
) -> SearchStrategy[Edit]:
    """One edit on one of ``kinds`` ("text", "list", "set", "map", "counter").

    ``roots`` maps a kind to the root name its edits use (default: the kind's name, so
    "text" edits go to ``doc.text("text")``). Give each kind its own name: a name asked
    for as two types raises TypeError.
    """
    _require()
    from hypothesis import strategies as st

    names = {**DEFAULT_ROOTS, **(roots or {})}
    makers: dict[str, Callable[[str], SearchStrategy[Edit]]] = {
        "text": text_edits,
        "list": list_edits,
        "set": set_edits,
        "map": map_edits,
        "counter": counter_edits,
    }
    unknown = [k for k in kinds if k not in makers]
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty selection of {KINDS}, not {kinds!r}")
    used = [names[k] for k in kinds]
    if len(set(used)) != len(used):
        raise ValueError(f"two kinds share a root name: {dict(zip(kinds, used, strict=True))}")
    return st.one_of([makers[k](names[k]) for k in kinds])


def edit_scripts(
    kinds: Sequence[str] = KINDS,
    *,
    roots: Mapping[str, str] | None = None,
    min_size: int = 0,
    max_size: int = 20,
    transactions: bool = True,
) -> SearchStrategy[list[Edit]]:
    """Lists of edits (see :func:`edits`) to replay with
    :func:`~crdtsync.testing.apply_edits`; with ``transactions``, some items are
    :class:`~crdtsync.testing.Transact` groups of 2 to 4 edits applied as one update.

    >>> from hypothesis import given, settings
    >>> import crdtsync
    >>> from crdtsync.testing import apply_edits
    >>> @settings(max_examples=20, deadline=None)
    ... @given(edit_scripts(["text", "counter"], roots={"text": "notes"}))
    ... def test_any_script_applies(script):
    ...     doc = crdtsync.Doc()
    ...     apply_edits(doc, script)
    ...     assert set(doc.roots()) <= {"notes", "counter"}
    >>> test_any_script_applies()
    """
    _require()
    from hypothesis import strategies as st

    one = edits(kinds, roots=roots)
    item = one
    if transactions:
        group = st.lists(one, min_size=2, max_size=4).map(lambda es: Transact(tuple(es)))
        item = st.one_of(one, one, one, group)
    return st.lists(item, min_size=min_size, max_size=max_size)
