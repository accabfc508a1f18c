"""WebSocket transport (the ``websockets`` library, asyncio): ``pip install 'crdtsync[websocket]'``.

One connection is one room: the room is the URL path (``ws://host:8765/team/notes`` is
room ``team/notes``). The path ``/`` opens a multiplexed connection instead, carrying
:class:`~crdtsync.sync.SyncHub` ROOM envelopes for many rooms. Sync messages travel as
binary messages, one per WebSocket message. The token goes in an
``Authorization: Bearer TOKEN`` header (or, for browsers, a ``?token=`` query parameter).
The server tells the client its access in an ``X-Crdtsync-Access`` response header, and
answers ``GET /healthz`` with a JSON status and ``GET /metrics`` with Prometheus metrics.

Client::

    doc = crdtsync.Doc()
    async with connect("ws://localhost:8765/notes", doc, token="s3cret") as client:
        await client.wait_synced()
        doc.text("body").insert(0, "hello")     # goes out at the next turn of the loop

Server (``crdtsync serve`` does this, plus storage, Redis, signals)::

    relay = Relay(storage=SQLiteStorage("rooms.db"))
    async with serve(relay, "127.0.0.1", 8765):
        await asyncio.Future()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import unicodedata
import weakref
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes, urlsplit

try:
    from websockets.asyncio.client import ClientConnection
    from websockets.asyncio.client import connect as ws_connect
    from websockets.asyncio.server import ServerConnection
    from websockets.asyncio.server import serve as ws_serve
    from websockets.datastructures import Headers
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
    from websockets.http11 import Request, Response
    from websockets.protocol import State
    from websockets.uri import parse_uri
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "crdtsync.transports.websocket needs the websockets library: "
        "pip install 'crdtsync[websocket]'"
    ) from exc

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
from crdtsync.transports.codes import CloseCode, reason_text

__all__ = ["WebSocketChannel", "connect", "room_from_path", "serve"]

log = logging.getLogger("crdtsync.transports.websocket")

ACCESS_HEADER = "X-Crdtsync-Access"
HEALTH_PATH = "/healthz"
#: Prometheus metrics of the relay (crdtsync.server.metrics).
METRICS_PATH = "/metrics"
#: Incoming message limit of a client (a server's diff is cut to about 1 MiB per message,
#: but one change larger than that travels whole).
CLIENT_MAX_SIZE = 64 << 20


def _closed(exc: ConnectionClosed) -> ChannelClosed:
    frame = exc.rcvd if exc.rcvd is not None else exc.sent
    if frame is None:
        return ChannelClosed(CloseCode.ABNORMAL, "connection lost")
    return ChannelClosed(frame.code, frame.reason)


# ---- keepalive -------------------------------------------------------------------------------
#
# Both sides run the keepalive below instead of websockets' own (which they are given with
# ping_interval=None). websockets' rule is "a ping not answered by its pong within
# ping_timeout means the peer is dead", and that rule cannot hold together with throttling:
# the relay throttles a connection over its rate by not reading from it, so that TCP pushes
# back on the sender, and a pong (or ping) the peer sends then waits in the TCP stream behind
# every data frame sent before it: a backlog of thousands of small messages at a few dozen
# a second is minutes. The relay dropped throttled clients (1011 "keepalive ping timeout"),
# and a throttled crdtsync client, whose own pings the relay could not see, dropped itself
# the same way.
#
# Reading on while throttled (into a buffer) would let control frames through, but it gives
# up the push-back: a client over its rate for long would fill any bounded buffer and have
# to be shed, where throttling it is what the limit promises. So the push-back stays, and
# the liveness rule changes instead: ANY bytes from the peer are proof of life, not only the
# pong to our ping, and the peer's silence only counts while we are listening (websockets
# has not paused reading because messages from the peer wait unread). A dead peer is
# detected as before, ping_interval + ping_timeout seconds after we caught up with what it
# sent; a throttled one keeps being heard (its data frames, read at the throttled rate, and
# in the other direction the pings of the side that throttles, which nothing holds up).


class _HeardServerConnection(ServerConnection):
    """A server connection that notes when bytes last came from the peer."""

    heard = 0.0

    def data_received(self, data: bytes) -> None:
        self.heard = self.loop.time()
        super().data_received(data)


class _HeardClientConnection(ClientConnection):
    """A client connection that notes when bytes last came from the peer."""

    heard = 0.0

    def data_received(self, data: bytes) -> None:
        self.heard = self.loop.time()
        super().data_received(data)


def _check_keepalive(ping_interval: float | None, ping_timeout: float | None) -> None:
    if ping_interval is not None and ping_interval <= 0:
        raise ValueError("ping_interval must be positive (or None: no keepalive)")
    if ping_timeout is not None and ping_timeout <= 0:
        raise ValueError("ping_timeout must be positive (or None: never time out)")


async def _ping(ws: _HeardServerConnection | _HeardClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        pong = await ws.ping()  # may wait while our own sending is held up: that is fine
        # The pong itself does not matter (any bytes do); never leave its error unread.
        if isinstance(pong, asyncio.Future):
            pong.add_done_callback(lambda f: f.cancelled() or f.exception())


async def _keepalive(
    ws: _HeardServerConnection | _HeardClientConnection,
    interval: float,
    timeout: float | None,
) -> None:
    """Ping every ``interval`` seconds; close with 1011 once nothing came from the peer for
    ``interval + timeout`` seconds while we were listening (see the comment above)."""
    loop = asyncio.get_running_loop()
    ws.heard = max(ws.heard, loop.time())
    next_ping = loop.time() + interval
    tick = min(interval, timeout if timeout is not None else interval) / 2
    pinging: asyncio.Task[None] | None = None
    try:
        while ws.state is State.OPEN:
            await asyncio.sleep(tick)
            now = loop.time()
            if not ws.transport.is_reading():
                # websockets paused reading: messages from the peer wait for us to read
                # them (we are throttling it, or busy). Its silence is ours, not its own.
                ws.heard = now
            if timeout is not None and now - ws.heard > interval + timeout:
                log.info(
                    "keepalive timeout: nothing from the peer for %.1f s",
                    now - ws.heard,
                    extra={"event": "keepalive_timeout"},
                )
                await ws.close(CloseCode.INTERNAL_ERROR, "keepalive timeout")
                return
            if now >= next_ping:
                next_ping = now + interval
                if pinging is None or pinging.done():  # one ping on its way at a time
                    pinging = asyncio.create_task(_ping(ws))
    finally:
        if pinging is not None:
            pinging.cancel()


class WebSocketChannel:
    """A websockets connection (client or server side) as a :class:`Channel`.

    ``ping_interval``: run crdtsync's keepalive on it (the connection must come from
    :func:`serve` or :func:`connect`, which ask websockets for connections that note when
    the peer was last heard from); None: none."""

    def __init__(
        self,
        ws: ClientConnection | ServerConnection,
        access: str | None = None,
        *,
        ping_interval: float | None = None,
        ping_timeout: float | None = None,
    ):
        self.ws = ws
        self.access = access
        self._keepalive: asyncio.Task[None] | None = None
        if ping_interval is not None:
            if not isinstance(ws, (_HeardServerConnection, _HeardClientConnection)):
                raise TypeError("crdtsync's keepalive needs a connection from serve or connect")
            self._keepalive = asyncio.get_running_loop().create_task(
                _keepalive(ws, ping_interval, ping_timeout)
            )

    async def send(self, data: bytes) -> None:
        try:
            await self.ws.send(data)
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def recv(self) -> bytes:
        try:
            data = await self.ws.recv()
        except ConnectionClosed as exc:
            raise _closed(exc) from None
        if isinstance(data, str):
            raise ProtocolError("sync messages are binary; got a text message")
        return data

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        with contextlib.suppress(Exception):  # a connection that is already gone
            await self.ws.close(code, reason_text(reason))
        self.stop_keepalive()

    def stop_keepalive(self) -> None:
        if self._keepalive is not None and self._keepalive is not asyncio.current_task():
            self._keepalive.cancel()


def room_from_path(path: str) -> str | None:
    """The room a request path names: ``/team/notes?x=1`` -> ``"team/notes"``, ``/`` -> None
    (a multiplexed connection). ValueError for a path that names no valid room.

    The grammar (docs/server.md): the path up to ``?`` or ``#`` is ``/`` and the room name,
    percent-encoded UTF-8 (strictly: invalid UTF-8 is refused, never replaced). The decoded
    name is 1 to 256 characters of segments separated by ``/``; no segment is empty (no
    leading, trailing or doubled ``/``) or ``.`` or ``..``, and no character is a control
    character (NUL included).

    >>> room_from_path("/team/notes?token=x"), room_from_path("/"), room_from_path("/caf%C3%A9")
    ('team/notes', None, 'café')
    >>> room_from_path("//roomA")
    Traceback (most recent call last):
    ...
    ValueError: a room name has no empty segments (no leading, trailing or doubled /)
    """
    raw = path.split("?", 1)[0].split("#", 1)[0]
    if not raw.startswith("/"):
        raise ValueError("a request path starts with /")
    raw = raw[1:]
    if not raw:
        return None
    try:
        name = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("a room name is UTF-8 (percent-encoded in the path)") from None
    segments = name.split("/")
    if not all(segments):
        raise ValueError("a room name has no empty segments (no leading, trailing or doubled /)")
    if any(segment in (".", "..") for segment in segments):
        raise ValueError("a room name has no . or .. segments")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise ValueError("a room name has no control characters")
    return m.check_room(name)


def _token(request: Request) -> str | None:
    auth = request.headers.get("Authorization")
    if auth is not None and auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    values = parse_qs(urlsplit(request.path).query).get("token")
    return values[0] if values else None


# ---- server ----------------------------------------------------------------------------------


def _upgrade(request: Request) -> bool:
    return "websocket" in request.headers.get("Upgrade", "").lower()


def _metrics_response(connection: ServerConnection, relay: Any) -> Response:
    """``GET /metrics``: the relay's Prometheus exposition (501 without prometheus_client)."""
    metrics = getattr(relay, "metrics", None)
    if metrics is None:
        return connection.respond(HTTPStatus.NOT_FOUND, "no metrics\n")
    status, content_type, body = metrics.exposition()
    response = connection.respond(HTTPStatus(status), body)
    del response.headers["Content-Type"]  # (setting a header adds one more)
    response.headers["Content-Type"] = content_type
    return response


