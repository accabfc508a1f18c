"""The systems under test, each behind one small interface.

:class:`Replica` plays the role of crdt-benchmarks' ``AbstractCrdt``: a document holding one
text (``"text"``), one array (``"array"``) and one map (``"map"``), edited only through each
library's public Python API. An edit outside :meth:`Replica.transact` is its own transaction
and emits its own update, as in crdt-benchmarks.

Systems:

- ``crdtsync``: this library.
- ``pycrdt``: Python bindings of Yrs, the Rust port of Yjs.
- ``loro``: Python bindings of Loro (Rust). Loro batches edits until ``commit()``; the adapter
  commits after every edit made outside a transaction, which is what emits the update.
- ``python``: plain ``str``/``list``/``dict`` edits, no CRDT at all: the floor for any
  pure-Python implementation. It emits no updates and cannot merge, so it runs only the
  single-user cases.

Replica ids are fixed (crdtsync ``replica_id``, pycrdt ``client_id``, loro ``peer_id``) so that
update and document sizes are the same from run to run. They are drawn from a seeded generator
at the full width each library picks by default (64 bits for crdtsync and loro, 53 for pycrdt),
so that sizes are those of real use rather than of tiny ids.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import cached_property
from importlib import metadata
from typing import Any

from benchmarks.traces import Patch

UpdateHandler = Callable[[bytes], None]
Kind = str  # what a case reads back: "text", "array" or "map"
KINDS = ("text", "array", "map")


class Replica(ABC):
    """One document of one system."""

    # ---- edits ---------------------------------------------------------------------------
    @abstractmethod
    def insert_text(self, index: int, s: str) -> None: ...

    @abstractmethod
    def delete_text(self, index: int, length: int) -> None: ...

    @abstractmethod
    def insert_array(self, index: int, values: Sequence[Any]) -> None: ...

    @abstractmethod
    def set_map(self, key: str, value: Any) -> None: ...

    @abstractmethod
    def transact(self) -> AbstractContextManager[object]:
        """Edits inside become one transaction and one update."""

    def replay(self, txns: Sequence[Sequence[Patch]], repeat: int = 1) -> None:
        """Apply a trace's patches to the text, one transaction per trace transaction.

        Subclasses override this with a loop that binds methods once, as an application
        replaying keystrokes would; the generic version is the reference.
        """
        for _ in range(repeat):
            for txn in txns:
                with self.transact():
                    for pos, ndel, ins in txn:
                        if ndel:
                            self.delete_text(pos, ndel)
                        if ins:
                            self.insert_text(pos, ins)

    # ---- reading -------------------------------------------------------------------------
    @abstractmethod
    def text(self) -> str: ...

    @abstractmethod
    def array(self) -> list[Any]: ...

    @abstractmethod
    def map(self) -> dict[str, Any]: ...

    def read(self, kind: Kind) -> Any:
        if kind == "text":
            return self.text()
        if kind == "array":
            return self.array()
        return self.map()

    # ---- sync ----------------------------------------------------------------------------
    @abstractmethod
    def apply_update(self, update: bytes) -> None: ...

    def apply_updates(self, updates: Sequence[bytes]) -> None:
        """Apply many remote updates (in one transaction where the library allows it)."""
        for update in updates:
            self.apply_update(update)

    @abstractmethod
    def encode_state(self) -> bytes:
        """The whole document, as a new replica would load it."""

    @abstractmethod
    def version(self) -> object:
        """What this replica has seen, in the library's own form."""

    @abstractmethod
    def diff(self, since: object) -> bytes:
        """An update holding what a replica at version ``since`` lacks."""


