"""The WebSocket client: reconnects with backoff and resyncs after a server restart, works
offline first, gives up on fatal close codes only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_server_support import free_port, run, wait_until

import crdtsync
from crdtsync.server import Relay, SQLiteStorage
from crdtsync.transports import websocket
from crdtsync.transports.base import backoff_delay
from crdtsync.transports.websocket import connect, room_from_path


async def start_server(port: int, db: Path) -> tuple[Relay, object]:
    relay = Relay(storage=SQLiteStorage(db))
    relay.start()
    server = await websocket.serve(relay, "127.0.0.1", port)
    return relay, server


async def stop_server(relay: Relay, server: object) -> None:
    server.close(close_connections=False)  # type: ignore[attr-defined]
    await relay.close(timeout=5)
    await server.wait_closed()  # type: ignore[attr-defined]


def test_client_reconnects_and_resyncs_after_a_server_restart(tmp_path: Path) -> None:
    port, db = free_port(), tmp_path / "r.db"

    async def body() -> None:
        relay, server = await start_server(port, db)
        doc = crdtsync.Doc()
        client = await connect(f"ws://127.0.0.1:{port}/r", doc, backoff_min=0.05, backoff_max=0.3)
        doc.text("t").insert(0, "before")
        await client.wait_synced(5)
        await stop_server(relay, server)
        await wait_until(lambda: not client.connected, what="the client to notice")
        doc.text("t").insert(6, " offline")  # edits go on while disconnected
        assert not client.synced
        relay, server = await start_server(port, db)
        await client.wait_synced(10)
        assert client.connections == 2
        assert str(relay.rooms["r"].doc.text("t")) == "before offline"
        await client.close()
        await stop_server(relay, server)

    run(body())


def test_offline_first_client_connects_when_the_server_appears(tmp_path: Path) -> None:
    port = free_port()

    async def body() -> None:
        doc = crdtsync.Doc()
        doc.counter("c").increment(5)
        client = await connect(
            f"ws://127.0.0.1:{port}/late", doc, wait=False, backoff_min=0.05, backoff_max=0.2
        )
        await asyncio.sleep(0.3)  # a few failed attempts
        assert not client.connected
        relay, server = await start_server(port, tmp_path / "late.db")
        await client.wait_synced(10)
        assert relay.rooms["late"].doc.counter("c").value == 5
        await client.close()
        await stop_server(relay, server)

    run(body())


def test_connect_times_out_when_nothing_listens() -> None:
    async def body() -> None:
        with pytest.raises(TimeoutError):
            await connect(f"ws://127.0.0.1:{free_port()}/x", crdtsync.Doc(), open_timeout=0.5)

    run(body())


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    for attempt in range(12):
        ceiling = min(5.0, 0.1 * 2**attempt)
        delays = [backoff_delay(attempt, 0.1, 5.0) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        if attempt > 2:
            assert len(set(delays)) > 1  # jittered
    assert backoff_delay(1000, 0.1, 5.0) <= 5.0


def test_room_from_path() -> None:
    assert room_from_path("/team/notes?token=x") == "team/notes"
    assert room_from_path("/caf%C3%A9") == "café"
    assert room_from_path("/") is None
    with pytest.raises(ValueError):
        room_from_path("/" + "x" * 300)


def test_malformed_url_fails_at_once() -> None:
    from websockets.exceptions import InvalidURI

    with pytest.raises(InvalidURI):
        connect("http://127.0.0.1:1/room", crdtsync.Doc())
