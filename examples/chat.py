"""A chat room whose message log is a shared List, synced through ``crdtsync serve``.

Every message is appended to the List ``messages`` of the room's document; the relay
keeps the room, so someone who joins later sees the history, and someone who was offline
gets what they missed (and sends what they wrote meanwhile) when they reconnect. Messages
written at the same time by two people both stay, in the same order for everyone.

Run it (from a checkout, after ``pip install -e '.[websocket]'``), in three terminals::

    crdtsync serve --memory
    python examples/chat.py --name alice
    python examples/chat.py --name bob

Type a line and press Enter to send it; Ctrl-D or Ctrl-C leaves. ``--say TEXT`` (repeatable)
sends messages without reading the keyboard, prints the room's log and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import crdtsync
from crdtsync.transports.websocket import connect


def show(message: Any) -> str:
    if not isinstance(message, dict):
        return f"?? {message!r}"
    stamp = time.strftime("%H:%M:%S", time.localtime(float(message.get("ts", 0))))
    return f"[{stamp}] {message.get('from', '?')}: {message.get('text', '')}"


async def stdin_reader() -> asyncio.StreamReader:
    """stdin as an asyncio stream, so that reading it never blocks the sync (Unix)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8765/chat", help="room URL")
    parser.add_argument("--name", default="anonymous")
    parser.add_argument("--token", help="access token, if the server wants one")
    parser.add_argument("--say", action="append", help="send this message and exit")
    args = parser.parse_args()

    doc = crdtsync.Doc()
    messages = doc.list("messages")

    def on_change(event: crdtsync.ListEvent) -> None:
        # The event's delta says what was inserted where; print every new message, our
        # own included (they appear as they enter the log).
        for op in event.delta:
            for message in op.get("insert", []):
                print(show(message), flush=True)

    async with connect(args.url, doc, token=args.token) as client:
        await client.wait_synced(10)
        if not args.say:
            for message in list(messages)[-20:]:  # the recent history
                print(show(message))
            messages.observe(on_change)

        def send(text: str) -> None:
            messages.append({"from": args.name, "text": text, "ts": time.time()})

        if args.say:
            for text in args.say:
                send(text)
            await client.wait_synced(10)
            for message in messages:
                print(show(message))
            return 0

        print(f"-- joined {args.url} as {args.name}; type to chat, Ctrl-D to leave --")
        keyboard = await stdin_reader()
        while line := (await keyboard.readline()).decode(errors="replace"):
            if line.strip():
                send(line.rstrip("\n"))
        await client.wait_synced(5)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        sys.exit(130)
