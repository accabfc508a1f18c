"""Compaction from the relay's own document (``Storage.compact_with``): a room that only
this process writes is compacted by storing its document's state, not by rebuilding the
room from its log rows, and the store then loads to exactly that document; rows another
process wrote make it fall back to the rebuild."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from crdt_helpers import random_edit_all
from test_server_support import log_left_by_crashes, relay_server, run, wait_until

import crdtsync
from crdtsync.server import MemoryStorage, SQLiteStorage
from crdtsync.server.app import open_storage
from crdtsync.server.storage import build_doc
from crdtsync.transports.websocket import connect


def _storage(kind: str, request: pytest.FixtureRequest, tmp_path: Path, node: str) -> Any:
    if kind == "sqlite":
        return SQLiteStorage(tmp_path / "rooms.db", node=node)
    if kind == "postgres":
        return open_storage(request.getfixturevalue("postgres_url"), node=node)
    return MemoryStorage(node=node)


def _stored(storage: Any, room: str) -> crdtsync.Doc:
    return build_doc(storage.load(room).updates, max_pending=1024)


def _rebuilds(storage: Any) -> list[str]:
    """The rooms ``storage.compact`` (the rebuild from rows) is called for, from now on."""
    calls: list[str] = []
    real_compact = storage.compact

    def counted_compact(room: str) -> Any:
        calls.append(room)
        return real_compact(room)

    storage.compact = counted_compact
    return calls


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "memory"])
def test_a_room_only_this_process_writes_is_compacted_from_its_document(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    storage = _storage(kind, request, tmp_path, "one")
    rebuilds = _rebuilds(storage)

    async def body() -> None:
        async with relay_server(storage=storage, compact_rows=5) as (relay, url, _):
            doc = crdtsync.Doc()
            async with connect(f"{url}/live", doc) as client:
                rng = random.Random(5)
                for i in range(150):
                    random_edit_all(doc, rng)
                    if i % 3 == 0:
                        await client.wait_synced(5)
                await client.wait_synced(5)
                room = relay.rooms["live"]
                await wait_until(lambda: not room.compacting, what="compaction")
                loaded = storage.load("live")
                assert loaded.snapshot is not None and len(loaded.rows) < 150
                stored = _stored(storage, "live")
                assert stored.version == room.doc.version == doc.version
                assert stored.to_py() == doc.to_py()
                assert rebuilds == []  # every compaction stored the document's state

    run(body())


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "memory"])
def test_compact_with_refuses_rows_of_another_process_and_a_newer_snapshot(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    mine = _storage(kind, request, tmp_path, "one")
    other = mine if kind == "memory" else _storage(kind, request, tmp_path, "two")
    src = crdtsync.Doc()
    updates: list[bytes] = []
    src.on_update(lambda u, o: updates.append(u))
    for i in range(6):
        src.text("t").insert(i, "x")
    seqs = [mine.append("r", u) for u in updates[:3]]
    mine.commit()
    if kind == "memory":
        other.node = "two"  # (one MemoryStorage: rows it appends now are another node's)
    seqs += [other.append("r", u) for u in updates[3:]]
    other.commit()
    if kind == "memory":
        other.node = "one"
    before = mine.load("r")
    state = src.get_update()
    assert mine.compact_with("r", state, seqs[-1]) is None  # rows 4-6 are not ours
    assert mine.load("r") == before
    done = mine.compact_with("r", build_doc(updates[:3], max_pending=16).get_update(), seqs[2])
    assert done is not None and done.rows == 3  # ours only, all of them
    assert mine.compact_with("r", state, seqs[1]) is None  # the snapshot covers it already
    stored = _stored(mine, "r")
    assert str(stored.text("t")) == "x" * 6 and stored.version == src.version
    mine.close()
    if other is not mine:
        other.close()


def test_rows_of_another_process_make_the_relay_rebuild(tmp_path: Path) -> None:
    db = tmp_path / "rooms.db"
    log_left_by_crashes(db, "log", 40)
    storage = SQLiteStorage(db, node="next")
    rebuilds = _rebuilds(storage)

    async def body() -> None:
        async with relay_server(storage=storage, compact_rows=30) as (relay, url, _):
            reader = crdtsync.Doc()
            async with connect(f"{url}/log", reader) as client:
                await client.wait_synced(5)
                await wait_until(
                    lambda: bool(rebuilds) and not relay.rooms["log"].compacting,
                    5,
                    "compaction at load",
                )
                assert str(_stored(storage, "log").text("t")) == "x" * 40

    run(body())
