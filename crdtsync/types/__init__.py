"""The five root container types and their change events."""

from crdtsync.types.counter import Counter
from crdtsync.types.events import (
    CounterEvent,
    ListEvent,
    MapEvent,
    SetEvent,
    TextEvent,
    apply_delta,
)
from crdtsync.types.list import List
from crdtsync.types.lwwmap import LWWMap
from crdtsync.types.orset import ORSet
from crdtsync.types.text import Text

__all__ = [
    "Counter",
    "CounterEvent",
    "LWWMap",
    "List",
    "ListEvent",
    "MapEvent",
    "ORSet",
    "SetEvent",
    "Text",
    "TextEvent",
    "apply_delta",
]
