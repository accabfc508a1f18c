"""Which Python values the containers accept, checked once at the edge.

Values travel through msgpack, so the accepted set is what msgpack round-trips exactly:
None, bool, int (64-bit), float, str, bytes, and lists and str-keyed dicts of these.
"""

from __future__ import annotations

import reprlib
from typing import Any, TypeAlias

__all__ = [
    "ChildRef",
    "Value",
    "Element",
    "check_value",
    "check_element",
    "is_value",
    "is_element",
]

Value: TypeAlias = Any  # None | bool | int | float | str | bytes | list[Value] | dict[str, Value]
Element: TypeAlias = None | bool | int | float | str | bytes

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
#: Nested lists/dicts deeper than this are refused; it also bounds recursion on decode.
MAX_DEPTH = 32

_SCALARS = (type(None), bool, float, bytes)

#: For error messages: short, and safe on values nested too deep for the plain repr.
_REPR = reprlib.Repr()
_REPR.maxother = 60
_REPR.maxlevel = 3


def encodable(s: str) -> bool:
    """Whether ``s`` survives UTF-8 (lone surrogates do not, so msgpack cannot send them)."""
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_str(s: Any, what: str) -> None:
    """Raise TypeError for a non-str and ValueError for a str that cannot be encoded."""
    if type(s) is not str:
        raise TypeError(f"{what} must be a str, not {type(s).__name__}")
    if not encodable(s):
        raise ValueError(f"{what} contains a lone surrogate and cannot be encoded")


def _value_error(value: Any, depth: int) -> str | None:
    """Why ``value`` is not acceptable, or None when it is."""
    kind = type(value)
    if kind in _SCALARS:
        return None
    if kind is str:
        return None if encodable(value) else "str with a lone surrogate"
    if kind is int:
        if _INT_MIN <= value <= _INT_MAX:
            return None
        return "int outside the 64-bit range"
    if depth >= MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    if kind is list:
        for item in value:
            why = _value_error(item, depth + 1)
            if why:
                return why
        return None
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not encodable(key):
                return "dict keys must be (encodable) str"
            why = _value_error(item, depth + 1)
            if why:
                return why
        return None
    return f"unsupported type {kind.__name__}"


def is_value(value: Any) -> bool:
    """True for a value a List or LWWMap can hold."""
    return _value_error(value, 0) is None


def check_value(value: Any) -> None:
    """Raise TypeError (or ValueError for out-of-range ints) for an unsupported value."""
    why = _value_error(value, 0)
    if why is not None:
        if why.startswith(("int outside", "str with")):
            raise ValueError(f"{_REPR.repr(value)}: {why}")
        raise TypeError(
            f"unsupported value {_REPR.repr(value)}: {why} (allowed: None, bool, int, "
            "float, str, bytes, and lists / str-keyed dicts of these)"
        )


def is_element(value: Any) -> bool:
    """True for a value an ORSet can hold (scalars only: they must be hashable)."""
    kind = type(value)
    if kind is str:
        return encodable(value)
    return kind in _SCALARS or (kind is int and _INT_MIN <= value <= _INT_MAX)


def check_element(value: Any) -> None:
    """Raise TypeError for something an ORSet cannot hold."""
    if not is_element(value):
        if type(value) in (int, str):
            raise ValueError(f"{value!r}: out of range or not encodable")
        raise TypeError(
            f"unsupported set element {value!r} (allowed: None, bool, int, float, str, bytes)"
        )


#: The kind letters of the five container types, and the names errors use for them.
KIND_NAMES = {"t": "Text", "l": "List", "m": "LWWMap", "s": "ORSet", "c": "Counter"}


class ChildRef:
    """What a map entry or a list element holds in place of a value when it holds a
    container (never a user value: users get the container itself).

    ``kind`` is the child's kind letter. ``basis`` (map children) is the Lamport time of
    the write the creating write replaced, 0 if none: replicas that create a child at a
    key concurrently, having seen the same write there, replace the same write, so they
    name the same child, while a child created after a delete (or any other write) at that
    key is a new, empty one. List children are named by their element's id and have
    basis 0.

    ``alias`` (list children only) names the child by another element's id instead: an
    undone delete of a list element holding a container puts back a new element that
    holds the *same* container, so that everything referring to its content still does.
    """

    __slots__ = ("kind", "basis", "alias")

    def __init__(self, kind: str, basis: int, alias: tuple[int, int] | None = None) -> None:
        self.kind = kind
        self.basis = basis
        self.alias = alias

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is ChildRef
            and self.kind == other.kind
            and self.basis == other.basis
            and self.alias == other.alias
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.basis, self.alias))

    def __repr__(self) -> str:
        alias = "" if self.alias is None else f", alias={self.alias}"
        return f"ChildRef({self.kind!r}, {self.basis}{alias})"

    def __deepcopy__(self, memo: Any) -> ChildRef:
        return self  # immutable
