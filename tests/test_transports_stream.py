"""The plain TCP transport (length-prefixed frames): sync alongside WebSocket clients,
tokens, oversized and malformed frames, reconnects."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import msgpack
import pytest
from test_server_support import relay_server, run, wait_until

import crdtsync
from crdtsync.server import Limits, TokenFile
from crdtsync.transports import ConnectionRefusedByServer
from crdtsync.transports import asyncio_stream as tcp
from crdtsync.transports.codes import CloseCode
from crdtsync.transports.websocket import connect as ws_connect


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload) + 1) + bytes((kind,)) + payload


async def read_close(reader: asyncio.StreamReader) -> int:
    """Read frames until a CLOSE frame; its code."""
    while True:
        (length,) = struct.unpack(">I", await asyncio.wait_for(reader.readexactly(4), 5))
        body = await reader.readexactly(length)
        if body[0] == tcp.CLOSE:
            code, _ = msgpack.unpackb(body[1:])
            return int(code)


def test_tcp_and_websocket_clients_share_a_room() -> None:
    async def body() -> None:
        async with relay_server(tcp=True) as (relay, ws_url, tcp_url):
            assert tcp_url is not None
            a, b = crdtsync.Doc(), crdtsync.Doc()
            async with (
                tcp.connect(f"{tcp_url}/mixed", a) as ca,
                ws_connect(f"{ws_url}/mixed", b) as cb,
            ):
                assert ca.access == "write"
                a.text("t").insert(0, "tcp")
                b.text("t").insert(0, "ws ")
                await ca.wait_synced(5)
                await cb.wait_synced(5)
                await wait_until(lambda: str(a.text("t")) == str(b.text("t")))
                assert str(a.text("t")) in ("tcpws ", "ws tcp")  # concurrent inserts at 0

    run(body())


def test_tcp_tokens_and_hostile_frames(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("t1 write *\n")
    limits = Limits(max_message_size=4096, byte_burst=65536.0)

    async def body() -> None:
        async with relay_server(tcp=True, authenticate=TokenFile(path), limits=limits) as (
            relay,
            _,
            tcp_url,
        ):
            assert tcp_url is not None
            with pytest.raises(ConnectionRefusedByServer) as info:
                await tcp.connect(f"{tcp_url}/r", crdtsync.Doc(), token="nope")
            assert info.value.code == CloseCode.UNAUTHORIZED
            doc = crdtsync.Doc()
            client = await tcp.connect(f"{tcp_url}/r", doc, token="t1")
            doc.text("t").insert(0, "safe")
            await client.wait_synced(5)
            port = int(tcp_url.rsplit(":", 1)[1])
            open_frame = frame(tcp.OPEN, msgpack.packb({"v": 1, "room": "r", "token": "t1"}))
            cases = [
                (frame(tcp.MSG, b"x" * 10_000), CloseCode.MESSAGE_TOO_BIG),
                (frame(tcp.MSG, b"garbage"), CloseCode.BAD_MESSAGE),
                (frame(9, b""), CloseCode.BAD_MESSAGE),
            ]
            for bad, code in cases:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(open_frame + bad)
                assert await read_close(reader) == code
                writer.close()
            for first, code in [
                (frame(tcp.MSG, b"no open"), CloseCode.PROTOCOL_ERROR),
                (frame(tcp.OPEN, b"\xc1"), CloseCode.PROTOCOL_ERROR),
                (frame(tcp.OPEN, msgpack.packb({"v": 1, "room": ""})), CloseCode.BAD_ROOM),
            ]:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(first)
                assert await read_close(reader) == code
                writer.close()
            assert str(relay.rooms["r"].doc.text("t")) == "safe"
            assert client.connected and client.connections == 1
            await client.close()

    run(body())


def test_tcp_url_validation() -> None:
    with pytest.raises(ValueError):
        tcp.connect("ws://localhost:1/x", crdtsync.Doc())
    with pytest.raises(ValueError):
        tcp.connect("tcp://localhost/x", crdtsync.Doc())
