"""Through the real relay (WebSocket on loopback): updates that contradict what the room
holds, or attribute deletes to someone else, or push the room's clocks far ahead, are
refused before anything is stored, and the clients they target keep working."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from test_server_support import close_code, relay_server, run, wait_until
from websockets.asyncio.client import connect as raw_connect

import crdtsync
from crdtsync import _encoding as enc
from crdtsync.server import Relay
from crdtsync.sync import messages as m
from crdtsync.transports.base import SyncClient
from crdtsync.transports.codes import FATAL, CloseCode
from crdtsync.transports.websocket import connect

TOKENS = {"alice-token": "write", "mallory-token": "write"}
TEXT = ("t", "t")


def tokens(token: str | None, room: str) -> Any:
    return TOKENS.get(token or "")


def frame(update: enc.Update) -> bytes:
    return m.encode_message(m.UpdateMessage(enc.encode_update(update), m.Transfer(0, 0, 1)))


def keep_me(doc: crdtsync.Doc) -> None:
    doc.text("t").insert(0, "keep me")


def precious(doc: crdtsync.Doc) -> None:
    doc.set("s").add("precious")


def abc(doc: crdtsync.Doc) -> None:
    doc.text("t").insert(0, "abc")


@contextlib.asynccontextmanager
async def victim_in_room(
    edit: Callable[[crdtsync.Doc], object],
) -> AsyncIterator[tuple[Relay, str, crdtsync.Doc, SyncClient]]:
    """A relay with alice (the victim) in room "room", synced after ``edit``: (relay, the
    room's URL, her document, her client)."""
    async with relay_server(authenticate=tokens) as (relay, url, _tcp):
        victim = crdtsync.Doc()
        async with connect(f"{url}/room", victim, token="alice-token") as client:
            edit(victim)
            await client.wait_synced(timeout=5)
            yield relay, f"{url}/room", victim, client


async def sent_by_mallory(url: str, data: bytes) -> int:
    """Send one frame as mallory (after a HELLO); the close code the relay answers with."""
    headers = {"Authorization": "Bearer mallory-token"}
    async with raw_connect(url, additional_headers=headers) as ws:
        await ws.send(m.encode_message(m.Hello({}, True)))
        await ws.send(data)
        return await close_code(ws)


def test_a_twin_writing_other_content_at_held_dots_is_refused() -> None:
    """A document restored twice (two tabs of one user: one token, one replica id) writes
    different edits under the same counters. The room holds the first tab's. A crdtsync
    client finds out itself (the room holds counters it made and never sent) and stops
    with ReplicaIdConflict; a peer that sends its changes anyway is closed with 4422
    (fatal: retrying cannot help) before anything of it is stored. The first tab goes on."""
    backup = crdtsync.Doc(4242)
    backup.text("t").insert(0, "base ")

    async def body() -> None:
        async with relay_server(authenticate=tokens) as (relay, url, _tcp):
            one = crdtsync.Doc(4242)
            one.apply_update(backup.get_update())
            async with connect(f"{url}/room", one, token="alice-token") as c1:
                one.text("t").insert(5, "from one")
                await c1.wait_synced(timeout=5)
                room = relay.rooms["room"].doc
                before = room.get_update()
                two = crdtsync.Doc(4242)
                two.apply_update(backup.get_update())
                two.text("t").insert(5, "TWO")  # the same counters as "fro"
                with pytest.raises(crdtsync.ReplicaIdConflict):
                    c2 = await connect(f"{url}/room", two, token="alice-token")
                    await asyncio.wait_for(c2.wait_closed(), 5)
                assert room.get_update() == before
                headers = {"Authorization": "Bearer alice-token"}
                async with raw_connect(f"{url}/room", additional_headers=headers) as ws:
                    await ws.send(m.encode_message(m.Hello({}, True)))
                    update = two.get_update()
                    await ws.send(m.encode_message(m.UpdateMessage(update, m.Transfer(0, 0, 1))))
                    code = await close_code(ws)
                assert code == CloseCode.EQUIVOCATION and code in FATAL
                assert room.get_update() == before  # nothing of it was taken
                one.text("t").insert(0, ">")
                await c1.wait_synced(timeout=5)
                assert str(room.text("t")) == ">base from one"
                assert c1.connections == 1

    run(body())


def test_deletes_attributed_to_a_victims_held_dot_are_refused() -> None:
    async def body() -> None:
        async with victim_in_room(keep_me) as (relay, room_url, victim, client):
            r = victim.replica_id
            forged = enc.Update(facts=[(enc.FACT_DELETE, TEXT, (r, 1), [(r, 1, 7)])])
            code = await sent_by_mallory(room_url, frame(forged))
            assert code == CloseCode.EQUIVOCATION
            room = relay.rooms["room"].doc
            assert str(room.text("t")) == "keep me"
            victim.text("t").insert(7, "!")
            await client.wait_synced(timeout=5)
            assert str(room.text("t")) == "keep me!"

    run(body())


def test_deletes_waiting_for_a_victims_next_counter_are_refused() -> None:
    """A delete attributed to the victim's next counter would wait in the room and take
    effect with the victim's next edit, an edit the victim never sees come back."""

    async def body() -> None:
        async with victim_in_room(keep_me) as (relay, room_url, victim, client):
            r = victim.replica_id
            nxt = victim.version[r] + 1
            forged = enc.Update(facts=[(enc.FACT_DELETE, TEXT, (r, nxt), [(r, 1, 7)])])
            code = await sent_by_mallory(room_url, frame(forged))
            assert code == CloseCode.REPLICA_TAKEN
            room = relay.rooms["room"].doc
            assert not room.pending
            victim.text("t").insert(7, "!")
            await client.wait_synced(timeout=5)
            await wait_until(lambda: str(room.text("t")) == "keep me!", 5)

    run(body())


def test_a_set_state_removing_without_a_change_is_refused() -> None:
    async def body() -> None:
        async with victim_in_room(precious) as (relay, room_url, victim, client):
            version = dict(victim.version)
            forged = enc.Update(facts=[(enc.FACT_LIVE, ("s", "s"), version, [], version)])
            code = await sent_by_mallory(room_url, frame(forged))
            assert code == CloseCode.EQUIVOCATION
            assert set(relay.rooms["room"].doc.set("s")) == {"precious"}

    run(body())


def test_an_update_far_ahead_of_the_rooms_clock_is_refused() -> None:
    """Mallory's own insert, at a Lamport time 2**40 past the room's: every later edit of
    every writer would be stamped after it, and a few such updates would use up the clock
    ceiling the room's writers share. Refused (4400) before it is stored."""

    async def body() -> None:
        async with victim_in_room(abc) as (relay, room_url, victim, client):
            room = relay.rooms["room"].doc
            lamport = room._lamport
            mine = 987654321
            insert = (enc.INS, 1, TEXT, lamport + (1 << 40), None, "x", 1, None)
            forged = enc.Update(segments=[enc.Segment(mine, 1, 2, [insert])])
            code = await sent_by_mallory(room_url, frame(forged))
            assert code == CloseCode.BAD_MESSAGE
            assert room._lamport == lamport and mine not in room.version
            near = (enc.INS, 1, TEXT, lamport + 1, None, "x", 1, None)
            honest = enc.Update(segments=[enc.Segment(mine, 1, 2, [near])])
            headers = {"Authorization": "Bearer mallory-token"}
            async with raw_connect(room_url, additional_headers=headers) as ws:
                await ws.send(m.encode_message(m.Hello({}, True)))
                await ws.send(frame(honest))
                await wait_until(lambda: mine in room.version, 5)
            await client.wait_synced(timeout=5)
            assert str(victim.text("t")) == "xabc"

    run(body())
