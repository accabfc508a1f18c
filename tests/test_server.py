"""The relay in-process, over real WebSocket connections on 127.0.0.1: convergence, late
joiners, persistence and compaction, access control, limits, hostile frames, presence,
multiplexed connections and the health endpoint."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from test_server_support import (
    close_code,
    log_left_by_crashes,
    multiplexed,
    relay_server,
    run,
    token_file,
    wait_until,
)
from websockets.asyncio.client import connect as raw_connect
from websockets.exceptions import ConnectionClosed

import crdtsync
from crdtsync.server import Limits, MemoryStorage, SQLiteStorage, TokenFile
from crdtsync.server.relay import Relay
from crdtsync.sync import Presence, SyncSession
from crdtsync.sync import messages as m
from crdtsync.transports import ChannelClosed, ConnectionRefusedByServer
from crdtsync.transports.codes import CloseCode
from crdtsync.transports.websocket import connect


def snapshot(doc: crdtsync.Doc) -> dict[str, Any]:
    return {
        "text": str(doc.text("text")),
        "list": list(doc.list("list")),
        "map": dict(doc.map("map")),
        "counter": doc.counter("counter").value,
    }


def room_doc(relay: Relay, room: str) -> crdtsync.Doc:
    return relay.rooms[room].doc


async def all_equal(docs: list[crdtsync.Doc], timeout: float = 10.0) -> None:
    await wait_until(
        lambda: (
            all(snapshot(d) == snapshot(docs[0]) for d in docs)
            and all(d.version == docs[0].version for d in docs)
        ),
        timeout,
        "documents to converge",
    )


def random_edit(doc: crdtsync.Doc, rng: random.Random, tag: str) -> None:
    kind = rng.randrange(4)
    if kind == 0:
        text = doc.text("text")
        if len(text) and rng.random() < 0.3:
            doc.text("text").delete(rng.randrange(len(text)))
        else:
            text.insert(rng.randint(0, len(text)), rng.choice("abcdef"))
    elif kind == 1:
        doc.list("list").append(f"{tag}{rng.randrange(100)}")
    elif kind == 2:
        doc.map("map")[rng.choice("xyz")] = f"{tag}{rng.randrange(100)}"
    else:
        doc.counter("counter").increment(rng.randint(1, 3))


# ---- convergence -----------------------------------------------------------------------------


def test_clients_converge_through_the_relay() -> None:
    async def body() -> None:
        async with relay_server() as (relay, url, _):
            docs = [crdtsync.Doc() for _ in range(4)]
            clients = [await connect(f"{url}/shared", d) for d in docs]
            rng = random.Random(7)
            for step in range(200):
                i = rng.randrange(len(docs))
                random_edit(docs[i], rng, f"c{i}-")
                if step % 10 == 0:
                    await asyncio.sleep(0)  # interleave sending with editing
            await all_equal([*docs, room_doc(relay, "shared")])
            for c in clients:
                await c.wait_synced(5)
                await c.close()
            assert docs[0].counter("counter").value > 0

    run(body())


def test_late_joiner_and_offline_edits_sync() -> None:
    async def body() -> None:
        async with relay_server() as (relay, url, _):
            a = crdtsync.Doc()
            async with connect(f"{url}/notes", a) as ca:
                a.text("text").insert(0, "hello")
                await ca.wait_synced(5)
            # b edited offline before it ever connected: both directions on its handshake
            b = crdtsync.Doc()
            b.map("map")["offline"] = True
            async with connect(f"{url}/notes", b) as cb:
                await cb.wait_synced(5)
                assert str(b.text("text")) == "hello"
                assert room_doc(relay, "notes").map("map")["offline"] is True

    run(body())


def test_rooms_are_separate() -> None:
    async def body() -> None:
        async with relay_server() as (relay, url, _):
            a, b = crdtsync.Doc(), crdtsync.Doc()
            async with connect(f"{url}/one", a) as ca, connect(f"{url}/two/nested", b) as cb:
                a.text("text").insert(0, "one")
                b.text("text").insert(0, "two")
                await ca.wait_synced(5)
                await cb.wait_synced(5)
                assert str(room_doc(relay, "one").text("text")) == "one"
                assert str(room_doc(relay, "two/nested").text("text")) == "two"
                assert str(a.text("text")) == "one"

    run(body())


# ---- persistence -----------------------------------------------------------------------------


def test_sqlite_room_survives_a_restart_with_compaction(tmp_path: Path) -> None:
    db = tmp_path / "rooms.db"

    async def first() -> dict[str, Any]:
        storage = SQLiteStorage(db, node="one")
        async with relay_server(storage=storage, compact_rows=25) as (relay, url, _):
            doc = crdtsync.Doc()
            async with connect(f"{url}/persist", doc) as client:
                rng = random.Random(3)
                for i in range(120):
                    random_edit(doc, rng, "p")
                    if i % 7 == 0:
                        await client.wait_synced(5)
                await client.wait_synced(5)
                await wait_until(lambda: not relay.rooms["persist"].compacting, what="compaction")
                return snapshot(doc)

    expected = run(first())
    with sqlite3.connect(db) as conn:
        snapshots = conn.execute("SELECT count(*) FROM snapshots").fetchone()[0]
        rows = conn.execute("SELECT count(*) FROM log").fetchone()[0]
    assert snapshots == 1
    assert rows < 120  # folded into the snapshot (shutdown compacts the rest)

    async def second() -> None:
        async with relay_server(storage=SQLiteStorage(db, node="two")) as (relay, url, _):
            doc = crdtsync.Doc()
            async with connect(f"{url}/persist", doc) as client:
                await client.wait_synced(5)
                assert snapshot(doc) == expected

    run(second())


def test_a_long_log_left_by_crashes_is_compacted_when_the_room_loads(tmp_path: Path) -> None:
    """Servers that keep crashing never reach their in-memory row count: the rows already in
    the log count when the room loads, so the next load compacts them."""
    db = tmp_path / "rooms.db"
    log_left_by_crashes(db, "log", 60)

    async def body() -> None:
        storage = SQLiteStorage(db, node="next")
        async with relay_server(storage=storage, compact_rows=50) as (relay, url, _):
            reader = crdtsync.Doc()
            async with connect(f"{url}/log", reader) as client:
                await client.wait_synced(5)
                assert str(reader.text("t")) == "x" * 60
                await wait_until(
                    lambda: _snapshots(db) == 1 and not relay.rooms["log"].compacting,
                    5,
                    "compaction at load",
                )

    run(body())


def _snapshots(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM snapshots").fetchone()[0])


def test_compaction_concurrent_with_appends_from_another_process(tmp_path: Path) -> None:
    """Two storages on one file (two processes sharing it): one compacts while the other
    appends; nothing is lost and the snapshot equals the full replay."""
    db = tmp_path / "shared.db"
    a, b = SQLiteStorage(db, node="a"), SQLiteStorage(db, node="b")
    src = crdtsync.Doc()
    updates: list[bytes] = []
    src.on_update(lambda u, o: updates.append(u))
    for i in range(300):
        src.text("text").insert(i, "x")
    for u in updates[:150]:
        a.append("r", u)
    a.commit()
    import threading

    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(a.compact("r")))
    t.start()
    for u in updates[150:]:
        b.append("r", u)
        b.commit()
    t.join()
    assert result[0] is not None
    loaded = b.load("r")
    doc = crdtsync.Doc()
    for u in loaded.updates:
        doc.apply_update(u)
    assert str(doc.text("text")) == "x" * 300
    tail = a.tail("r", 0)  # what b wrote, from a's point of view
    assert tail.last_seq == loaded.last_seq
    a.close()
    b.close()


# ---- access control --------------------------------------------------------------------------


@pytest.fixture
def tokens(tmp_path: Path) -> TokenFile:
    return token_file(
        tmp_path, "writer-token write *", "viewer-token read docs/*", "other write private"
    )


def test_bad_and_missing_tokens_are_refused(tokens: TokenFile) -> None:
    async def body() -> None:
        async with relay_server(authenticate=tokens) as (relay, url, tcp):
            for token in (None, "wrong", "other"):
                with pytest.raises(ConnectionRefusedByServer) as info:
                    await connect(f"{url}/docs/a", crdtsync.Doc(), token=token)
                assert info.value.code == CloseCode.UNAUTHORIZED
                assert "unauthorized" in info.value.reason
            assert "docs/a" not in relay.rooms  # refused before the room was loaded
            async with connect(f"{url}/docs/a", crdtsync.Doc(), token="writer-token") as c:
                assert c.access == "write"
            # the query parameter works too (browsers cannot set headers)
            async with raw_connect(f"{url}/docs/a?token=viewer-token") as ws:
                assert ws.response is not None
                assert ws.response.headers["X-Crdtsync-Access"] == "read"

    run(body())


def test_read_only_client_receives_but_cannot_change(tokens: TokenFile) -> None:
    async def body() -> None:
        async with relay_server(authenticate=tokens) as (relay, url, _):
            writer, viewer = crdtsync.Doc(), crdtsync.Doc()
            cw = await connect(f"{url}/docs/x", writer, token="writer-token")
            cv = await connect(f"{url}/docs/x", viewer, token="viewer-token")
            assert cv.access == "read"
            writer.text("text").insert(0, "from the writer")
            writer.set("s").add(1)
            await cw.wait_synced(5)
            await wait_until(lambda: str(viewer.text("text")) == "from the writer")
            await cv.wait_synced(5)  # a read-only client's empty diffs and ACKs are fine
            before = room_doc(relay, "docs/x").version
            viewer.text("text").insert(0, "EVIL ")
            with pytest.raises(ConnectionRefusedByServer) as info:
                await cv.wait_closed()
            assert info.value.code == CloseCode.FORBIDDEN
            assert room_doc(relay, "docs/x").version == before
            assert str(room_doc(relay, "docs/x").text("text")) == "from the writer"
            # reconnecting does not sneak the edit in either (the handshake's diff has it)
            with pytest.raises(ConnectionRefusedByServer):
                c = await connect(f"{url}/docs/x", viewer, token="viewer-token")
                await c.wait_closed()
            assert str(room_doc(relay, "docs/x").text("text")) == "from the writer"
            assert str(writer.text("text")) == "from the writer"
            await cw.close()

    run(body())


def test_read_only_client_cannot_remove_with_a_forged_fact(tokens: TokenFile) -> None:
    """A diff with no new changes but a FACT_LIVE would empty a set: refused."""

    async def body() -> None:
        async with relay_server(authenticate=tokens) as (relay, url, _):
            writer = crdtsync.Doc()
            async with connect(f"{url}/docs/f", writer, token="writer-token") as cw:
                writer.set("s").add(1)
                writer.set("s").add(2)
                await cw.wait_synced(5)
            # a replica that saw the adds, then removed them: its diff against the room's
            # version carries only facts... plus its own remove changes
            copy = crdtsync.Doc()
            copy.apply_update(writer.get_update())
            copy.set("s").discard(1)
            diff = copy.get_update(writer.version)
            async with raw_connect(
                f"{url}/docs/f", additional_headers={"Authorization": "Bearer viewer-token"}
            ) as ws:
                part = m.Transfer(0, 0, 1)
                await ws.send(m.encode_message(m.UpdateMessage(diff, part)))
                with pytest.raises(ConnectionClosed) as info:
                    while True:
                        await ws.recv()
                assert info.value.rcvd is not None
                assert info.value.rcvd.code == CloseCode.FORBIDDEN
            assert 1 in room_doc(relay, "docs/f").set("s")

    run(body())


# ---- hostile frames --------------------------------------------------------------------------


def test_oversized_and_malformed_frames_close_cleanly_and_leave_the_room_intact() -> None:
    limits = Limits(max_message_size=64 << 10, byte_burst=float(1 << 20))

    async def body() -> None:
        async with relay_server(limits=limits) as (relay, url, _):
            good = crdtsync.Doc()
            cg = await connect(f"{url}/room", good)
            good.text("text").insert(0, "intact")
            await cg.wait_synced(5)
            version = room_doc(relay, "room").version
            bad_update = m.encode_message(m.UpdateMessage(b"\xc1\x01garbage", m.Transfer(0, 0, 1)))
            cases: list[tuple[str | bytes, int]] = [
                (b"x" * (100 << 10), CloseCode.MESSAGE_TOO_BIG),
                (b"not a sync message", CloseCode.BAD_MESSAGE),
                ("a text frame", CloseCode.BAD_MESSAGE),
                (b"\xc1S\x92\x01\x63", CloseCode.BAD_MESSAGE),  # unknown message type
                (bad_update, CloseCode.BAD_MESSAGE),
            ]
            for frame, code in cases:
                async with raw_connect(f"{url}/room", max_size=None) as ws:
                    await ws.send(frame)
                    assert await close_code(ws) == code, frame[:20]
            assert room_doc(relay, "room").version == version
            assert str(room_doc(relay, "room").text("text")) == "intact"
            # the other client was not disturbed and the room still works
            assert cg.connected and cg.connections == 1
            late = crdtsync.Doc()
            async with connect(f"{url}/room", late) as cl:
                await cl.wait_synced(5)
                assert str(late.text("text")) == "intact"
            good.text("text").insert(6, "!")
            await cg.wait_synced(5)
            await cg.close()

    run(body())


def test_one_update_cannot_break_a_room() -> None:
    """An update past the clock ceiling (it would make every later edit overflow) and a
    decompression bomb are refused before anything is stored: the sender is closed, the room
    stays as it was and writable. (What the bomb costs is measured, not asserted here:
    ``python -m benchmarks.bomb``.)"""
    from test_clock_ceiling import map_write

    from benchmarks.bomb import bomb

    limits = Limits(max_message_size=64 << 10, byte_burst=float(1 << 20))

    async def body() -> None:
        async with relay_server(limits=limits) as (relay, url, _):
            good = crdtsync.Doc()
            async with connect(f"{url}/room", good) as cg:
                good.text("text").insert(0, "intact")
                await cg.wait_synced(5)
                version = room_doc(relay, "room").version
                for update in (map_write(1, 2**63 - 2), map_write(1, 2**62), bomb(32 << 20)):
                    frame = m.encode_message(m.UpdateMessage(update, m.Transfer(0, 0, 1)))
                    assert len(frame) < limits.max_message_size
                    async with raw_connect(f"{url}/room", max_size=None) as ws:
                        await ws.send(frame)
                        assert await close_code(ws) == CloseCode.BAD_MESSAGE
                    assert room_doc(relay, "room").version == version
                good.text("text").insert(6, "!")  # the room still takes edits
                await cg.wait_synced(5)
            assert str(room_doc(relay, "room").text("text")) == "intact!"

    run(body())


BAD_PATHS = [
    "x" * 300,  # too long
    "/roomA",  # "//roomA": urlsplit would read a host there and open a multiplexed connection
    "a//b",
    "a/",
    "a/../b",
    "%FF%FE",  # invalid UTF-8: must not collapse into U+FFFD (and share a room)
    "a%00b",  # NUL
    "a%0Ab",  # a control character
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_bad_room_name_is_refused(path: str) -> None:
    async def body() -> None:
        async with relay_server() as (_, url, _tcp), raw_connect(f"{url}/{path}") as ws:
            assert await close_code(ws) == CloseCode.BAD_ROOM

    run(body())


def test_room_names_are_exact() -> None:
    """Distinct paths name distinct rooms; percent-encoding is decoded (as UTF-8)."""

    async def body() -> None:
        async with relay_server() as (relay, url, _tcp):
            first, second, third = crdtsync.Doc(), crdtsync.Doc(), crdtsync.Doc()
            first.text("t").insert(0, "one")
            async with (
                connect(f"{url}/caf%C3%A9", first) as a,
                connect(f"{url}/café", second) as b,
                connect(f"{url}/cafe", third) as c,
            ):
                for client in (a, b, c):
                    await client.wait_synced(5)
                assert str(second.text("t")) == "one" and str(third.text("t")) == ""
            assert {"café", "cafe"} <= set(relay.rooms)

    run(body())


# ---- limits ----------------------------------------------------------------------------------


def test_rate_limit_throttles_a_flooding_client() -> None:
    limits = Limits(rate=50, burst=5)

    async def body() -> None:
        async with relay_server(limits=limits) as (relay, url, _):
            async with raw_connect(f"{url}/flood") as ws:
                hello = m.encode_message(m.Hello({}, False))
                started = time.monotonic()
                for _ in range(55):
                    await ws.send(hello)
                replies = 0
                while replies < 55:  # each HELLO is answered by one DIFF
                    reply = m.decode_message(await asyncio.wait_for(ws.recv(), 5))
                    replies += isinstance(reply, m.Diff)
                elapsed = time.monotonic() - started
            assert elapsed >= 0.8, f"55 messages at 50/s (burst 5) took only {elapsed:.2f}s"

    run(body())


class StalledChannel:
    """A client that never reads: every send blocks forever (as on a full socket)."""

    access: str | None = None

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed: tuple[int, str] | None = None
        self.done = asyncio.Event()

    async def send(self, data: bytes) -> None:
        await asyncio.Event().wait()

    async def recv(self) -> bytes:
        get = asyncio.ensure_future(self.inbox.get())
        stop = asyncio.ensure_future(self.done.wait())
        await asyncio.wait([get, stop], return_when=asyncio.FIRST_COMPLETED)
        if get.done():
            stop.cancel()
            return get.result()
        get.cancel()
        raise ChannelClosed(*(self.closed or (1006, "")))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)
        self.done.set()


def test_slow_client_is_dropped_without_stalling_the_others() -> None:
    limits = Limits(max_message_size=16 << 10, send_queue_bytes=32 << 10)

    async def body() -> None:
        async with relay_server(limits=limits) as (relay, url, _):
            stalled = StalledChannel()
            session = SyncSession(crdtsync.Doc())
            for msg in session.start():
                stalled.inbox.put_nowait(msg)
            served = asyncio.ensure_future(
                relay.serve_connection(stalled, room="busy", token=None, access="write")
            )
            writer, reader = crdtsync.Doc(), crdtsync.Doc()
            cw = await connect(f"{url}/busy", writer)
            cw.batch_delay = 0  # one message per edit: the stalled reader's queue overflows
            cr = await connect(f"{url}/busy", reader)
            rng = random.Random(1)
            for i in range(400):  # 80 kB of incompressible text, well over the queue limit
                chunk = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(200))
                writer.text("text").insert(0, chunk)
                if i % 20 == 0:
                    await asyncio.sleep(0)
            await wait_until(lambda: stalled.closed is not None, what="the stalled client")
            assert stalled.closed is not None
            assert stalled.closed[0] == CloseCode.TRY_AGAIN_LATER
            await asyncio.wait_for(served, 5)
            await cw.wait_synced(5)
            await all_equal([writer, reader, room_doc(relay, "busy")])
            assert all(c.queued_bytes <= limits.send_queue_bytes for c in relay.connections)
            await cw.close()
            await cr.close()

    run(body())


def test_multiplexed_connection_and_rooms_per_connection_limit(tokens: TokenFile) -> None:
    limits = Limits(max_rooms_per_connection=2)

    async def body() -> None:
        async with relay_server(limits=limits, authenticate=tokens) as (relay, url, _):
            docs = {name: crdtsync.Doc() for name in ("docs/1", "docs/2", "docs/3", "private")}
            docs["docs/1"].text("text").insert(0, "one")
            headers = {"Authorization": "Bearer viewer-token"}
            async with (
                raw_connect(f"{url}/", additional_headers=headers) as ws,
                multiplexed(ws, docs) as hub,
            ):
                await wait_until(lambda: len(hub.refused) == 3, what="refusals")
            assert "more than 2 rooms" in hub.refused["docs/3"]
            assert hub.refused["private"] == "unauthorized"
            # read-only on docs/*: the local edit in docs/1 was refused, not applied
            assert "forbidden" in hub.refused["docs/1"]
            assert set(hub.sessions) == {"docs/2"}
            assert "docs/1" not in relay.rooms or str(room_doc(relay, "docs/1").text("text")) == ""

    run(body())


# ---- presence, health ------------------------------------------------------------------------


def test_presence_is_relayed_and_cleared_when_a_client_leaves() -> None:
    async def body() -> None:
        async with relay_server() as (relay, url, _):
            a, b = crdtsync.Doc(), crdtsync.Doc()
            pa, pb = Presence(a.replica_id), Presence(b.replica_id)
            ca = await connect(f"{url}/p", a, presence=pa)
            cb = await connect(f"{url}/p", b, presence=pb)
            pa.set_local({"name": "alice", "cursor": 3})
            await wait_until(lambda: pb.states.get(a.replica_id, {}).get("name") == "alice")
            await ca.close()
            await wait_until(lambda: a.replica_id not in pb.states, what="alice to leave")
            await cb.close()

    run(body())


def test_health_endpoint() -> None:
    async def body() -> None:
        async with relay_server() as (relay, url, _):
            port = int(url.rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            assert head.lower().count(b"content-type:") == 1  # one header, not two
            assert b"content-type: application/json" in head.lower()
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = json.loads(await reader.readexactly(length))
            writer.close()
            assert body["status"] == "ok" and body["connections"] == 0
            assert body["redis"] == "disabled"

    run(body())


def test_memory_storage_relay_and_token_bucket() -> None:
    from crdtsync.server import TokenBucket

    bucket = TokenBucket(rate=100, burst=10, now=0.0)
    assert all(bucket.take(1, 0.0) == 0.0 for _ in range(10))
    assert bucket.take(1, 0.0) == pytest.approx(0.01)
    assert bucket.take(1, 1.0) == 0.0
    storage = MemoryStorage()
    storage.append("r", crdtsync.Doc().get_update())
    assert storage.load("r").last_seq == 1
    with pytest.raises(ValueError):
        Limits(send_queue_bytes=10)
