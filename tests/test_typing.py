"""Static types users see: mypy --strict on a small program that uses the public API.

Each container's ``observe`` takes a callback for its own event type, so a type checker
catches a callback written for another container, and infers the event type of a lambda.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api", reason="mypy is not installed (pip install -e '.[dev]')")

REPO = Path(__file__).resolve().parents[1]

PROGRAM = textwrap.dedent(
    """
    import crdtsync

    doc = crdtsync.Doc()


    def on_text(event: crdtsync.TextEvent) -> None:
        print(event.delta, event.target.name, len(event.target))


    def on_counter(event: crdtsync.CounterEvent) -> None:
        print(event.delta + event.target.value)


    doc.text("t").observe(on_text)
    doc.counter("c").observe(on_counter)
    doc.list("l").observe(lambda e: print(e.delta, e.target.to_list()))
    doc.set("s").observe(lambda e: print(e.added | e.removed, e.target.to_set()))
    doc.map("m").observe(lambda e: print(sorted(e.keys_changed), dict(e.target)))
    doc.counter("c").observe(on_text)  # error: a Text callback on a Counter
    doc.set("s").observe(lambda e: print(e.delta))  # error: a SetEvent has no delta
    reveal_type(doc.text("t").observe)
    reveal_type(next(iter(doc.set("s"))))
    """
)


def _mypy(tmp_path: Path, name: str, source: str) -> tuple[str, str, int]:
    """mypy --strict on ``source`` saved as ``name``, against the checkout."""
    program = tmp_path / name
    program.write_text(source)
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nstrict = True\n\n[mypy-msgpack.*]\nignore_missing_imports = True\n")
    env_before = os.environ.get("MYPYPATH")
    os.environ["MYPYPATH"] = str(REPO)  # the checkout, whatever the install mode
    try:
        out, err, status = api.run(
            ["--config-file", str(config), "--cache-dir", str(tmp_path / "cache"), str(program)]
        )
    finally:
        if env_before is None:
            del os.environ["MYPYPATH"]
        else:
            os.environ["MYPYPATH"] = env_before
    return out, err, status


def test_observe_callbacks_are_typed_per_container(tmp_path: Path) -> None:
    out, err, status = _mypy(tmp_path, "program.py", PROGRAM)
    lines = PROGRAM.splitlines()
    found = {
        (lines[int(n) - 1].split("(")[0], kind)
        for n, kind in re.findall(r"program\.py:(\d+): (error|note)", out)
    }
    assert found == {
        ("doc.counter", "error"),
        ("doc.set", "error"),
        ("reveal_type", "note"),
    }, out + err
    assert out.count("Revealed type") == 2, out
    assert 'incompatible type "Callable[[TextEvent], None]"' in out
    assert '"SetEvent" has no attribute "delta"' in out
    assert "def (crdtsync.types.events.TextEvent)" in out
    # An ORSet yields its scalar element types (mypy folds bool into int).
    assert re.search(r'Revealed type is "None \| (bool \| )?int \| float \| str \| bytes"', out)
    assert status == 1


NESTED = textwrap.dedent(
    """
    import crdtsync

    doc = crdtsync.Doc()
    board = doc.map("board")
    reveal_type(board.text("title"))
    reveal_type(board.list("cards").append_container(crdtsync.LWWMap))
    reveal_type(board.map("meta").counter("votes").value)
    board.text("title").increment()  # error: a Text has no increment
    board.list("cards").observe_deep(lambda events: print([e.path for e in events]))
    """
)


def test_nested_children_are_typed(tmp_path: Path) -> None:
    out, err, status = _mypy(tmp_path, "nested.py", NESTED)
    revealed = re.findall(r'Revealed type is "([^"]+)"', out)
    assert revealed == [
        "crdtsync.types.text.Text",
        "crdtsync.types.lwwmap.LWWMap",
        "int",
    ], out + err
    errors = re.findall(r"nested\.py:(\d+): error: (.*)", out)
    assert [NESTED.splitlines()[int(n) - 1].split("(")[0] for n, _ in errors] == ["board.text"], out
    assert status == 1
