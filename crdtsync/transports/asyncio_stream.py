"""Plain TCP transport with length-prefixed frames: no dependency beyond the standard library.

Every frame is a 4-byte big-endian length ``n`` followed by ``n`` bytes: one type byte and
its payload.

======  ======  ==============================================================
type    name    payload
======  ======  ==============================================================
0       MSG     one sync message (as a WebSocket binary message would carry it)
1       OPEN    client's first frame: msgpack map ``{"v": 1, "room": str or nil,
                "token": str or nil}`` (room nil: a multiplexed connection)
2       ACCEPT  server's answer: msgpack map ``{"access": "read" | "write" | nil}``
3       CLOSE   msgpack array ``[code, reason]``; the sender then closes the socket
======  ======  ==============================================================

The close codes are those of the WebSocket transport (:mod:`crdtsync.transports.codes`).
A frame longer than the receiver's limit closes the connection with 1009.

Client::

    async with connect("tcp://localhost:8766/notes", doc, token="s3cret") as client:
        await client.wait_synced()
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any
from urllib.parse import unquote, urlsplit

import msgpack

from crdtsync._doc import Doc
from crdtsync._errors import ProtocolError
from crdtsync.sync import Presence
from crdtsync.sync import messages as m
from crdtsync.transports.base import (
    ChannelClosed,
    ConnectionRefusedByServer,
    Connector,
    ErrorCallback,
    StatusCallback,
)
from crdtsync.transports.codes import FATAL, CloseCode, reason_text

__all__ = ["StreamChannel", "connect", "serve", "MSG", "OPEN", "ACCEPT", "CLOSE"]

MSG, OPEN, ACCEPT, CLOSE = 0, 1, 2, 3
VERSION = 1
_HEADER = struct.Struct(">I")
#: How long a server waits for the OPEN frame, and a client for the answer to it.
HANDSHAKE_TIMEOUT = 10.0
CLIENT_MAX_SIZE = 64 << 20


class StreamChannel:
    """An asyncio stream pair as a :class:`Channel`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        max_size: int,
        access: str | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.max_size = max_size
        self.access = access
        self._closed: ChannelClosed | None = None

    async def read_frame(self) -> tuple[int, bytes]:
        if self._closed is not None:
            raise self._closed
        try:
            header = await self.reader.readexactly(4)
            (length,) = _HEADER.unpack(header)
            if length == 0:
                raise ProtocolError("empty frame")
            if length > self.max_size + 1:
                await self.close(
                    CloseCode.MESSAGE_TOO_BIG, f"frame of {length} bytes over {self.max_size}"
                )
                raise ChannelClosed(CloseCode.MESSAGE_TOO_BIG, "message too big")
            body = await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self._closed = ChannelClosed(CloseCode.ABNORMAL, "connection lost")
            raise self._closed from exc
        return body[0], body[1:]

    async def write_frame(self, kind: int, payload: bytes) -> None:
        if self._closed is not None:
            raise self._closed
        try:
            self.writer.write(_HEADER.pack(len(payload) + 1) + bytes((kind,)) + payload)
            await self.writer.drain()
        except ConnectionError as exc:
            self._closed = ChannelClosed(CloseCode.ABNORMAL, "connection lost")
            raise self._closed from exc

    async def send(self, data: bytes) -> None:
        await self.write_frame(MSG, data)

    async def recv(self) -> bytes:
        kind, payload = await self.read_frame()
        if kind == MSG:
            return payload
        if kind == CLOSE:
            code, reason = _parse_close(payload)
            self._closed = ChannelClosed(code, reason)
            self.writer.close()
            raise self._closed
        raise ProtocolError(f"unexpected frame type {kind}")

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        if self._closed is None:
            self._closed = ChannelClosed(code, reason)
            with contextlib.suppress(Exception):
                self.writer.write(_frame(CLOSE, msgpack.packb([int(code), reason_text(reason)])))
                await asyncio.wait_for(self.writer.drain(), 2.0)
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)


def _frame(kind: int, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload) + 1) + bytes((kind,)) + payload


def _parse_close(payload: bytes) -> tuple[int, str]:
    try:
        code, reason = msgpack.unpackb(payload, raw=False)
        if type(code) is int and type(reason) is str:
            return code, reason
    except Exception:  # noqa: S110 - a malformed CLOSE is still a close
        pass
    return CloseCode.PROTOCOL_ERROR, "malformed CLOSE frame"


