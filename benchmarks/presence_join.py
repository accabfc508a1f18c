"""Presence join time through ``crdtsync serve``: how long a client joining a room takes to
see everyone already there, and everyone to see it.

    python benchmarks/presence_join.py                 # 20 joins, 1 process and 2 + Redis
    python benchmarks/presence_join.py --joins 50 --present 5

Starts ``crdtsync serve`` on loopback: one process (in memory), then two sharing a SQLite
file and a redis-server on a free port (when ``redis-server`` is on the PATH). ``--present``
clients (default 3) join a room first and stay; then ``--joins`` clients join one after
another, and leave again. For each join it measures, from the call to ``connect()``:

- *sees*: until the joiner's presence holds every client present;
- *seen*: until every present client's presence holds the joiner.

Three layouts: one process; two processes with the room open on both (present clients on
both, joiners alternating); two processes with the present clients on the first and each
joiner on the second, which unloads the room between joins (``--idle-unload 0``), so that
every join opens the room there anew and the presence of the first's clients must come
over Redis (the presence query). The presence timeout is the default 30 s: without
presence on join, a joiner waited for the others' next renewal, up to 15 s.

``python benchmarks/presence_join.py --joins 50`` on a 2-core VM (median / p95 / max, ms)::

    one process:                                         sees 2.6 / 3.1 / 3.5   seen 2.7 / 3.2 / 3.5
    two processes + Redis, room open on both:            sees 3.0 / 5.4 / 7.3   seen 4.1 / 7.1 / 7.9
    two processes + Redis, room opening on the joiner's: sees 4.9 / 7.6 / 9.2   seen 4.9 / 7.7 / 9.3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import crdtsync
from crdtsync.sync import Presence
from crdtsync.transports.websocket import connect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_server(tmp: Path, name: str, args: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    log = tmp / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crdtsync", "serve", "--port", "0", *args],
            stdout=out,
            stderr=out,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == "listening":
                    return proc, f"ws://127.0.0.1:{event['port']}"
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"{name} did not start: {log.read_text()}")


def _start_redis(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    assert binary is not None
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


class Person:
    """One client with a presence state naming it (tests/test_presence_*.py use it too)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.doc = crdtsync.Doc()
        self.presence = Presence(self.doc.replica_id)
        self.presence.set_local({"name": name})
        self.client: Any = None

    @property
    def id(self) -> int:
        return self.doc.replica_id

    def sees(self, *others: Person) -> bool:
        states = self.presence.states
        return all(states.get(o.id) == {"name": o.name} for o in others)

    async def join(self, url: str) -> None:
        self.client = await connect(url, self.doc, presence=self.presence)


async def _until(predicate: Any, timeout: float = 30.0) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise TimeoutError("presence did not arrive")
        await asyncio.sleep(0.0005)
    return time.monotonic()


async def _rooms(url: str) -> int:
    host, port = url.removeprefix("ws://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    rooms: int = json.loads(data.split(b"\r\n\r\n", 1)[1])["rooms"]
    return rooms


async def measure(
    present_urls: list[str], join_urls: list[str], present: int, joins: int, fresh: bool
) -> dict[str, list[float]]:
    """``fresh``: wait, after each join, until the joiner's process unloaded the room, so
    that the next join opens it there anew."""
    room = f"join-{time.monotonic_ns()}"
    here = [Person(f"present{i}") for i in range(present)]
    for i, person in enumerate(here):
        url = present_urls[i % len(present_urls)]
        await person.join(f"{url}/{room}")
    await _until(lambda: all(p.sees(*here) for p in here))
    sees, seen = [], []
    for i in range(joins):
        joiner = Person(f"joiner{i}")
        url = join_urls[i % len(join_urls)]
        started = time.monotonic()
        await joiner.join(f"{url}/{room}")
        sees.append(await _until(lambda: joiner.sees(*here)) - started)  # noqa: B023
        seen.append(await _until(lambda: all(p.sees(joiner) for p in here)) - started)  # noqa: B023
        await joiner.client.close()
        await _until(lambda: all(joiner.id not in p.presence.states for p in here))  # noqa: B023
        if fresh:
            while await _rooms(url):
                await asyncio.sleep(0.01)
    for person in here:
        await person.client.close()
    return {"sees": sees, "seen": seen}


def _summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"{statistics.median(ms):.1f} / {p95:.1f} / {ms[-1]:.1f}"


def _report(what: str, run: Any) -> None:
    result = asyncio.run(run)
    print(f"{what + ':':52} sees {_summary(result['sees'])}   seen {_summary(result['seen'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=20)
    parser.add_argument("--present", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            proc, url = _start_server(tmp, "single", ["--memory"])
            procs.append(proc)
            print("median / p95 / max, ms")
            _report("one process", measure([url], [url], args.present, args.joins, False))
            if shutil.which("redis-server") is None:
                print("two processes + Redis: skipped (no redis-server on the PATH)")
                return
            redis, redis_url = _start_redis(tmp)
            procs.append(redis)
            common = ["--db", str(tmp / "shared.db"), "--redis", redis_url]
            urls = []
            for node in ("one", "two"):
                proc, url = _start_server(tmp, node, [*common, "--node", node,
                                                      "--idle-unload", "0"])  # fmt: skip
                procs.append(proc)
                urls.append(url)
            _report(
                "two processes + Redis, room open on both",
                measure(urls, urls, args.present, args.joins, False),
            )
            _report(
                "two processes + Redis, room opening on the joiner's",
                measure(urls[:1], urls[1:], args.present, args.joins, True),
            )
        finally:
            for proc in procs:
                proc.kill()
                proc.wait(10)


if __name__ == "__main__":
    main()
