"""Load test of the relay: N clients typing into one room through ``crdtsync serve``.

    python benchmarks/load.py                          # 100 clients x 10 edits/s x 30 s
    python benchmarks/load.py --clients 20 --rate 5 --seconds 10
    python benchmarks/load.py --url ws://host:8765     # against a running server
    python benchmarks/load.py --system pycrdt-websocket --clients 20 --seconds 10
    python benchmarks/load.py --system crdtsync,pycrdt-websocket --sweep 20,40,60,80,100
    python benchmarks/load.py --rooms 1000 --clients-per-room 2 --rate 1 --seconds 30

Starts ``crdtsync serve`` (SQLite in a temporary directory, so every edit is stored before
it is acknowledged) on a free port, unless ``--url`` is given. The clients run in
``--procs`` worker processes (asyncio, one WebSocket connection each) so that the
clients' own CPU does not hide the server's limits. Every client types on a fixed schedule
(R single-character inserts or backspaces per second, each one change taking one counter),
so the time every change was made is known: with ``--pattern typing`` (the default) at a
cursor of its own that follows everyone's edits, with a backspace one keystroke in ten and
a click somewhere else one in fifty; with ``--pattern random`` anywhere at random. Each
client watches ``--watch`` other clients and records when each of their changes arrived.
Reported:

- edits/s carried: changes the relay accepted and fanned out, per second of typing, and the
  deliveries (one change reaching one client) per second that this implies;
- propagation latency p50/p99/max: from a change being made to it being integrated by a
  watching client (through the relay), over all watched pairs;
- how far the typists fell behind their schedule (schedule lag: the load generator's own
  backlog, which shows when the clients are what saturates);
- how long the last changes took to reach everyone after typing stopped (drain);
- the server's peak RSS (VmHWM) and CPU time (from the first edit to the end of the drain,
  and as a share of that wall time; the connection phase's CPU is reported apart);
- that every client ends with the same text as the others in its room (the run fails
  otherwise).

``--system pycrdt-websocket`` runs the same workload against a pycrdt-websocket server
(benchmarks/_pycrdt_ws_server.py: ``pycrdt.websocket.WebsocketServer``, documents in
memory, no store) with pycrdt ``Doc``s speaking the y-websocket sync protocol. A Yjs
deletion takes no clock, so its latency is timed over the inserts only (90% of the edits).
``--sweep N1,N2,...`` runs each client count for each ``--system`` (comma-separated) and
prints a markdown table; ``--rooms R --clients-per-room K`` spreads R·K clients over R
rooms (each client watches the others of its room).

Client and server share the machine: on a small one the clients compete with the relay
for CPU, which shows in the latency figures.

Each worker process stands in for many client processes, and with all their documents in
one heap every full collection of Python's cyclic garbage collector scans all of them: at
100 clients in 2 workers, pauses of up to 300 ms, 50 times longer than a real client's,
which holds one document (docs/performance.md, "Garbage collection"). So by default
(``--worker-gc freeze``) a worker moves what survived its young collections out of the
collector's view once a second (``gc.collect(1)`` then ``gc.freeze()``), as
docs/performance.md suggests for processes that hold many documents; ``--worker-gc
default`` leaves the collector as it is. Both systems' workers do the same; the server is
never changed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import crdtsync  # noqa: E402

SYSTEMS = ("crdtsync", "pycrdt-websocket")
GOOD_P99_MS = 200.0  # the sweep's "largest N with p99 below this"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- the two systems' clients ----------------------------------------------------------------
#
# A client holds one document with one Text "t" and one connection. progress() maps a
# replica to how many of its changes (counters; Yjs clocks) this client has integrated.


class _TextClient:
    """What both systems' clients share: a Text ``self.text``."""

    text: Any

    def __len__(self) -> int:
        return len(self.text)

    def content(self) -> str:
        return str(self.text)


