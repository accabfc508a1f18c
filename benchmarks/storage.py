"""Commit latency and throughput of the relay's stores: SQLite (NORMAL and FULL) and, with
``--postgres URL``, PostgreSQL, driven as the relay's writer thread drives them.

    python benchmarks/storage.py                                   # SQLite only
    python benchmarks/storage.py --postgres postgresql://u@host/db  # and PostgreSQL

- latency: one update appended and committed, ``--commits`` times (a lone keystroke:
  the relay's worst case); p50 / p99 per commit.
- throughput: ``--batches`` batches of ``--batch`` updates over 4 rooms, one commit each
  (a busy relay's tick); updates committed per second.

The PostgreSQL database must be empty or a scratch one: the run adds rooms named
``bench-*`` and deletes them at the end. Figures are in docs/server.md, "Deployment:
several hosts".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import crdtsync  # noqa: E402
from crdtsync.server.relay import _write_batch  # noqa: E402
from crdtsync.server.storage import SQLiteStorage  # noqa: E402


def _keystrokes(n: int) -> list[bytes]:
    doc = crdtsync.Doc()
    out: list[bytes] = []
    doc.on_update(lambda update, origin: out.append(update))
    for i in range(n):
        doc.text("t").insert(i, "x")
    return out


def measure(storage: Any, commits: int, batches: int, batch: int) -> dict[str, float]:
    updates = _keystrokes(max(commits, batch))
    times = []
    for i in range(commits):
        started = time.perf_counter()
        _write_batch(storage, [("bench-latency", [updates[i]])])
        times.append(time.perf_counter() - started)
    times.sort()
    items = [(f"bench-tp{r}", updates[:batch]) for r in range(4)]
    started = time.perf_counter()
    for _ in range(batches):
        _write_batch(storage, [(room, ups[: batch // 4]) for room, ups in items])
    elapsed = time.perf_counter() - started
    for room in ["bench-latency", *(room for room, _ in items)]:
        storage.delete(room)
    return {
        "p50_ms": statistics.median(times) * 1000,
        "p99_ms": times[int(len(times) * 0.99)] * 1000,
        "updates_per_s": batches * (batch // 4) * 4 / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", help="also measure this PostgreSQL database")
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100, help="updates per commit")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for sync in ("NORMAL", "FULL"):
            storage = SQLiteStorage(Path(tmp) / f"{sync}.db", synchronous=sync)
            rows.append((f"SQLite synchronous={sync}", measure(storage, *_sizes(args))))
            storage.close()
            storage.close_thread()
    if args.postgres:
        from crdtsync.server.postgres import PostgresStorage, redact_url

        storage = PostgresStorage(args.postgres, node="bench")
        settings = {
            name: storage._conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("fsync", "synchronous_commit", "server_version")
        }
        storage._conn.rollback()
        label = f"PostgreSQL {settings['server_version']} ({redact_url(args.postgres)})"
        rows.append((label, measure(storage, *_sizes(args))))
        storage.close()
        storage.close_thread()
        print(f"PostgreSQL settings: {settings}")
    print("| store | commit p50 | commit p99 | updates/s in batches of", args.batch, "|")
    print("|---|---|---|---|")
    for label, r in rows:
        print(
            f"| {label} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['updates_per_s']:,.0f} |"
        )


def _sizes(args: argparse.Namespace) -> tuple[int, int, int]:
    return args.commits, args.batches, args.batch


if __name__ == "__main__":
    main()
