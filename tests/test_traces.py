"""Replay real editing traces (josephg/editing-traces) into a Text.

The traces live in ``shared/traces`` beside the repository clone, or wherever the
``CRDTSYNC_TRACES`` environment variable points (the folder that holds ``sequential/``, or the
``shared`` folder above it).
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

import crdtsync


def traces_dir() -> Path | None:
    env = os.environ.get("CRDTSYNC_TRACES")
    candidates = [Path(env), Path(env) / "traces"] if env else []
    here = Path(__file__).resolve()
    candidates.append(here.parents[2] / "shared" / "traces")
    candidates.append(here.parents[1] / "shared" / "traces")
    for c in candidates:
        if (c / "sequential").is_dir():
            return c
    return None


TRACES = traces_dir()
NAMES = ["friendsforever_flat", "clownschool_flat", "automerge-paper"]


def load(name: str) -> dict:
    if TRACES is None:
        pytest.skip(
            "editing traces not found: set CRDTSYNC_TRACES to the folder holding sequential/, "
            "or place shared/traces beside the repository"
        )
    path = TRACES / "sequential" / f"{name}.json.gz"
    if not path.exists():
        pytest.skip(f"trace {path} missing")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("name", NAMES)
def test_replay_trace(name):
    trace = load(name)
    doc = crdtsync.Doc(1)
    text = doc.text("text")
    updates = 0

    def count(update, origin):
        nonlocal updates
        updates += 1

    doc.on_update(count)
    start = trace["startContent"]
    if start:
        text.insert(0, start)
    base = updates
    for txn in trace["txns"]:
        with doc.transaction():
            for pos, n_del, ins in txn["patches"]:
                if n_del:
                    text.delete(pos, n_del)
                if ins:
                    text.insert(pos, ins)
    expected = trace["endContent"]
    assert len(text) == len(expected)
    assert str(text) == expected
    assert updates - base == sum(1 for t in trace["txns"] if t["patches"])

    state = doc.get_update()
    copy = crdtsync.Doc(2)
    copy.apply_update(state)
    assert str(copy.text("text")) == expected
    assert copy.version == doc.version
    # the loaded copy keeps working: edit it and send the change back
    copy.text("text").insert(len(expected) // 2, "<merged>")
    doc.apply_update(copy.get_update(doc.version))
    assert str(text) == expected[: len(expected) // 2] + "<merged>" + expected[len(expected) // 2 :]
