"""Throttling never starves the keepalive (issue #10): a client over its rate limit is
throttled, never dropped (1011) by the server's keepalive nor by its own, loses nothing, and
the other rooms carry on; a peer that really went silent is still dropped.

Real relays and clients over loopback WebSockets, with keepalive periods of a fraction of a
second (ping every 0.3 s, dropped after 0.3 + 1.0 s of silence) and low rate limits, so a
flood outlasts several keepalive periods. Outcomes only (counts, contents, close codes)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from test_server_support import close_code, relay_server, run, wait_until
from websockets.asyncio.client import connect as raw_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as raw_serve
from websockets.protocol import State

import crdtsync
from crdtsync.server import Limits
from crdtsync.sync import messages as m
from crdtsync.transports import SyncClient
from crdtsync.transports.codes import CloseCode
from crdtsync.transports.websocket import connect

PING_INTERVAL, PING_TIMEOUT = 0.3, 1.0
KEEPALIVE = {"ping_interval": PING_INTERVAL, "ping_timeout": PING_TIMEOUT}
#: The longest silence either side's keepalive tolerates.
SILENCE = PING_INTERVAL + PING_TIMEOUT
#: 20 messages/s, burst 5: 140 messages take (140 - 5) / 20 = 6.75 s to get through,
#: over five times the longest silence either keepalive tolerates.
LIMITS = Limits(rate=20, burst=5)


def watch(client: SyncClient) -> list[str]:
    statuses: list[str] = []
    client.on_status(statuses.append)
    return statuses


async def well_behaved_room(url: str, edits: int) -> tuple[list[str], list[str]]:
    """A writer and a reader in room ``calm``, at a polite pace: the status changes each
    saw once connected (none, unless a connection was lost)."""
    writer_doc, reader_doc = crdtsync.Doc(), crdtsync.Doc()
    async with (
        connect(f"{url}/calm", writer_doc, **KEEPALIVE) as writer,
        connect(f"{url}/calm", reader_doc, **KEEPALIVE) as reader,
    ):
        seen = watch(writer), watch(reader)
        for i in range(edits):
            writer_doc.text("t").insert(i, "c")
            await asyncio.sleep(0.1)
        await wait_until(
            lambda: str(reader_doc.text("t")) == "c" * edits, 20, "the calm room's edits"
        )
        assert writer.connections == reader.connections == 1
        return list(seen[0]), list(seen[1])  # (taken before closing)


def test_throttled_raw_client_is_not_dropped_by_the_server_keepalive() -> None:
    """A client that floods HELLOs (and sends no pings of its own, so only the server's
    keepalive could end it) gets every answer, at the throttled pace, on one connection."""

    async def body() -> None:
        async with relay_server(limits=LIMITS, ws_kwargs=KEEPALIVE) as (relay, url, _):
            calm = asyncio.create_task(well_behaved_room(url, 30))
            async with raw_connect(f"{url}/flood", ping_interval=None) as ws:
                hello = m.encode_message(m.Hello({}, False))
                started = time.monotonic()
                for _ in range(140):
                    await ws.send(hello)
                answers = 0
                while answers < 140:  # each HELLO is answered by one DIFF
                    reply = m.decode_message(await asyncio.wait_for(ws.recv(), 10))
                    answers += isinstance(reply, m.Diff)
                # The premise: the flood was throttled for several keepalive periods (a
                # lower bound the token bucket guarantees, whatever the machine's load).
                assert time.monotonic() - started >= 5 * SILENCE
                await asyncio.sleep(3 * SILENCE)  # and the quiet that follows is no loss
                assert ws.state is State.OPEN
                await ws.send(hello)
                assert isinstance(m.decode_message(await asyncio.wait_for(ws.recv(), 10)), m.Diff)
            assert ws.close_code == CloseCode.NORMAL  # closed by us, not by the server
            seen = await asyncio.wait_for(calm, 30)
            assert seen == ([], [])
            await wait_until(lambda: len(relay.connections) == 0, 10, "the relay to let go")

    run(body(), timeout=60)


def test_throttled_crdtsync_client_stays_connected_and_loses_nothing() -> None:
    """crdtsync's own client editing faster than its limit (one message per edit) is
    throttled: it neither drops itself (its pings wait behind its backlog) nor is dropped,
    and every edit arrives."""

    async def body() -> None:
        async with relay_server(limits=LIMITS, ws_kwargs=KEEPALIVE) as (relay, url, _):
            calm = asyncio.create_task(well_behaved_room(url, 30))
            doc = crdtsync.Doc()
            async with connect(f"{url}/flood", doc, **KEEPALIVE) as client:
                client.batch_delay = 0  # one message per edit: a flood, over the rate limit
                seen = watch(client)
                expected = ""
                for i in range(120):
                    doc.text("t").insert(i, str(i % 10))
                    expected += str(i % 10)
                    await asyncio.sleep(0.002)  # a turn of the loop: one UPDATE per edit
                await client.wait_synced(40)
                assert str(relay.rooms["flood"].doc.text("t")) == expected
                assert client.connections == 1 and seen == []  # never "disconnected"
                # The premise: over 100 messages at 20/s is throttling for over 3.6 times
                # the longest silence the keepalive tolerates.
                assert max(conn.received for conn in relay.connections) > 100
                await asyncio.sleep(3 * SILENCE)
                assert client.connected and client.connections == 1
                assert seen == []  # never "disconnected"
            seen_calm = await asyncio.wait_for(calm, 40)
            assert seen_calm == ([], [])

    run(body(), timeout=90)


def test_the_server_keepalive_still_drops_a_silent_client() -> None:
    """A client that stops reading and sends nothing is silent for real: 1011."""

    async def body() -> None:
        async with relay_server(ws_kwargs=KEEPALIVE) as (relay, url, _):
            ws = await raw_connect(f"{url}/quiet", ping_interval=None)
            await wait_until(lambda: len(relay.connections) == 1, 10, "the connection")
            ws.transport.pause_reading()  # no pongs: the server's pings go unread
            await wait_until(lambda: len(relay.connections) == 0, 20, "the keepalive")
            ws.transport.resume_reading()
            assert await close_code(ws) == CloseCode.INTERNAL_ERROR

    run(body(), timeout=60)


def test_the_client_keepalive_still_drops_a_silent_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that accepts the connection, then neither reads nor sends: the crdtsync
    client closes the connection (1011) and tries again."""

    async def body() -> None:
        done = asyncio.Event()

        async def mute(ws: ServerConnection) -> None:
            ws.transport.pause_reading()
            await done.wait()
            ws.transport.abort()

        async with raw_serve(mute, "127.0.0.1", 0, ping_interval=None) as server:
            port = server.sockets[0].getsockname()[1]
            client = await connect(
                f"ws://127.0.0.1:{port}/r",
                crdtsync.Doc(),
                wait=False,
                backoff_min=5.0,
                backoff_max=5.0,
                **KEEPALIVE,
            )
            await wait_until(
                lambda: any(getattr(r, "code", None) == 1011 for r in caplog.records),
                20,
                "the client's keepalive",
            )
            assert not client.connected
            await client.close()
            done.set()

    with caplog.at_level(logging.INFO, logger="crdtsync.client"):
        run(body(), timeout=60)
