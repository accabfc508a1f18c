"""PostgresStorage against a real PostgreSQL server (the session's own cluster, see
tests/conftest.py): the log + snapshot + compaction contract SQLiteStorage keeps, checked on
both, and what sharing one database between processes on several hosts adds (atomic claims,
per-room seqs that commit in order, no deadlock between batches, reconnecting)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from test_server_support import db_url  # noqa: F401 - fixture

import crdtsync
from crdtsync.server.app import ConfigError, open_storage
from crdtsync.server.postgres import PostgresStorage, redact_url
from crdtsync.server.relay import _write_batch
from crdtsync.server.storage import SQLiteStorage

Opener = Callable[[str], Any]  # node name -> a storage on the test's one database
S = TypeVar("S", bound=SQLiteStorage | PostgresStorage)


def _closed_after(make: Callable[[str], S]) -> Iterator[Callable[[str], S]]:
    """A fixture's body: ``make`` (one storage per simulated process), and every storage it
    made closed when the test is done."""
    opened: list[S] = []

    def open_one(node: str) -> S:
        storage = make(node)
        opened.append(storage)
        return storage

    yield open_one
    for storage in opened:
        storage.close()
        storage.close_thread()


@pytest.fixture
def opener(db_url: str) -> Iterator[Opener]:  # noqa: F811
    """Opens storages on one shared database (one per simulated process), closed at the end."""
    yield from _closed_after(lambda node: open_storage(db_url, node=node))


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Callable[[str], PostgresStorage]]:
    yield from _closed_after(lambda node: PostgresStorage(postgres_url, node=node))


def _edits(n: int, text: str = "t") -> tuple[crdtsync.Doc, list[bytes]]:
    """A document and its ``n`` one-character edits, one update each."""
    doc = crdtsync.Doc()
    updates: list[bytes] = []
    doc.on_update(lambda update, origin: updates.append(update))
    for i in range(n):
        doc.text(text).insert(i, "abcdefghij"[i % 10])
    return doc, updates


def _state(storage: Any, room: str) -> str:
    doc = crdtsync.Doc()
    for update in storage.load(room).updates:
        doc.apply_update(update)
    return str(doc.text("t"))


# ---- the contract, on both stores ------------------------------------------------------------


def test_log_round_trip_and_seqs_grow(opener: Opener) -> None:
    one = opener("one")
    doc, updates = _edits(5)
    seqs = [one.append("r", u) for u in updates[:3]]
    one.append("other", updates[0])
    one.commit()
    seqs += [one.append("r", u) for u in updates[3:]]
    one.commit()
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    loaded = opener("reader").load("r")
    assert [seq for seq, _ in loaded.rows] == seqs
    assert loaded.last_seq == seqs[-1] and loaded.snapshot is None
    assert _state(one, "r") == str(doc.text("t"))


def test_tail_skips_own_rows_and_brings_a_later_snapshot(opener: Opener) -> None:
    one, two = opener("one"), opener("two")
    doc, updates = _edits(6)
    for update in updates[:2]:
        one.append("r", update)
    one.commit()
    mark = two.load("r").last_seq
    two.append("r", updates[2])
    two.commit()
    one.append("r", updates[3])
    one.commit()
    tail = two.tail("r", mark)
    assert [data for _, data in tail.rows] == [updates[3]]  # its own row skipped
    assert tail.last_seq == one.load("r").last_seq and tail.snapshot is None
    result = one.compact("r")
    assert result is not None and result.rows == 4
    for update in updates[4:]:
        one.append("r", update)
    one.commit()
    tail = two.tail("r", mark)
    assert tail.snapshot is not None and len(tail.rows) == 2
    assert _state(two, "r") == str(doc.text("t"))
    assert one.compact("r") is not None and one.compact("r") is None  # nothing left to fold


def test_compaction_loses_nothing_appended_concurrently_by_another_process(
    opener: Opener,
) -> None:
    writer, compactor = opener("writer"), opener("compactor")
    doc, updates = _edits(200)
    first, done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(0, len(updates), 4):
                _write_batch(writer, [("r", updates[i : i + 4])])
                first.set()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            first.set()
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    first.wait()
    # The first compaction has the first batch to fold at least (nobody else compacts);
    # the writer goes on meanwhile.
    assert compactor.compact("r") is not None
    while not done.is_set():
        compactor.compact("r")
    thread.join()
    compactor.close_thread()
    assert not errors
    compactor.compact("r")
    assert _state(opener("reader"), "r") == str(doc.text("t"))


def test_rooms_and_delete(opener: Opener) -> None:
    one = opener("one")
    _, updates = _edits(3)
    for update in updates:
        one.append("a", update)
    one.append("b", updates[0])
    assert one.claim("b", 7, "alice") == "alice"
    one.commit()
    one.compact("a")
    infos = {info.name: info for info in one.rooms()}
    assert sorted(infos) == ["a", "b"]
    assert infos["a"].log_rows == 0 and infos["a"].snapshot_bytes > 0
    assert infos["b"].log_rows == 1 and infos["b"].owners == 1
    assert infos["b"].log_bytes == len(updates[0])
    last = one.load("b").last_seq
    assert one.delete("b") == 2 and one.delete("b") == 0
    assert [info.name for info in one.rooms()] == ["a"]
    # A server still holding the room compares seqs: they never repeat.
    assert one.append("b", updates[1]) > last
    one.commit()


# ---- what several hosts on one PostgreSQL database add ---------------------------------------


def test_claim_is_atomic_across_processes(pg: Callable[[str], PostgresStorage]) -> None:
    stores = [pg(f"n{i}") for i in range(6)]
    answers: list[str] = []
    barrier = threading.Barrier(len(stores))

    def claim(i: int) -> None:
        barrier.wait()
        answers.append(stores[i].claim("r", 2**64 - 1, f"user{i}"))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(answers)) == 1, answers  # one winner, whom everyone sees
    assert stores[0].load("r").owners == {2**64 - 1: answers[0]}


def test_batches_in_opposite_room_orders_do_not_deadlock(
    pg: Callable[[str], PostgresStorage],
) -> None:
    one, two = pg("one"), pg("two")
    _, updates = _edits(2)
    errors: list[BaseException] = []

    def write(storage: PostgresStorage, rooms: list[str]) -> None:
        try:
            for _ in range(100):
                _write_batch(storage, [(room, updates[:1]) for room in rooms])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(one, ["a", "b", "c"])),
        threading.Thread(target=write, args=(two, ["c", "b", "a"])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for room in "abc":
        assert [seq for seq, _ in one.load(room).rows] == list(range(1, 201))


def test_a_lost_connection_fails_the_commit_then_reconnects(
    pg: Callable[[str], PostgresStorage], postgres_url: str
) -> None:
    import psycopg

    one = pg("one")
    _, updates = _edits(3)
    one.append("r", updates[0])
    one.commit()
    one.append("r", updates[1])
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'crdtsync one' AND pid <> pg_backend_pid()"
        )
    with pytest.raises(psycopg.OperationalError):
        one.commit()
    assert one.claim("r", 5, "bob") == "bob"  # its connection is gone too: deferred
    one.append("r", updates[2])
    one.commit()
    loaded = pg("reader").load("r")
    assert [data for _, data in loaded.rows] == [updates[0], updates[2]]
    assert loaded.owners == {5: "bob"}


def test_bad_url_is_a_config_error_without_the_password() -> None:
    url = "postgresql://app:hunter2@127.0.0.1:1/rooms"
    with pytest.raises(ConfigError) as info:
        open_storage(url, node="x")
    assert "hunter2" not in str(info.value) and "app:***@127.0.0.1:1" in str(info.value)
    assert redact_url("postgres:///rooms?password=hunter2&host=/run") == (
        "postgres:///rooms?password=***&host=/run"
    )
    result = subprocess.run(
        [sys.executable, "-m", "crdtsync", "serve", "--db", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "hunter2" not in result.stderr and "cannot use the database" in result.stderr


def test_sqlite_paths_stay_sqlite(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "x?y#z.db"), node="x")
    assert isinstance(storage, SQLiteStorage) and storage.path.name == "x?y#z.db"
    storage.close()


def test_a_claim_behind_a_row_lock_waits_for_the_next_commit(
    pg: Callable[[str], PostgresStorage], postgres_url: str
) -> None:
    import psycopg

    one = pg("one")
    with psycopg.connect(postgres_url) as other:  # a transaction holding the id's row
        other.execute("INSERT INTO crdtsync_replicas VALUES ('r', '9', 'carol')")
        assert one.claim("r", 9, "dave") == "dave"  # the loop did not wait for carol's
        other.commit()
    assert one.claim("r", 9, "erin") == "dave"  # pending: the same answer until committed
    one.commit()  # ... where the first committed claim wins
    assert pg("reader").load("r").owners == {9: "carol"}
    assert one.claim("r", 9, "erin") == "carol"