class System(ABC):
    name: str
    #: The module that must be importable; None for systems that need nothing.
    module: str | None = None
    #: False for the plain-Python floor: no updates, no merging.
    is_crdt: bool = True
    #: All of its memory is Python objects, which tracemalloc can count.
    pure_python: bool = True
    #: The width of the replica ids the library picks by default.
    id_bits: int = 64

    def replica_id(self, number: int) -> int:
        """A fixed full-width id for replica ``number`` (the same in every run)."""
        bits = self.id_bits
        return random.Random(f"{self.name}:{number}").getrandbits(bits - 1) | 1 << (bits - 1)

    @abstractmethod
    def create(self, number: int, on_update: UpdateHandler | None = None) -> Replica:
        """A new empty replica, the case's ``number``-th (which fixes its id);
        ``on_update(update)`` gets each update the library emits."""

    @abstractmethod
    def load(self, state: bytes, kind: Kind) -> Replica:
        """A new replica built from :meth:`Replica.encode_state` output."""

    def prepare_trace(self, start: str, txns: list[list[Patch]]) -> list[list[Patch]]:
        """The trace's patches in this system's index units (untimed preprocessing)."""
        return txns

    def unavailable(self) -> str | None:
        """None if the system can run here, else why not (a missing peer is a note)."""
        if self.module is None:
            return None
        try:
            if importlib.util.find_spec(self.module) is None:
                return f"{self.module} is not installed (pip install -e '.[bench]')"
            importlib.import_module(self.module)
        except Exception as exc:  # noqa: BLE001 - any import failure is a skip, not a crash
            return f"{self.module} does not import ({type(exc).__name__}: {exc})"
        return None

    def version_string(self) -> str:
        if self.module is None:
            return ""
        try:
            return metadata.version(self.module)
        except metadata.PackageNotFoundError:
            return "in tree"


# ---- crdtsync ----------------------------------------------------------------------------


class _TransactionalReplica(Replica):
    """Array, map and transaction calls shared by the libraries whose documents have
    ``transaction()``, a list-like array (``insert``/``extend``) and a dict-like map."""

    doc: Any
    _array: Any
    _map: Any

    def insert_array(self, index: int, values: Sequence[Any]) -> None:
        array = self._array
        if len(values) == 1:
            array.insert(index, values[0])
        elif index == len(array):
            array.extend(list(values))  # one run
        else:
            with self.doc.transaction():
                for offset, value in enumerate(values):
                    array.insert(index + offset, value)

    def set_map(self, key: str, value: Any) -> None:
        self._map[key] = value

    def transact(self) -> AbstractContextManager[object]:
        return self.doc.transaction()  # type: ignore[no-any-return]


class CrdtsyncReplica(_TransactionalReplica):
    def __init__(self, doc: Any) -> None:
        self.doc = doc

    @cached_property
    def _text(self) -> Any:
        return self.doc.text("text")

    @cached_property
    def _array(self) -> Any:
        return self.doc.list("array")

    @cached_property
    def _map(self) -> Any:
        return self.doc.map("map")

    def insert_text(self, index: int, s: str) -> None:
        self._text.insert(index, s)

    def delete_text(self, index: int, length: int) -> None:
        self._text.delete(index, length)

    def replay(self, txns: Sequence[Sequence[Patch]], repeat: int = 1) -> None:
        transaction = self.doc.transaction
        insert = self._text.insert
        delete = self._text.delete
        for _ in range(repeat):
            for txn in txns:
                with transaction():
                    for pos, ndel, ins in txn:
                        if ndel:
                            delete(pos, ndel)
                        if ins:
                            insert(pos, ins)

    def text(self) -> str:
        return str(self._text)

    def array(self) -> list[Any]:
        return list(self._array)

    def map(self) -> dict[str, Any]:
        return dict(self._map)

    def apply_update(self, update: bytes) -> None:
        self.doc.apply_update(update)

    def encode_state(self) -> bytes:
        return self.doc.get_update()  # type: ignore[no-any-return]

    def version(self) -> object:
        return self.doc.version

    def diff(self, since: object) -> bytes:
        return self.doc.get_update(since)  # type: ignore[no-any-return]


class Crdtsync(System):
    name = "crdtsync"
    module = "crdtsync"

    def create(self, number: int, on_update: UpdateHandler | None = None) -> Replica:
        import crdtsync

        doc = crdtsync.Doc(replica_id=self.replica_id(number))
        if on_update is not None:
            doc.on_update(lambda update, origin: on_update(update))
        return CrdtsyncReplica(doc)

    def load(self, state: bytes, kind: Kind) -> Replica:
        replica = self.create(1_000_000)
        replica.apply_update(state)
        return replica


# ---- pycrdt (Yrs) ------------------------------------------------------------------------


