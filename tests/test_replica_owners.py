"""Through the real relay: a connection cannot make a room hold new changes under a replica
id another client owns. The first client to bring new changes under an id owns it: a
token's holder from any connection and process (stored with the room), an anonymous client
for as long as its connection lives. Real WebSocket connections on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
from test_server_support import close_code, relay_server, run, wait_until
from websockets.asyncio.client import connect as raw_connect

import crdtsync
from crdtsync.server import SQLiteStorage
from crdtsync.sync import messages as m
from crdtsync.transports.codes import FATAL, CloseCode
from crdtsync.transports.websocket import connect

TOKENS = {"alice-token": "write", "mallory-token": "write"}


def tokens(token: str | None, room: str) -> Any:
    return TOKENS.get(token or "")


def forged_skip(victim: int, start: int) -> bytes:
    """An UPDATE claiming the victim's counters ``start`` ... 2**61 (a bare SKIP): were it
    taken, the victim's next edits would look held already and be dropped."""
    update = b"\xc1\x01" + msgpack.packb([[victim], [], [[0, start, -(2**61 - start)]]])
    return m.encode_message(m.UpdateMessage(update, m.Transfer(0, 0, 1)))


async def _refused(url: str, frame: bytes, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with raw_connect(url, additional_headers=headers) as ws:
        await ws.send(m.encode_message(m.Hello({}, True)))
        await ws.send(frame)
        return await close_code(ws)


def test_a_connection_cannot_write_under_a_connected_clients_id() -> None:
    async def body() -> None:
        async with relay_server() as (relay, url, _tcp):
            victim = crdtsync.Doc()
            async with connect(f"{url}/room", victim) as client:
                victim.text("t").insert(0, "mine")
                await client.wait_synced(timeout=5)
                held = victim.version[victim.replica_id]
                code = await _refused(f"{url}/room", forged_skip(victim.replica_id, held + 1))
                assert code == CloseCode.REPLICA_TAKEN and code not in FATAL
                room = relay.rooms["room"].doc
                assert room.version[victim.replica_id] == held  # nothing stored
                victim.text("t").insert(4, "!")  # the victim's next edit is not lost
                await client.wait_synced(timeout=5)
                assert str(room.text("t")) == "mine!"

    run(body())


def test_a_tokens_replica_ids_stay_its_own_across_reconnects_and_restarts(
    tmp_path: Path,
) -> None:
    db = tmp_path / "rooms.db"
    alice = crdtsync.Doc()

    async def first() -> None:
        async with relay_server(storage=SQLiteStorage(db), authenticate=tokens) as (_, url, _t):
            async with connect(f"{url}/room", alice, token="alice-token") as client:
                alice.text("t").insert(0, "alice")
                await client.wait_synced(timeout=5)
            # alice is gone; mallory tries her id
            frame = forged_skip(alice.replica_id, alice.version[alice.replica_id] + 1)
            assert await _refused(f"{url}/room", frame, "mallory-token") == 4409

    async def second() -> None:  # a restarted server: the binding was stored with the room
        async with relay_server(storage=SQLiteStorage(db), authenticate=tokens) as (
            relay,
            url,
            _t,
        ):
            frame = forged_skip(alice.replica_id, alice.version[alice.replica_id] + 1)
            assert await _refused(f"{url}/room", frame, "mallory-token") == 4409
            async with connect(f"{url}/room", alice, token="alice-token") as client:
                alice.text("t").insert(5, "!")  # alice, from a new connection
                await client.wait_synced(timeout=5)
            await wait_until(lambda: str(relay.rooms["room"].doc.text("t")) == "alice!", 5)

    run(first())
    run(second())


def test_an_anonymous_clients_ids_are_free_again_when_it_leaves() -> None:
    """Without an identity beyond the connection, a reconnecting client is a new connection:
    the id must be free for it. (What a later impostor could do then is caught by the
    client: it sees its id used beyond its own counter; see test_replica_ids.py.)"""

    async def body() -> None:
        async with relay_server() as (relay, url, _tcp):
            doc = crdtsync.Doc()
            for word in ("one", " two"):
                async with connect(f"{url}/room", doc) as client:
                    doc.text("t").insert(len(doc.text("t")), word)
                    await client.wait_synced(timeout=5)
            assert str(relay.rooms["room"].doc.text("t")) == "one two"
            assert not relay.rooms["room"].owners  # released with the connection

    run(body())


def test_changes_the_room_holds_pass_from_anyone() -> None:
    """Relaying what the room already holds (a client that synced peer to peer) changes
    nothing and is never refused."""

    async def body() -> None:
        async with relay_server() as (relay, url, _tcp):
            a, b = crdtsync.Doc(), crdtsync.Doc()
            async with connect(f"{url}/room", a) as ca:
                a.text("t").insert(0, "from a")
                await ca.wait_synced(timeout=5)
                b.apply_update(a.get_update())  # b got a's changes another way
                b.text("t").insert(0, "b: ")
                async with connect(f"{url}/room", b) as cb:
                    await cb.wait_synced(timeout=5)
                    await ca.wait_synced(timeout=5)
                    assert str(a.text("t")) == str(b.text("t")) == "b: from a"
                    assert cb.connections == 1

    run(body())


def test_two_processes_on_one_database_agree_on_owners(tmp_path: Path) -> None:
    """Two relays sharing a database (as processes do): the room is open on both before
    alice writes; mallory, on the other relay, is refused all the same."""
    db = tmp_path / "shared.db"

    async def body() -> None:
        one = relay_server(storage=SQLiteStorage(db, node="one"), authenticate=tokens)
        two = relay_server(storage=SQLiteStorage(db, node="two"), authenticate=tokens)
        async with one as (_, url_one, _t1), two as (relay_two, url_two, _t2):
            watcher = crdtsync.Doc()
            async with connect(f"{url_two}/room", watcher, token="alice-token") as cw:
                await cw.wait_synced(timeout=5)  # the room is open on relay two
                alice = crdtsync.Doc()
                async with connect(f"{url_one}/room", alice, token="alice-token") as ca:
                    alice.text("t").insert(0, "alice")
                    await ca.wait_synced(timeout=5)
                assert alice.replica_id not in relay_two.rooms["room"].owners
                frame = forged_skip(alice.replica_id, alice.version[alice.replica_id] + 1)
                assert await _refused(f"{url_two}/room", frame, "mallory-token") == 4409

    run(body())
