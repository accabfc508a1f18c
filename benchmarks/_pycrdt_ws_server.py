"""A pycrdt-websocket relay for benchmarks/load.py's ``--system pycrdt-websocket``.

    python benchmarks/_pycrdt_ws_server.py --port 0

One ``pycrdt.websocket.WebsocketServer`` (rooms by URL path, documents in memory, no
store) behind a ``websockets`` server. The room name is the request path without its
leading slash, as for ``crdtsync serve``. The listening port is printed on stdout
(``listening PORT``); load.py finds it from /proc like crdtsync's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import signal
from typing import Any

from pycrdt.websocket import WebsocketServer, exception_logger
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


class _Channel:
    """A websockets server connection as the ``pycrdt.Channel`` the room serves."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._path = ws.request.path.lstrip("/")

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> _Channel:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def send(self, message: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):  # the room drops it when recv ends
            await self._ws.send(message)

    async def recv(self) -> bytes:
        message = await self._ws.recv()
        return message if isinstance(message, bytes) else message.encode()


async def main(host: str, port: int) -> None:
    relay = WebsocketServer(exception_handler=exception_logger)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def handler(ws: Any) -> None:
        await relay.serve(_Channel(ws))

    async with relay, serve(handler, host, port, max_size=2**24) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(f"listening {bound}", flush=True)
        await stop.wait()
        server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # many-rooms runs: 2,000+ sockets
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.host, args.port))
