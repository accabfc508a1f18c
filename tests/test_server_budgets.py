"""Process-wide memory budgets of the relay, through real WebSocket connections: when the
parts of unfinished transfers of all connections pass the budget, the connection holding
the most is closed (1013), a well-behaved client is not, and what closed connections held
is released."""

from __future__ import annotations

import asyncio

from test_server_support import relay_server, run, wait_until
from websockets.asyncio.client import connect as raw_connect
from websockets.exceptions import ConnectionClosed

import crdtsync
from crdtsync import _encoding as enc
from crdtsync.server import Limits
from crdtsync.sync import messages as m
from crdtsync.transports.codes import CloseCode
from crdtsync.transports.websocket import connect

KIB = 1 << 10
LIMITS = Limits(
    max_message_size=64 * KIB,
    byte_burst=float(64 * KIB),
    transfer_bytes_per_connection=512 * KIB,
    process_transfer_bytes=1024 * KIB,
    send_queue_bytes=256 * KIB,
    process_send_queue_bytes=1024 * KIB,
)


def never_completing_part(replica: int, index: int) -> bytes:
    """Part ``index`` of a transfer of 100 parts that will never all arrive: 40 KiB of
    text under the sender's own id (plausible, its own: only the budget stops it)."""
    size = 40 * KIB
    start = 1 + index * (size + 1)
    insert = (enc.INS, start, ("t", "t"), start, None, "x" * size, size, None)
    skip = (enc.SKIP, start + size, 1)
    update = enc.Update(segments=[enc.Segment(replica, start, start + size + 1, [insert, skip])])
    return m.encode_message(m.Diff(enc.encode_update(update), {}, m.Transfer(7, index, 100)))


async def attacker(url: str, replica: int, parts: int) -> int | None:
    """Send ``parts`` parts, then wait; the close code the relay closed with (None: open)."""
    async with raw_connect(url, max_size=None) as ws:
        await ws.send(m.encode_message(m.Hello({}, True)))
        try:
            for i in range(parts):
                await ws.send(never_completing_part(replica, i))
            async with asyncio.timeout(4.0):  # generous: a loaded machine is slow
                while True:
                    await ws.recv()
        except TimeoutError:
            return None
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None


def test_unfinished_transfers_past_the_process_budget_shed_the_biggest_holder() -> None:
    async def body() -> None:
        async with relay_server(limits=LIMITS) as (relay, url, _tcp):
            victim = crdtsync.Doc()
            async with connect(f"{url}/other", victim) as client:
                victim.text("t").insert(0, "still here")
                await client.wait_synced(timeout=5)
                # 3 x 360 KiB held, under each connection's 512 KiB: the process's 1 MiB is
                # passed by the third, and the biggest holder (the busiest) goes.
                codes = await asyncio.gather(
                    attacker(f"{url}/a", 1001, 9),
                    attacker(f"{url}/b", 1002, 9),
                    attacker(f"{url}/c", 1003, 9),
                )
                assert CloseCode.TRY_AGAIN_LATER in codes, codes
                assert codes.count(None) >= 1  # the others stayed: under budget again
                await wait_until(lambda: relay.transfer_bytes == 0, 5, "transfers released")
                victim.text("t").insert(0, "> ")
                await client.wait_synced(timeout=5)
                assert client.connections == 1
                assert str(relay.rooms["other"].doc.text("t")) == "> still here"

    run(body())


def test_one_connections_unfinished_transfers_are_bounded() -> None:
    async def body() -> None:
        async with relay_server(limits=LIMITS) as (relay, url, _tcp):
            code = await attacker(f"{url}/a", 1001, 20)  # 800 KiB > 512 KiB
            assert code == CloseCode.BAD_MESSAGE
            assert relay.transfer_bytes == 0

    run(body())
