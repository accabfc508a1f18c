"""Clients batch local edits made within SyncClient.batch_delay into one message."""

from __future__ import annotations

import asyncio

from test_server_support import relay_server, run, wait_until

import crdtsync
from crdtsync.server.relay import Relay
from crdtsync.transports.websocket import connect


def _updates_received(relay: Relay) -> list[bytes]:
    seen: list[bytes] = []
    original = relay._apply_message

    def counting(member, data):  # type: ignore[no-untyped-def]
        seen.append(data)
        return original(member, data)

    relay._apply_message = counting  # type: ignore[method-assign]
    return seen


def test_a_burst_of_edits_goes_out_as_few_messages() -> None:
    async def body() -> None:
        async with relay_server() as (relay, url, _):
            doc = crdtsync.Doc()
            async with connect(f"{url}/b", doc) as client:
                await client.wait_synced(5)
                seen = _updates_received(relay)
                client.batch_delay = 0.05
                for i in range(30):
                    doc.text("t").insert(i, "x")  # 30 transactions...
                    await asyncio.sleep(0)  # ...with the loop turning between them
                await client.wait_synced(5)
                batched = len(seen)
                client.batch_delay = 0
                seen.clear()
                for i in range(30):
                    doc.text("t").insert(i, "y")
                    await asyncio.sleep(0)
                await client.wait_synced(5)
                unbatched = len(seen)
                await wait_until(lambda: len(relay.rooms["b"].doc.text("t")) == 60)
        assert batched <= 3 < unbatched

    run(body())
