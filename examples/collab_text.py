"""Two or more terminals typing into one shared text, live, through ``crdtsync serve``.

Each terminal holds a replica of the room's document and edits its Text at once; every
keystroke is a small update (about 20 bytes) relayed to the others. Typing at the same
spot at the same time never interleaves letters, and everyone ends with the same text.
Each caret is a crdtsync cursor: it sticks to the character before it, so it stays put
while others type elsewhere, with no index arithmetic. Other people's carets come through
presence (ephemeral, never stored) as encoded cursors and show in reverse video; a caret
that names text this terminal has not received yet shows once the text arrives.
Undo (Ctrl-Z) and redo (Ctrl-Y) take back and redo only this terminal's own typing, never
anyone else's, and put the caret back where it was (see docs/editor.md).

Run it (from a checkout, after ``pip install -e '.[websocket]'``)::

    crdtsync serve --memory                            # terminal 1
    python examples/collab_text.py --name alice        # terminal 2
    python examples/collab_text.py --name bob          # terminal 3

Arrows, Home/End move; Backspace/Delete erase; Ctrl-Z undoes, Ctrl-Y redoes; Esc or
Ctrl-C quits. The screen counts display columns, as the terminal does: CJK characters and
most emoji take two, combining marks none (``unicodedata`` says which), so wide text lines
up and wraps whole.

``--type TEXT`` types TEXT without a terminal UI (keystroke by keystroke, at random places
with ``--scatter``), waits until the server has everything, then prints the shared text:
handy for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import curses
import random
import sys
import unicodedata
from typing import Any

import crdtsync
from crdtsync.sync import Presence
from crdtsync.transports import SyncClient
from crdtsync.transports.websocket import connect


def cell_width(ch: str) -> int:
    """Terminal columns ``ch`` takes: 2 for wide characters (CJK, most emoji), 0 for
    combining marks and other zero-width characters (they join the one before), else 1."""
    if unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def visible(ch: str) -> str:
    """What to draw for ``ch``: control characters (a remote tab...) would move the
    terminal's cursor, so they show as one "?"."""
    return "?" if unicodedata.category(ch) == "Cc" else ch


def clip(line: str, width: int) -> str:
    """``line`` cut or padded to exactly ``width`` columns (names may be wide too)."""
    out, used = [], 0
    for ch in line:
        w = cell_width(ch)
        if used + w > width:
            break
        out.append(visible(ch))
        used += w
    return "".join(out) + " " * (width - used)


def layout(text: str, width: int) -> list[tuple[int, int]]:
    """Screen (row, column) of every index 0..len(text), wrapping at ``width`` columns.

    Columns are display columns: a wide character takes two and moves to the next row
    whole rather than straddle the edge; a combining mark takes none and stays with the
    character it modifies (hence wrapping only when a character with a width arrives).

    >>> layout("日本a", 4)
    [(0, 0), (0, 2), (1, 0), (1, 1)]
    """
    spots, row, col = [], 0, 0
    for ch in text:
        if ch == "\n":
            spots.append((row, col))
            row, col = row + 1, 0
            continue
        w = cell_width(ch)
        if w and col + w > width:
            row, col = row + 1, 0
        spots.append((row, col))
        col += w
    spots.append((row, col))
    return spots