def serve(
    relay: Any,
    host: str | None = "127.0.0.1",
    port: int | None = 8765,
    *,
    ping_interval: float | None = 20.0,
    ping_timeout: float | None = 20.0,
    **kwargs: Any,
) -> Any:
    """Serve ``relay`` (a :class:`crdtsync.server.Relay`) over WebSockets; returns what
    :func:`websockets.asyncio.server.serve` returns (await it, or ``async with`` it).
    Extra keyword arguments go to ``websockets`` (``ssl=...``, ``sock=...``).

    Keepalive: a ping every ``ping_interval`` seconds; a client from which nothing came for
    ``ping_interval + ping_timeout`` seconds while the server was reading is closed with
    1011. A client the relay throttles is never dropped for it (see ``_keepalive``)."""
    _check_keepalive(ping_interval, ping_timeout)
    admitted: weakref.WeakKeyDictionary[ServerConnection, tuple[Any, ...]] = (
        weakref.WeakKeyDictionary()
    )

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path == HEALTH_PATH:
            stats = relay.stats()
            status = HTTPStatus.OK if stats["status"] == "ok" else HTTPStatus.SERVICE_UNAVAILABLE
            response = connection.respond(status, json.dumps(stats) + "\n")
            del response.headers["Content-Type"]  # (setting a header adds one more)
            response.headers["Content-Type"] = "application/json"
            return response
        if urlsplit(request.path).path == METRICS_PATH and not _upgrade(request):
            return _metrics_response(connection, relay)  # (a room may be named "metrics")
        token = _token(request)
        try:
            room = room_from_path(request.path)
        except ValueError as exc:
            admitted[connection] = (None, token, None, str(exc))
            return None
        access: Any = True
        if room is not None:
            access = await relay.authenticate(token, room)
        admitted[connection] = (room, token, access, None)
        return None

    def process_response(
        connection: ServerConnection, request: Request, response: Response
    ) -> None:
        entry = admitted.get(connection)
        if entry is not None and entry[2] in ("read", "write"):
            response.headers[ACCESS_HEADER] = entry[2]

    async def handler(ws: ServerConnection) -> None:
        entry = admitted.pop(ws, None)
        if entry is None:
            await WebSocketChannel(ws).close(CloseCode.INTERNAL_ERROR, "not admitted")
            return
        room, token, access, error = entry
        if error is not None:
            await WebSocketChannel(ws).close(CloseCode.BAD_ROOM, f"bad room name: {error}")
            return
        channel = WebSocketChannel(ws, ping_interval=ping_interval, ping_timeout=ping_timeout)
        peer = ws.remote_address
        try:
            await relay.serve_connection(
                channel,
                room=room,
                token=token,
                access=access,
                peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
            )
        finally:
            channel.stop_keepalive()

    kwargs.setdefault("max_size", relay.limits.max_message_size)
    kwargs.setdefault("compression", None)  # updates are compact already; spare the CPU
    kwargs.setdefault("close_timeout", 2.0)
    return ws_serve(
        handler,
        host,
        port,
        process_request=process_request,
        process_response=process_response,
        create_connection=_HeardServerConnection,
        ping_interval=None,  # crdtsync's keepalive instead (see _keepalive)
        **kwargs,
    )


