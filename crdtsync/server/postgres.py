"""Rooms in PostgreSQL: the log, snapshot and compaction contract of
:class:`~crdtsync.server.storage.SQLiteStorage`, on a database server that processes on
several hosts share (``crdtsync serve --db postgresql://...``, Redis as the bus between
them; see docs/server.md, "Deployment: several hosts").

Tables (created on first use, all prefixed ``crdtsync_``):

- ``rooms(room PRIMARY KEY, seq)``: the last seq handed out in the room. A writer locks the
  room's row on its first append of a transaction and holds it to the commit, so seqs of a
  room are allocated *and committed* in order across all processes: "rows after seq N" is a
  complete tail, as SQLite's single writer makes it. The row outlives ``delete()``, so a
  room's seqs never repeat (a server that still holds the room compares seqs).
- ``log(room, seq, node, data, PRIMARY KEY (room, seq))``: accepted updates.
- ``snapshot(room PRIMARY KEY, upto, data)``: the merge of the room up to ``upto``.
- ``replicas(room, replica, identity, PRIMARY KEY (room, replica))``: replica id owners.
- ``meta(key PRIMARY KEY, value)``: the schema version.

One batch's appends lock their rooms in the order they come; the relay appends in room
name order (``_write_batch``), so two processes' batches never wait for each other in a
cycle. Durability is the database server's: with its defaults (``fsync`` on,
``synchronous_commit`` on) a commit that returned is on the server's disk, so it survives
a kill of the relay and a crash of the database server.

Requires psycopg 3 (``pip install 'crdtsync[postgres]'``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from crdtsync.server.storage import Loaded, _Connection, _Dialect, _SQLStorage

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStorage", "is_postgres_url", "redact_url"]

SCHEMA_VERSION = 1

log = logging.getLogger("crdtsync.server")

#: How long a claim on the event loop waits for a row lock another transaction holds before
#: it leaves the claim to the next commit instead (milliseconds).
CLAIM_LOCK_TIMEOUT_MS = 100
#: ... and at most how long a claim's statement may take at all (milliseconds).
CLAIM_STATEMENT_TIMEOUT_MS = 1000

# An arbitrary constant key: processes starting together create the tables one at a time
# (concurrent CREATE TABLE IF NOT EXISTS can fail on the catalog's unique index).
_SCHEMA_LOCK = 0x63726474

_SCHEMA = """
CREATE TABLE IF NOT EXISTS crdtsync_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS crdtsync_rooms (room text PRIMARY KEY, seq bigint NOT NULL);
CREATE TABLE IF NOT EXISTS crdtsync_log (
    room text NOT NULL,
    seq bigint NOT NULL,
    node text NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (room, seq)
);
CREATE TABLE IF NOT EXISTS crdtsync_snapshot (
    room text PRIMARY KEY,
    upto bigint NOT NULL,
    data bytea NOT NULL,
    updated timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS crdtsync_replicas (
    room text NOT NULL,
    replica text NOT NULL,
    identity text NOT NULL,
    PRIMARY KEY (room, replica)
);
"""


def is_postgres_url(db: str) -> bool:
    """Whether ``--db`` names a PostgreSQL database rather than a SQLite file."""
    return db.startswith(("postgresql://", "postgres://"))


def redact_url(url: str) -> str:
    """``url`` without its password (for messages and logs).

    >>> redact_url("postgresql://app:secret@db.example:5432/rooms?sslmode=require")
    'postgresql://app:***@db.example:5432/rooms?sslmode=require'
    """
    if not is_postgres_url(url):
        return url  # a SQLite path: nothing to hide (and not a URL to parse)
    # (string surgery, not urlsplit/urlunsplit: those drop the empty host of "postgresql:///db")
    url = re.sub(r"^([a-z]+://[^/@:?]*):[^@/?]*@", r"\1:***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url)


class PostgresStorage(_SQLStorage):
    """Rooms in a PostgreSQL database, shared by every process given the same URL.

    Threads as for :class:`~crdtsync.server.storage.SQLiteStorage`: appends and commits on
    the relay's writer thread (its own connection), claims on the event loop (a second
    connection, in autocommit), the rest on worker threads (a connection each). A broken
    connection fails the call in progress (a commit: the relay fails the batch's rooms,
    which reload) and is replaced on the next one.

    Example (it needs a server, so it is not a doctest; tests/test_server_postgres.py runs
    the like against a real one)::

        storage = PostgresStorage("postgresql://crdtsync@db.internal/rooms", node="a")
        seq = storage.append("room", doc.get_update())  # the room's row is locked ...
        storage.commit()  # ... until this commit
        assert storage.load("room").rows[-1][0] == seq
        storage.close()
    """

    # Read committed: a compaction's guarded write waits for a concurrent compaction of the
    # room and then sees its result. Appends are not held up: they lock crdtsync_rooms.
    _DIALECT = _Dialect(
        "crdtsync_log", "crdtsync_snapshot", "crdtsync_replicas", "%s", begin_write="BEGIN"
    )

    def __init__(
        self,
        url: str,
        *,
        node: str = "",
        max_pending: int = 1024,
        connect_timeout: float = 10.0,
    ) -> None:
        import psycopg  # noqa: F401 - fail here, with ImportError, if it is missing

        self.url = url
        self.node = node
        self.max_pending = max_pending
        self.connect_timeout = connect_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        #: The writer's transaction: room -> the last seq allocated to it (its row locked),
        #: and the rows appended, written by commit().
        self._next: dict[str, int] = {}
        self._rows: list[tuple[str, int, str, bytes]] = []
        #: Claims the loop could not write itself: (room, replica) -> identity.
        self._claims: dict[tuple[str, int], str] = {}
        #: Every worker thread's connection, for close() (a thread may never call close_thread).
        self._opened: list[psycopg.Connection[Any]] = []
        self._conn = self._connect()
        try:
            self._reader = self._claims_conn()
            self._create_schema()
        except BaseException:
            self._conn.close()
            with contextlib.suppress(Exception):
                self._reader.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStorage({redact_url(self.url)!r}, node={self.node!r})"

    def _connect(self, *, autocommit: bool = False, **params: Any) -> psycopg.Connection[Any]:
        import psycopg

        return psycopg.connect(
            self.url,
            autocommit=autocommit,
            connect_timeout=max(1, round(self.connect_timeout)),
            application_name=f"crdtsync {self.node}"[:63],
            **params,
        )

    def _claims_conn(self) -> psycopg.Connection[Any]:
        """The event loop's connection: every wait on it is bounded (a row lock, a slow
        statement, a server that stopped acknowledging), since the loop waits with it."""
        conn = self._connect(autocommit=True, tcp_user_timeout=CLAIM_STATEMENT_TIMEOUT_MS)
        conn.execute(f"SET lock_timeout = {CLAIM_LOCK_TIMEOUT_MS}")
        conn.execute(f"SET statement_timeout = {CLAIM_STATEMENT_TIMEOUT_MS}")
        return conn

    def _create_schema(self) -> None:
        conn = self._conn
        try:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO crdtsync_meta VALUES ('schema', %s) ON CONFLICT DO NOTHING",
                (str(SCHEMA_VERSION),),
            )
            row = conn.execute("SELECT value FROM crdtsync_meta WHERE key = 'schema'").fetchone()
            conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise
        if row is None or int(row[0]) != SCHEMA_VERSION:
            raise RuntimeError(f"{redact_url(self.url)}: unsupported schema version {row}")

    def _thread_conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            # Autocommit, with explicit BEGINs: each method picks its isolation level.
            conn = self._connect(autocommit=True)
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    # ---- writer thread ----------------------------------------------------------------------

    def _writer(self) -> psycopg.Connection[Any]:
        if self._conn.closed or self._conn.broken:
            # Never in the middle of a transaction: its room locks went with the connection,
            # so its seqs could be another process's by now.
            if self._next:
                raise RuntimeError("the writer's connection broke inside a transaction")
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = self._connect()
        return self._conn

    def _abort(self) -> None:
        """Forget the transaction: nothing of it is stored."""
        self._next.clear()
        self._rows.clear()
        with contextlib.suppress(Exception):
            self._conn.rollback()

    def append(self, room: str, update: bytes) -> int:
        try:
            seq = self._next.get(room)
            if seq is None:
                # Locks the room's row until the commit: another process's append to the
                # room waits here (on the server), so its seqs follow ours in commit order.
                row = (
                    self._writer()
                    .execute(
                        "INSERT INTO crdtsync_rooms AS r (room, seq) VALUES (%s, 0) "
                        "ON CONFLICT (room) DO UPDATE SET seq = r.seq RETURNING seq",
                        (room,),
                    )
                    .fetchone()
                )
                assert row is not None
                seq = int(row[0])
        except BaseException:
            self._abort()  # all or nothing: the relay fails every room of the batch
            raise
        seq += 1
        self._next[room] = seq
        self._rows.append((room, seq, self.node, update))
        return seq

    def commit(self) -> None:
        claims = self._pending_claims()
        self._replace_reader()
        if not (self._rows or self._next or claims):
            return
        try:
            conn = self._writer()
            with conn.cursor() as cur:
                if self._rows:
                    cur.executemany(
                        "INSERT INTO crdtsync_log (room, seq, node, data) VALUES (%s, %s, %s, %s)",
                        self._rows,
                    )
                    cur.executemany(
                        "UPDATE crdtsync_rooms SET seq = %s WHERE room = %s",
                        [(seq, room) for room, seq in self._next.items()],
                    )
                if claims:
                    cur.executemany(
                        "INSERT INTO crdtsync_replicas VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                        [(room, str(replica), who) for (room, replica), who in claims],
                    )
            conn.commit()
        except BaseException:
            self._abort()  # the claims stay pending: the next commit writes them
            raise
        self._next.clear()
        self._rows.clear()
        self._claims_committed(claims)

    def _replace_reader(self) -> None:
        """A broken claim connection is replaced here, on the writer thread: connecting
        may wait, which the event loop must not. If that fails too, claims stay deferred
        (the commit is not failed for it: the relay would count its batch lost)."""
        old = self._reader
        if old.closed or old.broken:
            try:
                reader = self._claims_conn()
            except Exception:
                return
            with self._lock:
                self._reader = reader
            with contextlib.suppress(Exception):
                old.close()

    # ---- event loop thread ------------------------------------------------------------------

    def _committed_owner(self, room: str, replica: int, identity: str) -> str | None:
        """Atomic across processes: the first INSERT of the id wins (one statement in
        autocommit); the owner stored then. Where the database does not answer at once
        (a lock, a lost connection) the claim waits for the next commit, as SQLite's do."""
        import psycopg

        reader = self._reader
        if reader.closed or reader.broken:
            return None
        try:
            inserted = reader.execute(
                "INSERT INTO crdtsync_replicas VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (room, str(replica), identity),
            ).rowcount
            if inserted == 1:
                return identity
            row = reader.execute(
                "SELECT identity FROM crdtsync_replicas WHERE room = %s AND replica = %s",
                (room, str(replica)),
            ).fetchone()
        except psycopg.Error as exc:
            log.warning(
                "replica claim deferred to the next commit: %s",
                exc,
                extra={"event": "claim_deferred", "room": room},
            )
            return None
        return None if row is None else str(row[0])

    def close(self) -> None:
        """Commit what is left and close (once the writer thread is done with it)."""
        try:
            self.commit()
        finally:
            self._conn.close()
            self._reader.close()
            with self._lock:
                opened, self._opened = self._opened, []
            for conn in opened:
                with contextlib.suppress(Exception):
                    conn.close()

    # ---- worker threads ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._thread_conn()
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.execute("COMMIT")

    def _write_snapshot(self, conn: _Connection, room: str, loaded: Loaded, state: bytes) -> bool:
        if loaded.snapshot_upto is None:
            done = conn.execute(
                "INSERT INTO crdtsync_snapshot (room, upto, data) VALUES (%s, %s, %s) "
                "ON CONFLICT (room) DO NOTHING",
                (room, loaded.last_seq, state),
            ).rowcount
        else:
            done = conn.execute(
                "UPDATE crdtsync_snapshot SET upto = %s, data = %s, updated = now() "
                "WHERE room = %s AND upto = %s",
                (loaded.last_seq, state, room, loaded.snapshot_upto),
            ).rowcount
        return done == 1

    def _lock_room(self, conn: _Connection, room: str) -> None:
        """Take the room's row, as a writer does: the appends in progress to it commit first."""
        conn.execute("SELECT seq FROM crdtsync_rooms WHERE room = %s FOR UPDATE", (room,))

    def maintenance(self) -> None:
        """Nothing: the database server vacuums and checkpoints on its own."""

    def close_thread(self) -> None:
        """*(worker thread)* Close this thread's connection, if it opened one."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            with self._lock, contextlib.suppress(ValueError):
                self._opened.remove(conn)