class PycrdtReplica(_TransactionalReplica):
    def __init__(self, doc: Any) -> None:
        self.doc = doc

    @cached_property
    def _text(self) -> Any:
        import pycrdt

        return self.doc.get("text", type=pycrdt.Text)

    @cached_property
    def _array(self) -> Any:
        import pycrdt

        return self.doc.get("array", type=pycrdt.Array)

    @cached_property
    def _map(self) -> Any:
        import pycrdt

        return self.doc.get("map", type=pycrdt.Map)

    def insert_text(self, index: int, s: str) -> None:
        # pycrdt counts UTF-8 bytes; every generated case is ASCII, and traces are converted.
        self._text.insert(index, s)

    def delete_text(self, index: int, length: int) -> None:
        del self._text[index : index + length]

    def replay(self, txns: Sequence[Sequence[Patch]], repeat: int = 1) -> None:
        transaction = self.doc.transaction
        text = self._text
        insert = text.insert
        for _ in range(repeat):
            for txn in txns:
                with transaction():
                    for pos, ndel, ins in txn:
                        if ndel:
                            del text[pos : pos + ndel]
                        if ins:
                            insert(pos, ins)

    def text(self) -> str:
        return str(self._text)

    def array(self) -> list[Any]:
        return self._array.to_py()  # type: ignore[no-any-return]

    def map(self) -> dict[str, Any]:
        return self._map.to_py()  # type: ignore[no-any-return]

    def apply_update(self, update: bytes) -> None:
        self.doc.apply_update(update)

    def apply_updates(self, updates: Sequence[bytes]) -> None:
        with self.doc.transaction():
            apply = self.doc.apply_update
            for update in updates:
                apply(update)

    def encode_state(self) -> bytes:
        return self.doc.get_update()  # type: ignore[no-any-return]

    def version(self) -> object:
        return self.doc.get_state()

    def diff(self, since: object) -> bytes:
        return self.doc.get_update(since)  # type: ignore[no-any-return]


class Pycrdt(System):
    name = "pycrdt"
    module = "pycrdt"
    pure_python = False
    id_bits = 53

    def create(self, number: int, on_update: UpdateHandler | None = None) -> Replica:
        import pycrdt

        doc: Any = pycrdt.Doc(client_id=self.replica_id(number))
        if on_update is not None:

            def on_transaction(event: Any) -> None:
                # The event is only valid inside the callback, so the bytes are taken here.
                on_update(event.update)

            doc.observe(on_transaction)
        return PycrdtReplica(doc)

    def load(self, state: bytes, kind: Kind) -> Replica:
        replica = self.create(1_000_000)
        replica.apply_update(state)
        return replica

    def prepare_trace(self, start: str, txns: list[list[Patch]]) -> list[list[Patch]]:
        from benchmarks.traces import utf8_txns

        ascii_only = start.isascii() and all(i.isascii() for t in txns for _, _, i in t)
        return txns if ascii_only else utf8_txns(start, txns)


# ---- loro --------------------------------------------------------------------------------


class LoroReplica(Replica):
    def __init__(self, doc: Any) -> None:
        self.doc = doc
        self._in_txn = 0
        self.subscription: Any = None  # loro unsubscribes when this is dropped

    @cached_property
    def _text(self) -> Any:
        return self.doc.get_text("text")

    @cached_property
    def _array(self) -> Any:
        return self.doc.get_list("array")

    @cached_property
    def _map(self) -> Any:
        return self.doc.get_map("map")

    def _commit(self) -> None:
        if not self._in_txn:
            self.doc.commit()

    def insert_text(self, index: int, s: str) -> None:
        self._text.insert(index, s)
        self._commit()

    def delete_text(self, index: int, length: int) -> None:
        self._text.delete(index, length)
        self._commit()

    def insert_array(self, index: int, values: Sequence[Any]) -> None:
        insert = self._array.insert  # LoroList has no multi-value insert
        for offset, value in enumerate(values):
            insert(index + offset, value)
        self._commit()

    def set_map(self, key: str, value: Any) -> None:
        self._map.insert(key, value)
        self._commit()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # A loro transaction is everything since the last commit().
        self._in_txn += 1
        try:
            yield
        finally:
            self._in_txn -= 1
            self._commit()

    def transact(self) -> AbstractContextManager[object]:
        return self._transaction()

    def replay(self, txns: Sequence[Sequence[Patch]], repeat: int = 1) -> None:
        commit = self.doc.commit
        insert = self._text.insert
        delete = self._text.delete
        for _ in range(repeat):
            for txn in txns:
                for pos, ndel, ins in txn:
                    if ndel:
                        delete(pos, ndel)
                    if ins:
                        insert(pos, ins)
                commit()  # ends the transaction and emits its update

    def text(self) -> str:
        return self._text.to_string()  # type: ignore[no-any-return]

    def array(self) -> list[Any]:
        return self._array.get_value()  # type: ignore[no-any-return]

    def map(self) -> dict[str, Any]:
        return self._map.get_value()  # type: ignore[no-any-return]

    def apply_update(self, update: bytes) -> None:
        self.doc.import_(update)

    def apply_updates(self, updates: Sequence[bytes]) -> None:
        # What crdt-benchmarks' loro adapter does inside a transaction; importing 1,540
        # concurrent list inserts one by one takes loro over a minute (B3.4).
        self.doc.import_batch(list(updates))

    def encode_state(self) -> bytes:
        # A snapshot (history + state) is loro's whole-document format, the one
        # crdt-benchmarks uses.
        import loro

        return self.doc.export(loro.ExportMode.Snapshot())  # type: ignore[no-any-return]

    def version(self) -> object:
        return self.doc.oplog_vv

    def diff(self, since: object) -> bytes:
        import loro

        mode: Any = loro.ExportMode.Updates(since)  # type: ignore[arg-type]
        return self.doc.export(mode)  # type: ignore[no-any-return]


