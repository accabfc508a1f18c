"""A room's wait before its changes are committed and sent grows with the room
(``Relay(tick_per_member=)``): through a real relay and real WebSocket clients, a large
room's edits made within its wait reach each reader as one message, while a small room on
the same relay keeps its short wait."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from test_server_support import relay_server, run, wait_until

import crdtsync
from crdtsync.transports.websocket import connect


async def _members(url: str, room: str, count: int) -> tuple[list[crdtsync.Doc], list[Any]]:
    docs = [crdtsync.Doc() for _ in range(count)]
    clients = []
    for doc in docs:
        client = await connect(f"{url}/{room}", doc)
        await client.wait_synced(5)
        clients.append(client)
    return docs, clients


def test_a_large_room_waits_longer_and_sends_its_wait_as_one_message() -> None:
    async def body() -> None:
        # 8 members wait 8 x 0.25 = 2 s; 2 members wait 0.5 s.
        async with relay_server(tick=0.01, tick_per_member=0.25) as (relay, url, _):
            big, big_clients = await _members(url, "big", 8)
            small, small_clients = await _members(url, "small", 2)
            assert relay._interval(relay.rooms["big"]) == 2.0
            assert relay._interval(relay.rooms["small"]) == 0.5
            reader = big[-1]
            got: list[float] = []
            reader.on_update(lambda u, o: got.append(time.monotonic()) if o is not None else None)
            await asyncio.sleep(2.5)  # (the joins' own flushes are over)
            got.clear()
            started = time.monotonic()
            small[0].text("t").insert(0, "s")
            for i, writer in enumerate(big[:3]):  # three edits 0.2 s apart, within one wait
                writer.text("t").insert(0, str(i))
                await asyncio.sleep(0.2)
            await wait_until(lambda: str(small[1].text("t")) == "s", timeout=5)
            small_took = time.monotonic() - started
            await wait_until(lambda: len(reader.text("t")) == 3, timeout=10)
            big_took = time.monotonic() - started
            assert len(got) == 1, f"{len(got)} messages for one wait of the large room"
            assert small_took < 1.8 <= big_took, (small_took, big_took)
            await wait_until(lambda: len({str(d.text("t")) for d in big}) == 1, timeout=10)
            for client in [*big_clients, *small_clients]:
                await client.close()

    run(body())


def test_without_a_tick_every_change_goes_out_at_once() -> None:
    async def body() -> None:
        async with relay_server(tick=0, tick_per_member=0.25) as (relay, url, _):
            docs, clients = await _members(url, "r", 8)
            started = time.monotonic()
            docs[0].text("t").insert(0, "x")
            await wait_until(lambda: all(str(d.text("t")) == "x" for d in docs), timeout=5)
            assert time.monotonic() - started < 1.5  # not the 2 s of 8 x 0.25
            for client in clients:
                await client.close()

    run(body())
