"""`crdtsync rooms list|export|import|delete` on real SQLite files (and, for the main
commands, a real PostgreSQL database: ``db_url``), and the storage methods behind them
(``rooms()``, ``delete()``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_server_support import db_url  # noqa: F401 - fixture

import crdtsync
from crdtsync.cli import main
from crdtsync.server.app import open_storage
from crdtsync.server.rooms import IMPORT_NODE, to_json
from crdtsync.server.storage import MemoryStorage, SQLiteStorage

ROOT = Path(__file__).resolve().parents[1]  # this checkout, not an installed crdtsync


def _doc() -> crdtsync.Doc:
    doc = crdtsync.Doc()
    doc.text("title").insert(0, "groceries")
    doc.set("tags").add("b")
    doc.set("tags").add("a")
    doc.map("meta")["blob"] = b"\x00\xff"
    doc.list("items").append("milk")
    return doc


def _store(db: Path | str, room: str, *updates: bytes) -> None:
    storage = open_storage(str(db), node="test-server")
    for update in updates:
        storage.append(room, update)
    storage.commit()
    storage.close()


def _room_names(db: str) -> list[str]:
    storage = open_storage(db, node="test")
    try:
        return [info.name for info in storage.rooms()]
    finally:
        storage.close()
        storage.close_thread()


def _json_export(db: Path | str, room: str, capsys: pytest.CaptureFixture[str]) -> object:
    capsys.readouterr()
    assert main(["rooms", "export", room, "--json", "--db", str(db)]) == 0
    return json.loads(capsys.readouterr().out)


def test_export_import_round_trip(
    tmp_path: Path,
    db_url: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = db_url
    a = _doc()
    first = a.get_update()
    a.text("title").insert(0, "weekly ")
    _store(db, "team/notes", first, a.get_update(since=crdtsync.Doc().version))
    # compaction folds part of it into a snapshot: export merges snapshot and log
    storage = open_storage(db, node="")
    assert storage.compact("team/notes") is not None
    storage.close()
    storage.close_thread()
    b = crdtsync.Doc()
    b.apply_update(a.get_update())
    _store(db, "team/notes", b.get_update())

    out = tmp_path / "notes.update"
    assert main(["rooms", "export", "team/notes", "--out", str(out), "--db", db]) == 0
    exported = crdtsync.Doc()
    exported.apply_update(out.read_bytes())
    assert exported.to_py() == a.to_py()

    assert main(["rooms", "import", "copy", str(out), "--db", db]) == 0
    assert _json_export(db, "copy", capsys) == _json_export(db, "team/notes", capsys)
    assert _json_export(db, "copy", capsys) == {
        "title": "weekly groceries",
        "tags": ["a", "b"],
        "meta": {"blob": {"$base64": "AP8="}},
        "items": ["milk"],
    }
    # imported rows carry a node name no server uses (a Redis peer reads them as foreign)
    storage = open_storage(db, node="")
    assert storage.tail("copy", 0).rows  # tail() skips rows of its own node only
    storage.close()
    storage.close_thread()


def test_list(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    db = db_url
    update = _doc().get_update()
    _store(db, "b", update, update)
    _store(db, "a", update)
    capsys.readouterr()
    assert main(["rooms", "list", "--db", db]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["a", "b"]
    assert main(["rooms", "list", "--json", "--db", db]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["room"], r["log_rows"], r["bytes"]) for r in rows] == [
        ("a", 1, len(update)),
        ("b", 2, 2 * len(update)),
    ]


def test_delete_needs_yes(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    db = db_url
    _store(db, "keep", _doc().get_update())
    _store(db, "gone", _doc().get_update())
    assert main(["rooms", "delete", "gone", "--db", db]) == 2
    assert "--yes" in capsys.readouterr().err
    assert _room_names(db) == ["gone", "keep"]
    assert main(["rooms", "delete", "gone", "--yes", "--db", db]) == 0
    assert _room_names(db) == ["keep"]
    assert main(["rooms", "delete", "gone", "--yes", "--db", db]) == 2
    assert "no room 'gone'" in capsys.readouterr().err


def test_bad_update_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "rooms.db"
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not an update")
    assert main(["rooms", "import", "r", str(bad), "--db", str(db)]) == 2
    assert "bad.bin" in capsys.readouterr().err
    truncated = tmp_path / "cut.bin"
    truncated.write_bytes(_doc().get_update()[:-3])
    assert main(["rooms", "import", "r", str(truncated), "--db", str(db)]) == 2
    assert main(["rooms", "import", "r", str(tmp_path / "missing"), "--db", str(db)]) == 2
    assert SQLiteStorage(db).rooms() == []


@pytest.mark.parametrize("room", ["/lead", "a//b", "trail/", "a/../b", "nul\x00", "x" * 257])
def test_import_refuses_room_names_the_server_refuses(tmp_path: Path, room: str) -> None:
    update = tmp_path / "u.bin"
    update.write_bytes(_doc().get_update())
    assert main(["rooms", "import", room, str(update), "--db", str(tmp_path / "r.db")]) == 2


def test_missing_db_and_room(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.db"
    assert main(["rooms", "list", "--db", str(missing)]) == 2
    assert not missing.exists()  # not created by a read
    db = tmp_path / "rooms.db"
    _store(db, "a", _doc().get_update())
    assert main(["rooms", "export", "b", "--json", "--db", str(db)]) == 2
    assert "no room 'b'" in capsys.readouterr().err


def test_unreachable_postgres_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://app:hunter2@127.0.0.1:1/rooms"
    result = subprocess.run(
        [sys.executable, "-m", "crdtsync", "rooms", "list", "--db", url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2, result.stderr
    assert "hunter2" not in result.stderr and "app:***@127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_subprocess_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00" * 10)
    result = subprocess.run(
        [sys.executable, "-m", "crdtsync", "rooms", "import", "r", str(bad), "--db", "x.db"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_memory_storage_rooms_and_delete() -> None:
    storage = MemoryStorage(node=IMPORT_NODE)
    update = _doc().get_update()
    storage.append("b", update)
    storage.append("a", update)
    storage.claim("a", 7, "alice")
    storage.compact("b")
    infos = storage.rooms()
    assert [(i.name, i.log_rows, i.owners) for i in infos] == [("a", 1, 1), ("b", 0, 0)]
    assert infos[1].snapshot_bytes > 0
    assert storage.delete("a") == 2
    assert storage.delete("a") == 0
    assert [i.name for i in storage.rooms()] == ["b"]


def test_to_json_shapes() -> None:
    assert to_json({"s": {3, 1, 2}, "b": b"hi", "l": [(1, 2)]}) == {
        "s": [1, 2, 3],
        "b": {"$base64": "aGk="},
        "l": [[1, 2]],
    }


def test_works_beside_a_server_holding_the_write_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "rooms.db"
    _store(db, "a", _doc().get_update())
    server = SQLiteStorage(db, node="server")
    server.append("a", _doc().get_update())  # a write transaction in progress ...
    release = threading.Timer(0.3, server.commit)  # ... committed a moment later
    release.start()
    try:
        capsys.readouterr()
        assert main(["rooms", "list", "--json", "--db", str(db)]) == 0
        assert main(["rooms", "delete", "a", "--yes", "--db", str(db)]) == 0
    finally:
        release.join()
        server.close()
    assert SQLiteStorage(db).rooms() == []