class Editor:
    def __init__(self, screen: Any, doc: crdtsync.Doc, presence: Presence, name: str) -> None:
        self.screen = screen
        self.doc = doc
        self.text = doc.text("text")
        self.presence = presence
        self.name = name
        #: The caret sticks to the character before it (side "before"): text others type
        #: at the caret goes after it, and their edits elsewhere move it along.
        self.caret = self.text.cursor(len(self.text), side="before")
        #: Others' carets as decoded from presence: replica -> (the bytes, the cursor).
        self.carets: dict[int, tuple[bytes, crdtsync.Cursor]] = {}
        self.dirty = asyncio.Event()
        self.client: SyncClient | None = None
        self.text.observe(lambda event: self.dirty.set())
        presence.on_change(lambda change: self.dirty.set())
        # Undo tracks this editor's own transactions (origin: the editor); each step keeps
        # the caret before and after it in its meta, as cursors anchored to the character
        # after the caret: undo puts back deleted characters as new ones, which a cursor
        # anchored to one of them would not follow.
        self.undo = crdtsync.UndoManager(self.text, tracked_origins={self})
        self.undo.on_item_added(self.remember)
        self.undo.on_item_updated(self.remember)
        self.undo.on_item_popped(self.restore)
        self.before, self.after = self.text.cursor(self.cursor), self.cursor
        self.publish()

    @property
    def cursor(self) -> int:
        """The caret's index now."""
        return self.caret.index

    def move(self, index: int) -> None:
        """Put the caret at ``index`` and tell the others."""
        self.caret = self.text.cursor(index, side="before")
        self.publish()

    def publish(self) -> None:
        # Sent again only when the caret moves here: an encoded cursor names a character,
        # so others' edits do not make it stale.
        self.presence.set_local({"name": self.name, "cursor": self.caret.encode()})

    def edit(self, index: int, delete: int = 0, insert: str = "") -> None:
        """A local edit, as one transaction with this editor as its origin; the caret
        then goes after what was inserted."""
        # For the undo step's meta (remember() runs as the transaction ends).
        self.before, self.after = self.text.cursor(self.cursor), index + len(insert)
        with self.doc.transaction(origin=self):
            if delete:
                self.text.delete(index, delete)
            if insert:
                self.text.insert(index, insert)
        self.move(self.after)

    def remember(self, event: crdtsync.UndoEvent) -> None:
        if event.origin is self:  # (a step made by an undo or a redo keeps its meta)
            event.item.meta.setdefault("before", self.before)
            event.item.meta["after"] = self.text.cursor(self.after)

    def restore(self, event: crdtsync.UndoEvent) -> None:
        kept = event.item.meta.get("before" if event.stack == "undo" else "after")
        if isinstance(kept, crdtsync.Cursor):
            self.move(kept.index)

    def remote_carets(self) -> dict[int, int]:
        """replica -> caret index, for the others whose caret can be placed here."""
        out: dict[int, int] = {}
        for replica, state in self.presence.states.items():
            if replica == self.presence.replica_id or not isinstance(state, dict):
                continue
            data = state.get("cursor")
            if not isinstance(data, bytes):
                continue
            known = self.carets.get(replica)
            if known is None or known[0] != data:
                try:
                    known = self.carets[replica] = (data, self.doc.decode_cursor(data))
                except LookupError:
                    continue  # names text not received yet: shown once it arrives
                except crdtsync.DecodeError:
                    continue
            if known[1].container is self.text:
                out[replica] = known[1].index
        return out

    def key(self, key: str | int) -> bool:
        """Handle one key; False to quit."""
        n, at = len(self.text), self.cursor
        if key in ("\x1b", "\x03"):
            return False
        if key == "\x1a":  # Ctrl-Z
            self.undo.undo()
        elif key == "\x19":  # Ctrl-Y
            self.undo.redo()
        elif key in (curses.KEY_BACKSPACE, "\x7f", "\x08"):
            if at > 0:
                self.edit(at - 1, delete=1)
        elif key == curses.KEY_DC:
            if at < n:
                self.edit(at, delete=1)
        elif key in ("\n", "\r", curses.KEY_ENTER):
            self.edit(at, insert="\n")
        elif isinstance(key, str) and key.isprintable():
            self.edit(at, insert=key)
        else:
            moved = self.moved(key)
            if moved is not None and moved != at:
                self.move(moved)
                self.undo.stop_capturing()  # typing elsewhere starts a new undo step
        self.dirty.set()
        return True

    def moved(self, key: str | int) -> int | None:
        """Where a movement key takes the caret; None for any other key."""
        content = str(self.text)
        if key == curses.KEY_LEFT:
            return self.step(-1)
        if key == curses.KEY_RIGHT:
            return self.step(1)
        if key in (curses.KEY_HOME, "\x01"):
            return content.rfind("\n", 0, self.cursor) + 1
        if key in (curses.KEY_END, "\x05"):
            end = content.find("\n", self.cursor)
            return len(content) if end < 0 else end
        if key in (curses.KEY_UP, curses.KEY_DOWN):
            return self.vertical(-1 if key == curses.KEY_UP else 1)
        return None

    def step(self, direction: int) -> int:
        """One character left or right, never stopping between a character and its
        combining marks (no column would show the difference)."""
        content, at = str(self.text), self.cursor + direction
        while 0 < at < len(content) and cell_width(content[at]) == 0:
            at += direction
        return max(0, min(len(content), at))

    def columns(self) -> int:
        # The last column stays free: curses cannot write the bottom-right cell, and the
        # cursor needs a place after a full row.
        return max(2, int(self.screen.getmaxyx()[1]) - 1)

    def vertical(self, step: int) -> int:
        spots = layout(str(self.text), self.columns())
        row, col = spots[self.cursor]
        same_col = [i for i, (r, c) in enumerate(spots) if r == row + step and c <= col]
        return same_col[-1] if same_col else self.cursor

    def draw(self) -> None:
        scr = self.screen
        height, width = scr.getmaxyx()
        scr.erase()
        others = {
            r: s
            for r, s in self.presence.states.items()
            if r != self.presence.replica_id and isinstance(s, dict)
        }
        status = "online" if self.client is not None and self.client.connected else "offline"
        names = ", ".join(sorted(str(s.get("name", "?")) for s in others.values())) or "nobody"
        header = f" {self.name} ({status}) - also here: {names} - Esc quits "
        scr.addstr(0, 0, clip(header, width - 1), curses.A_REVERSE)
        content = str(self.text)
        spots = layout(content, self.columns())
        top = max(0, spots[self.cursor][0] - (height - 3))
        rows: dict[int, list[str]] = {}
        for i, ch in enumerate(content):
            if ch != "\n":
                rows.setdefault(spots[i][0], []).append(visible(ch))
        for row, chars in rows.items():
            # A whole row in one call: the terminal then places wide characters and
            # combining marks itself, exactly where layout() counted them.
            if 0 <= row - top < height - 1:
                scr.addstr(row - top + 1, 0, "".join(chars))
        for at in self.remote_carets().values():
            if 0 <= at <= len(content):
                row, col = spots[at]
                if 0 <= row - top < height - 1 and col < width - 1:
                    if at < len(content) and content[at] != "\n":
                        scr.chgat(row - top + 1, col, max(1, cell_width(content[at])),
                                  curses.A_REVERSE)  # fmt: skip
                    else:
                        scr.addstr(row - top + 1, col, " ", curses.A_REVERSE)
        row, col = spots[self.cursor]
        scr.move(min(height - 1, row - top + 1), min(width - 1, col))
        scr.refresh()