# ---- client ----------------------------------------------------------------------------------


def _opener(
    url: str,
    token: str | None,
    max_size: int,
    open_timeout: float,
    keepalive: tuple[float | None, float | None],
    extra: dict[str, Any],
) -> Any:
    headers = Headers()
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"

    async def open_channel() -> WebSocketChannel:
        try:
            ws = await ws_connect(
                url,
                additional_headers=headers,
                max_size=max_size,
                open_timeout=open_timeout,
                compression=None,
                close_timeout=2.0,
                create_connection=_HeardClientConnection,
                ping_interval=None,  # crdtsync's keepalive instead (see _keepalive)
                **extra,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if 400 <= status < 500:
                raise ConnectionRefusedByServer(4000 + status, f"HTTP {status}") from None
            raise ChannelClosed(CloseCode.ABNORMAL, f"HTTP {status}") from None
        except InvalidHandshake as exc:
            raise ChannelClosed(CloseCode.ABNORMAL, str(exc)) from None
        access = ws.response.headers.get(ACCESS_HEADER) if ws.response else None
        return WebSocketChannel(ws, access, ping_interval=keepalive[0], ping_timeout=keepalive[1])

    return open_channel


class connect(Connector):  # noqa: N801 - used like a function, as websockets' own connect
    """Connect ``doc`` to the room at ``url`` and keep it in sync (see :class:`SyncClient`).

    ``await connect(...)`` returns the started client (by default once the server
    answered; ``wait=False`` returns at once and lets it keep trying in the background);
    ``async with connect(...) as client`` also closes it at the end. A server that does
    not answer within ``open_timeout`` seconds makes it raise ``TimeoutError`` naming the
    URL, the attempts and the last failure (also its ``__cause__``, e.g.
    ``ConnectionRefusedError``). ``on_status(status)`` hears of every change of
    :attr:`SyncClient.status` (``"connected"``, ``"disconnected"``, ``"closed"``) and
    ``on_error(exc)`` of every error reported while syncing (see
    :meth:`SyncClient.on_error`)::

        async with connect(url, doc, on_status=show_status, on_error=log_error) as client:
            await client.wait_synced(timeout=10)

    Keepalive: a ping every ``ping_interval`` seconds; a connection on which nothing came
    from the server for ``ping_interval + ping_timeout`` seconds is dropped (1011) and
    reopened. Any frame from the server counts, not only pongs, so a client the server
    throttles (its pongs wait behind the client's own backlog) does not drop itself.
    ``ping_interval=None``: no keepalive.
    """

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
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        on_status: StatusCallback | None = None,
        on_error: ErrorCallback | None = None,
        **websockets_kwargs: Any,
    ) -> None:
        parse_uri(url)  # a malformed URL raises InvalidURI here, not in the background
        _check_keepalive(ping_interval, ping_timeout)
        keepalive = (ping_interval, ping_timeout)
        super().__init__(
            _opener(url, token, max_size, open_timeout, keepalive, websockets_kwargs),
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
