"""Load test of the relay: N clients typing into one room through ``crdtsync serve``.

    python benchmarks/load.py                          # 100 clients x 10 edits/s x 30 s
    python benchmarks/load.py --clients 20 --rate 5 --seconds 10
    python benchmarks/load.py --url ws://host:8765     # against a running server

Starts ``crdtsync serve`` (SQLite in a temporary directory, so every edit is stored before
it is acknowledged) on a free port, unless ``--url`` is given. The clients run in
``--procs`` worker processes (asyncio, one WebSocket connection each) so that the
clients' own CPU does not hide the server's limits. Every client types on a fixed schedule
(R single-character inserts or backspaces per second, each one change taking one counter),
so the time every change was made is known; each client watches ``--watch`` other clients
and records when each of their changes arrived. Reported:

- edits/s carried: changes the relay accepted and fanned out, per second of typing, and the
  deliveries (one change reaching one client) per second that this implies;
- propagation latency p50/p99/max: from a change being made to it being integrated by a
  watching client (through the relay), over all watched pairs;
- how long the last changes took to reach everyone after typing stopped (drain);
- the server's peak RSS (VmHWM) and CPU time;
- that every client ends with the same text (the run fails otherwise).

Client and server share the machine: on a small one the clients compete with the relay
for CPU, which shows in the latency figures.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing as mp
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import crdtsync  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- worker process --------------------------------------------------------------------------


def _timer(
    doc: crdtsync.Doc,
    watch: dict[int, int],
    got: list[tuple[int, int, float]],
    received: list[int],
) -> Any:
    """An on_update listener noting when each watched replica's next counters arrive, and
    counting the remote updates (in ``received[0]``)."""

    def on_update(update: bytes, origin: Any) -> None:
        if origin is None:
            return  # a local edit
        received[0] += 1
        now = time.monotonic()
        vv = doc._vv  # a read-only peek: cheaper than doc.version on every update
        for r, nxt in watch.items():
            held = vv.get(r, 0)
            while nxt <= held:
                got.append((r, nxt, now))
                nxt += 1
            watch[r] = nxt

    return on_update


def _random_edit(text: crdtsync.Text, r: random.Random) -> None:
    """One character typed or deleted anywhere: every keystroke starts a run of its own."""
    n_chars = len(text)
    if n_chars and r.random() < 0.1:
        text.delete(r.randrange(n_chars))
    else:
        text.insert(r.randint(0, n_chars), r.choice("abcdefghij"))


def _typing() -> Any:
    """A typist at a cursor that follows everyone's edits: mostly the next character,
    sometimes a backspace, now and then a click somewhere else (as the editing traces
    show people work)."""
    cursor: crdtsync.Cursor | None = None

    def keystroke(text: crdtsync.Text, r: random.Random) -> None:
        nonlocal cursor
        n_chars = len(text)
        jump = cursor is None or r.random() < 0.02
        at = r.randint(0, n_chars) if jump or cursor is None else cursor.index
        if at and r.random() < 0.1:
            text.delete(at - 1)
            at -= 1
        else:
            text.insert(at, r.choice("abcdefghij"))
            at += 1
        # The cursor sticks to the character before it: what others type there goes after.
        cursor = text.cursor(at, side="before") if at else text.cursor(0)

    return keystroke


async def run_clients(
    cfg: dict[str, Any], first: int, count: int, replica_ids: list[int]
) -> dict[str, Any]:
    from crdtsync.transports.websocket import connect

    n, rate, seconds = cfg["clients"], cfg["rate"], cfg["seconds"]
    edits = int(rate * seconds)
    url = f"{cfg['url']}/{cfg['room']}"
    docs = [crdtsync.Doc(replica_id=replica_ids[first + i]) for i in range(count)]
    rng = random.Random(first)
    # each client watches `watch` other clients: (their replica) -> next counter awaited
    watches: list[dict[int, int]] = []
    arrivals: list[list[tuple[int, int, float]]] = []  # (replica, counter, monotonic time)
    received = [0]  # remote updates integrated, all clients together
    for doc in docs:
        others = [r for r in replica_ids if r != doc.replica_id]
        chosen = rng.sample(others, min(cfg["watch"], len(others)))
        watch = {r: 1 for r in chosen}
        watches.append(watch)
        got: list[tuple[int, int, float]] = []
        arrivals.append(got)
        doc.on_update(_timer(doc, watch, got, received))
    clients = []
    for doc in docs:
        clients.append(await connect(url, doc, open_timeout=30))
        await asyncio.sleep(0.005)  # do not stampede the server's accept queue
    start = cfg["start"]
    while time.monotonic() < start - 0.01:
        await asyncio.sleep(min(0.05, start - time.monotonic()))
    sent: list[list[float]] = [[] for _ in docs]  # when each counter was made
    lag = 0.0

    async def typist(i: int) -> None:
        nonlocal lag
        text = docs[i].text("t")
        r = random.Random(first + i)
        keystroke = _typing() if cfg["pattern"] == "typing" else _random_edit
        offset = r.random() / rate  # spread the clients over the period
        for k in range(edits):
            due = start + offset + k / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                lag = max(lag, -delay)
            keystroke(text, r)
            sent[i].append(time.monotonic())

    await asyncio.gather(*(typist(i) for i in range(count)))
    typed_end = time.monotonic()
    total = n * edits
    deadline = time.monotonic() + cfg["drain_timeout"]
    while time.monotonic() < deadline:
        if all(sum(d._vv.values()) == total for d in docs) and all(c.synced for c in clients):
            break
        await asyncio.sleep(0.02)
    converged_at = time.monotonic()
    states = [hashlib.sha256(str(d.text("t")).encode()).hexdigest() for d in docs]
    complete = [sum(d._vv.values()) == total for d in docs]
    for c in clients:
        await c.close()
    return {
        "sent": {str(docs[i].replica_id): sent[i] for i in range(count)},
        "arrivals": [a for got in arrivals for a in got],
        "states": states,
        "complete": complete,
        "typed_end": typed_end,
        "converged_at": converged_at,
        "lag": lag,
        "reconnects": sum(c.connections - 1 for c in clients),
        "received": received[0],
    }


def worker(cfg: dict[str, Any], first: int, count: int, ids: list[int], out: Any) -> None:
    result = asyncio.run(run_clients(cfg, first, count, ids))
    result["cpu_seconds"] = time.process_time()
    out.send(result)
    out.close()


# ---- parent ------------------------------------------------------------------------------------


def start_server(tmp: Path, extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    log_path = tmp / "server.log"
    # SQLite in the run's folder unless the extra options choose the store (`-- --memory`
    # or `-- --db FILE`: serve takes one of them only).
    store = (
        []
        if {"--memory", "--db"} & {a.split("=", 1)[0] for a in extra}
        else ["--db", str(tmp / "load.db")]
    )
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crdtsync", "serve", "--port", "0", *store,
             "--log-level", "warning", "--log-format", "json", *extra],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    # --log-level warning hides the "listening" line: find the port from /proc instead
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        port = _listening_port(proc.pid)
        if port:
            return proc, f"ws://127.0.0.1:{port}"
        if proc.poll() is not None:
            raise RuntimeError(log_path.read_text())
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def _listening_port(pid: int) -> int | None:
    try:
        inodes = {
            os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1]
            for fd in os.listdir(f"/proc/{pid}/fd")
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        }
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                return int(fields[1].split(":")[1], 16)
    except OSError:
        return None
    return None


def proc_stats(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmHWM:", "VmRSS:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        out["cpu_seconds"] = (int(fields[11]) + int(fields[12])) / ticks
    except OSError:
        pass
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="edits/s per client")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 2,
                        help="client worker processes (default: one per core; one process "
                        "cannot integrate 100 clients' keystrokes for them all)")  # fmt: skip
    parser.add_argument("--watch", type=int, default=5, help="clients each client times")
    parser.add_argument("--pattern", choices=("typing", "random"), default="typing",
                        help="typing: each client types at its own cursor (runs of characters, "
                        "a backspace now and then, 2%% of keystrokes somewhere else); random: "
                        "every keystroke at a random place")  # fmt: skip
    parser.add_argument("--url", help="use this running server (ws://HOST:PORT)")
    parser.add_argument("--room", default=f"load-{os.getpid()}")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("server_args", nargs="*", help="after --: extra crdtsync serve options")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="crdtsync-load-"))
    server = None
    url = args.url
    if url is None:
        server, url = start_server(tmp, ["--max-connections", str(args.clients + 10),
                                         *args.server_args])  # fmt: skip
    ids = random.Random(1).sample(range(1, 2**63), args.clients)
    procs = max(1, min(args.procs, args.clients))
    cfg = {
        "clients": args.clients,
        "rate": args.rate,
        "seconds": args.seconds,
        "watch": args.watch,
        "pattern": args.pattern,
        "url": url,
        "room": args.room,
        "drain_timeout": args.drain_timeout,
        # everyone starts typing together, after all connections are up
        "start": time.monotonic() + 3.0 + args.clients * 0.01,
    }
    ctx = mp.get_context("spawn")
    workers, pipes = [], []
    base = 0
    for p in range(procs):
        count = args.clients // procs + (p < args.clients % procs)
        recv, send = ctx.Pipe(duplex=False)
        w = ctx.Process(target=worker, args=(cfg, base, count, ids, send))
        w.start()
        workers.append(w)
        pipes.append(recv)
        base += count
    cpu_before = proc_stats(server.pid)["cpu_seconds"] if server else 0.0
    results = [pipe.recv() for pipe in pipes]
    for w in workers:
        w.join()
    stats = proc_stats(server.pid) if server else {}
    if server is not None:
        server.terminate()
        server.wait(30)

    sent: dict[int, list[float]] = {}
    for r in results:
        sent.update({int(k): v for k, v in r["sent"].items()})
    latencies = [
        t - sent[replica][counter - 1]
        for r in results
        for replica, counter, t in r["arrivals"]
        if counter - 1 < len(sent.get(replica, []))
    ]
    states = [s for r in results for s in r["states"]]
    complete = all(c for r in results for c in r["complete"])
    equal = len(set(states)) == 1 and complete
    total_edits = sum(len(v) for v in sent.values())
    first_edit = min(v[0] for v in sent.values() if v)
    typed_end = max(r["typed_end"] for r in results)
    drain = max(r["converged_at"] for r in results) - typed_end
    typing = typed_end - first_edit
    summary = {
        "clients": args.clients,
        "rate_per_client": args.rate,
        "seconds": args.seconds,
        "pattern": args.pattern,
        "client_procs": procs,
        "edits": total_edits,
        "edits_per_s": round(total_edits / typing, 1),
        "deliveries_per_s": round(total_edits * (args.clients - 1) / (typing + drain), 1),
        "latency_p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "latency_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "latency_max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
        "latency_samples": len(latencies),
        "drain_s": round(drain, 2),
        "updates_received_per_client_s": round(
            sum(r["received"] for r in results) / args.clients / (typing + drain), 1
        ),
        "schedule_lag_max_ms": round(max(r["lag"] for r in results) * 1000, 1),
        "reconnects": sum(r["reconnects"] for r in results),
        "server_peak_rss_mb": round(stats.get("VmHWM", float("nan")) / 2**20, 1),
        "server_cpu_s": round(stats.get("cpu_seconds", 0.0) - cpu_before, 1),
        "client_cpu_s": round(sum(r["cpu_seconds"] for r in results), 1),
        "all_equal": equal,
    }
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    if not equal:
        print("FAILED: the clients did not all end with the same text", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
