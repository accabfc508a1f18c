"""Makes the format-1 fixtures in this folder with the code from BEFORE nested containers.

Not run by the test suite: its output is committed, and tests/test_format_compat.py checks
that today's code reads it. It made the files with crdtsync as of commit 0888c4b (the last
one before nesting and update format 2)::

    git worktree add /tmp/old 0888c4b
    PYTHONPATH=/tmp/old python tests/data/make_format1_fixtures.py tests/data
    git worktree remove /tmp/old

(it refuses to run with code that knows nested containers). What it writes:

``format1-rooms.db``
    A room store written by that version's server: a real ``Relay`` over WebSockets with
    ``SQLiteStorage``, and that version's clients. Room ``board`` is what three clients
    made concurrently (texts, lists, maps, sets and counters, with deletes and overwrites);
    the relay compacted it into a snapshot when it shut down. Then a server that is killed
    before it compacts (so the rows stay in the log) committed, through
    ``SQLiteStorage.append``/``commit`` as the relay's writer thread does, two more
    updates to ``board`` (rows after the snapshot) and one row per transaction of room
    ``flat`` (log rows only, no snapshot). The file is repacked afterwards with SQLite's
    ``VACUUM`` at 512-byte pages (the rows are the server's; smaller pages only keep the
    file small), and read back by that version's storage code once more.
``format1-update.bin``
    ``doc.get_update()`` of a document holding edits of two replicas, with deletes: a
    whole state, under 1 KiB, so not compressed (envelope ``C1 01``).
``format1-update-deflated.bin``
    The same for a larger document: a whole state of 1 KiB or more, which get_update()
    compresses (envelope ``C1 02``).
``format1-expected.txt``
    What that version read back from each of them (``repr`` of a dict, for
    ``ast.literal_eval``): per room and file, every root's value (Text -> str, List ->
    list, LWWMap -> dict, ORSet -> set, Counter -> int), and for each update file whether
    a document loaded from it gave back the same bytes (``reencodes``), and the same for
    each room's snapshot (``snapshots reencode``).
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import sys
import zlib
from pathlib import Path
from typing import Any

import crdtsync
from crdtsync import Doc
from crdtsync.server import Relay, SQLiteStorage
from crdtsync.server.storage import build_doc
from crdtsync.transports import websocket

ROOMS = ("board", "flat")


def values(doc: Doc) -> dict[str, Any]:
    """Every root's value, the way tests/test_format_compat.py's to_py() shows it."""
    out: dict[str, Any] = {}
    for name in sorted(doc.roots()):
        root = doc.roots()[name]
        if isinstance(root, crdtsync.Text):
            out[name] = str(root)
        elif isinstance(root, crdtsync.List):
            out[name] = list(root)
        elif isinstance(root, crdtsync.LWWMap):
            out[name] = dict(root.items())
        elif isinstance(root, crdtsync.ORSet):
            out[name] = set(root)
        else:
            out[name] = root.value
    return out


# ---- what the replicas do ---------------------------------------------------------------------


def board_edits(a: Doc, b: Doc, c: Doc) -> None:
    """Three replicas' edits of the board, some concurrent (made before any sync)."""
    with a.transaction():
        a.text("notes").insert(0, "Meeting notes: ship the wonderful release on Friday.")
        a.list("items").extend(["milk", 2, {"k": [1, 2.5]}, b"\x00\xff", None, True])
        a.map("settings")["theme"] = "light"
        a.map("settings")["font"] = {"size": 12, "family": "mono"}
        a.set("tags").add("draft")
        a.set("tags").add("review")
        a.counter("likes").increment(5)
    notes = a.text("notes")
    start = str(notes).index("wonderful ")
    notes.delete(start, len("wonderful "))  # a delete of typed text
    del a.list("items")[1]  # the 2
    a.map("settings")["theme"] = "dark"  # an overwrite
    b.text("notes").insert(0, "B: ")
    b.list("items").append("from b")
    b.map("settings")["lang"] = "fr"
    b.set("tags").add("urgent")
    b.counter("likes").decrement(2)
    c.map("settings")["tmp"] = 1
    c.counter("likes").increment()


