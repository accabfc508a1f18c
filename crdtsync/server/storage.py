"""Durable rooms: an append-only log of accepted updates, compacted into snapshots.

The relay appends every update it accepts from a client to the room's log (inside the
receive step, before anything is sent back), and commits the log before it writes any
message to any client: an update is never acknowledged before it is on disk. The log is
folded into a snapshot (the whole state as one update) in a background thread, with its own
database connection, once it grows past a threshold; a room loads as its snapshot plus the
log rows after it.

:class:`SQLiteStorage` keeps everything in one SQLite file in WAL mode (readers never block
the writer, a commit is one append to the WAL). Several processes on one host may share the
file (each writes the updates its own clients sent; see docs/server.md):

- ``log(seq INTEGER PRIMARY KEY AUTOINCREMENT, room, node, data)``: ``seq`` only grows,
  across all rooms and processes, in commit order (SQLite serialises writers), so "rows
  after seq N" is a complete tail.
- ``snapshots(room PRIMARY KEY, upto, data)``: the merge of the snapshot before and every
  row of the room up to ``upto``, which the same transaction deleted.

Methods marked *(worker thread)* open their own connection per thread; the others belong
to the event loop's thread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from crdtsync._doc import Doc

__all__ = [
    "CompactResult",
    "Loaded",
    "MemoryStorage",
    "SQLiteStorage",
    "Storage",
    "build_doc",
]

SCHEMA_VERSION = 1


@dataclass
class Loaded:
    """A room as stored (or the part of it after some seq): the snapshot, the log rows
    after it in order, and the last seq read."""

    snapshot: bytes | None = None
    #: The seq the snapshot covers up to (None: no snapshot).
    snapshot_upto: int | None = None
    rows: list[tuple[int, bytes]] = field(default_factory=list)
    last_seq: int = 0
    #: Replica id -> the identity that owns it in this room (see ``Storage.claim``).
    owners: dict[int, str] = field(default_factory=dict)

    @property
    def updates(self) -> list[bytes]:
        """The snapshot (if any) and then every row, in the order to apply them."""
        head = [self.snapshot] if self.snapshot is not None else []
        return head + [data for _, data in self.rows]


@dataclass
class CompactResult:
    rows: int  # log rows folded into the snapshot
    snapshot_bytes: int
    seconds: float


class Storage(Protocol):
    """What the relay needs from a store. Implement it to put rooms somewhere else."""

    def load(self, room: str) -> Loaded:
        """*(worker thread)* The room's snapshot and log, consistently."""

    def tail(self, room: str, after: int) -> Loaded:
        """*(worker thread)* What other processes committed to the room after ``after``
        (a snapshot first if one was made past it), skipping this process's own rows."""

    def append(self, room: str, update: bytes) -> int:
        """Add one accepted update to the room's log (uncommitted); its seq."""

    def commit(self) -> None:
        """Make every append so far durable. Called before any message is sent."""

    def claim(self, room: str, replica: int, identity: str) -> str:
        """Make ``identity`` the owner of ``replica`` in ``room`` unless it has one (made
        durable with the next commit); the owner it has now. Optional: a store without it
        keeps ownership in memory only."""

    def compact(self, room: str) -> CompactResult | None:
        """*(worker thread)* Fold the room's log into its snapshot."""

    def maintenance(self) -> None:
        """*(worker thread)* Periodic housekeeping (a WAL checkpoint)."""

    def close(self) -> None: ...


def build_doc(updates: list[bytes], *, max_pending: int) -> Doc:
    """A fresh document holding ``updates`` applied in order (our own stored bytes: a
    snapshot may inflate beyond the limit that applies to what clients send)."""
    doc = Doc(max_pending=max_pending)
    for update in updates:
        doc.apply_update(update, max_inflated_size=None)
    return doc