async def interactive(screen: Any, args: argparse.Namespace) -> None:
    curses.raw()
    screen.nodelay(True)
    screen.keypad(True)
    doc = crdtsync.Doc()
    presence = Presence(doc.replica_id)
    editor = Editor(screen, doc, presence, args.name)
    loop = asyncio.get_running_loop()
    keys: asyncio.Queue[str | int] = asyncio.Queue()

    def readable() -> None:
        while True:
            try:
                keys.put_nowait(screen.get_wch())
            except curses.error:
                return  # no more input for now

    loop.add_reader(sys.stdin.fileno(), readable)
    client = await connect(args.url, doc, token=args.token, presence=presence, wait=False)
    editor.client = client
    try:
        running = True
        while running:
            editor.draw()
            get = asyncio.ensure_future(keys.get())
            changed = asyncio.ensure_future(editor.dirty.wait())
            done, _ = await asyncio.wait([get, changed], timeout=1.0,
                                         return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            editor.dirty.clear()
            changed.cancel()
            if get in done:
                running = editor.key(get.result())
                while running and not keys.empty():
                    running = editor.key(keys.get_nowait())
            else:
                get.cancel()
    finally:
        loop.remove_reader(sys.stdin.fileno())
        presence.set_local(None)  # tell the others we left
        await asyncio.sleep(0.05)
        await client.close()


async def scripted(args: argparse.Namespace) -> None:
    doc = crdtsync.Doc()
    text = doc.text("text")
    rng = random.Random()
    async with connect(args.url, doc, token=args.token) as client:
        await client.wait_synced(10)
        for ch in args.type:
            where = rng.randint(0, len(text)) if args.scatter else len(text)
            text.insert(where, ch)
            await asyncio.sleep(args.delay)
        await client.wait_synced(10)
        await asyncio.sleep(args.linger)  # let the others' last keystrokes arrive
        for _ in range(1000):  # --until-length: wait (at most 10 s) for the others
            if len(text) >= args.until_length:
                break
            await asyncio.sleep(0.01)
        await client.wait_synced(10)
        print(str(text))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8765/text", help="room URL")
    parser.add_argument("--name", default="anonymous")
    parser.add_argument("--token", help="access token, if the server wants one")
    parser.add_argument("--type", help="type this text without a UI, print the result")
    parser.add_argument("--scatter", action="store_true", help="with --type: random places")
    parser.add_argument("--delay", type=float, default=0.02, help="with --type: per key")
    parser.add_argument("--linger", type=float, default=0.5, help="with --type: wait at end")
    parser.add_argument(
        "--until-length", type=int, default=0, help="with --type: wait for this many characters"
    )
    args = parser.parse_args()
    if args.type is not None:
        asyncio.run(scripted(args))
    else:
        curses.wrapper(lambda screen: asyncio.run(interactive(screen, args)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