class CrdtsyncClient(_TextClient):
    """A crdtsync Doc connected through crdtsync's WebSocket transport."""

    def __init__(self, replica_id: int) -> None:
        self.id = replica_id
        self.doc = crdtsync.Doc(replica_id=replica_id)
        self.text = self.doc.text("t")
        self._client: Any = None

    async def connect(self, url: str) -> None:
        from crdtsync.transports.websocket import connect

        self._client = await connect(url, self.doc, open_timeout=30)

    def on_remote(self, listener: Callable[[], None]) -> None:
        def on_update(update: bytes, origin: Any) -> None:
            if origin is not None:  # not a local edit
                listener()

        self.doc.on_update(on_update)

    def progress(self) -> dict[int, int]:
        return self.doc._vv  # a read-only peek: cheaper than doc.version on every update

    def own_progress(self) -> int:
        return self.doc._vv.get(self.id, 0)

    def insert(self, index: int, char: str) -> None:
        self.text.insert(index, char)

    def delete(self, index: int) -> None:
        self.text.delete(index)

    def cursor(self, index: int) -> Any:
        """A place that sticks to the character before it (what others type there goes
        after it)."""
        return self.text.cursor(index, side="before") if index else self.text.cursor(0)

    @property
    def synced(self) -> bool:
        return bool(self._client.synced)

    @property
    def reconnects(self) -> int:
        return int(self._client.connections - 1)

    async def close(self) -> None:
        await self._client.close()


def _varuint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def decode_state_vector(data: bytes) -> dict[int, int]:
    """A Yjs v1 state vector: client -> clock (the number of its items)."""
    count, at = _varuint(data, 0)
    out = {}
    for _ in range(count):
        client, at = _varuint(data, at)
        out[client], at = _varuint(data, at)
    return out


def update_head(update: bytes) -> tuple[int, int] | None:
    """(client, clock after) of a Yjs v1 update holding one client's block of one-character
    items (what each keystroke makes here), or None for anything else."""
    blocks, at = _varuint(update, 0)
    if blocks != 1:
        return None
    structs, at = _varuint(update, at)
    client, at = _varuint(update, at)
    clock, at = _varuint(update, at)
    return client, clock + structs