class SQLiteStorage:
    """The embedded default: one SQLite file (WAL). ``synchronous="FULL"`` also survives
    power loss (an fsync per commit); the default ``"NORMAL"`` survives a crash or kill of
    the process, which is what losing nothing acknowledged across restarts needs, at a
    fraction of the cost (SQLite's documented WAL guarantee)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        node: str = "",
        synchronous: str = "NORMAL",
        max_pending: int = 1024,
    ) -> None:
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        self.path = Path(path)
        self.node = node
        self.synchronous = synchronous.upper()
        self.max_pending = max_pending
        self._local = threading.local()
        self._in_txn = False
        self._conn = self._connect(autocheckpoint=False)
        with self._conn:
            self._conn.executescript(
                """
                CREATE TABLE IF NOT EXISTS log (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    room TEXT NOT NULL,
                    node TEXT NOT NULL,
                    data BLOB NOT NULL
                );
                CREATE INDEX IF NOT EXISTS log_room_seq ON log (room, seq);
                CREATE TABLE IF NOT EXISTS snapshots (
                    room TEXT PRIMARY KEY,
                    upto INTEGER NOT NULL,
                    data BLOB NOT NULL,
                    updated REAL NOT NULL
                );
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS owners (
                    room TEXT NOT NULL,
                    replica TEXT NOT NULL,
                    identity TEXT NOT NULL,
                    PRIMARY KEY (room, replica)
                );
                """
            )
            self._conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
            )
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None or int(row[0]) != SCHEMA_VERSION:
            raise RuntimeError(f"{self.path}: unsupported schema version {row}")

    def _connect(self, *, autocheckpoint: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=True, timeout=30.0
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA busy_timeout = 30000")
        if not autocheckpoint:
            # The loop's connection never checkpoints (that would stall the loop while
            # pages are copied); maintenance() does it in a worker thread.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        return conn

    def _thread_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(autocheckpoint=True)
            self._local.conn = conn
        return conn

    # ---- event loop thread ----------------------------------------------------------------

    def append(self, room: str, update: bytes) -> int:
        if not self._in_txn:
            self._conn.execute("BEGIN")
            self._in_txn = True
        cursor = self._conn.execute(
            "INSERT INTO log (room, node, data) VALUES (?, ?, ?)", (room, self.node, update)
        )
        seq = cursor.lastrowid
        assert seq is not None
        return seq

    def commit(self) -> None:
        if self._in_txn:
            self._conn.execute("COMMIT")
            self._in_txn = False

    def claim(self, room: str, replica: int, identity: str) -> str:
        if not self._in_txn:
            self._conn.execute("BEGIN")
            self._in_txn = True
        # (replica ids are uint64: stored as text, SQLite integers are signed)
        self._conn.execute(
            "INSERT OR IGNORE INTO owners VALUES (?, ?, ?)", (room, str(replica), identity)
        )
        row = self._conn.execute(
            "SELECT identity FROM owners WHERE room = ? AND replica = ?", (room, str(replica))
        ).fetchone()
        return str(row[0])

    def close(self) -> None:
        self.commit()
        with contextlib.suppress(sqlite3.Error):
            # PASSIVE: never wait for other processes' readers (a shared file).
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._conn.close()

    # ---- worker threads ---------------------------------------------------------------------

    def load(self, room: str) -> Loaded:
        conn = self._thread_conn()
        conn.execute("BEGIN")  # one read snapshot: a concurrent compaction is all or nothing
        try:
            loaded = Loaded()
            snap = conn.execute(
                "SELECT upto, data FROM snapshots WHERE room = ?", (room,)
            ).fetchone()
            if snap is not None:
                loaded.last_seq = loaded.snapshot_upto = int(snap[0])
                loaded.snapshot = bytes(snap[1])
            for seq, data in conn.execute(
                "SELECT seq, data FROM log WHERE room = ? AND seq > ? ORDER BY seq",
                (room, loaded.last_seq),
            ):
                loaded.rows.append((int(seq), bytes(data)))
                loaded.last_seq = int(seq)
            for replica, identity in conn.execute(
                "SELECT replica, identity FROM owners WHERE room = ?", (room,)
            ):
                loaded.owners[int(replica)] = str(identity)
            return loaded
        finally:
            conn.execute("COMMIT")

    def tail(self, room: str, after: int) -> Loaded:
        conn = self._thread_conn()
        conn.execute("BEGIN")
        try:
            loaded = Loaded(last_seq=after)
            snap = conn.execute(
                "SELECT upto, data FROM snapshots WHERE room = ? AND upto > ?", (room, after)
            ).fetchone()
            if snap is not None:
                loaded.last_seq = loaded.snapshot_upto = int(snap[0])
                loaded.snapshot = bytes(snap[1])
            for seq, node, data in conn.execute(
                "SELECT seq, node, data FROM log WHERE room = ? AND seq > ? ORDER BY seq",
                (room, after),
            ):
                if node != self.node:
                    loaded.rows.append((int(seq), bytes(data)))
                loaded.last_seq = max(loaded.last_seq, int(seq))
            return loaded
        finally:
            conn.execute("COMMIT")

    def compact(self, room: str) -> CompactResult | None:
        started = time.perf_counter()
        conn = self._thread_conn()
        loaded = self.load(room)
        if not loaded.rows:
            return None
        before = loaded.snapshot_upto
        doc = build_doc(loaded.updates, max_pending=self.max_pending)
        if doc.pending:
            # Cannot happen when rows are appended in integration order; if it did, the
            # snapshot would lack what still waits, so keep the log as it is.
            raise RuntimeError(f"room {room!r}: {doc.pending} logged updates do not integrate")
        state = doc.get_update()
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = conn.execute("SELECT upto FROM snapshots WHERE room = ?", (room,)).fetchone()
            if (int(now[0]) if now is not None else None) != before:
                conn.execute("ROLLBACK")  # another process compacted meanwhile
                return None
            conn.execute(
                "INSERT OR REPLACE INTO snapshots (room, upto, data, updated) VALUES (?,?,?,?)",
                (room, loaded.last_seq, state, time.time()),
            )
            deleted = conn.execute(
                "DELETE FROM log WHERE room = ? AND seq <= ?", (room, loaded.last_seq)
            ).rowcount
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return CompactResult(deleted, len(state), time.perf_counter() - started)

    def maintenance(self) -> None:
        self._thread_conn().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close_thread(self) -> None:
        """*(worker thread)* Close this thread's connection, if it opened one."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class MemoryStorage:
    """Keeps rooms in memory only (``crdtsync serve --memory``): for tests and demos."""

    def __init__(self, *, node: str = "", max_pending: int = 1024) -> None:
        self.node = node
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._seq = 0
        self._log: dict[str, list[tuple[int, str, bytes]]] = {}
        self._snapshots: dict[str, tuple[int, bytes]] = {}
        self._owners: dict[str, dict[int, str]] = {}

    def append(self, room: str, update: bytes) -> int:
        with self._lock:
            self._seq += 1
            self._log.setdefault(room, []).append((self._seq, self.node, update))
            return self._seq

    def commit(self) -> None:
        pass

    def claim(self, room: str, replica: int, identity: str) -> str:
        with self._lock:
            return self._owners.setdefault(room, {}).setdefault(replica, identity)

    def load(self, room: str) -> Loaded:
        loaded = self.tail(room, 0, own=True)
        with self._lock:
            loaded.owners = dict(self._owners.get(room, {}))
        return loaded

    def tail(self, room: str, after: int, own: bool = False) -> Loaded:
        with self._lock:
            loaded = Loaded(last_seq=after)
            snap = self._snapshots.get(room)
            if snap is not None and snap[0] > after:
                loaded.last_seq = loaded.snapshot_upto = snap[0]
                loaded.snapshot = snap[1]
            for seq, node, data in self._log.get(room, []):
                if seq > after:
                    if own or node != self.node:
                        loaded.rows.append((seq, data))
                    loaded.last_seq = max(loaded.last_seq, seq)
            return loaded

    def compact(self, room: str) -> CompactResult | None:
        started = time.perf_counter()
        loaded = self.load(room)
        if not loaded.rows:
            return None
        state = build_doc(loaded.updates, max_pending=self.max_pending).get_update()
        with self._lock:
            rows = self._log.get(room, [])
            kept = [r for r in rows if r[0] > loaded.last_seq]
            self._log[room] = kept
            self._snapshots[room] = (loaded.last_seq, state)
        return CompactResult(len(rows) - len(kept), len(state), time.perf_counter() - started)

    def maintenance(self) -> None:
        pass

    def close(self) -> None:
        pass
