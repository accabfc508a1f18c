"""Application code on the server reads and edits rooms (Relay.room), and hears of every
committed change (on_change): over real WebSocket clients and a real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from test_server_support import relay_server, run, wait_until

import crdtsync
from crdtsync.server import SQLiteStorage
from crdtsync.server.relay import SERVER, ChangeEvent
from crdtsync.transports.websocket import connect


def test_a_server_side_edit_is_stored_and_reaches_every_client(tmp_path: Path) -> None:
    db = tmp_path / "rooms.db"

    async def body() -> None:
        async with relay_server(storage=SQLiteStorage(db)) as (relay, url, _):
            a, b = crdtsync.Doc(), crdtsync.Doc()
            async with connect(f"{url}/board", a) as ca, connect(f"{url}/board", b) as cb:
                a.map("board").text("title").insert(0, "from a")
                await ca.wait_synced(5)
                async with relay.room("board") as doc:
                    assert doc.to_py() == {"board": {"title": "from a"}}
                    card = doc.map("board").list("cards").append_container(crdtsync.LWWMap)
                    card["name"] = "added by the server"
                await wait_until(lambda: len(a.map("board").list("cards")) == 1, what="a")
                await wait_until(lambda: len(b.map("board").list("cards")) == 1, what="b")
                assert a.to_py() == b.to_py()
                assert a.map("board").list("cards")[0]["name"] == "added by the server"
                await cb.wait_synced(5)
        # durable: a new process on the same file holds it
        async with (
            relay_server(storage=SQLiteStorage(db)) as (relay, url, _),
            relay.room("board") as doc,
        ):
            assert doc.to_py()["board"]["cards"] == [{"name": "added by the server"}]

    run(body())


def test_blocks_run_one_at_a_time_and_an_exception_discards_the_edits() -> None:
    async def body() -> None:
        async with relay_server() as (relay, url, _):

            async def bump(tag: str) -> None:
                async with relay.room("r") as doc:
                    count = doc.counter("n").value
                    await asyncio.sleep(0.01)  # others wait: no lost update
                    doc.counter("n").increment()
                    doc.list("log").append([tag, count])

            await asyncio.gather(*(bump(f"t{i}") for i in range(5)))
            with pytest.raises(RuntimeError, match="oops"):
                async with relay.room("r") as doc:
                    doc.counter("n").increment(100)
                    raise RuntimeError("oops")
            with pytest.raises(ValueError):
                async with relay.room(""):
                    pass
            client = crdtsync.Doc()
            async with connect(f"{url}/r", client) as c:
                await c.wait_synced(5)
            assert client.counter("n").value == 5
            assert sorted(count for _, count in client.list("log")) == [0, 1, 2, 3, 4]

    run(body())


def test_on_change_hears_commits_with_the_changed_containers_and_survives_errors() -> None:
    events: list[ChangeEvent] = []
    seen_async: list[str] = []

    def broken(event: ChangeEvent) -> None:
        raise RuntimeError("a broken webhook")

    async def webhook(event: ChangeEvent) -> None:
        await asyncio.sleep(0)
        seen_async.append(event.room)

    async def body() -> None:
        async with relay_server(on_change=events.append) as (relay, url, _):
            relay.on_change += [broken, webhook]
            a = crdtsync.Doc()
            async with connect(f"{url}/notes", a) as ca:
                a.map("m").text("t").insert(0, "hi")
                await ca.wait_synced(5)
                await wait_until(lambda: bool(events), what="an event")
                async with relay.room("notes") as doc:
                    doc.counter("c").increment()
                await wait_until(lambda: len(seen_async) >= 2, what="the async hook")
                a.text("after").insert(0, "still works")  # the broken hook broke nothing
                await ca.wait_synced(5)
        names = [sorted(type(c).__name__ + ":" + c.name for c in e.containers) for e in events]
        assert ["LWWMap:m", "Text:t"] in names
        assert ["Counter:c"] in names
        assert all(e.room == "notes" for e in events)
        assert any(str(e.doc.text("after")) == "still works" for e in events)

    run(body())


def test_server_edits_have_their_own_origin_and_replica() -> None:
    async def body() -> None:
        async with relay_server() as (relay, url, _):
            origins: list[Any] = []
            async with relay.room("x") as doc:
                doc.text("t").insert(0, "a")
            room = relay.rooms["x"]
            room.doc.on_update(lambda update, origin: origins.append(origin))
            async with relay.room("x") as doc:
                doc.text("t").insert(1, "b")
                assert doc.replica_id == room.editor_id != room.doc.replica_id
            assert origins == [SERVER]
            assert str(room.doc.text("t")) == "ab"

    run(body())