class PycrdtClient(_TextClient):
    """A pycrdt Doc synced with a pycrdt-websocket room over a ``websockets`` connection:
    the y-websocket protocol (sync step 1 and 2, then one update message per local
    transaction; awareness messages are ignored)."""

    def __init__(self, replica_id: int) -> None:
        import pycrdt

        self.id = replica_id
        self.doc = pycrdt.Doc(client_id=replica_id)
        self.text = self.doc.get("t", type=pycrdt.Text)
        self._seen: dict[int, int] = {}
        self._remote = False  # applying a message from the server
        self._applied: list[bytes] = []  # the updates that message made here
        self._listeners: list[Callable[[], None]] = []
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._pending = 0  # messages queued or being sent
        self._got_state = False
        self._tasks: list[asyncio.Task[None]] = []
        self.doc.observe(self._on_transaction)

    def _on_transaction(self, event: Any) -> None:
        if self._remote:  # the doc is borrowed until the commit ends: read it in _integrated
            self._applied.append(event.update)
            return
        from pycrdt import create_update_message

        self._post(create_update_message(event.update))

    def _integrated(self) -> None:
        """After a server message: note the counters it brought, tell the listeners."""
        for update in self._applied:
            head = update_head(update)
            if head is None:  # the initial state, a deletion, or merged changes: read it all
                self._seen.update(decode_state_vector(self.doc.get_state()))
            elif head[1] > self._seen.get(head[0], 0):
                self._seen[head[0]] = head[1]
        if self._applied:
            self._applied.clear()
            for listener in self._listeners:
                listener()

    def _post(self, message: bytes) -> None:
        self._pending += 1
        self._outbox.put_nowait(message)

    async def connect(self, url: str) -> None:
        from pycrdt import create_sync_message
        from websockets.asyncio.client import connect

        self._ws = await connect(url, open_timeout=30, max_size=2**24)
        self._post(create_sync_message(self.doc))
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._send())]

    async def _receive(self) -> None:
        from pycrdt import YMessageType, YSyncMessageType, handle_sync_message
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in self._ws:
                if message[0] != YMessageType.SYNC:
                    continue
                self._remote = True
                try:
                    reply = handle_sync_message(message[1:], self.doc)
                finally:
                    self._remote = False
                self._integrated()
                if message[1] == YSyncMessageType.SYNC_STEP2:
                    self._got_state = True
                if reply is not None:
                    self._post(reply)
        except ConnectionClosed:
            pass

    async def _send(self) -> None:
        while True:
            message = await self._outbox.get()
            await self._ws.send(message)
            self._pending -= 1

    def on_remote(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def progress(self) -> dict[int, int]:
        return self._seen

    def own_progress(self) -> int:
        return self._seen.get(self.id, 0)

    def insert(self, index: int, char: str) -> None:
        self.text.insert(index, char)
        self._seen[self.id] = self._seen.get(self.id, 0) + 1  # one character, one clock

    def delete(self, index: int) -> None:
        del self.text[index]

    def cursor(self, index: int) -> Any:
        """As CrdtsyncClient.cursor, through a Yjs sticky index."""
        from pycrdt import Assoc

        if not len(self.text):
            return None  # (pycrdt cannot make one in an empty text: the next key goes anywhere)
        return _StickyCursor(self.text.sticky_index(index, Assoc.BEFORE if index else Assoc.AFTER))

    @property
    def synced(self) -> bool:
        return self._got_state and self._pending == 0

    reconnects = 0  # no reconnecting here: a dropped connection shows as a failed run

    async def close(self) -> None:
        for task in self._tasks:
            if task.done():
                task.result()  # a receive loop that failed fails the run
            task.cancel()
        await self._ws.close()


class _StickyCursor:
    def __init__(self, sticky: Any) -> None:
        self._sticky = sticky

    @property
    def index(self) -> int:
        return int(self._sticky.get_index())


CLIENTS: dict[str, Callable[[int], Any]] = {
    "crdtsync": CrdtsyncClient,
    "pycrdt-websocket": PycrdtClient,
}


# ---- worker process --------------------------------------------------------------------------


def _timer(
    client: Any, watch: dict[int, int], got: list[tuple[int, int, float]], received: list[int]
) -> Any:
    """A remote-update listener noting when each watched replica's next counters arrive,
    and counting the remote updates (in ``received[0]``)."""

    def on_remote() -> None:
        received[0] += 1
        now = time.monotonic()
        vv = client.progress()
        for r, nxt in watch.items():
            held = vv.get(r, 0)
            while nxt <= held:
                got.append((r, nxt, now))
                nxt += 1
            watch[r] = nxt

    return on_remote


def room_members(cfg: dict[str, Any], g: int) -> range:
    """The global indices of the clients in client g's room."""
    first = g // cfg["per_room"] * cfg["per_room"]
    return range(first, min(first + cfg["per_room"], cfg["clients"]))


def room_url(cfg: dict[str, Any], g: int) -> str:
    if cfg["rooms"] == 1:
        return f"{cfg['url']}/{cfg['room']}"
    return f"{cfg['url']}/{cfg['room']}-{g // cfg['per_room']}"


def _random_edit(client: Any, r: random.Random) -> None:
    """One character typed or deleted anywhere: every keystroke starts a run of its own."""
    n_chars = len(client)
    if n_chars and r.random() < 0.1:
        client.delete(r.randrange(n_chars))
    else:
        client.insert(r.randint(0, n_chars), r.choice("abcdefghij"))


def _typing() -> Any:
    """A typist at a cursor that follows everyone's edits: mostly the next character,
    sometimes a backspace, now and then a click somewhere else (as the editing traces
    show people work)."""
    cursor: Any = None

    def keystroke(client: Any, r: random.Random) -> None:
        nonlocal cursor
        n_chars = len(client)
        jump = cursor is None or r.random() < 0.02
        at = r.randint(0, n_chars) if jump or cursor is None else cursor.index
        if at and r.random() < 0.1:
            client.delete(at - 1)
            at -= 1
        else:
            client.insert(at, r.choice("abcdefghij"))
            at += 1
        cursor = client.cursor(at)

    return keystroke


async def _freeze_every(period: float) -> None:
    """Keep the worker's long-lived objects (its clients' documents) out of the cyclic
    collector's full collections (see the module docstring): young cyclic garbage is
    collected first, so only what survived is frozen."""
    while True:
        await asyncio.sleep(period)
        gc.collect(1)
        gc.freeze()


async def run_clients(
    cfg: dict[str, Any], first: int, count: int, replica_ids: list[int], final: Any
) -> dict[str, Any]:
    """Clients first..first+count-1. `final[g]` is set to client g's own counter once it
    has stopped typing (-1 before): a client is complete when it holds every counter of
    its room."""
    rate, seconds = cfg["rate"], cfg["seconds"]
    edits = int(rate * seconds)
    clients = [CLIENTS[cfg["system"]](replica_ids[first + i]) for i in range(count)]
    rng = random.Random(first)
    # each client watches `watch` other clients: (their replica) -> next counter awaited
    arrivals: list[list[tuple[int, int, float]]] = []  # (replica, counter, monotonic time)
    received = [0]  # remote updates integrated, all clients together
    for i, client in enumerate(clients):
        others = [replica_ids[j] for j in room_members(cfg, first + i) if j != first + i]
        watch = {r: 1 for r in rng.sample(others, min(cfg["watch"], len(others)))}
        got: list[tuple[int, int, float]] = []
        arrivals.append(got)
        client.on_remote(_timer(client, watch, got, received))
    for i, client in enumerate(clients):
        await client.connect(room_url(cfg, first + i))
        await asyncio.sleep(0.005)  # do not stampede the server's accept queue
    start = cfg["start"]
    while time.monotonic() < start - 0.01:
        await asyncio.sleep(min(0.05, start - time.monotonic()))
    sent: list[list[float]] = [[] for _ in clients]  # when each counter was made
    lag = 0.0

    async def typist(i: int) -> None:
        nonlocal lag
        client = clients[i]
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
            keystroke(client, r)
            now = time.monotonic()
            while len(sent[i]) < client.own_progress():
                sent[i].append(now)

    freezer = asyncio.create_task(_freeze_every(1.0)) if cfg["worker_gc"] == "freeze" else None
    await asyncio.gather(*(typist(i) for i in range(count)))
    typed_end = time.monotonic()
    for i, client in enumerate(clients):
        final[first + i] = client.own_progress()

    def complete(i: int) -> bool:
        held = clients[i].progress()
        return clients[i].synced and all(
            final[j] >= 0 and held.get(replica_ids[j], 0) >= final[j]
            for j in room_members(cfg, first + i)
        )

    deadline = time.monotonic() + cfg["drain_timeout"]
    while time.monotonic() < deadline:
        if all(complete(i) for i in range(count)):
            break
        await asyncio.sleep(0.02)
    converged_at = time.monotonic()
    states = [  # (room, the text's hash)
        ((first + i) // cfg["per_room"], hashlib.sha256(c.content().encode()).hexdigest())
        for i, c in enumerate(clients)
    ]
    done = [complete(i) for i in range(count)]
    if freezer is not None:
        freezer.cancel()
    for c in clients:
        await c.close()
    return {
        "sent": {str(clients[i].id): sent[i] for i in range(count)},
        "typed": edits * count,
        "arrivals": [a for got in arrivals for a in got],
        "states": states,
        "complete": done,
        "typed_end": typed_end,
        "converged_at": converged_at,
        "lag": lag,
        "reconnects": sum(c.reconnects for c in clients),
        "received": received[0],
    }


def worker(
    cfg: dict[str, Any], first: int, count: int, ids: list[int], final: Any, out: Any
) -> None:
    raise_fd_limit(count + 100)
    result = asyncio.run(run_clients(cfg, first, count, ids, final))
    result["cpu_seconds"] = time.process_time()
    out.send(result)
    out.close()


# ---- parent ------------------------------------------------------------------------------------


def raise_fd_limit(needed: int) -> None:
    """Lift the soft open-files limit to the hard one (children inherit it); warn when even
    that is below `needed`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < needed:
        print(f"warning: open-files limit {hard} < {needed} needed (ulimit -Hn)",
              file=sys.stderr)  # fmt: skip


def start_server(system: str, tmp: Path, extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    log_path = tmp / f"server-{system}.log"
    if system == "crdtsync":
        # SQLite in the run's folder unless the extra options choose the store (`-- --memory`
        # or `-- --db FILE`: serve takes one of them only).
        store = (
            []
            if {"--memory", "--db"} & {a.split("=", 1)[0] for a in extra}
            else ["--db", str(tmp / f"load-{time.monotonic_ns()}.db")]
        )
        cmd = [sys.executable, "-m", "crdtsync", "serve", "--port", "0", *store,
               "--log-level", "warning", "--log-format", "json", *extra]  # fmt: skip
    else:
        cmd = [sys.executable, str(Path(__file__).with_name("_pycrdt_ws_server.py")), "--port", "0"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
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


def run_load(args: argparse.Namespace, system: str, clients: int) -> dict[str, Any]:
    """One run: a fresh server (unless --url), the workers, and the summary of their
    results."""
    per_room = args.clients_per_room or clients
    rooms = -(-clients // per_room)
    tmp = Path(tempfile.mkdtemp(prefix="crdtsync-load-"))
    server = None
    url = args.url
    store = "the --url server's"
    if url is None:
        extra = args.server_args if system == "crdtsync" else []
        if system == "crdtsync" and args.memory and "--memory" not in extra:
            extra = [*extra, "--memory"]
        given = {a.split("=", 1)[0] for a in extra}
        store = "memory" if system != "crdtsync" or "--memory" in given else "sqlite"
        if "--db" in given:
            store = "--db"
        if system == "crdtsync":
            extra = ["--max-connections", str(clients + 10), *extra]
        server, url = start_server(system, tmp, extra)
    ids = random.Random(1).sample(range(1, 2**32), clients)  # Yjs client ids fit 53 bits
    procs = max(1, min(args.procs, clients))
    cfg = {
        "system": system,
        "store": store,
        "clients": clients,
        "per_room": per_room,
        "rooms": rooms,
        "rate": args.rate,
        "seconds": args.seconds,
        "watch": args.watch,
        "pattern": args.pattern,
        "url": url,
        "room": args.room,
        "drain_timeout": args.drain_timeout,
        "worker_gc": args.worker_gc,
        # everyone starts typing together, after all connections are up
        "start": time.monotonic() + 3.0 + clients * 0.01,
    }
    ctx = mp.get_context("spawn")
    final = ctx.RawArray("q", [-1] * clients)
    workers, pipes = [], []
    base = 0
    for p in range(procs):
        count = clients // procs + (p < clients % procs)
        recv, send = ctx.Pipe(duplex=False)
        w = ctx.Process(target=worker, args=(cfg, base, count, ids, final, send))
        w.start()
        send.close()  # the worker's end: a worker that dies shows as EOFError, not a hang
        workers.append(w)
        pipes.append(recv)
        base += count
    try:
        cpu_connect = proc_stats(server.pid)["cpu_seconds"] if server else 0.0
        while time.monotonic() < cfg["start"]:
            time.sleep(min(0.05, cfg["start"] - time.monotonic()))
        cpu_start, wall_start = (proc_stats(server.pid)["cpu_seconds"] if server else 0.0,
                                 time.monotonic())  # fmt: skip
        results = [pipe.recv() for pipe in pipes]
        stats = proc_stats(server.pid) if server else {}
        wall = time.monotonic() - wall_start
    finally:
        for w in workers:
            w.join(30)
        if server is not None:
            server.terminate()
            server.wait(30)
    shutil.rmtree(tmp, ignore_errors=True)
    summary = summarize(cfg, results, procs)
    cpu = stats.get("cpu_seconds", 0.0) - cpu_start
    summary.update({
        "server_peak_rss_mb": round(stats.get("VmHWM", float("nan")) / 2**20, 1),
        "server_cpu_s": round(cpu, 1),
        "server_cpu_pct": round(100 * cpu / wall, 1),
        "server_cpu_connect_s": round(cpu_start - cpu_connect, 1),
    })  # fmt: skip
    summary["all_equal"] = summary.pop("all_equal")  # keep the verdict last
    return summary


def summarize(cfg: dict[str, Any], results: list[dict[str, Any]], procs: int) -> dict[str, Any]:
    sent: dict[int, list[float]] = {}
    for r in results:
        sent.update({int(k): v for k, v in r["sent"].items()})
    latencies = [
        t - sent[replica][counter - 1]
        for r in results
        for replica, counter, t in r["arrivals"]
        if counter - 1 < len(sent.get(replica, []))
    ]
    texts: dict[int, set[str]] = {}
    for r in results:
        for room, digest in r["states"]:
            texts.setdefault(room, set()).add(digest)
    complete = all(c for r in results for c in r["complete"])
    equal = complete and all(len(digests) == 1 for digests in texts.values())
    total_edits = sum(r["typed"] for r in results)
    first_edit = min(v[0] for v in sent.values() if v)
    typed_end = max(r["typed_end"] for r in results)
    drain = max(r["converged_at"] for r in results) - typed_end
    typing = typed_end - first_edit
    return {
        "system": cfg["system"],
        "store": cfg["store"],
        "clients": cfg["clients"],
        "rooms": cfg["rooms"],
        "clients_per_room": cfg["per_room"],
        "rate_per_client": cfg["rate"],
        "seconds": cfg["seconds"],
        "pattern": cfg["pattern"],
        "worker_gc": cfg["worker_gc"],
        "client_procs": procs,
        "edits": total_edits,
        "edits_per_s": round(total_edits / typing, 1),
        "deliveries_per_s": round(total_edits * (cfg["per_room"] - 1) / (typing + drain), 1),
        "latency_p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "latency_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "latency_max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
        "latency_samples": len(latencies),
        "drain_s": round(drain, 2),
        "updates_received_per_client_s": round(
            sum(r["received"] for r in results) / cfg["clients"] / (typing + drain), 1
        ),
        "client_cpu_s": round(sum(r["cpu_seconds"] for r in results), 1),
        "schedule_lag_max_ms": round(max(r["lag"] for r in results) * 1000, 1),
        "reconnects": sum(r["reconnects"] for r in results),
        "all_equal": equal,
    }


COLUMNS = [  # (heading, summary key, unit)
    ("clients", "clients", ""),
    ("rooms", "rooms", ""),
    ("system", "system", ""),
    ("p50", "latency_p50_ms", " ms"),
    ("p99", "latency_p99_ms", " ms"),
    ("max", "latency_max_ms", " ms"),
    ("lag", "schedule_lag_max_ms", " ms"),
    ("drain", "drain_s", " s"),
    ("server CPU", "server_cpu_s", " s"),
    ("CPU %", "server_cpu_pct", "%"),
    ("client CPU", "client_cpu_s", " s"),
    ("RSS", "server_peak_rss_mb", " MB"),
    ("equal", "all_equal", ""),
]


def table(rows: list[dict[str, Any]]) -> str:
    def cell(row: dict[str, Any], key: str, unit: str) -> str:
        value = row[key]
        if isinstance(value, bool):
            return "yes" if value else "NO"
        return f"{value}{unit}"

    lines = ["| " + " | ".join(h for h, _, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]  # fmt: skip
    lines += ["| " + " | ".join(cell(r, k, u) for _, k, u in COLUMNS) + " |" for r in rows]
    lines.append("")
    for system in dict.fromkeys(r["system"] for r in rows):
        good = [r["clients"] for r in rows if r["system"] == system
                and r["all_equal"] and r["latency_p99_ms"] < GOOD_P99_MS]  # fmt: skip
        best = max(good) if good else "none"
        lines.append(f"{system}: largest N with p99 < {GOOD_P99_MS:.0f} ms: {best}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", default="crdtsync",
                        help=f"comma-separated, of {', '.join(SYSTEMS)}")  # fmt: skip
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--sweep", help="comma-separated client counts: a table of runs")
    parser.add_argument("--rooms", type=int, help="spread the clients over this many rooms")
    parser.add_argument("--clients-per-room", type=int, default=2,
                        help="with --rooms (default 2)")  # fmt: skip
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
    parser.add_argument(
        "--worker-gc",
        choices=("freeze", "default"),
        default="freeze",
        help="freeze: the workers keep their documents out of full GC collections once a "
        "second (each worker stands in for many client processes); default: leave the "
        "collector as it is",
    )
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--memory",
        action="store_true",
        help="crdtsync serve keeps rooms in memory, no SQLite (as -- --memory; "
        "pycrdt-websocket's server always does)",
    )
    parser.add_argument("server_args", nargs="*", help="after --: extra crdtsync serve options")
    args = parser.parse_args(argv)
    systems = args.system.split(",")
    if set(systems) - set(SYSTEMS):
        parser.error(f"--system: one or more of {', '.join(SYSTEMS)}")
    if args.rooms and args.sweep:
        parser.error("--sweep varies the clients of one room: not with --rooms")
    if args.url and len(systems) > 1:
        parser.error("--url: one --system only")
    if args.rooms:
        counts = [args.rooms * args.clients_per_room]
    else:
        args.clients_per_room = None
        counts = [int(n) for n in args.sweep.split(",")] if args.sweep else [args.clients]
    raise_fd_limit(2 * max(counts) + 100)  # the server's sockets and the clients'

    rows = []
    for n in counts:
        for system in systems:
            rows.append(run_load(args, system, n))
            if len(counts) * len(systems) > 1:
                r = rows[-1]
                print(f"{system} x {n}: p99 {r['latency_p99_ms']} ms, equal {r['all_equal']}",
                      file=sys.stderr, flush=True)  # fmt: skip
    if len(rows) == 1:
        width = max(len(k) for k in rows[0])
        for key, value in rows[0].items():
            print(f"{key:<{width}}  {value}")
    else:
        print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2) + "\n")
    if not all(r["all_equal"] for r in rows):
        print("FAILED: the clients did not all end with the same text", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
