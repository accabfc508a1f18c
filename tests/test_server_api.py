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


def test_validate_refuses_what_the_app_forbids_and_the_client_hears_why() -> None:
    from crdtsync.server import Rejected, ValidateEvent
    from crdtsync.transports import ConnectionRefusedByServer
    from crdtsync.transports.codes import CloseCode

    asked: list[tuple[str | None, list[str]]] = []

    def only_int_counts(event: ValidateEvent) -> str | None:
        asked.append((event.identity, [w.key for w in event.writes]))
        for write in event.writes:
            if write.key == "count" and not write.deleted and type(write.value) is not int:
                return "the count key must be an int"
        if "locked" in event.after.map("m"):  # a rule on the document as it would be
            raise Rejected("the room is locked")
        return None

    async def body() -> None:
        async with relay_server(validate=only_int_counts) as (relay, url, _):
            good, bad = crdtsync.Doc(), crdtsync.Doc()
            async with connect(f"{url}/v", good) as cg:
                good.map("m")["count"] = 1
                await cg.wait_synced(5)
                cb = await connect(f"{url}/v", bad)
                await cb.wait_synced(5)
                bad.map("m")["count"] = "many"
                with pytest.raises(ConnectionRefusedByServer) as info:
                    await cb.wait_closed()
                assert info.value.code == CloseCode.FORBIDDEN
                assert "the count key must be an int" in str(info.value)
                good.map("m")["count"] = 2  # the room works on for the others
                await cg.wait_synced(5)
                assert relay.rooms["v"].doc.map("m")["count"] == 2
                with pytest.raises(Rejected, match="locked"):
                    async with relay.room("v") as doc:
                        doc.map("m")["locked"] = True
                assert "locked" not in relay.rooms["v"].doc.map("m")
                async with relay.room("v") as doc:
                    doc.map("m")["count"] = 3
                await wait_until(lambda: good.map("m")["count"] == 3, what="the server's edit")
        assert any(keys == ["count"] for _, keys in asked)

    run(body())


def test_a_failing_validate_hook_refuses_and_breaks_nothing() -> None:
    from crdtsync.transports import ConnectionRefusedByServer

    def broken(event: Any) -> None:
        if any(w.key == "boom" for w in event.writes):
            raise KeyError("bug in the app")

    async def body() -> None:
        async with relay_server(validate=broken) as (relay, url, _):
            a = crdtsync.Doc()
            c = await connect(f"{url}/x", a)
            a.map("m")["ok"] = 1
            await c.wait_synced(5)
            a.map("m")["boom"] = 1
            with pytest.raises(ConnectionRefusedByServer, match="could not check"):
                await c.wait_closed()
            assert dict(relay.rooms["x"].doc.map("m")) == {"ok": 1}
            b = crdtsync.Doc()
            async with connect(f"{url}/x", b) as cb:
                await cb.wait_synced(5)
                assert dict(b.map("m")) == {"ok": 1}

    run(body())
