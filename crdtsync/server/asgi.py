"""The relay as an ASGI application, to mount in Starlette, FastAPI or any ASGI server.

``asgi_app(relay)`` speaks the same protocol as ``crdtsync serve``: a WebSocket at
``/<room>`` (percent-encoded) for one room, ``/`` for a multiplexed connection; the token
in an ``Authorization: Bearer`` header or a ``?token=`` query parameter; the access the
client got in an ``X-Crdtsync-Access`` response header; binary messages. Plain HTTP gets
``/healthz`` (the relay's stats as JSON), ``/metrics`` (Prometheus, see
crdtsync.server.metrics) and 404 for anything else.

Mounted under a prefix (``app.mount("/sync", asgi_app(relay))``), room names are the path
after the prefix. Start the relay (``relay.start()``) and close it (``await
relay.close()``) in your application's lifespan; a relay nobody started is started on the
first connection. Keepalive pings are the ASGI server's business (uvicorn sends them).

>>> from crdtsync.server import Relay
>>> app = asgi_app(Relay())
>>> callable(app)
True
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from crdtsync.server.relay import Relay
from crdtsync.transports.base import ChannelClosed
from crdtsync.transports.codes import CloseCode
from crdtsync.transports.websocket import ACCESS_HEADER, HEALTH_PATH, METRICS_PATH, room_from_path

__all__ = ["asgi_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _ASGIChannel:
    """A :class:`~crdtsync.transports.base.Channel` over one ASGI WebSocket."""

    access: str | None = None

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._closed: ChannelClosed | None = None

    async def send(self, data: bytes) -> None:
        if self._closed is not None:
            raise self._closed
        try:
            await self._send({"type": "websocket.send", "bytes": bytes(data)})
        except Exception as exc:  # the ASGI server's own "disconnected" errors
            self._closed = ChannelClosed(CloseCode.ABNORMAL, f"send failed: {exc}")
            raise self._closed from None

    async def recv(self) -> bytes:
        while True:
            if self._closed is not None:
                raise self._closed
            message = await self._receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                self._closed = ChannelClosed(int(message.get("code", CloseCode.ABNORMAL)))
                raise self._closed
            if kind != "websocket.receive":
                continue
            if message.get("bytes") is not None:
                return bytes(message["bytes"])
            await self.close(CloseCode.UNSUPPORTED_DATA, "binary messages only")
            raise ChannelClosed(CloseCode.UNSUPPORTED_DATA, "binary messages only")

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        if self._closed is not None:
            return
        self._closed = ChannelClosed(code, reason)
        with contextlib.suppress(Exception):  # (already gone)
            await self._send({"type": "websocket.close", "code": int(code), "reason": reason})


def _token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            text = value.decode("latin-1")
            if text.lower().startswith("bearer "):
                return text[7:].strip() or None
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def _relative_path(scope: Scope) -> str:
    """The request path below the mount point (Starlette keeps the full path in
    ``path`` and the mount's prefix in ``root_path``)."""
    path: str = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
    path = path.split("?", 1)[0]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def asgi_app(relay: Relay) -> ASGIApp:
    """An ASGI application serving ``relay`` (see the module documentation)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(relay, receive, send)
        elif kind == "http":
            await _http(relay, scope, send)
        elif kind == "websocket":
            await _websocket(relay, scope, receive, send)

    return app


async def _lifespan(relay: Relay, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            relay.start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await relay.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _http(relay: Relay, scope: Scope, send: Send) -> None:
    path = _relative_path(scope)
    if path == HEALTH_PATH:
        stats = relay.stats()
        status = 200 if stats["status"] == "ok" else 503
        body = (json.dumps(stats) + "\n").encode()
        content_type = b"application/json"
    elif path == METRICS_PATH:
        status, text_type, text = relay.metrics.exposition()
        body, content_type = text.encode(), text_type.encode()
    else:
        status, body, content_type = 404, b"not found\n", b"text/plain"
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _websocket(relay: Relay, scope: Scope, receive: Receive, send: Send) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    relay.start()  # (idempotent: a relay nobody started is started here)
    token = _token(scope)
    channel = _ASGIChannel(receive, send)
    try:
        room = room_from_path(_relative_path(scope))
    except ValueError as exc:
        await send({"type": "websocket.accept"})
        await channel.close(CloseCode.BAD_ROOM, f"bad room name: {exc}")
        return
    access: Any = True
    if room is not None:
        access = await relay.authenticate(token, room)
    headers = []
    if access in ("read", "write"):
        headers.append((ACCESS_HEADER.lower().encode(), str(access).encode()))
    await send({"type": "websocket.accept", "headers": headers})
    client = scope.get("client")
    peer = f"{client[0]}:{client[1]}" if client else ""
    await relay.serve_connection(channel, room=room, token=token, access=access, peer=peer)
