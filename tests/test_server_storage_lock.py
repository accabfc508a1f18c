"""Storage I/O off the event loop: another process holding the database's write lock
delays only the rooms waiting for a commit; /healthz, other rooms and loads go on; nothing
is acknowledged or relayed before its commit; a hard storage failure closes the room's
clients and sends nothing.

No timed assertions: a thread of the test holds ``BEGIN IMMEDIATE`` on the server's
database file (its own sqlite3 connection, i.e. "another process") until an event is set,
and every check is ordered causally against it."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from test_server_support import (  # noqa: F401 - fixtures
    ServerProcess,
    close_code,
    relay_server,
    run,
    servers,
    wait_until,
)
from websockets.asyncio.client import connect as raw_connect

import crdtsync
from crdtsync.server import Limits, MemoryStorage, SQLiteStorage
from crdtsync.server.storage import build_doc
from crdtsync.sync import SyncSession
from crdtsync.sync import messages as m
from crdtsync.transports.codes import CloseCode
from crdtsync.transports.websocket import connect


class WriteLock:
    """Another writer on the database file: holds ``BEGIN IMMEDIATE`` from ``__aenter__``
    until ``__aexit__`` (or :meth:`release`)."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.locked = threading.Event()
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)
        self.error: BaseException | None = None

    def _hold(self) -> None:
        try:
            conn = sqlite3.connect(self.db, isolation_level=None, timeout=10)
            try:
                conn.execute("BEGIN IMMEDIATE")
                self.locked.set()
                self._release.wait()
                conn.execute("COMMIT")
            finally:
                conn.close()
        except BaseException as exc:  # reported by __aenter__ / __aexit__
            self.error = exc
            self.locked.set()

    async def __aenter__(self) -> WriteLock:
        self._thread.start()
        await asyncio.to_thread(self.locked.wait)
        assert self.error is None, self.error
        return self

    def release(self) -> None:
        self._release.set()

    async def __aexit__(self, *exc: object) -> None:
        self.release()
        await asyncio.to_thread(self._thread.join)
        assert self.error is None, self.error


async def healthz(port: int) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        body: dict[str, Any] = json.loads(await reader.readexactly(length))
        return body
    finally:
        writer.close()


async def handshake(ws: Any, session: SyncSession) -> None:
    """A raw client's opening: HELLO, then the relay's answer (a DIFF) integrated."""
    for msg in session.start():
        await ws.send(msg)
    while True:
        data = await asyncio.wait_for(ws.recv(), 10)
        for reply in session.receive(data) + session.poll():
            await ws.send(reply)
        if isinstance(m.decode_message(data), m.Diff):
            return


def stored_text(db: Path, room: str, name: str = "t") -> str:
    """The room as a fresh process would load it from the file."""
    storage = SQLiteStorage(db, node="check")
    try:
        return str(build_doc(storage.load(room).updates, max_pending=1024).text(name))
    finally:
        storage.close()


