"""Durable rooms: an append-only log of accepted updates, compacted into snapshots.

The relay appends every update it accepts from a client to the room's log and commits
the log before it writes any message about it to any client: an update is never
acknowledged before it is on disk. Appends and commits run on the relay's **writer
thread**, one batch after the other, so a slow disk or another process's lock on the
database file never stalls the event loop. The log is folded into a snapshot (the whole
state as one update) in a worker thread, with its own database connection, once it grows
past a threshold; a room loads as its snapshot plus the log rows after it.

:class:`SQLiteStorage` keeps everything in one SQLite file in WAL mode (readers never block
the writer, a commit is one append to the WAL). Several processes on one host may share the
file (each writes the updates its own clients sent; see docs/server.md):

- ``log(seq INTEGER PRIMARY KEY AUTOINCREMENT, room, node, data)``: ``seq`` only grows,
  across all rooms and processes, in commit order (SQLite serialises writers), so "rows
  after seq N" is a complete tail.
- ``snapshots(room PRIMARY KEY, upto, data)``: the merge of the snapshot before and every
  row of the room up to ``upto``, which the same transaction deleted.

:class:`~crdtsync.server.postgres.PostgresStorage` keeps the same contract in a PostgreSQL
database, for processes on several hosts (there seqs are per room; see that module).

Threads: :meth:`Storage.append` and :meth:`Storage.commit` are called on the relay's one
writer thread (in order: a batch of appends, then its commit); :meth:`Storage.claim` on the
event loop's thread (it must not wait for a lock); methods marked *(worker thread)* on
worker threads, where :class:`SQLiteStorage` opens one connection per thread.

Locks: :class:`SQLiteStorage` waits at most ``busy_timeout`` (100 ms by default) inside
SQLite for a lock another connection holds, then retries on its own, with backoff, until it
gets it: a commit is delayed by a lock, never lost to it, and the wait is logged
(``storage_busy``, at most every 5 s). Only its writer thread waits for the write lock;
the loop's claim lookups are WAL reads, which no writer blocks.
"""

from __future__ import annotations

import contextlib
import logging
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
    "RoomInfo",
    "SQLiteStorage",
    "Storage",
    "build_doc",
]

SCHEMA_VERSION = 1

log = logging.getLogger("crdtsync.server")

#: How long SQLite itself waits for a lock before reporting "busy" (milliseconds): short,
#: so that no call waits long in one go; the writer thread retries a busy write itself.
BUSY_TIMEOUT_MS = 100
#: Backoff between retries of a busy write (seconds): doubles from the first to the last.
RETRY_FIRST, RETRY_MAX = 0.005, 0.25
#: At most one "waiting for a lock" log line per this many seconds.
BUSY_LOG_INTERVAL = 5.0


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


@dataclass
class RoomInfo:
    """One stored room, as :meth:`SQLiteStorage.rooms` lists it (``crdtsync rooms list``)."""

    name: str
    #: Log rows not yet folded into the snapshot.
    log_rows: int = 0
    #: Bytes of those rows' updates.
    log_bytes: int = 0
    #: Bytes of the snapshot (0: none).
    snapshot_bytes: int = 0
    #: Replica ids claimed in the room (see ``Storage.claim``).
    owners: int = 0

    @property
    def bytes(self) -> int:
        """Stored update bytes: the snapshot and the log rows."""
        return self.log_bytes + self.snapshot_bytes


