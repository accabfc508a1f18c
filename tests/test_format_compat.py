"""What crdtsync wrote before nested containers still loads, and flat documents still encode
to exactly the same format-1 bytes.

The fixtures in tests/data/ were made by tests/data/make_format1_fixtures.py with the code of
commit 0888c4b (before nesting; see that script): a room store written by that version's
``crdtsync serve`` storage (SQLite: a compacted room with log rows after its snapshot, and a
room of log rows only), two raw ``doc.get_update()`` files (plain and deflated), and what that
version read back from each (``format1-expected.txt``).
"""

from __future__ import annotations

import ast
import asyncio
import shutil
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import msgpack
import pytest
from test_server_support import relay_server, run

import crdtsync
from crdtsync import LWWMap
from crdtsync.server import SQLiteStorage
from crdtsync.server.storage import build_doc
from crdtsync.transports.websocket import connect

DATA = Path(__file__).resolve().parent / "data"
EXPECTED: dict[str, Any] = ast.literal_eval((DATA / "format1-expected.txt").read_text("utf-8"))
ROOMS = ("board", "flat")


def body(update: bytes) -> list[Any]:
    """The msgpack body of an update (inflated when the envelope says it is deflated)."""
    assert update[0] == 0xC1 and update[1] in (1, 2), update[:2]
    raw = zlib.decompress(update[2:]) if update[1] == 2 else update[2:]
    items: list[Any] = msgpack.unpackb(raw, raw=True, strict_map_key=False)
    return items


def is_format1(update: bytes) -> bool:
    return len(body(update)) in (3, 4)