def board_after(a: Doc, b: Doc, c: Doc) -> None:
    """Edits made once everyone is level: deletes of what others wrote."""
    del b.map("settings")["tmp"]  # c's key
    b.set("tags").discard("draft")  # a's element
    c.text("notes").delete(0, len("B: "))  # b's text
    del c.list("items")[0]  # "milk"
    a.set("tags").add("crdt")


def flat_edits(doc: Doc) -> None:
    doc.text("title").insert(0, "Flat room")
    doc.text("title").delete(0, len("Flat "))
    doc.list("l").extend([1, 2, 3])
    del doc.list("l")[0]
    doc.map("m")["gone"] = "soon"
    del doc.map("m")["gone"]
    doc.map("m")["kept"] = [1, "two", None]
    doc.set("s").add(3.5)
    doc.set("s").add(b"bytes")
    doc.counter("c").increment(7)


# ---- the room store ---------------------------------------------------------------------------


async def level(docs: list[Doc], clients: list[Any]) -> None:
    for _ in range(500):
        for client in clients:
            await client.wait_synced(10)
        if all(d.version == docs[0].version for d in docs):
            return
        await asyncio.sleep(0.01)
    raise RuntimeError("the clients did not converge")


async def make_store(path: Path) -> dict[str, Any]:
    storage = SQLiteStorage(path, node="fixture")
    relay = Relay(storage=storage, node="fixture")
    relay.start()
    server = await websocket.serve(relay, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    docs = [Doc(replica_id=101), Doc(replica_id=102), Doc(replica_id=103)]
    clients = [await websocket.connect(f"{url}/board", d) for d in docs]
    await level(docs, clients)
    board_edits(*docs)  # all before the loop turns: concurrent
    await level(docs, clients)
    board_after(*docs)
    await level(docs, clients)
    for client in clients:
        await client.close()
    server.close()
    await relay.close(timeout=10)  # compacts the rooms that changed, closes the storage
    await server.wait_closed()

    # A server killed before it compacts leaves what it committed as log rows: two more
    # updates to "board" after its snapshot, and room "flat" as log rows only.
    late = Doc(replica_id=104)
    late.apply_update(docs[0].get_update())
    rows: list[tuple[str, bytes]] = []
    late.on_update(lambda update, origin: rows.append(("board", update)))
    late.text("notes").insert(len(late.text("notes")), " (late)")
    with late.transaction():
        late.counter("likes").increment(10)
        late.map("settings")["font"] = {"size": 14}
        del late.list("items")[0]
    flat = Doc(replica_id=201)
    flat.on_update(lambda update, origin: rows.append(("flat", update)))
    flat_edits(flat)
    storage = SQLiteStorage(path, node="killed")
    for room, row in rows:
        storage.append(room, row)
    storage.commit()
    storage.close()

    expected = read_store(path)
    assert expected["board"] == values(late), "the store does not hold the replicas' state"
    assert expected["flat"] == values(flat)
    return expected


def read_store(path: Path) -> dict[str, Any]:
    storage = SQLiteStorage(path, node="reader")
    try:
        return {
            room: values(build_doc(storage.load(room).updates, max_pending=1024)) for room in ROOMS
        }
    finally:
        storage.close()


def snapshots_reencode(path: Path) -> dict[str, bool]:
    """Per room with a snapshot: whether a document loaded from it gives back its bytes."""
    storage = SQLiteStorage(path, node="reader")
    try:
        out = {}
        for room in ROOMS:
            snapshot = storage.load(room).snapshot
            if snapshot is not None:
                out[room] = build_doc([snapshot], max_pending=1024).get_update() == snapshot
        return out
    finally:
        storage.close()


def shrink(path: Path) -> None:
    gc.collect()  # the relay's worker threads' connections, which only collection closes
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA page_size=512")
        conn.execute("VACUUM")
        conn.execute("PRAGMA journal_mode=WAL")  # as the server left it
    conn.close()
    checkpoint(path)


def checkpoint(path: Path) -> None:
    """Everything into the main file, so that it alone is the store."""
    gc.collect()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()  # the last connection: SQLite removes the -wal and -shm files
    for suffix in ("-wal", "-shm"):
        assert not Path(f"{path}{suffix}").exists(), f"{path}{suffix} left behind"


# ---- the update files -------------------------------------------------------------------------


def small_doc() -> Doc:
    a, b = Doc(replica_id=7), Doc(replica_id=8)
    a.text("t").insert(0, "hello brave new world")
    a.text("t").delete(6, len("brave "))
    a.list("l").extend(["x", 1, 2.25, {"nested": ["dict", None]}, b"\x01"])
    del a.list("l")[1]
    a.map("m")["a"] = 1
    a.map("m")["b"] = "two"
    del a.map("m")["a"]
    a.set("s").add("red")
    a.set("s").add("green")
    a.counter("c").increment(3)
    b.apply_update(a.get_update())
    b.text("t").insert(0, ">> ")  # concurrent with a's next edits
    b.set("s").discard("red")
    b.counter("c").decrement()
    b.map("m")["b"] = "zwei"
    a.set("s").add("blue")
    a.map("m")["c"] = [True, False]
    a.apply_update(b.get_update(a.version))
    return a


def large_doc() -> Doc:
    a, b = Doc(replica_id=11), Doc(replica_id=12)
    words = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
    words += ("sed", "do")
    text = a.text("body")
    for i in range(300):
        text.insert(len(text), words[i % len(words)] + " ")
    text.delete(0, len("lorem ipsum "))
    a.list("log").extend([{"i": i, "w": words[i % len(words)]} for i in range(40)])
    del a.list("log")[5:10]
    for i in range(20):
        a.map("index")[f"k{i}"] = i * i
    for i in range(0, 20, 3):
        del a.map("index")[f"k{i}"]
    for w in words:
        a.set("words").add(w)
    a.set("words").discard("dolor")
    a.counter("n").increment(1000)
    b.apply_update(a.get_update())
    b.text("body").insert(0, "B: ")
    b.counter("n").decrement(1)
    b.set("words").add("extra")
    a.apply_update(b.get_update(a.version))
    return a


def write_update(path: Path, doc: Doc, compressed: bool) -> dict[str, Any]:
    data = doc.get_update()
    assert data[:2] == (b"\xc1\x02" if compressed else b"\xc1\x01"), data[:2]
    path.write_bytes(data)
    again = Doc()
    again.apply_update(data)
    info: dict[str, Any] = {"values": values(again), "reencodes": again.get_update() == data}
    assert info["values"] == values(doc)
    if compressed:
        body = zlib.decompress(data[2:])
        info["body_reencodes"] = zlib.decompress(again.get_update()[2:]) == body
    return info


def literal(value: Any, indent: str = "") -> str:
    """``repr(value)`` one dict item a line, sets sorted: the same text on every run."""
    if isinstance(value, dict) and value:
        inner = indent + "    "
        items = [f"{inner}{key!r}: {literal(v, inner)},\n" for key, v in value.items()]
        return "{\n" + "".join(items) + indent + "}"
    if isinstance(value, set) and value:
        return "{" + ", ".join(sorted(map(repr, value))) + "}"
    return repr(value)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
    if hasattr(Doc, "to_py") or hasattr(crdtsync.LWWMap, "text"):
        sys.exit("this is code with nested containers: run it with the code of 0888c4b")
    db = out / "format1-rooms.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    expected: dict[str, Any] = {"rooms": asyncio.run(make_store(db))}
    shrink(db)
    assert read_store(db) == expected["rooms"]
    expected["snapshots reencode"] = snapshots_reencode(db)
    checkpoint(db)
    expected["update"] = write_update(out / "format1-update.bin", small_doc(), False)
    expected["update-deflated"] = write_update(
        out / "format1-update-deflated.bin", large_doc(), True
    )
    (out / "format1-expected.txt").write_text(literal(expected) + "\n", encoding="utf-8")
    for name in sorted(p.name for p in out.glob("format1-*")):
        print(f"{name}: {(out / name).stat().st_size} bytes")
    print("re-encoding a loaded update gives the same bytes:", expected["update"]["reencodes"])


if __name__ == "__main__":
    main()
