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

Offline: the chat starts and keeps working without the server. What you write while it is
away goes out when it is back. If you leave before that, nothing is lost: the chat says so
and keeps the unsent messages in a file (``--outbox``, by default one per name and room
under ``~/.local/state/crdtsync-chat/``); the next run with the same name and room sends
them. Exit status 0 means everything you wrote reached the server, or (interactive) was
kept; ``--say`` exits with 1 when its messages could only be kept.

Order: after an offline merge, messages written elsewhere may belong *before* ones already
on screen (the shared order is the same for everyone, but not the order they arrived in).
The chat then reprints the conversation from the first such message on, so that every
terminal shows the log in the same order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import crdtsync
from crdtsync.transports import ChannelClosed, SyncClient
from crdtsync.transports.websocket import connect


def show(message: Any) -> str:
    if not isinstance(message, dict):
        return f"?? {message!r}"
    stamp = time.strftime("%H:%M:%S", time.localtime(float(message.get("ts", 0))))
    return f"[{stamp}] {message.get('from', '?')}: {message.get('text', '')}"


class Conversation:
    """Keeps the terminal showing ``messages`` in the list's order."""

    def __init__(self, messages: crdtsync.List) -> None:
        self.messages = messages
        self.shown = 0  # the first `shown` entries of the list are on screen, in order

    def show_recent(self, count: int = 20) -> None:
        entries = list(self.messages)
        for message in entries[-count:]:
            print(show(message))
        self.shown = len(entries)

    def on_change(self, event: crdtsync.ListEvent) -> None:
        # Where does the change start? Everything before it is on screen as it should be.
        start = 0
        for op in event.delta:
            if "retain" not in op:
                break
            start += op["retain"]
        else:
            return  # nothing inserted or deleted
        entries = list(self.messages)
        if start < self.shown:
            # Inserted (or removed) above messages already printed: printing only the new
            # ones would leave this terminal in a different order from the others.
            print(f"-- messages merged in above; the conversation from #{start + 1} on: --")
        else:
            start = self.shown
        for message in entries[start:]:
            print(show(message), flush=True)
        self.shown = len(entries)


# ---- the outbox: unsent messages survive leaving while offline ------------------------------


def default_outbox(url: str, name: str) -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    room = hashlib.sha256(url.encode()).hexdigest()[:12]  # one file per room and name
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40]
    return state / "crdtsync-chat" / f"{safe}-{room}.crdt"


def load_outbox(doc: crdtsync.Doc, path: Path) -> bytes | None:
    """Put what an earlier run could not deliver into ``doc``; it goes out with the rest.

    The file holds that run's whole document. Applying it to this run's document (which
    has a fresh random replica id) makes its changes ordinary remote changes that the
    session sends on to the server; reusing the old id instead would be safe only with all
    of the state that id produced, which is what the file is, but a fresh id needs no such
    care."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc.apply_update(data)
    except crdtsync.DecodeError as exc:
        print(f"-- ignoring unreadable outbox {path}: {exc} --", file=sys.stderr)
        return None
    return data


def keep_unsent(doc: crdtsync.Doc, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = doc.get_update()
    with contextlib.suppress(FileNotFoundError, crdtsync.DecodeError):
        # Another run with the same name and room may have kept messages meanwhile.
        state = crdtsync.merge_updates([path.read_bytes(), state])
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(state)
    tmp.replace(path)  # never a half-written outbox


def clear_outbox(path: Path, loaded: bytes | None) -> None:
    # Only what this run loaded (and has now delivered) may go; if another run wrote the file
    # since, it holds messages of its own.
    with contextlib.suppress(FileNotFoundError):
        if loaded is not None and path.read_bytes() == loaded:
            path.unlink()


# ---- the chat ---------------------------------------------------------------------------------


async def settle(client: SyncClient, timeout: float) -> bool:
    """Wait until the server holds everything we have; False if it did not within
    ``timeout`` seconds (offline)."""
    try:
        await client.wait_synced(timeout)
    except TimeoutError:
        return False
    return True


async def stdin_reader() -> asyncio.StreamReader:
    """stdin as an asyncio stream, so that reading it never blocks the sync (Unix)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def watch_connection(client: SyncClient) -> None:
    """Say when the server goes away and comes back."""
    was = client.connected
    while True:
        await asyncio.sleep(0.1)
        if client.connected != was:
            was = client.connected
            note = "back online" if was else "connection lost; still writing offline"
            print(f"-- {note} --", flush=True)


