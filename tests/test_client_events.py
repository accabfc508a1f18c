"""Transport clients against a real relay: a raising callback never stops a client (it is
reported through ``on_error``), ``on_status`` follows the connection, and a connect to a
server that is down says what was tried and why it failed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from test_server_support import free_port, relay_server, run, wait_until

import crdtsync
from crdtsync.server import Relay, SQLiteStorage
from crdtsync.transports import asyncio_stream, websocket
from crdtsync.transports.websocket import connect


class Boom(Exception):
    pass


def test_a_raising_observer_on_a_remote_update_does_not_stop_the_client() -> None:
    async def body() -> None:
        async with relay_server() as (_, url, _tcp):
            writer_doc, reader_doc = crdtsync.Doc(), crdtsync.Doc()
            errors: list[Exception] = []
            seen: list[str] = []

            def fragile(event: Any) -> None:
                seen.append(str(event.target))
                raise Boom("observer failed")

            reader_doc.text("t").observe(fragile)
            writer = await connect(f"{url}/room", writer_doc)
            reader = await connect(f"{url}/room", reader_doc, on_error=errors.append)
            for word in ["one", " two", " three"]:
                writer_doc.text("t").insert(len(writer_doc.text("t")), word)
                await wait_until(
                    lambda: str(reader_doc.text("t")) == str(writer_doc.text("t")),
                    5,
                    f"{word!r} to arrive",
                )
            assert not reader.closed and reader.connected and reader.connections == 1
            assert len(errors) >= 3 and all(isinstance(e, Boom) for e in errors)
            assert seen[-1] == "one two three"
            # and the reader's own edits still go out, although its observer raises
            with pytest.raises(Boom):
                reader_doc.text("t").insert(0, ">")
            await wait_until(lambda: str(writer_doc.text("t")) == ">one two three", 5, "echo")
            await reader.wait_synced(5)
            await writer.close()
            await reader.close()

    run(body())


def test_a_raising_on_update_listener_does_not_lose_the_edit() -> None:
    async def body() -> None:
        async with relay_server() as (relay, url, _tcp):
            doc, other = crdtsync.Doc(), crdtsync.Doc()

            def fragile(update: bytes, origin: Any) -> None:
                raise Boom("listener failed")

            doc.on_update(fragile)
            async with connect(f"{url}/r", doc) as client, connect(f"{url}/r", other):
                with pytest.raises(Boom):
                    doc.counter("n").increment(7)
                await client.wait_synced(5)
                await wait_until(lambda: other.counter("n").value == 7, 5, "the increment")
                assert relay.rooms["r"].doc.counter("n").value == 7

    run(body())


async def _start(port: int, db: Path) -> tuple[Relay, Any]:
    relay = Relay(storage=SQLiteStorage(db))
    relay.start()
    return relay, await websocket.serve(relay, "127.0.0.1", port)


async def _stop(relay: Relay, server: Any) -> None:
    server.close(close_connections=False)
    await relay.close(timeout=5)
    await server.wait_closed()


def test_on_status_follows_the_connection(tmp_path: Path) -> None:
    port, db = free_port(), tmp_path / "s.db"

    async def body() -> None:
        relay, server = await _start(port, db)
        statuses: list[str] = []
        client = await connect(
            f"ws://127.0.0.1:{port}/r",
            crdtsync.Doc(),
            on_status=statuses.append,
            backoff_min=0.05,
            backoff_max=0.2,
        )
        assert statuses == ["connected"] and client.status == "connected"
        await _stop(relay, server)
        await wait_until(lambda: statuses == ["connected", "disconnected"], 5, "disconnected")
        assert client.status == "disconnected"
        await asyncio.sleep(0.3)  # failed attempts meanwhile are no status change
        assert statuses == ["connected", "disconnected"]
        assert isinstance(client.last_connect_error, OSError) and client.failed_attempts
        relay, server = await _start(port, db)
        await wait_until(lambda: statuses[-1] == "connected", 5, "reconnected")
        assert client.failed_attempts == 0 and client.last_connect_error is None
        await client.close()
        assert statuses == ["connected", "disconnected", "connected", "closed"]
        assert client.status == "closed"
        await _stop(relay, server)

    run(body())


def test_a_raising_status_callback_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        async with relay_server() as (_, url, _tcp):
            doc = crdtsync.Doc()

            def fragile(status: str) -> None:
                raise Boom(status)

            async with connect(f"{url}/r", doc, on_status=fragile) as client:
                doc.text("t").insert(0, "x")
                await client.wait_synced(5)

    run(body())
    assert any("on_status callback" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("transport", ["websocket", "tcp"])
def test_connect_to_a_server_that_is_down_says_why(transport: str) -> None:
    port = free_port()  # nothing listens there
    scheme, module = {
        "websocket": ("ws", websocket),
        "tcp": ("tcp", asyncio_stream),
    }[transport]
    url = f"{scheme}://127.0.0.1:{port}/notes"

    async def body() -> None:
        started = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            await module.connect(url, crdtsync.Doc(), open_timeout=1.0, backoff_min=0.05)
        took = time.monotonic() - started
        message = str(info.value)
        assert url in message and "attempts failed" in message and "1.0 s" in message
        assert "ConnectionRefusedError" in message
        assert isinstance(info.value.__cause__, ConnectionRefusedError)
        assert took < 3

    run(body())


def test_wait_synced_times_out_with_a_reason() -> None:
    async def body() -> None:
        port = free_port()
        doc = crdtsync.Doc()
        client = await connect(f"ws://127.0.0.1:{port}/r", doc, wait=False, backoff_min=0.05)
        with pytest.raises(TimeoutError):
            await client.wait_synced(timeout=0.3)
        with pytest.raises(TimeoutError) as info:
            await client.wait_connected(timeout=0.3)
        assert f"127.0.0.1:{port}" in str(info.value)
        assert isinstance(info.value.__cause__, ConnectionRefusedError)
        await client.close()

    run(body())


def test_an_unexpected_failure_is_reported_and_the_client_resyncs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from crdtsync.sync import SyncSession
    from crdtsync.transports import base

    class FlakySession(SyncSession):
        failed = False

        def receive(self, message: bytes) -> list[bytes]:
            if not FlakySession.failed:
                FlakySession.failed = True
                raise RuntimeError("a bug")
            return super().receive(message)

    monkeypatch.setattr(base, "SyncSession", FlakySession)

    async def body() -> None:
        async with relay_server() as (relay, url, _tcp):
            doc, errors = crdtsync.Doc(), []
            doc.text("t").insert(0, "kept")
            client = await connect(
                f"{url}/r", doc, on_error=errors.append, backoff_min=0.05, wait=False
            )
            await client.wait_synced(5)
            assert client.connections == 2 and not client.closed
            assert [type(e) for e in errors] == [RuntimeError]
            assert str(relay.rooms["r"].doc.text("t")) == "kept"
            await client.close()

    run(body())
    assert any(r.getMessage() == "sync connection failed" and r.exc_info for r in caplog.records)


def test_a_raising_presence_listener_does_not_stop_the_client() -> None:
    from crdtsync.sync import Presence

    async def body() -> None:
        async with relay_server() as (_, url, _tcp):
            a, b = crdtsync.Doc(), crdtsync.Doc()
            pa, pb = Presence(a.replica_id), Presence(b.replica_id)
            errors: list[Exception] = []

            def fragile(change: Any) -> None:
                if not change.local:
                    raise Boom("presence listener failed")

            pb.on_change(fragile)
            ca = await connect(f"{url}/p", a, presence=pa)
            cb = await connect(f"{url}/p", b, presence=pb, on_error=errors.append)
            pa.set_local({"name": "ann"})
            await wait_until(lambda: pb.states.get(a.replica_id) == {"name": "ann"}, 5, "ann")
            a.text("t").insert(0, "still syncing")
            await wait_until(lambda: str(b.text("t")) == "still syncing", 5, "the edit")
            assert errors and all(isinstance(e, Boom) for e in errors) and not cb.closed
            assert cb.connections == 1  # no reconnect was needed
            await ca.close()
            await cb.close()

    run(body())