class Events(logging.Handler):
    """The ``event`` fields the in-process relay logs."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(str(getattr(record, "event", "")))

    def __enter__(self) -> Events:
        logging.getLogger("crdtsync.server").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("crdtsync.server").removeHandler(self)


# ---- a real server process --------------------------------------------------------------


def test_an_external_write_lock_stalls_only_the_room_waiting_for_its_commit(
    tmp_path: Path,
    servers: Any,  # noqa: F811
) -> None:
    db = tmp_path / "rooms.db"
    before = SQLiteStorage(db, node="earlier")  # a room no process has loaded yet
    doc = crdtsync.Doc()
    doc.on_update(lambda update, origin: before.append("cold", update))
    doc.text("t").insert(0, "cold")
    before.commit()
    before.close()
    server: ServerProcess = servers("--db", str(db))

    async def body() -> None:
        # One multiplexed connection (ROOM envelopes): the relay reads its messages in
        # order, so its answer to a HELLO for "other" sent after an update to "written"
        # shows that the relay took the update (and so met the lock) first.
        writer, other = crdtsync.Doc(), crdtsync.Doc()
        sessions = {"written": SyncSession(writer), "other": SyncSession(other)}
        async with raw_connect(f"{server.url}/") as ws:

            async def send(room: str, messages: list[bytes]) -> None:
                for msg in messages:
                    await ws.send(m.encode_message(m.Room(room, msg)))

            async def read_until(room: str, kind: type) -> None:
                while True:
                    env = m.decode_message(await asyncio.wait_for(ws.recv(), 20))
                    assert isinstance(env, m.Room)
                    session = sessions[env.room]
                    await send(env.room, session.receive(env.message) + session.poll())
                    if env.room == room and isinstance(m.decode_message(env.message), kind):
                        return

            await send("written", sessions["written"].start())
            await read_until("written", m.Diff)
            me = writer.replica_id
            async with WriteLock(db):
                writer.text("t").insert(0, "during")
                counter = writer.version[me]
                await send("written", sessions["written"].poll())
                await send("other", sessions["other"].start())
                await read_until("other", m.Diff)  # the old relay stalled here
                # The event loop answers: health, a loaded room, a room it loads now.
                assert (await healthz(server.port))["status"] == "ok"
                reader = crdtsync.Doc()
                async with connect(f"{server.url}/cold", reader) as cr:
                    await cr.wait_synced(10)
                    assert str(reader.text("t")) == "cold"
                # A late joiner of the written room is held: it must not see "during".
                late = crdtsync.Doc()
                cl = await connect(f"{server.url}/written", late, wait=False)
                assert (await healthz(server.port))["status"] == "ok"  # one more round trip
                # Nothing about the update left the relay: it is not committed.
                assert sessions["written"].peer_version.get(me, 0) < counter
                assert "during" not in str(late.text("t"))
                await wait_until(
                    lambda: any(e.get("event") == "storage_busy" for e in server.events()),
                    15,
                    "the relay to log the commit waiting for the lock",
                )
            # Released: the commit goes through, then the ACK and the relayed copy.
            while sessions["written"].peer_version.get(me, 0) < counter:
                await read_until("written", m.Ack)
        await wait_until(lambda: str(late.text("t")) == "during", 15, "the late joiner")
        await cl.close()

    run(body(), timeout=60)
    events = [e.get("event") for e in server.events()]
    assert "storage_busy_end" in events
    assert "storage_error" not in events
    server.kill()  # no graceful shutdown: what was acknowledged must be in the file
    assert stored_text(db, "written") == "during"


# ---- in-process relay ---------------------------------------------------------------------


def test_close_commits_what_waits_for_a_lock_and_compaction_sees_it(tmp_path: Path) -> None:
    """An update accepted while the file is locked is stored by Relay.close() once the lock
    goes; the compaction it triggered meanwhile waits for that commit and folds it in."""
    db = tmp_path / "rooms.db"

    async def body() -> None:
        with Events() as logged:
            async with relay_server(storage=SQLiteStorage(db), compact_rows=3) as (relay, url, _):
                doc = crdtsync.Doc()
                client = await connect(f"{url}/r", doc)
                await client.wait_synced(10)
                lock = WriteLock(db)
                async with lock:
                    for ch in "abcd":  # past compact_rows: a compaction is due
                        doc.text("t").insert(len(doc.text("t")), ch)
                    await wait_until(lambda: "storage_busy" in logged.events, 15, "the lock")
                    assert not client.synced
                    assert relay.stats()["status"] == "ok"
                    await client.close()
                    closing = asyncio.ensure_future(relay.close(timeout=10))
                    await asyncio.sleep(0)
                    assert not closing.done()
                    lock.release()
                    await asyncio.wait_for(closing, 20)
        assert "storage_error" not in logged.events and "compact_error" not in logged.events

    run(body())
    assert stored_text(db, "r") == "abcd"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT count(*) FROM log WHERE room = 'r'").fetchone()[0]
        upto = conn.execute("SELECT upto FROM snapshots WHERE room = 'r'").fetchone()
    assert upto is not None and rows == 0  # compacted, committed rows only, all of them


def test_what_a_room_holds_during_a_commit_is_bounded(tmp_path: Path) -> None:
    """A client that keeps sending while its room waits for the lock is closed with 1013
    once the room holds more than max_held_bytes; what it sent after the commit in flight
    was never accepted, others in the room are not touched."""
    db = tmp_path / "rooms.db"
    limits = Limits(max_message_size=4096)

    async def body() -> None:
        with Events() as logged:
            async with relay_server(storage=SQLiteStorage(db), limits=limits, max_held_bytes=0) as (
                relay,
                url,
                _,
            ):
                polite = crdtsync.Doc()
                cp = await connect(f"{url}/r", polite)
                await cp.wait_synced(10)
                doc = crdtsync.Doc()
                session = SyncSession(doc)
                async with raw_connect(f"{url}/r") as ws:
                    await handshake(ws, session)
                    async with WriteLock(db):
                        doc.text("t").insert(0, "first")  # applied: its commit waits
                        for msg in session.poll():
                            await ws.send(msg)
                        await wait_until(lambda: "storage_busy" in logged.events, 15, "the lock")
                        for i in range(8):  # held: 8 x 1 kB, past the 4 kB bound
                            doc.text("t").insert(0, chr(ord("a") + i) * 1000)
                            for msg in session.poll():
                                await ws.send(msg)
                        assert await close_code(ws) == CloseCode.TRY_AGAIN_LATER
                        assert "held_overflow" in logged.events
                        assert cp.connected and "first" not in str(polite.text("t"))
                await wait_until(lambda: str(polite.text("t")) == "first", 15, "the commit")
                await cp.close()

    run(body())
    assert stored_text(db, "r") == "first"


class FailingStorage(MemoryStorage):
    """A store whose next append fails hard (a disk error, not a lock)."""

    fail = False

    def append(self, room: str, update: bytes) -> int:
        if self.fail:
            self.fail = False
            raise sqlite3.DatabaseError("disk I/O error (test)")
        return super().append(room, update)


def test_a_failed_commit_sends_nothing_and_closes_the_room_s_clients() -> None:
    async def body() -> None:
        storage = FailingStorage()
        async with relay_server(storage=storage) as (relay, url, _):
            good = crdtsync.Doc()
            cg = await connect(f"{url}/good", good)
            await cg.wait_synced(10)
            seen = crdtsync.Doc()
            session = SyncSession(seen)
            async with raw_connect(f"{url}/bad") as ws:
                await handshake(ws, session)
                writer = crdtsync.Doc()
                cw = await connect(f"{url}/bad", writer)
                await cw.wait_synced(10)
                storage.fail = True
                writer.text("t").insert(0, "lost")
                code = None
                try:
                    while True:  # everything the relay still sends us, then its close
                        session.receive(await asyncio.wait_for(ws.recv(), 10))
                except Exception as exc:
                    code = getattr(getattr(exc, "rcvd", None), "code", None)
                assert code == CloseCode.INTERNAL_ERROR
                assert str(seen.text("t")) == ""  # no copy of an update that is not stored
                # The writer's client reconnects and resends; the room reloads and stores it.
                await cw.wait_synced(10)
                again = crdtsync.Doc()
                async with connect(f"{url}/bad", again) as ca:
                    await ca.wait_synced(10)
                    assert str(again.text("t")) == "lost"
                await cw.close()
            good.text("t").insert(0, "fine")  # the other room never noticed
            await cg.wait_synced(10)
            assert str(relay.rooms["good"].doc.text("t")) == "fine"
            await cg.close()

    run(body())
