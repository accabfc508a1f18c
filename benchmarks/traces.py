"""Editing traces: loading them and the plain-``str`` replay that serves as their oracle.

The traces live beside the repository in ``../shared/traces`` (or the folder named by the
``CRDTSYNC_TRACES`` environment variable, as for the test suite). Format (gzipped JSON)::

    {startContent: "", endContent: "...", txns: [{patches: [[pos, nDel, insStr], ...]}]}

Positions and lengths count Unicode code points, so they are Python ``str`` indices.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TRACES_DIR = Path(os.environ.get("CRDTSYNC_TRACES", REPO_ROOT.parent / "shared" / "traces"))
DEFAULT_TRACE = TRACES_DIR / "sequential" / "automerge-paper.json.gz"

Patch = tuple[int, int, str]  # (position, characters deleted, text inserted)


@dataclass(frozen=True)
class Trace:
    name: str
    start: str
    end: str
    # One inner list per transaction of the original history (one patch each for B4).
    txns: list[list[Patch]]

    @property
    def patch_count(self) -> int:
        return sum(len(txn) for txn in self.txns)

    @property
    def is_ascii(self) -> bool:
        """True if every inserted string is ASCII (code points and UTF-8 bytes agree)."""
        return self.start.isascii() and all(ins.isascii() for txn in self.txns for _, _, ins in txn)


def trace_files(directory: Path = TRACES_DIR) -> list[Path]:
    """Every ``*.json.gz`` trace under ``directory``, sorted; empty if it does not exist."""
    return sorted(directory.rglob("*.json.gz")) if directory.is_dir() else []


def trace_name(path: Path) -> str:
    return path.name.removesuffix(".json.gz")


def load_trace(path: Path, limit: int | None = None) -> Trace:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        data = json.load(f)
    txns = [[(int(p[0]), int(p[1]), str(p[2])) for p in txn["patches"]] for txn in data["txns"]]
    start: str = data["startContent"]
    end: str = data["endContent"]
    if limit is not None and limit < len(txns):
        txns = txns[:limit]
        # A prefix has no recorded end state; the plain-string replay is the oracle.
        end = replay_str(start, txns)
    return Trace(path.name, start, end, txns)


def replay_str(start: str, txns: Sequence[Sequence[Patch]], repeat: int = 1) -> str:
    """Apply the patches to a plain string: the floor for any pure-Python replay."""
    s = start
    for _ in range(repeat):
        for txn in txns:
            for pos, ndel, ins in txn:
                s = s[:pos] + ins + s[pos + ndel :]
    return s


def utf8_txns(start: str, txns: Sequence[Sequence[Patch]]) -> list[list[Patch]]:
    """The same patches with positions and lengths in UTF-8 bytes (what pycrdt's Text counts).

    Quadratic in the text length; only needed for traces that insert non-ASCII text.
    """
    s = start
    out: list[list[Patch]] = []
    for txn in txns:
        converted: list[Patch] = []
        for pos, ndel, ins in txn:
            byte_pos = len(s[:pos].encode("utf-8"))
            byte_del = len(s[pos : pos + ndel].encode("utf-8"))
            converted.append((byte_pos, byte_del, ins))
            s = s[:pos] + ins + s[pos + ndel :]
        out.append(converted)
    return out
