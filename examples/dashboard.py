"""A live dashboard fed by several sources through shared counters and a map.

Each source (a sensor, a service...) is its own replica: it bumps the shared counters
``events`` and ``errors`` and writes its latest reading under its name in the map
``readings``. Counters merge by adding everyone's increments, so no event is lost however
many sources count at once; the map keeps each source's last write. The viewer redraws
whenever the document changes.

Run it (from a checkout, after ``pip install -e '.[websocket]'``)::

    crdtsync serve --memory                                  # terminal 1
    python examples/dashboard.py view                        # terminal 2
    python examples/dashboard.py source --name boiler        # terminals 3, 4, ...
    python examples/dashboard.py source --name chiller --interval 0.2

or everything at once (three sources and the viewer in one process, for 10 seconds)::

    python examples/dashboard.py demo --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from typing import Any

import crdtsync
from crdtsync.transports.websocket import connect

DEFAULT_URL = "ws://127.0.0.1:8765/dashboard"


def reading(doc: crdtsync.Doc, name: str, value: float, failed: bool) -> None:
    """One report from a source: a single transaction, hence one update on the wire."""
    with doc.transaction():
        doc.counter("events").increment()
        if failed:
            doc.counter("errors").increment()
        doc.map("readings")[name] = {"value": round(value, 2), "ts": time.time()}


async def run_source(url: str, name: str, interval: float, count: int, token: str | None) -> None:
    doc = crdtsync.Doc()
    rng = random.Random(name)
    value = rng.uniform(10, 30)
    async with connect(url, doc, token=token) as client:
        sent = 0
        while count <= 0 or sent < count:
            value += rng.gauss(0, 0.5)
            reading(doc, name, value, failed=rng.random() < 0.05)
            sent += 1
            await asyncio.sleep(interval)
        await client.wait_synced(10)


def render(doc: crdtsync.Doc) -> str:
    now = time.time()
    lines = [
        f"events {doc.counter('events').value:>8}    errors {doc.counter('errors').value:>6}",
        "",
        f"{'source':<16}{'value':>10}{'age':>10}",
    ]
    readings: dict[str, Any] = dict(doc.map("readings"))
    for name in sorted(readings):
        entry = readings[name]
        if isinstance(entry, dict):
            age = now - float(entry.get("ts", now))
            lines.append(f"{name:<16}{entry.get('value', 0):>10}{age:>9.1f}s")
    return "\n".join(lines)


async def run_view(url: str, token: str | None, once: bool, seconds: float) -> None:
    doc = crdtsync.Doc()
    changed = asyncio.Event()
    doc.on_update(lambda update, origin: changed.set())
    async with connect(url, doc, token=token) as client:
        await client.wait_synced(10)
        if once:
            print(render(doc))
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds if seconds > 0 else None
        while deadline is None or loop.time() < deadline:
            # clear the screen, draw, then wait for a change (at most 5 redraws a second)
            sys.stdout.write("\x1b[2J\x1b[H" + render(doc) + "\n")
            sys.stdout.flush()
            changed.clear()
            with contextlib.suppress(TimeoutError):  # redraw anyway: the ages move on
                await asyncio.wait_for(changed.wait(), 1.0)
            await asyncio.sleep(0.2)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="room URL")
    parser.add_argument("--token", help="access token, if the server wants one")
    sub = parser.add_subparsers(dest="mode", required=True)
    source = sub.add_parser("source", help="report readings")
    source.add_argument("--name", required=True)
    source.add_argument("--interval", type=float, default=0.5, help="seconds between reports")
    source.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    view = sub.add_parser("view", help="show the dashboard")
    view.add_argument("--once", action="store_true", help="print it once and exit")
    view.add_argument("--seconds", type=float, default=0, help="stop after this long")
    demo = sub.add_parser("demo", help="three sources and a viewer in one process")
    demo.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    if args.mode == "source":
        await run_source(args.url, args.name, args.interval, args.count, args.token)
    elif args.mode == "view":
        await run_view(args.url, args.token, args.once, args.seconds)
    else:
        count = max(1, int(args.seconds / 0.1))
        sources = [
            run_source(args.url, name, 0.1, count, args.token)
            for name in ("boiler", "chiller", "pump")
        ]
        await asyncio.gather(*sources, run_view(args.url, args.token, False, args.seconds))
        await run_view(args.url, args.token, True, 0)  # the final state, once
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        sys.exit(130)