class Loro(System):
    name = "loro"
    module = "loro"
    pure_python = False
    id_bits = 63  # 2**64 - 1 is reserved

    def create(self, number: int, on_update: UpdateHandler | None = None) -> Replica:
        import loro as loro_module

        loro: Any = loro_module  # some of loro's constructors are untyped
        doc: Any = loro.LoroDoc()
        doc.peer_id = self.replica_id(number)
        replica = LoroReplica(doc)
        if on_update is not None:

            def on_local_update(update: bytes) -> bool:
                on_update(update)
                return True  # stay subscribed

            # Keep the subscription alive as long as the replica.
            replica.subscription = doc.subscribe_local_update(on_local_update)
        return replica

    def load(self, state: bytes, kind: Kind) -> Replica:
        replica = self.create(1_000_000)
        replica.apply_update(state)
        return replica


# ---- plain Python (the floor) ------------------------------------------------------------


class PlainReplica(Replica):
    """Plain ``str``/``list``/``dict`` edits: what the same edits cost with no CRDT at all."""

    def __init__(self) -> None:
        self.s = ""
        self.values: list[Any] = []
        self.entries: dict[str, Any] = {}
        self.kind: Kind = "text"

    def insert_text(self, index: int, s: str) -> None:
        self.s = self.s[:index] + s + self.s[index:]

    def delete_text(self, index: int, length: int) -> None:
        self.s = self.s[:index] + self.s[index + length :]

    def insert_array(self, index: int, values: Sequence[Any]) -> None:
        self.kind = "array"
        self.values[index:index] = values

    def set_map(self, key: str, value: Any) -> None:
        self.kind = "map"
        self.entries[key] = value

    @contextmanager
    def _nothing(self) -> Iterator[None]:
        yield

    def transact(self) -> AbstractContextManager[object]:
        return self._nothing()

    def replay(self, txns: Sequence[Sequence[Patch]], repeat: int = 1) -> None:
        s = self.s
        for _ in range(repeat):
            for txn in txns:
                for pos, ndel, ins in txn:
                    s = s[:pos] + ins + s[pos + ndel :]
        self.s = s

    def text(self) -> str:
        return self.s

    def array(self) -> list[Any]:
        return list(self.values)

    def map(self) -> dict[str, Any]:
        return dict(self.entries)

    def apply_update(self, update: bytes) -> None:
        raise NotImplementedError("plain Python values do not merge")

    def encode_state(self) -> bytes:
        # Text as UTF-8; arrays and maps as JSON.
        if self.kind == "text":
            return self.s.encode("utf-8")
        value = self.values if self.kind == "array" else self.entries
        return json.dumps(value, separators=(",", ":")).encode("utf-8")

    def version(self) -> object:
        raise NotImplementedError("plain Python values have no version")

    def diff(self, since: object) -> bytes:
        raise NotImplementedError("plain Python values do not merge")


class Plain(System):
    name = "python"
    is_crdt = False

    def create(self, number: int, on_update: UpdateHandler | None = None) -> Replica:
        return PlainReplica()

    def load(self, state: bytes, kind: Kind) -> Replica:
        replica = PlainReplica()
        replica.kind = kind
        if kind == "text":
            replica.s = state.decode("utf-8")
        elif kind == "array":
            replica.values = json.loads(state)
        else:
            replica.entries = json.loads(state)
        return replica


ALL_SYSTEMS: dict[str, System] = {
    system.name: system for system in (Crdtsync(), Pycrdt(), Loro(), Plain())
}