async def chat(args: argparse.Namespace) -> int:
    outbox = Path(args.outbox) if args.outbox else default_outbox(args.url, args.name)
    doc = crdtsync.Doc()  # a fresh random replica id on every run
    loaded = load_outbox(doc, outbox)
    messages = doc.list("messages")
    mine: list[tuple[int, str]] = []  # (our counter once it was written, text)

    def send(text: str) -> None:
        messages.append({"from": args.name, "text": text, "ts": time.time()})
        mine.append((doc.version[doc.replica_id], text))

    client = await connect(args.url, doc, token=args.token, wait=False)
    done = False
    try:
        # A short first wait: offline, the chat starts anyway; history that comes in later is
        # merged into the screen like any other late message.
        online = await settle(client, min(args.wait, 3.0))
        if loaded is not None:
            note = "sent" if online else "will be sent once the server answers"
            print(f"-- messages kept by an earlier run ({outbox}) {note} --", file=sys.stderr)
        if args.say:
            for text in args.say:
                send(text)
            done = await settle(client, args.wait)
            for message in messages:
                print(show(message))
            return 0 if done else 1

        conversation = Conversation(messages)
        conversation.show_recent()
        messages.observe(conversation.on_change)
        state = "" if online else f"; offline for now ({args.url} does not answer)"
        print(f"-- joined {args.url} as {args.name}{state}; type to chat, Ctrl-D to leave --")
        sys.stdout.flush()
        watcher = asyncio.create_task(watch_connection(client))
        keyboard = await stdin_reader()
        while line := (await keyboard.readline()).decode(errors="replace"):
            if line.strip():
                send(line.rstrip("\n"))
        watcher.cancel()
        if not client.synced:
            print(f"-- waiting up to {args.wait:g} s for the server to take your messages --")
        done = await settle(client, args.wait)
        return 0
    except ChannelClosed as exc:  # the server refused us (bad token...): retrying is no use
        print(f"-- {args.url}: {exc} --", file=sys.stderr)
        return 2
    finally:
        # Also on Ctrl-C (the task is cancelled): decide from what the server acknowledged.
        done = done or client.synced
        acked = client.server_version.get(doc.replica_id, 0)
        await client.close()
        if done:
            clear_outbox(outbox, loaded)
        elif mine or loaded is not None:
            keep_unsent(doc, outbox)
            unsent = [text for counter, text in mine if counter > acked]
            what = f"{len(unsent)} message(s) you wrote" if unsent else "your messages"
            if loaded is not None:
                what += " (and those kept from before)"
            print(
                f"-- the server did not confirm {what}; nothing is lost: they are kept in "
                f"{outbox} and sent the next time you run chat.py --name {args.name} "
                f"--url {args.url}{f' --outbox {outbox}' if args.outbox else ''} --",
                file=sys.stderr,
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8765/chat", help="room URL")
    parser.add_argument("--name", default="anonymous")
    parser.add_argument("--token", help="access token, if the server wants one")
    parser.add_argument("--say", action="append", help="send this message and exit")
    parser.add_argument("--outbox", help="file for messages the server has not taken yet")
    parser.add_argument(
        "--wait", type=float, default=10.0, help="seconds to wait for the server at start and end"
    )
    args = parser.parse_args()
    return asyncio.run(chat(args))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