class Storage(Protocol):
    """What the relay needs from a store. Implement it to put rooms somewhere else."""

    def load(self, room: str) -> Loaded:
        """*(worker thread)* The room's snapshot and log, consistently."""

    def tail(self, room: str, after: int) -> Loaded:
        """*(worker thread)* What other processes committed to the room after ``after``
        (a snapshot first if one was made past it), skipping this process's own rows."""

    def append(self, room: str, update: bytes) -> int:
        """*(writer thread)* Add one accepted update to the room's log (uncommitted); its
        seq. May wait for a lock (the event loop goes on meanwhile)."""

    def commit(self) -> None:
        """*(writer thread)* Make every append so far (and every claim) durable. The relay
        sends nothing about an update before the commit holding it returned; if it raises,
        nothing since the last commit is stored."""

    def claim(self, room: str, replica: int, identity: str) -> str:
        """*(event loop thread: must not wait for a lock)* Make ``identity`` the owner of
        ``replica`` in ``room`` unless it has one (made durable with the next commit); the
        owner it has now. Optional: a store without it keeps ownership in memory only."""

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
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        self.path = Path(path)
        self.node = node
        self.synchronous = synchronous.upper()
        self.max_pending = max_pending
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._in_txn = False
        #: The writer's connection: set up here, then used by one thread at a time (the
        #: relay's writer thread; close() once that thread is done).
        self._conn = self._connect(autocheckpoint=False, busy_ms=busy_timeout_ms, shared=True)
        #: The loop's connection, for claim() lookups only (reads: never waits for writers).
        self._reader = self._connect(autocheckpoint=False, busy_ms=busy_timeout_ms, shared=True)
        #: Claims not committed yet: (room, replica) -> identity; written by the next commit.
        self._claims: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()
        self._busy_since: float | None = None  # the current wait for a lock began
        self._busy_reported = False  # ... and was logged (then so is its end)
        self._busy_logged = -BUSY_LOG_INTERVAL
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

    def _connect(
        self, *, autocheckpoint: bool, busy_ms: int = 30000, shared: bool = False
    ) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=not shared,
            timeout=busy_ms / 1000,
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        if not autocheckpoint:
            # The writer never checkpoints (copying pages would hold up the commits behind
            # it); maintenance() does it in a worker thread.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        return conn

    def _thread_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(autocheckpoint=True)
            self._local.conn = conn
        return conn

    # ---- writer thread ----------------------------------------------------------------------

    def _execute_retrying(self, sql: str) -> None:
        """Run ``sql`` (BEGIN IMMEDIATE or COMMIT, both safe to repeat after "busy") until
        it succeeds: SQLite waits ``busy_timeout`` each time, then we back off and retry.
        Any other error is raised."""
        delay = RETRY_FIRST
        while True:
            try:
                self._conn.execute(sql)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                now = time.monotonic()
                if self._busy_since is None:
                    self._busy_since = now
                if now - self._busy_logged >= BUSY_LOG_INTERVAL:
                    self._busy_logged = now
                    self._busy_reported = True
                    log.warning(
                        "storage write waiting for a database lock",
                        extra={
                            "event": "storage_busy",
                            "waited_ms": round((now - self._busy_since) * 1000),
                        },
                    )
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            if self._busy_since is not None:
                waited = time.monotonic() - self._busy_since
                self._busy_since = None
                if self._busy_reported:  # (rate-limited with the warnings above)
                    self._busy_reported = False
                    log.warning(
                        "storage write delayed by a database lock",
                        extra={"event": "storage_busy_end", "waited_ms": round(waited * 1000)},
                    )
            return

    def _begin(self) -> None:
        if not self._in_txn:
            # IMMEDIATE: take the write lock first (retrying while busy), so nothing after
            # it in the transaction can fail with "busy" half-way.
            self._execute_retrying("BEGIN IMMEDIATE")
            self._in_txn = True

    def _rollback(self) -> None:
        if self._in_txn:
            self._in_txn = False
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def append(self, room: str, update: bytes) -> int:
        self._begin()
        try:
            cursor = self._conn.execute(
                "INSERT INTO log (room, node, data) VALUES (?, ?, ?)", (room, self.node, update)
            )
        except BaseException:
            self._rollback()  # all or nothing: the relay fails every room of the batch
            raise
        seq = cursor.lastrowid
        assert seq is not None
        return seq

    def commit(self) -> None:
        with self._lock:
            claims = list(self._claims.items())
        if claims:
            self._begin()
        if not self._in_txn:
            return
        try:
            # (replica ids are uint64: stored as text, SQLite integers are signed)
            self._conn.executemany(
                "INSERT OR IGNORE INTO owners VALUES (?, ?, ?)",
                [(room, str(replica), identity) for (room, replica), identity in claims],
            )
            self._execute_retrying("COMMIT")
        except BaseException:
            self._rollback()  # the claims stay pending: the next commit writes them
            raise
        self._in_txn = False
        with self._lock:
            for key, identity in claims:
                if self._claims.get(key) == identity:
                    del self._claims[key]

    # ---- event loop thread ------------------------------------------------------------------

    def claim(self, room: str, replica: int, identity: str) -> str:
        key = (room, replica)
        with self._lock:
            pending = self._claims.get(key)
            if pending is not None:
                return pending
            # A committed claim (ours or another process's). A read in WAL mode: it waits
            # for no writer. Two processes claiming one id within one commit of each other
            # both win here; the first commit is what a later load sees.
            row = self._reader.execute(
                "SELECT identity FROM owners WHERE room = ? AND replica = ?",
                (room, str(replica)),
            ).fetchone()
            if row is not None:
                return str(row[0])
            self._claims[key] = identity
            return identity

    def close(self) -> None:
        """Commit what is left and close (once the writer thread is done with it)."""
        self.commit()
        with contextlib.suppress(sqlite3.Error):
            # PASSIVE: never wait for other processes' readers (a shared file).
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._conn.close()
        self._reader.close()

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

    # ---- management (``crdtsync rooms``; any thread, own connection) --------------------------

    def rooms(self) -> list[RoomInfo]:
        """*(worker thread)* Every room with a snapshot, log rows or claimed replica ids,
        sorted by name, read in one consistent snapshot of the database."""
        conn = self._thread_conn()
        conn.execute("BEGIN")
        try:
            found: dict[str, RoomInfo] = {}
            for room, rows, size in conn.execute(
                "SELECT room, COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM log GROUP BY room"
            ):
                found[room] = RoomInfo(str(room), log_rows=int(rows), log_bytes=int(size))
            for room, size in conn.execute("SELECT room, LENGTH(data) FROM snapshots"):
                found.setdefault(room, RoomInfo(str(room))).snapshot_bytes = int(size)
            for room, count in conn.execute("SELECT room, COUNT(*) FROM owners GROUP BY room"):
                found.setdefault(room, RoomInfo(str(room))).owners = int(count)
            return [found[name] for name in sorted(found)]
        finally:
            conn.execute("COMMIT")

    def delete(self, room: str) -> int:
        """*(worker thread)* Remove every row of ``room`` (log, snapshot, replica owners) in
        one transaction; the number of rows removed (0: no such room). Waits for the write
        lock like a compaction does. A server that has the room loaded keeps its copy in
        memory (see docs/server.md, "Managing rooms")."""
        conn = self._thread_conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            removed = 0
            for table in ("log", "snapshots", "owners"):
                removed += conn.execute(f"DELETE FROM {table} WHERE room = ?", (room,)).rowcount
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return removed

    def close_thread(self) -> None:
        """*(worker thread)* Close this thread's connection, if it opened one."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite reported a lock held elsewhere (SQLITE_BUSY or SQLITE_LOCKED, with
    any extended code), i.e. a retry may succeed."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


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

    def rooms(self) -> list[RoomInfo]:
        """Every room with a snapshot, log rows or claimed replica ids, sorted by name."""
        with self._lock:
            names = set(self._log) | set(self._snapshots) | set(self._owners)
            found = []
            for name in sorted(names):
                rows = self._log.get(name, [])
                snap = self._snapshots.get(name)
                info = RoomInfo(
                    name,
                    log_rows=len(rows),
                    log_bytes=sum(len(data) for _, _, data in rows),
                    snapshot_bytes=len(snap[1]) if snap is not None else 0,
                    owners=len(self._owners.get(name, {})),
                )
                if info.log_rows or info.snapshot_bytes or info.owners or snap is not None:
                    found.append(info)
            return found

    def delete(self, room: str) -> int:
        """Remove the room's log rows, snapshot and replica owners; how many were removed."""
        with self._lock:
            removed = len(self._log.pop(room, []))
            removed += self._snapshots.pop(room, None) is not None
            removed += len(self._owners.pop(room, {}))
            return removed
