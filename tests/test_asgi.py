"""The relay mounted in a FastAPI application (examples/fastapi_app.py) under a real uvicorn
server: real WebSocket clients sync through it, REST endpoints edit the same rooms."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from test_server_support import free_port, run, wait_until

import crdtsync
from crdtsync.transports import ConnectionRefusedByServer
from crdtsync.transports.codes import CloseCode
from crdtsync.transports.websocket import connect

uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (the test extra has it)")
pytest.importorskip("fastapi", reason="fastapi is not installed (the test extra has it)")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import fastapi_app  # noqa: E402


def _http(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if body else "GET")
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _get_text(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:  # 501 without prometheus_client
        return str(exc.read().decode())


async def _served(app: Any) -> tuple[Any, str, asyncio.Task[None]]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, what="uvicorn")
    return server, f"127.0.0.1:{port}", task


def test_clients_and_rest_edit_the_same_room_through_fastapi(tmp_path: Path) -> None:
    db = str(tmp_path / "rooms.db")

    async def body() -> None:
        server, host, task = await _served(fastapi_app.make_app(db))
        try:
            a, b = crdtsync.Doc(), crdtsync.Doc()
            async with (
                connect(f"ws://{host}/sync/notes", a) as ca,
                connect(f"ws://{host}/sync/notes", b) as cb,
            ):
                a.text("text").insert(0, "from a. ")
                await ca.wait_synced(5)
                got = await asyncio.to_thread(_http, f"http://{host}/notes/notes")
                assert got == {"room": "notes", "text": "from a. "}
                posted = await asyncio.to_thread(
                    _http, f"http://{host}/notes/notes", {"append": "from REST"}
                )
                assert posted["text"] == "from a. from REST"
                await wait_until(lambda: str(b.text("text")) == "from a. from REST", what="b")
                await wait_until(lambda: str(a.text("text")) == str(b.text("text")), what="a")
                await cb.wait_synced(5)
                health = await asyncio.to_thread(_http, f"http://{host}/sync/healthz")
                assert health["status"] == "ok" and health["rooms"] >= 1
                metrics = await asyncio.to_thread(_get_text, f"http://{host}/sync/metrics")
                assert "crdtsync_messages_received_total" in metrics
                bad = crdtsync.Doc()
                with pytest.raises(ConnectionRefusedByServer) as info:
                    c = await connect(f"ws://{host}/sync/a//b", bad)
                    await c.wait_closed()
                assert info.value.code == CloseCode.BAD_ROOM
        finally:
            server.should_exit = True
            await task
        # the REST edit was stored: a new application on the same file serves it
        server, host, task = await _served(fastapi_app.make_app(db))
        try:
            got = await asyncio.to_thread(_http, f"http://{host}/notes/notes")
            assert got["text"] == "from a. from REST"
        finally:
            server.should_exit = True
            await task

    run(body())