def load(name: str) -> tuple[bytes, crdtsync.Doc]:
    data = (DATA / name).read_bytes()
    doc = crdtsync.Doc()
    doc.apply_update(data)
    return data, doc


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A copy of the old store (opening it writes to it)."""
    db = tmp_path / "rooms.db"
    shutil.copy(DATA / "format1-rooms.db", db)
    return db


# ---- the fixtures are what they claim -----------------------------------------------------------


def test_the_fixtures_are_format_1_and_small(store: Path) -> None:
    for name in ("format1-update.bin", "format1-update-deflated.bin"):
        data = (DATA / name).read_bytes()
        assert is_format1(data), name
    assert (DATA / "format1-update.bin").read_bytes()[:2] == b"\xc1\x01"
    assert (DATA / "format1-update-deflated.bin").read_bytes()[:2] == b"\xc1\x02"
    size = sum(p.stat().st_size for p in DATA.glob("format1-*"))
    with sqlite3.connect(store) as conn:  # the copy: a WAL database is written to on open
        snapshots = dict(conn.execute("SELECT room, data FROM snapshots"))
        rows = conn.execute("SELECT room, data FROM log ORDER BY seq").fetchall()
        schema = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    conn.close()
    assert set(snapshots) == {"board"}  # flat is log rows only
    assert {room for room, _ in rows} == {"board", "flat"}
    assert schema == ("1",)
    assert all(is_format1(bytes(data)) for data in [*snapshots.values(), *(d for _, d in rows)])
    assert size < 16_000
    assert not list(DATA.glob("*-wal")) + list(DATA.glob("*-shm"))


# ---- the update files -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["update", "update-deflated"])
def test_an_old_update_file_loads(name: str) -> None:
    _, doc = load(f"format1-{name}.bin")
    assert doc.to_py() == EXPECTED[name]["values"]
    assert doc.pending == 0


def test_old_update_content() -> None:
    # Spot checks written out here, not only read from the expected file.
    _, doc = load("format1-update.bin")
    assert str(doc.text("t")) == ">> hello new world"  # "brave " deleted, b's prefix kept
    assert list(doc.list("l")) == ["x", 2.25, {"nested": ["dict", None]}, b"\x01"]
    assert dict(doc.map("m")) == {"b": "zwei", "c": [True, False]}  # "a" deleted
    assert set(doc.set("s")) == {"green", "blue"}  # "red" removed
    assert doc.counter("c").value == 2
    assert set(doc.version) == {7, 8}  # the two replicas that made it


def test_a_flat_document_re_encodes_to_the_old_bytes() -> None:
    # The old code gave back its own bytes for a document loaded from them (checked when
    # the fixtures were made); today's code must give back the very same bytes.
    assert EXPECTED["update"]["reencodes"] is True
    data, doc = load("format1-update.bin")
    assert doc.get_update() == data
    # The deflated one: the same body (the compressed bytes depend on the zlib build).
    assert EXPECTED["update-deflated"]["body_reencodes"] is True
    data, doc = load("format1-update-deflated.bin")
    again = doc.get_update()
    assert again[:2] == b"\xc1\x02"
    assert zlib.decompress(again[2:]) == zlib.decompress(data[2:])
    # A delta of it is format 1 as well, and merging old updates keeps format 1.
    assert is_format1(doc.get_update({11: 1}))
    assert is_format1(crdtsync.merge_updates([data, (DATA / "format1-update.bin").read_bytes()]))


def test_new_edits_on_a_loaded_document() -> None:
    data, doc = load("format1-update.bin")
    peer = crdtsync.Doc()
    peer.apply_update(data)
    before = doc.version
    # Flat edits: still format 1.
    with doc.transaction():
        doc.text("t").insert(0, "new ")
        doc.set("s").add("red")
        del doc.list("l")[0]
        doc.counter("c").increment()
    flat = doc.get_update(before)
    assert is_format1(flat)
    peer.apply_update(flat)
    assert peer.to_py() == doc.to_py()
    # Nested edits on the old roots: format 2 from here on, and they merge with a peer's
    # concurrent edits of the old content.
    before = doc.version
    item = doc.list("l").append_container(LWWMap)
    item.text("title").insert(0, "nested")
    doc.map("m").text("note").insert(0, "a note")
    peer.text("t").insert(len(peer.text("t")), "!")
    peer.map("m")["b"] = "drei"
    nested = doc.get_update(before)
    assert len(body(nested)) == 5
    peer_diff = peer.get_update(doc.version)
    peer.apply_update(nested)
    doc.apply_update(peer_diff)
    assert doc.to_py() == peer.to_py()
    state = doc.to_py()
    assert state["t"] == "new >> hello new world!"
    assert state["l"][-1] == {"title": "nested"}
    assert state["m"] == {"b": "drei", "c": [True, False], "note": "a note"}
    assert state["s"] == {"green", "blue", "red"} and state["c"] == 3


# ---- the room store ---------------------------------------------------------------------------


def test_the_old_store_loads_through_the_storage_code(store: Path) -> None:
    storage = SQLiteStorage(store, node="new")
    try:
        for room in ROOMS:
            loaded = storage.load(room)
            assert (loaded.snapshot is not None) == (room == "board")
            assert loaded.rows  # log rows after the snapshot, or only log rows
            doc = build_doc(loaded.updates, max_pending=1024)
            assert doc.pending == 0
            assert doc.to_py() == EXPECTED["rooms"][room], room
        # Re-encoding the old snapshot gives its bytes back, as the old code did.
        assert EXPECTED["snapshots reencode"] == {"board": True}
        snapshot = storage.load("board").snapshot
        assert snapshot is not None
        assert build_doc([snapshot], max_pending=1024).get_update() == snapshot
    finally:
        storage.close()


def test_old_room_content() -> None:
    board = EXPECTED["rooms"]["board"]
    assert board["notes"] == "Meeting notes: ship the release on Friday. (late)"
    assert board["items"] == [b"\x00\xff", None, True, "from b"]
    assert board["settings"] == {"font": {"size": 14}, "theme": "dark", "lang": "fr"}
    assert board["tags"] == {"crdt", "review", "urgent"} and board["likes"] == 14
    assert EXPECTED["rooms"]["flat"] == {
        "c": 7,
        "l": [2, 3],
        "m": {"kept": [1, "two", None]},
        "s": {3.5, b"bytes"},
        "title": "room",
    }


def test_the_old_store_serves_its_rooms_and_takes_nested_edits(store: Path) -> None:
    async def reader(url: str, room: str) -> dict[str, Any]:
        doc = crdtsync.Doc()
        async with connect(f"{url}/{room}", doc) as client:
            await client.wait_synced(10)
            return doc.to_py()

    async def first() -> dict[str, Any]:
        # compact_rows=1: the relay folds the old rows and the new nested ones into a
        # snapshot of its own while the client edits.
        storage = SQLiteStorage(store, node="upgraded")
        async with relay_server(storage=storage, compact_rows=1) as (relay, url, _):
            for room in ROOMS:
                assert await reader(url, room) == EXPECTED["rooms"][room]
            doc = crdtsync.Doc()
            async with connect(f"{url}/board", doc) as client:
                await client.wait_synced(10)
                assert relay.rooms["board"].doc.to_py() == EXPECTED["rooms"]["board"]
                # New nested content in the old roots, and old content edited.
                card = doc.list("items").append_container(LWWMap)
                card.text("title").insert(0, "first nested card")
                card.counter("votes").increment(2)
                doc.map("settings").map("editor").set("plugins").add("vim")
                doc.text("notes").insert(0, "Upgraded. ")
                doc.set("tags").discard("review")
                await client.wait_synced(10)
                await asyncio.sleep(0.05)
            return doc.to_py()

    expected = run(first())
    assert expected["items"][-1] == {"title": "first nested card", "votes": 2}
    assert expected["settings"]["editor"] == {"plugins": {"vim"}}
    assert expected["notes"].startswith("Upgraded. Meeting notes")

    async def second() -> None:
        # After a restart: the old content and the new nested content, from SQLite.
        async with relay_server(storage=SQLiteStorage(store, node="again")) as (_, url, _tcp):
            assert await reader(url, "board") == expected
            assert await reader(url, "flat") == EXPECTED["rooms"]["flat"]

    run(second())
    storage = SQLiteStorage(store, node="check")
    try:
        loaded = storage.load("board")
        assert build_doc(loaded.updates, max_pending=1024).to_py() == expected
        assert isinstance(build_doc(loaded.updates, max_pending=1024).list("items")[-1], LWWMap)
    finally:
        storage.close()
