"""``crdtsync serve`` as a real process: kill -9 mid-stream loses nothing acknowledged,
SIGTERM shuts down gracefully, tokens from a file, and several processes bridged by a real
redis-server converge (including one that starts late). The kill and the Redis tests run
on both stores: a SQLite file, and a PostgreSQL database (the processes could be on
different hosts: they share nothing but the database and Redis)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_server_support import (  # noqa: F401 - fixtures
    ServerProcess,
    db_url,
    free_port,
    redis_url,
    run,
    servers,
    wait_until,
)

import crdtsync
from crdtsync.sync import Presence
from crdtsync.transports import ConnectionRefusedByServer
from crdtsync.transports.codes import CloseCode
from crdtsync.transports.websocket import connect

Start = Callable[..., ServerProcess]


def test_kill_9_mid_stream_loses_no_acknowledged_update(
    db_url: str,  # noqa: F811 - a SQLite file, then a PostgreSQL database
    servers: Start,  # noqa: F811
) -> None:
    server = servers("--db", db_url, "--compact-rows", "50")

    async def stream() -> int:
        doc = crdtsync.Doc()
        client = await connect(f"{server.url}/stream", doc, backoff_max=0.2)
        log = doc.list("log")
        me = doc.replica_id
        acked = 0
        rng = random.Random(5)
        kill_after = 0.6 + rng.random() * 0.4
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < kill_after:
            for _ in range(rng.randint(1, 20)):  # bursts, so that the kill catches some
                i += 1  # in flight
                log.append(i)  # one counter per append: edit i has counter i
            await asyncio.sleep(0.002)
            acked = max(acked, client.server_version.get(me, 0))
        server.kill()  # SIGKILL: no shutdown, no flush, no compaction
        acked = max(acked, client.server_version.get(me, 0))
        await client.close()  # no chance to resend anything after the restart
        assert acked > 20, "too few acknowledged edits to make the test meaningful"
        return acked

    acked = run(stream())
    server.start()  # same port is not needed: a fresh client asks the restarted server

    async def check() -> None:
        doc = crdtsync.Doc()
        async with connect(f"{server.url}/stream", doc) as client:
            await client.wait_synced(10)
            held = list(doc.list("log"))
            assert held[:acked] == list(range(1, acked + 1))

    run(check())


def test_sigterm_shuts_down_gracefully(tmp_path: Path, servers: Start) -> None:  # noqa: F811
    server = servers("--db", str(tmp_path / "g.db"))

    async def body() -> None:
        doc = crdtsync.Doc()
        client = await connect(f"{server.url}/g", doc, backoff_min=5.0, backoff_max=10.0)
        doc.text("t").insert(0, "saved")
        await client.wait_synced(5)
        assert await asyncio.to_thread(server.terminate) == 0  # the loop must answer the close
        await wait_until(lambda: not client.connected, what="the server to close")
        await client.close()

    run(body())
    events = [e.get("event") for e in server.events()]
    assert "shutdown" in events and "stopped" in events
    disconnects = [e for e in server.events() if e.get("event") == "disconnect"]
    assert disconnects and disconnects[0]["code"] == CloseCode.GOING_AWAY
    assert "room_open" in events


def test_token_file_and_health(tmp_path: Path, servers: Start) -> None:  # noqa: F811
    tokens = tmp_path / "tokens"
    tokens.write_text("good write *\n")
    server = servers("--memory", "--tokens", str(tokens))

    async def body() -> None:
        with pytest.raises(ConnectionRefusedByServer) as info:
            await connect(f"{server.url}/r", crdtsync.Doc(), token="bad")
        assert info.value.code == CloseCode.UNAUTHORIZED
        async with connect(f"{server.url}/r", crdtsync.Doc(), token="good") as c:
            assert c.access == "write"
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()

    run(body())
    assert any(e.get("event") == "unauthorized" for e in server.events())


def test_refuses_open_access_on_a_public_address(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "crdtsync", "serve", "--host", "0.0.0.0", "--memory"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "without access control" in result.stderr


# ---- Redis -----------------------------------------------------------------------------------


def test_two_processes_bridged_by_redis_converge_and_a_late_one_catches_up(
    db_url: str,  # noqa: F811 - shared: one SQLite file, or one PostgreSQL database
    servers: Start,  # noqa: F811
    redis_url: str,  # noqa: F811
) -> None:
    # A long resync interval: convergence within the test must come through Redis.
    common = ("--db", db_url, "--redis", redis_url, "--resync-interval", "600")
    one = servers(*common, "--node", "one")
    two = servers(*common, "--node", "two")

    async def body() -> None:
        docs = [crdtsync.Doc() for _ in range(4)]
        urls = [one.url, two.url, one.url, two.url]
        clients = [await connect(f"{u}/team", d) for u, d in zip(urls, docs, strict=True)]
        rng = random.Random(11)
        for step in range(120):
            i = rng.randrange(4)
            text = docs[i].text("t")
            text.insert(rng.randint(0, len(text)), "abcd"[i])
            docs[i].counter("n").increment()
            if step % 8 == 0:
                await asyncio.sleep(0.01)
        await wait_until(
            lambda: (
                all(str(d.text("t")) == str(docs[0].text("t")) for d in docs)
                and all(d.counter("n").value == 120 for d in docs)
            ),
            15,
            "clients on two processes to converge",
        )
        for c in clients:
            await c.wait_synced(5)
        # presence crosses processes too
        p0, p1 = Presence(docs[0].replica_id), Presence(docs[1].replica_id)
        c0 = await connect(f"{one.url}/team", crdtsync.Doc(), presence=p0)
        c1 = await connect(f"{two.url}/team", crdtsync.Doc(), presence=p1)
        p0.set_local({"name": "on one"})
        await wait_until(lambda: p1.states.get(p0.replica_id) == {"name": "on one"}, 15, "presence")
        await c0.close()
        await wait_until(lambda: p0.replica_id not in p1.states, 15, "presence to clear")
        await c1.close()
        # a third process starting now catches up from the shared log, then live via Redis
        three = servers(*common, "--node", "three")
        late = crdtsync.Doc()
        async with connect(f"{three.url}/team", late) as cl:
            await cl.wait_synced(5)
            assert str(late.text("t")) == str(docs[0].text("t"))
            late.text("t").insert(0, "L")
            await wait_until(
                lambda: all(str(d.text("t")) == str(late.text("t")) for d in docs),
                10,
                "an edit from the late process to reach the others",
            )
        for c in clients:
            await c.close()

    run(body(), timeout=45)


def test_processes_stay_level_through_the_shared_log_while_redis_is_down(
    db_url: str,  # noqa: F811
    servers: Start,  # noqa: F811
) -> None:
    """Redis unreachable (nothing listens on its port): pub/sub delivers nothing, and the
    periodic read of the shared log still brings both processes' clients level."""
    common = ("--db", db_url, "--redis", f"redis://127.0.0.1:{free_port()}/0",
              "--resync-interval", "0.3")  # fmt: skip
    one, two = servers(*common, "--node", "one"), servers(*common, "--node", "two")

    async def body() -> None:
        a, b = crdtsync.Doc(), crdtsync.Doc()
        async with connect(f"{one.url}/r", a) as ca, connect(f"{two.url}/r", b) as cb:
            a.text("t").insert(0, "from one ")
            b.text("t").insert(0, "from two ")
            await ca.wait_synced(5)
            await cb.wait_synced(5)
            await wait_until(
                lambda: str(a.text("t")) == str(b.text("t")) and len(a.text("t")) == 18,
                10,
                "convergence through the log",
            )

    run(body())
    assert any(e.get("event") == "redis_down" for e in one.events())
