"""Helpers for the server and transport tests (real sockets on 127.0.0.1, real SQLite files,
real subprocesses, a real redis-server). Imported by tests/test_server*.py and
tests/test_transports*.py; it holds no tests itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

import crdtsync
from crdtsync.server import Limits, Relay, SQLiteStorage, Storage
from crdtsync.server.auth import Authenticator, TokenFile, allow_all
from crdtsync.sync import SyncHub
from crdtsync.transports import asyncio_stream, websocket

#: No single server test may run longer than this (seconds).
TEST_TIMEOUT = 30.0


def run(coro: Awaitable[Any], timeout: float = TEST_TIMEOUT) -> Any:
    """Run one async test body with a hard timeout."""

    async def main() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(main())


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def close_code(ws: Any) -> int:
    """Read from a raw WebSocket client until the server closes it; the close code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "the server closed without a close frame"
        return int(exc.rcvd.code)


async def send_all(ws: Any, messages: Iterable[bytes]) -> None:
    for message in messages:
        await ws.send(message)


@contextlib.asynccontextmanager
async def multiplexed(ws: Any, docs: dict[str, Any]) -> AsyncIterator[SyncHub]:
    """Join every room of ``docs`` (name -> Doc) over ``ws``, a raw multiplexed connection;
    inside the block a background task answers what the relay sends. Local edits go out
    with ``send_all(ws, hub.poll())``."""
    hub = SyncHub()
    await send_all(ws, [x for name, doc in docs.items() for x in hub.join(name, doc)])

    async def pump() -> None:
        while True:
            data = await ws.recv()
            assert isinstance(data, bytes)
            await send_all(ws, hub.receive(data) + hub.poll())

    task = asyncio.ensure_future(pump())
    try:
        yield hub
    finally:
        task.cancel()


def token_file(tmp_path: Path, *lines: str) -> TokenFile:
    """A token file in ``tmp_path`` of ``lines`` ("TOKEN read|write [ROOM,...]")."""
    path = tmp_path / "tokens"
    path.write_text("".join(line + "\n" for line in lines))
    return TokenFile(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def relay_server(
    *,
    storage: Storage | None = None,
    authenticate: Authenticator = allow_all,
    limits: Limits | None = None,
    tcp: bool = False,
    ws_kwargs: dict[str, Any] | None = None,
    **relay_kwargs: Any,
) -> AsyncIterator[tuple[Relay, str, str | None]]:
    """An in-process relay on free loopback ports: (relay, "ws://127.0.0.1:PORT",
    "tcp://127.0.0.1:PORT" or None). ``ws_kwargs`` go to websocket.serve (ping_interval=...)."""
    relay = Relay(storage=storage, authenticate=authenticate, limits=limits, **relay_kwargs)
    relay.start()
    server = await websocket.serve(relay, "127.0.0.1", 0, **(ws_kwargs or {}))
    tcp_server = await asyncio_stream.serve(relay, "127.0.0.1", 0) if tcp else None
    ws_port = server.sockets[0].getsockname()[1]
    tcp_url = None
    if tcp_server is not None:
        tcp_url = f"tcp://127.0.0.1:{tcp_server.sockets[0].getsockname()[1]}"
    try:
        yield relay, f"ws://127.0.0.1:{ws_port}", tcp_url
    finally:
        server.close(close_connections=False)
        if tcp_server is not None:
            tcp_server.close()
        await relay.close(timeout=5.0)
        await asyncio.wait_for(server.wait_closed(), 5.0)


# ---- subprocess servers ----------------------------------------------------------------------


class ServerProcess:
    """``crdtsync serve`` in a subprocess, logging JSON lines to a file."""

    def __init__(self, tmp_path: Path, *args: str, name: str = "server") -> None:
        self.log_path = tmp_path / f"{name}.log"
        self.args = args
        self.name = name
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> ServerProcess:
        self.log_path.write_text("")
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crdtsync", "serve", "--port", "0", *self.args],
            stdout=log,
            stderr=log,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if event.get("event") == "listening":
                    self.port = int(event["port"])
                    self.tcp_port = event.get("tcp_port")
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()}")
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"{self.name} did not start: {self.log_path.read_text()}")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start ``crdtsync serve`` subprocesses; every one is killed at the end."""
    started: list[ServerProcess] = []

    def start(*args: str, name: str = "server") -> ServerProcess:
        proc = ServerProcess(tmp_path, *args, name=f"{name}{len(started)}").start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A ``--db`` value for each store: a SQLite file, then a fresh PostgreSQL database
    (tests/conftest.py: ``postgres_url``; skipped where no server can start)."""
    if request.param == "sqlite":
        return str(tmp_path / "rooms.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


def log_left_by_crashes(db: Path, room: str, chars: int) -> None:
    """A log of ``chars`` one-character inserts in ``room``, each its own row written by a
    node "crashed" that never compacted (as if each process died before it could)."""
    writer = crdtsync.Doc()
    updates: list[bytes] = []
    writer.on_update(lambda update, origin: updates.append(update))
    for i in range(chars):
        writer.text("t").insert(i, "x")
    crashed = SQLiteStorage(db, node="crashed")
    for update in updates:
        crashed.append(room, update)
    crashed.commit()
    crashed.close()


# ---- redis -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free loopback port, for one test module."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs it with apt-get)")
    workdir = tmp_path_factory.mktemp("redis")
    proc = None
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [
                binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), 0.2) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            time.sleep(0.05)
        else:
            proc.kill()
            proc.wait()
            continue  # the port was taken meanwhile, or the server failed: try another
        break
    else:
        pytest.fail("could not start redis-server")
    assert proc is not None
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
