"""Process-wide memory budgets of the relay, through real WebSocket connections: when the
parts of unfinished transfers of all connections pass the budget, the connection holding
the most is closed (1013), a well-behaved client is not, and what closed connections held
is released."""

from __future__ import annotations

import asyncio
import random
import socket

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


def small(message: int = 64 * KIB, **budgets: int) -> Limits:
    """Limits scaled down to a test: messages of ``message`` bytes, the budgets given."""
    return Limits(max_message_size=message, byte_burst=float(message), **budgets)


LIMITS = small(
    transfer_bytes_per_connection=512 * KIB,
    process_transfer_bytes=1024 * KIB,
    send_queue_bytes=768 * KIB,
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
    version = {replica: 100 * (size + 1)}  # what the whole transfer would bring
    return m.encode_message(m.Diff(enc.encode_update(update), version, m.Transfer(7, index, 100)))


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


async def slow_reader(url: str, port: int, stop: asyncio.Event) -> tuple[int | None, str]:
    """Join the room and never read (a tiny receive buffer, so the relay's queue for it
    grows at once); the close code and reason it got, once ``stop`` is set."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    async with raw_connect(url, sock=sock, max_queue=1, max_size=None) as ws:
        await ws.send(m.encode_message(m.Hello({}, True)))
        await stop.wait()
        try:
            async with asyncio.timeout(10.0):
                while True:
                    await ws.recv()
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd is not None else (None, "")
        except TimeoutError:
            return None, ""


def test_send_queues_past_the_process_budget_shed_the_slowest_reader() -> None:
    """Eight clients in a busy room stop reading. Each one's queue stays under its own
    768 KiB, but together they pass the process's 1 MiB: the longest queue's client is
    closed (1013), then the next, while the writer, who reads, is never touched."""

    async def body() -> None:
        async with relay_server(limits=LIMITS) as (relay, url, _tcp):
            port = int(url.rsplit(":", 1)[1])
            stop = asyncio.Event()
            readers = [
                asyncio.create_task(slow_reader(f"{url}/busy", port, stop)) for _ in range(8)
            ]
            await wait_until(lambda: "busy" in relay.rooms, 5)
            await wait_until(lambda: len(relay.rooms["busy"].members) == 8, 5)
            writer = crdtsync.Doc()
            rnd = random.Random(1)
            async with connect(f"{url}/busy", writer) as client:
                room = relay.rooms["busy"]
                for _ in range(1500):  # until the kernel's buffers are full and one is shed
                    chunk = "".join(rnd.choice("abcdefgh") for _ in range(20 * KIB))
                    writer.text("t").insert(0, chunk)
                    await asyncio.sleep(0.005)
                    assert relay.queued_bytes <= LIMITS.process_send_queue_bytes
                    if len(room.members) < 9:
                        break
                await client.wait_synced(timeout=10)
                assert client.connections == 1
                stop.set()
                results = await asyncio.gather(*readers)
            shed = [why for code, why in results if code == CloseCode.TRY_AGAIN_LATER]
            assert any("server send budget" in why for why in shed), results
            await wait_until(lambda: relay.queued_bytes == 0, 5, "send queues released")

    run(body())


def test_a_room_larger_than_a_send_queue_can_be_joined() -> None:
    """The answer to a joiner's HELLO is the whole room: it does not count against the
    joiner's own queue limit (it used to close every joiner of a room larger than that
    limit with 1013, on every retry), only against the process budget."""
    limits = small(
        1024 * KIB, transfer_bytes_per_connection=8192 * KIB, send_queue_bytes=1024 * KIB
    )

    async def body() -> None:
        async with relay_server(limits=limits) as (relay, url, _tcp):
            writer = crdtsync.Doc()
            rnd = random.Random(2)
            big = "".join(
                rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(3 << 20)
            )
            async with connect(f"{url}/big", writer) as client:
                writer.text("t").insert(0, big)
                await client.wait_synced(timeout=30)
            joiner = crdtsync.Doc()
            async with connect(f"{url}/big", joiner) as client:
                await client.wait_synced(timeout=30)
                assert client.connections == 1
                assert str(joiner.text("t")) == big

    run(body())


def waiting_update(replica: int, index: int) -> bytes:
    """An UPDATE of 40 KiB under the sender's own id that waits for its counter 1, which
    never comes: it would stay in the room's pending buffer."""
    size = 40 * KIB
    start = 2 + index * size
    insert = (enc.INS, start, ("t", "t"), start, (replica, start - 1), "x" * size, size, None)
    update = enc.Update(segments=[enc.Segment(replica, start, start + size, [insert])])
    return m.encode_message(m.UpdateMessage(enc.encode_update(update), m.Transfer(index, 0, 1)))


def test_updates_waiting_in_a_room_are_bounded_in_bytes() -> None:
    """A client sends updates that all wait for a counter it never sends: the room keeps at
    most pending_bytes_per_room of them (then asks the client for a diff), and the room's
    other clients go on."""
    limits = small(transfer_bytes_per_connection=512 * KIB, pending_bytes_per_room=256 * KIB)

    async def body() -> None:
        async with relay_server(limits=limits) as (relay, url, _tcp):
            writer = crdtsync.Doc()
            async with connect(f"{url}/room", writer) as client:
                writer.text("t").insert(0, "fine")
                await client.wait_synced(timeout=5)
                async with raw_connect(f"{url}/room", max_size=None) as ws:
                    await ws.send(m.encode_message(m.Hello({}, True)))
                    for i in range(20):  # 800 KiB that would all wait
                        await ws.send(waiting_update(1001, i))
                    # Past the bound the relay's session keeps nothing more and asks the
                    # sender for a fresh diff instead (a HELLO).
                    async with asyncio.timeout(5.0):
                        while not isinstance(m.decode_message(await ws.recv()), m.Hello):
                            pass
                doc = relay.rooms["room"].doc
                assert doc._pending_bytes <= limits.pending_bytes_per_room
                writer.text("t").insert(4, "!")
                await client.wait_synced(timeout=5)
                assert str(doc.text("t")) == "fine!" and client.connections == 1

    run(body())