def _parse_open(payload: bytes) -> tuple[str | None, str | None]:
    try:
        body = msgpack.unpackb(payload, raw=False)
    except Exception:
        raise ProtocolError("malformed OPEN frame") from None
    if type(body) is not dict or body.get("v") != VERSION:
        raise ProtocolError("OPEN frame: expected a map with v=1")
    room, token = body.get("room"), body.get("token")
    if room is not None:
        room = m.check_room(room)
    if token is not None and type(token) is not str:
        raise ProtocolError("OPEN frame: token must be a string")
    return room, token


# ---- server ----------------------------------------------------------------------------------


async def serve(
    relay: Any, host: str | None = "127.0.0.1", port: int | None = 8766, **kwargs: Any
) -> asyncio.Server:
    """Serve ``relay`` (a :class:`crdtsync.server.Relay`) over TCP; the started
    :class:`asyncio.Server`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        channel = StreamChannel(reader, writer, relay.limits.max_message_size)
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        try:
            kind, payload = await asyncio.wait_for(channel.read_frame(), HANDSHAKE_TIMEOUT)
            if kind != OPEN:
                raise ProtocolError("the first frame must be OPEN")
            room, token = _parse_open(payload)
        except ChannelClosed:
            return
        except TimeoutError:
            await channel.close(CloseCode.PROTOCOL_ERROR, "no OPEN frame")
            return
        except ValueError as exc:
            code = CloseCode.BAD_ROOM if "room" in str(exc) else CloseCode.PROTOCOL_ERROR
            await channel.close(code, str(exc))
            return
        access: Any = True
        if room is not None:
            access = await relay.authenticate(token, room)
            if access is None:
                # serve_connection closes it with 4401 and logs it
                await relay.serve_connection(
                    channel, room=room, token=token, access=None, peer=peer
                )
                return
        try:
            accepted = {"access": access if room is not None else None}
            await channel.write_frame(ACCEPT, msgpack.packb(accepted))
        except ChannelClosed:
            return
        await relay.serve_connection(channel, room=room, token=token, access=access, peer=peer)

    return await asyncio.start_server(handle, host, port, **kwargs)


# ---- client ----------------------------------------------------------------------------------


def _split_url(url: str) -> tuple[str, int, str | None]:
    parts = urlsplit(url)
    if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
        raise ValueError(f"expected tcp://HOST:PORT/ROOM, got {url!r}")
    room = unquote(parts.path).lstrip("/") or None
    if room is not None:
        m.check_room(room)
    return parts.hostname, parts.port, room


def _opener(url: str, token: str | None, max_size: int, open_timeout: float) -> Any:
    host, port, room = _split_url(url)

    async def open_channel() -> StreamChannel:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), open_timeout)
        channel = StreamChannel(reader, writer, max_size)
        try:
            await channel.write_frame(
                OPEN, msgpack.packb({"v": VERSION, "room": room, "token": token})
            )
            kind, payload = await asyncio.wait_for(channel.read_frame(), open_timeout)
            if kind == CLOSE:
                code, reason = _parse_close(payload)
                exc_type = ConnectionRefusedByServer if code in FATAL else ChannelClosed
                raise exc_type(code, reason)
            if kind != ACCEPT:
                raise ChannelClosed(CloseCode.PROTOCOL_ERROR, f"unexpected frame {kind}")
            body = msgpack.unpackb(payload, raw=False)
            channel.access = body.get("access") if type(body) is dict else None
        except BaseException:
            writer.close()
            raise
        return channel

    return open_channel


class connect(Connector):  # noqa: N801 - used like a function, as the WebSocket transport's connect
    """Connect ``doc`` to the room at ``tcp://HOST:PORT/ROOM``; like
    :func:`crdtsync.transports.websocket.connect`."""

    def __init__(
        self,
        url: str,
        doc: Doc,
        *,
        token: str | None = None,
        presence: Presence | None = None,
        wait: bool = True,
        open_timeout: float = 10.0,
        reconnect: bool = True,
        backoff_min: float = 0.1,
        backoff_max: float = 10.0,
        max_size: int = CLIENT_MAX_SIZE,
        on_status: StatusCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> None:
        super().__init__(
            _opener(url, token, max_size, open_timeout),
            doc,
            name=url,
            presence=presence,
            wait=wait,
            open_timeout=open_timeout,
            reconnect=reconnect,
            backoff_min=backoff_min,
            backoff_max=backoff_max,
            on_status=on_status,
            on_error=on_error,
        )
