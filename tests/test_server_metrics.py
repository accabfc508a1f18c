"""Prometheus metrics at ``GET /metrics``: a real ``crdtsync serve`` process and in-process
relays with real WebSocket clients; the counters move, refusals are counted by close code,
each relay has its own registry, and without prometheus_client ``/metrics`` answers 501
and nothing else changes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
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
from crdtsync.server import TokenFile
from crdtsync.server.metrics import NullMetrics, RelayMetrics
from crdtsync.transports import ConnectionRefusedByServer
from crdtsync.transports.codes import CloseCode
from crdtsync.transports.websocket import connect

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

Start = Callable[..., ServerProcess]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def get(port: int, path: str) -> tuple[int, dict[str, str], str]:
    """A plain HTTP GET on the WebSocket port: (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            assert name.lower() not in headers, f"{name} twice"
            headers[name.lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    writer.close()
    return status, headers, body.decode()


async def scrape(port: int) -> Samples:
    status, headers, text = await get(port, "/metrics")
    assert status == 200, text
    assert headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_serve_process_counts_traffic_and_refusals(tmp_path: Path, servers: Start) -> None:  # noqa: F811
    tokens = tmp_path / "tokens"
    tokens.write_text("w write *\nr read *\n")
    server = servers(
        "--db", str(tmp_path / "m.db"), "--tokens", str(tokens), "--max-message-size", "65536"
    )

    async def body() -> None:
        before = await scrape(server.port)
        assert value(before, "crdtsync_rooms_open") == 0
        assert value(before, "crdtsync_messages_received_total") == 0

        writer, viewer = crdtsync.Doc(), crdtsync.Doc()
        cw = await connect(f"{server.url}/notes", writer, token="w")
        cv = await connect(f"{server.url}/notes", viewer, token="r")
        cw.batch_delay = 0  # one message per edit (batched, 20 edits could be fewer)
        for i in range(20):
            writer.text("t").insert(0, str(i))
            await asyncio.sleep(0.005)
        await cw.wait_synced(5)
        await wait_until(lambda: len(str(viewer.text("t"))) == len(str(writer.text("t"))))

        during = await scrape(server.port)
        assert value(during, "crdtsync_rooms_open") == 1
        assert value(during, "crdtsync_connections_open") == 2
        assert value(during, "crdtsync_room_members") == 2
        assert value(during, "crdtsync_messages_received_total") > 20
        # (the relay sends each tick's edits as one merge: fewer messages than edits)
        assert value(during, "crdtsync_messages_sent_total") > 5
        assert value(during, "crdtsync_received_bytes_total") > 0
        assert value(during, "crdtsync_sent_bytes_total") > 0
        assert value(during, "crdtsync_storage_commit_seconds_count") >= 1
        assert value(during, "crdtsync_storage_commit_seconds_sum") > 0
        assert value(during, "crdtsync_send_queue_bytes") >= 0
        assert value(during, "crdtsync_transfer_bytes") == 0

        # A forbidden write (a read-only client changes the room): 4403.
        viewer.text("t").insert(0, "EVIL")
        with pytest.raises(ConnectionRefusedByServer) as info:
            await cv.wait_closed()
        assert info.value.code == CloseCode.FORBIDDEN
        # An oversized message: 1009. A bad token: 4401.
        async with raw_connect(f"{server.url}/notes?token=w", max_size=None) as ws:
            await ws.send(b"x" * (100 << 10))
            assert await close_code(ws) == CloseCode.MESSAGE_TOO_BIG
        with pytest.raises(ConnectionRefusedByServer):
            await connect(f"{server.url}/notes", crdtsync.Doc(), token="nope")

        too_big = {"code": "1009", "reason": "message_too_big"}
        for _ in range(50):  # the relay notes a close when the connection's task ends
            after = await scrape(server.port)
            if value(after, "crdtsync_refusals_total", **too_big) == 1:
                break
            await asyncio.sleep(0.05)
        assert value(after, "crdtsync_refusals_total", code="4403", reason="forbidden") == 1
        assert value(after, "crdtsync_refusals_total", **too_big) == 1
        assert value(after, "crdtsync_refusals_total", code="4401", reason="unauthorized") == 1
        assert (
            value(after, "crdtsync_connections_closed_total", code="4403", reason="forbidden") == 1
        )
        assert value(after, "crdtsync_connections_open") == 1
        await cw.close()

    run(body())


def test_each_relay_has_its_own_registry() -> None:
    async def body() -> None:
        async with relay_server() as (one, url1, _), relay_server() as (two, url2, _):
            assert isinstance(one.metrics, RelayMetrics) and isinstance(two.metrics, RelayMetrics)
            assert one.metrics.registry is not two.metrics.registry
            doc = crdtsync.Doc()
            async with connect(f"{url1}/a", doc) as client:
                doc.map("m")["k"] = "v"
                await client.wait_synced(5)
                first, second = await scrape(port_of(url1)), await scrape(port_of(url2))
            assert value(first, "crdtsync_messages_received_total") > 0
            assert value(first, "crdtsync_connections_total") == 1
            assert value(second, "crdtsync_messages_received_total") == 0
            assert value(second, "crdtsync_rooms_open") == 0

    run(body())


def test_without_prometheus_client_metrics_answer_501(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "prometheus_client" or name.startswith("prometheus_client."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import raises ImportError

    async def body() -> None:
        async with relay_server() as (relay, url, _):
            assert isinstance(relay.metrics, NullMetrics) and not relay.metrics.enabled
            a, b = crdtsync.Doc(), crdtsync.Doc()
            async with connect(f"{url}/r", a) as ca, connect(f"{url}/r", b) as cb:
                a.text("t").insert(0, "still works")
                await ca.wait_synced(5)
                await wait_until(lambda: str(b.text("t")) == "still works")
                await cb.wait_synced(5)
            status, headers, text = await get(port_of(url), "/metrics")
            assert status == 501
            assert "pip install 'crdtsync[metrics]'" in text
            assert headers["content-type"].startswith("text/plain")
            status, _, _ = await get(port_of(url), "/healthz")
            assert status == 200

    run(body())


def test_refusals_in_process_and_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("w write *\n")

    async def body() -> None:
        async with relay_server(authenticate=TokenFile(path)) as (relay, url, _):
            for _ in range(3):
                with pytest.raises(ConnectionRefusedByServer):
                    await connect(f"{url}/x", crdtsync.Doc(), token="bad")
            samples = await scrape(port_of(url))
            assert (
                value(samples, "crdtsync_refusals_total", code="4401", reason="unauthorized") == 3
            )
            assert value(samples, "crdtsync_connections_total") == 0  # refused before served

    run(body())


def test_a_room_may_still_be_named_metrics() -> None:
    async def body() -> None:
        async with relay_server() as (relay, url, _):
            a, b = crdtsync.Doc(), crdtsync.Doc()
            async with connect(f"{url}/metrics", a) as ca, connect(f"{url}/metrics", b):
                a.text("t").insert(0, "a room")
                await ca.wait_synced(5)
                await wait_until(lambda: str(b.text("t")) == "a room")
            assert "metrics" in relay.rooms
            samples = await scrape(port_of(url))
            assert value(samples, "crdtsync_connections_total") == 2

    run(body())
