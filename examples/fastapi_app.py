"""A FastAPI application with a crdtsync relay mounted in it, and REST endpoints that read
and edit rooms from the server side.

    pip install crdtsync fastapi uvicorn
    uvicorn examples.fastapi_app:app --port 8000            # or: python examples/fastapi_app.py

Clients sync over WebSocket at ``ws://localhost:8000/sync/<room>`` (for example
``crdtsync.transports.websocket.connect("ws://localhost:8000/sync/notes", doc)``), and
plain HTTP reads and edits the same rooms:

    curl localhost:8000/notes/notes                           # {"room": "notes", "text": "..."}
    curl -X POST localhost:8000/notes/notes -H 'content-type: application/json' \\
         -d '{"append": "hello from REST"}'

An edit made through the REST endpoint is stored and reaches every connected client at once,
like a client's own edit. ``CRDTSYNC_EXAMPLE_DB`` names the SQLite file (default: in memory).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from crdtsync.server import MemoryStorage, Relay, SQLiteStorage
from crdtsync.server.asgi import asgi_app


class Append(BaseModel):
    """The body of a POST: text to add at the end of the room's text."""

    append: str


def make_app(db: str | None = None) -> FastAPI:
    """The application; ``db``: a SQLite file for the rooms (None: in memory)."""
    relay = Relay(storage=SQLiteStorage(db) if db else MemoryStorage())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        relay.start()
        yield
        await relay.close()

    app = FastAPI(lifespan=lifespan)
    app.state.relay = relay
    app.mount("/sync", asgi_app(relay))

    @app.get("/notes/{room}")
    async def read_note(room: str) -> dict[str, Any]:
        async with relay.room(room) as doc:
            return {"room": room, "text": str(doc.text("text"))}

    @app.post("/notes/{room}")
    async def append_to_note(room: str, body: Append) -> dict[str, Any]:
        async with relay.room(room) as doc:
            text = doc.text("text")
            text.insert(len(text), body.append)
            result = str(text)
        return {"room": room, "text": result}

    return app


app = make_app(os.environ.get("CRDTSYNC_EXAMPLE_DB"))

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
