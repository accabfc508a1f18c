"""crdtsync: convergent replicated data types and delta-state sync, in pure Python.

Every replica edits its own :class:`Doc` at once; updates merge in any order, any number
of times, and replicas that saw the same updates hold the same state.

>>> import crdtsync
>>> a, b = crdtsync.Doc(), crdtsync.Doc()
>>> a.text("t").insert(0, "hello")
>>> b.text("t").insert(0, "world")
>>> a.apply_update(b.get_update()); b.apply_update(a.get_update())
>>> str(a.text("t")) == str(b.text("t"))
True
"""

from crdtsync._clock import VersionVector
from crdtsync._cursor import Cursor
from crdtsync._doc import Doc, Transaction
from crdtsync._errors import DecodeError, PendingOverflowError, ProtocolError, ReplicaIdConflict
from crdtsync._merge import merge_updates
from crdtsync._undo import StackItem, UndoEvent, UndoManager
from crdtsync.types import (
    Counter,
    CounterEvent,
    List,
    ListEvent,
    LWWMap,
    MapEvent,
    ORSet,
    SetEvent,
    Text,
    TextEvent,
    apply_delta,
)

__version__ = "0.1.0"

__all__ = [
    "Counter",
    "CounterEvent",
    "Cursor",
    "DecodeError",
    "Doc",
    "LWWMap",
    "List",
    "ListEvent",
    "MapEvent",
    "ORSet",
    "PendingOverflowError",
    "ProtocolError",
    "ReplicaIdConflict",
    "SetEvent",
    "StackItem",
    "Text",
    "TextEvent",
    "Transaction",
    "UndoEvent",
    "UndoManager",
    "VersionVector",
    "apply_delta",
    "merge_updates",
]
