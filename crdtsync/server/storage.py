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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

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

    # Optional: compact_with(room, state, upto) -> CompactResult | None (see
    # SQLiteStorage.compact_with); without it, the relay always calls compact().

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


class _Cursor(Protocol):
    """What the shared SQL code reads of a cursor (sqlite3's and psycopg's both fit)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class _Connection(Protocol):
    """What the shared SQL code needs of a connection (sqlite3's and psycopg's both fit)."""

    def execute(self, sql: str, params: tuple[Any, ...] = ..., /) -> _Cursor: ...


@dataclass(frozen=True)
class _Dialect:
    """How a SQL store names its tables, marks a parameter and starts a write transaction
    (the tables' columns are the same in every store)."""

    log: str
    snapshots: str
    owners: str
    param: str
    begin_write: str

    def sql(self, template: str) -> str:
        """``template`` with ``{log}``, ``{snapshots}``, ``{owners}`` and ``{p}`` filled in."""
        return template.format(
            log=self.log, snapshots=self.snapshots, owners=self.owners, p=self.param
        )


class _SQLStorage:
    """The log, snapshot and compaction logic that :class:`SQLiteStorage` and
    :class:`~crdtsync.server.postgres.PostgresStorage` share: the same tables under other
    names, read and folded the same way. A subclass supplies the connections, how a read
    snapshot is taken, and the guarded snapshot write of a compaction."""

    _DIALECT: ClassVar[_Dialect]
    node: str
    max_pending: int
    _lock: threading.Lock
    #: Claims not committed yet: (room, replica) -> identity; written by the next commit.
    _claims: dict[tuple[str, int], str]

    def _thread_conn(self) -> _Connection:
        raise NotImplementedError

    def _reading(self) -> contextlib.AbstractContextManager[_Connection]:
        """This thread's connection, inside one consistent read snapshot (a concurrent
        compaction is all or nothing)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def _writing(self) -> Iterator[_Connection]:
        """This thread's connection, inside a write transaction: committed at the end,
        rolled back if anything in it raised."""
        conn = self._thread_conn()
        conn.execute(self._DIALECT.begin_write)
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                conn.execute("ROLLBACK")
            raise

    def _write_snapshot(self, conn: _Connection, room: str, loaded: Loaded, state: bytes) -> bool:
        """Store ``state`` as the room's snapshot up to ``loaded.last_seq`` unless another
        process compacted the room since ``loaded`` was read (then False: nothing written)."""
        raise NotImplementedError

    def _lock_room(self, conn: _Connection, room: str) -> None:
        """Wait, inside a write transaction, until no other writer may append to ``room``."""

    def _committed_owner(self, room: str, replica: int, identity: str) -> str | None:
        """*(event loop thread)* The owner of ``replica`` the database holds now (``identity``
        if it could be made the owner at once); None: the next commit decides."""
        raise NotImplementedError

    # ---- writer thread ----------------------------------------------------------------------

    def _pending_claims(self) -> list[tuple[tuple[str, int], str]]:
        with self._lock:
            return list(self._claims.items())

    def _claims_committed(self, claims: list[tuple[tuple[str, int], str]]) -> None:
        """Forget the claims a commit wrote (unless claimed again meanwhile)."""
        with self._lock:
            for key, identity in claims:
                if self._claims.get(key) == identity:
                    del self._claims[key]

    # ---- event loop thread ------------------------------------------------------------------

    def claim(self, room: str, replica: int, identity: str) -> str:
        key = (room, replica)
        with self._lock:
            owner = self._claims.get(key)
            if owner is None:
                owner = self._committed_owner(room, replica, identity)
            if owner is None:
                self._claims[key] = owner = identity
            return owner

    # ---- worker threads ---------------------------------------------------------------------

    def _read(self, conn: _Connection, room: str, after: int, *, own: bool) -> Loaded:
        """The room's snapshot if it covers more than ``after``, then the log rows past
        both (this process's own too if ``own``); ``last_seq`` counts every row read."""
        sql = self._DIALECT.sql
        loaded = Loaded(last_seq=after)
        snap = conn.execute(
            sql("SELECT upto, data FROM {snapshots} WHERE room = {p} AND upto > {p}"),
            (room, after),
        ).fetchone()
        if snap is not None:
            loaded.last_seq = loaded.snapshot_upto = int(snap[0])
            loaded.snapshot = bytes(snap[1])
        for seq, node, data in conn.execute(
            sql("SELECT seq, node, data FROM {log} WHERE room = {p} AND seq > {p} ORDER BY seq"),
            (room, loaded.last_seq),
        ):
            if own or node != self.node:
                loaded.rows.append((int(seq), bytes(data)))
            loaded.last_seq = max(loaded.last_seq, int(seq))
        return loaded

    def load(self, room: str) -> Loaded:
        with self._reading() as conn:
            loaded = self._read(conn, room, 0, own=True)
            for replica, identity in conn.execute(
                self._DIALECT.sql("SELECT replica, identity FROM {owners} WHERE room = {p}"),
                (room,),
            ):
                loaded.owners[int(replica)] = str(identity)
            return loaded

    def tail(self, room: str, after: int) -> Loaded:
        with self._reading() as conn:
            return self._read(conn, room, after, own=False)

    def compact(self, room: str) -> CompactResult | None:
        started = time.perf_counter()
        loaded = self.load(room)
        if not loaded.rows:
            return None
        doc = build_doc(loaded.updates, max_pending=self.max_pending)
        if doc.pending:
            # Cannot happen when rows are appended in integration order; if it did, the
            # snapshot would lack what still waits, so keep the log as it is.
            raise RuntimeError(f"room {room!r}: {doc.pending} logged updates do not integrate")
        state = doc.get_update()
        with self._writing() as conn:
            if not self._write_snapshot(conn, room, loaded, state):
                return None  # another process compacted meanwhile
            # Rows up to last_seq were all committed when load() read them (seqs commit in
            # order); rows appended since are above it and stay.
            deleted = conn.execute(
                self._DIALECT.sql("DELETE FROM {log} WHERE room = {p} AND seq <= {p}"),
                (room, loaded.last_seq),
            ).rowcount
        return CompactResult(deleted, len(state), time.perf_counter() - started)

    def compact_with(self, room: str, state: bytes, upto: int) -> CompactResult | None:
        """*(worker thread)* Make ``state`` the room's snapshot and drop the log rows up to
        seq ``upto``, which the caller's document (the relay's, in memory) holds with
        everything before them: compaction without rebuilding the room from its rows. None,
        with nothing written, if a row up to ``upto`` came from another process (the caller
        cannot know that it holds it) or a snapshot already covers ``upto``: compact()
        then, if at all."""
        started = time.perf_counter()
        sql = self._DIALECT.sql
        with self._writing() as conn:
            self._lock_room(conn, room)
            foreign = conn.execute(
                sql("SELECT 1 FROM {log} WHERE room = {p} AND seq <= {p} AND node <> {p} LIMIT 1"),
                (room, upto, self.node),
            ).fetchone()
            if foreign is not None:
                return None
            snap = conn.execute(
                sql("SELECT upto FROM {snapshots} WHERE room = {p}"), (room,)
            ).fetchone()
            current = int(snap[0]) if snap is not None else None
            if current is not None and current >= upto:
                return None
            loaded = Loaded(snapshot_upto=current, last_seq=upto)
            if not self._write_snapshot(conn, room, loaded, state):
                return None
            deleted = conn.execute(
                sql("DELETE FROM {log} WHERE room = {p} AND seq <= {p}"), (room, upto)
            ).rowcount
        return CompactResult(deleted, len(state), time.perf_counter() - started)

    # ---- management (``crdtsync rooms``) ------------------------------------------------------

    def rooms(self) -> list[RoomInfo]:
        """*(worker thread)* Every room with a snapshot, log rows or claimed replica ids,
        sorted by name, read in one consistent snapshot of the database."""
        sql = self._DIALECT.sql
        with self._reading() as conn:
            found: dict[str, RoomInfo] = {}
            for room, rows, size in conn.execute(
                sql(
                    "SELECT room, COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM {log} GROUP BY room"
                )
            ):
                found[room] = RoomInfo(str(room), log_rows=int(rows), log_bytes=int(size))
            for room, size in conn.execute(sql("SELECT room, LENGTH(data) FROM {snapshots}")):
                found.setdefault(room, RoomInfo(str(room))).snapshot_bytes = int(size)
            for room, count in conn.execute(
                sql("SELECT room, COUNT(*) FROM {owners} GROUP BY room")
            ):
                found.setdefault(room, RoomInfo(str(room))).owners = int(count)
            return [found[name] for name in sorted(found)]

    def delete(self, room: str) -> int:
        """*(worker thread)* Remove every row of ``room`` (log, snapshot, replica owners) in
        one transaction, once no writer may append to it; the number of rows removed (0: no
        such room). A server that has the room loaded keeps its copy in memory (see
        docs/server.md, "Managing rooms")."""
        dialect = self._DIALECT
        removed = 0
        with self._writing() as conn:
            self._lock_room(conn, room)
            for table in (dialect.log, dialect.snapshots, dialect.owners):
                removed += conn.execute(
                    f"DELETE FROM {table} WHERE room = {dialect.param}", (room,)
                ).rowcount
        return removed


class SQLiteStorage(_SQLStorage):
    """The embedded default: one SQLite file (WAL). ``synchronous="FULL"`` also survives
    power loss (an fsync per commit); the default ``"NORMAL"`` survives a crash or kill of
    the process, which is what losing nothing acknowledged across restarts needs, at a
    fraction of the cost (SQLite's documented WAL guarantee)."""

    # (IMMEDIATE: a compaction or delete takes the write lock first, as _begin() does)
    _DIALECT = _Dialect("log", "snapshots", "owners", "?", begin_write="BEGIN IMMEDIATE")

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
        self._claims = {}
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
        claims = self._pending_claims()
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
        self._claims_committed(claims)

    # ---- event loop thread ------------------------------------------------------------------

    def _committed_owner(self, room: str, replica: int, identity: str) -> str | None:
        # A committed claim (ours or another process's). A read in WAL mode: it waits for no
        # writer. Two processes claiming one id within one commit of each other both win
        # here; the first commit is what a later load sees.
        row = self._reader.execute(
            "SELECT identity FROM owners WHERE room = ? AND replica = ?",
            (room, str(replica)),
        ).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        """Commit what is left and close (once the writer thread is done with it)."""
        self.commit()
        with contextlib.suppress(sqlite3.Error):
            # PASSIVE: never wait for other processes' readers (a shared file).
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._conn.close()
        self._reader.close()

    # ---- worker threads ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        conn = self._thread_conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def _write_snapshot(self, conn: _Connection, room: str, loaded: Loaded, state: bytes) -> bool:
        now = conn.execute("SELECT upto FROM snapshots WHERE room = ?", (room,)).fetchone()
        if (int(now[0]) if now is not None else None) != loaded.snapshot_upto:
            return False
        conn.execute(
            "INSERT OR REPLACE INTO snapshots (room, upto, data, updated) VALUES (?,?,?,?)",
            (room, loaded.last_seq, state, time.time()),
        )
        return True

    def _lock_room(self, conn: _Connection, room: str) -> None:
        """Nothing more: the write transaction holds the file's write lock already."""

    def maintenance(self) -> None:
        self._thread_conn().execute("PRAGMA wal_checkpoint(PASSIVE)")

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
            deleted = self._fold(room, state, loaded.last_seq)
        return CompactResult(deleted, len(state), time.perf_counter() - started)

    def _fold(self, room: str, state: bytes, upto: int) -> int:
        """*(under the lock)* ``state`` becomes the snapshot up to ``upto`` and the rows it
        covers go; how many went."""
        rows = self._log.get(room, [])
        kept = [r for r in rows if r[0] > upto]
        self._log[room] = kept
        self._snapshots[room] = (upto, state)
        return len(rows) - len(kept)

    def compact_with(self, room: str, state: bytes, upto: int) -> CompactResult | None:
        """As :meth:`SQLiteStorage.compact_with`."""
        started = time.perf_counter()
        with self._lock:
            rows = self._log.get(room, [])
            if any(seq <= upto and node != self.node for seq, node, _ in rows):
                return None
            snap = self._snapshots.get(room)
            if snap is not None and snap[0] >= upto:
                return None
            deleted = self._fold(room, state, upto)
        return CompactResult(deleted, len(state), time.perf_counter() - started)

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
