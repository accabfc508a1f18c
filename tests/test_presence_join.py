"""Presence on join, through the real server: a client joining a room sees everyone already
there within one round trip, and everyone sees it, in one process and across two
``crdtsync serve`` processes linked by a real redis-server. Without this a joiner waited
for the others' next renewal (every 15 s with the default 30 s timeout)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_server_support import (  # noqa: F401 - fixtures
    ServerProcess,
    redis_url,
    relay_server,
    run,
    servers,
    wait_until,
)

import crdtsync
from benchmarks.presence_join import Person
from crdtsync.sync import Presence, SyncSession

#: Far below the 15 s renewal period (a server without presence on join fails this), far
#: above a loopback round trip even on a busy machine with two server processes and Redis.
JOIN_WITHIN = 8.0


async def join_and_time(joiner: Person, url: str, present: list[Person]) -> tuple[float, float]:
    """Seconds until the joiner sees everyone present, and until everyone sees it."""
    started = time.monotonic()
    await joiner.join(url)
    await wait_until(lambda: joiner.sees(*present), JOIN_WITHIN, f"{joiner.name} to see all")
    sees = time.monotonic() - started
    await wait_until(
        lambda: all(p.sees(joiner) for p in present), JOIN_WITHIN, f"all to see {joiner.name}"
    )
    return sees, time.monotonic() - started


def test_a_late_joiner_sees_everyone_at_once_in_one_process() -> None:
    async def body() -> None:
        async with relay_server() as (_relay, url, _tcp):
            people = [Person(n) for n in ("ann", "bob", "cid", "dee")]
            for i, person in enumerate(people):
                await join_and_time(person, f"{url}/room", people[:i])
            assert all(person.sees(*people) for person in people)
            for person in people:
                await person.client.close()

    run(body())


def test_a_client_that_reconnects_is_seen_again_at_once() -> None:
    """The relay marks a client that went as left (a higher clock); when it comes back,
    the relay's view, sent on join, makes it jump past that clock, so it shows again."""

    async def body() -> None:
        async with relay_server() as (_relay, url, _tcp):
            ann, bob = Person("ann"), Person("bob")
            await ann.join(f"{url}/r")
            await join_and_time(bob, f"{url}/r", [ann])
            await ann.client.close()
            await wait_until(lambda: ann.id not in bob.presence.states, 5, "ann to leave")
            await join_and_time(ann, f"{url}/r", [bob])
            for person in (ann, bob):
                await person.client.close()

    run(body())


def test_a_session_answering_a_hello_sends_its_whole_presence_view() -> None:
    """The sans-I/O rule underneath: a session that never called start() (a relay's)
    still sends every entry it knows to a peer whose connection (re)opens."""
    server_presence = Presence(1)
    server_presence.apply([(7, 0, {"name": "ann"}), (8, 3, {"name": "bob"})])
    server = SyncSession(crdtsync.Doc(), presence=server_presence)
    joiner_presence = Presence(9)
    joiner = SyncSession(crdtsync.Doc(), presence=joiner_presence)
    to_server = joiner.start()
    for _ in range(3):
        to_joiner = [r for x in to_server for r in server.receive(x)] + server.poll()
        to_server = [r for x in to_joiner for r in joiner.receive(x)] + joiner.poll()
    assert joiner_presence.states == {7: {"name": "ann"}, 8: {"name": "bob"}}


# ---- two processes and Redis ------------------------------------------------------------------


Start = Callable[..., ServerProcess]


def test_a_late_joiner_sees_everyone_across_processes_linked_by_redis(
    tmp_path: Path,
    servers: Start,  # noqa: F811
    redis_url: str,  # noqa: F811
) -> None:
    # A long resync interval: nothing here may come from the periodic log repair.
    common = ("--db", str(tmp_path / "p.db"), "--redis", redis_url, "--resync-interval", "600")
    one = servers(*common, "--node", "one")
    two = servers(*common, "--node", "two")

    async def body() -> None:
        ann, bob, cid, dee = (Person(n) for n in ("ann", "bob", "cid", "dee"))
        await ann.join(f"{one.url}/team")
        # The room opens on process two only now: two must learn of ann from one.
        await join_and_time(bob, f"{two.url}/team", [ann])
        await join_and_time(cid, f"{one.url}/team", [ann, bob])
        await join_and_time(dee, f"{two.url}/team", [ann, bob, cid])
        for person in (ann, bob, cid, dee):
            assert person.sees(ann, bob, cid, dee)
        await bob.client.close()
        await wait_until(
            lambda: all(bob.id not in p.presence.states for p in (ann, cid, dee)),
            JOIN_WITHIN,
            "bob to leave everywhere",
        )
        for person in (ann, cid, dee):
            await person.client.close()

    run(body())


def test_presence_query_is_answered_only_for_own_clients(
    tmp_path: Path,
    servers: Start,  # noqa: F811
    redis_url: str,  # noqa: F811
) -> None:
    """A third process opening the room hears each present client once, from the
    process it is connected to, not once per process."""
    pytest.importorskip("redis")
    import msgpack
    import redis.asyncio as aioredis

    from crdtsync.sync import messages as m

    common = ("--db", str(tmp_path / "q.db"), "--redis", redis_url, "--resync-interval", "600")
    one = servers(*common, "--node", "one")
    two = servers(*common, "--node", "two")

    async def body() -> None:
        ann, bob = Person("ann"), Person("bob")
        await ann.join(f"{one.url}/q")
        await join_and_time(bob, f"{two.url}/q", [ann])
        r: Any = aioredis.from_url(redis_url)
        pubsub = r.pubsub()
        await pubsub.subscribe("crdtsync:room:q")
        query = m.encode_message(m.Awareness([]))
        await r.publish("crdtsync:room:q", msgpack.packb([1, "probe", -2, query]))
        answers: dict[str, list[int]] = {}
        deadline = time.monotonic() + JOIN_WITHIN
        while time.monotonic() < deadline and len(answers) < 2:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is None:
                continue
            _, node, seq, payload = msgpack.unpackb(message["data"], raw=False)
            if seq == -1:
                msg = m.decode_message(payload)
                assert isinstance(msg, m.Awareness)
                answers[node] = [replica for replica, _, _ in msg.states]
        assert answers == {"one": [ann.id], "two": [bob.id]}
        await pubsub.aclose()
        await r.aclose()
        for person in (ann, bob):
            await person.client.close()

    run(body())


def test_a_client_leaving_a_freshly_opened_room_is_seen_to_leave() -> None:
    """States a room hears before its first housekeeping tick are stamped with the
    housekeeping clock: that tick must not time them out (silently, at once), or a client
    leaving after it stays present for the others until their own timeout (30 s)."""

    async def body() -> None:
        async with relay_server() as (relay, url, _tcp):
            ann, bob = Person("ann"), Person("bob")
            await ann.join(f"{url}/fresh")
            await join_and_time(bob, f"{url}/fresh", [ann])
            # The room's first tick, as Relay._housekeep does it (about 1 s after start).
            relay.rooms["fresh"].presence.tick(asyncio.get_running_loop().time())
            await ann.client.close()
            await wait_until(lambda: ann.id not in bob.presence.states, 5, "ann to leave")
            await bob.client.close()

    run(body())
