"""The attack table of issue #10: each attack against a fresh ``crdtsync serve``, with the
server's memory and the latency a well-behaved client in another room sees meanwhile.

    python -m benchmarks.attacks                        # every attack, a few minutes
    python -m benchmarks.attacks --quick                # shorter floods, about a minute
    python -m benchmarks.attacks --only bomb,skip-forge --json attacks.json

For each attack: ``crdtsync serve`` starts afresh (SQLite in a temporary directory, a free
port, a token file with one token per role, every other option at its default, JSON logs at
info level in a temporary file whose last lines are shown when something fails). A
*victim* child process (``--victim``, so that the attacker's CPU does not show in its
figures) connects in rooms of its own:

- a writer that makes a one-character edit every 50 ms and a watcher in the same room:
  the latency of an edit is from the writer making it to the watcher integrating it,
  through the relay (so it includes the commit to SQLite);
- two read-only clients in another room, one changing its presence every 50 ms: the
  latency of a room in which nothing is written;
- ``GET /healthz`` every 100 ms.

A thread samples the server's VmRSS every 20 ms; *before* is VmRSS when the attack starts,
*peak* the highest sample during the attack (or VmHWM, if the attack raised it), *after*
VmRSS once the attack's connections closed and a short settle passed. Latency figures are
over the edits made during the attack (at least two seconds of it, one with ``--quick``);
an edit that never arrived counts as lost. *Stayed connected*: none of the victim's four
clients lost its connection during the whole run.

The attacks (``--only`` takes their names) are small functions below, one per line of the
issue. Each runs under its own timeout; a run that fails or times out is reported as such
and the next attack runs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import crdtsync  # noqa: E402
from crdtsync.sync import Presence  # noqa: E402
from crdtsync.sync import messages as m  # noqa: E402

MIB = 1 << 20
ROOT = Path(__file__).resolve().parents[1]

#: One token per role (the relay ties replica ids to a token's holder, so roles that must
#: not share ownership have tokens of their own).
TOKENS = {
    "victim": "write",
    "watcher": "write",
    "reader-a": "read",
    "reader-b": "read",
    "target": "write",
    "bystander": "write",
    "checker": "write",
    "attacker": "write",
    "attacker-2": "write",
    "spy": "read",
}
VICTIM_ROOM = "victim/edits"
VICTIM_READ_ROOM = "victim/reads"
ROOM = "attack"  # the room an attack goes after
EDIT_PERIOD = 0.05
PRESENCE_PERIOD = 0.05
HEALTH_PERIOD = 0.1


# ---- the server ------------------------------------------------------------------------------


class Server:
    """``crdtsync serve`` in a subprocess, logging JSON lines to a file."""

    def __init__(self, tmp: Path, extra: list[str]) -> None:
        self.tmp = tmp
        self.db = tmp / "attack.db"
        self.log_path = tmp / "server.log"
        tokens = tmp / "tokens"
        tokens.write_text("".join(f"{t} {a}\n" for t, a in TOKENS.items()))
        self.args = [
            sys.executable, "-m", "crdtsync", "serve", "--port", "0", "--db", str(self.db),
            "--tokens", str(tokens), "--log-level", "info", "--log-format", "json", *extra,
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    async def start(self, timeout: float = 20.0) -> Server:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.args,
                stdout=log,
                stderr=log,
                cwd=ROOT,
                env=_env(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if event.get("event") == "listening":
                    self.port = int(event["port"])
                    return self
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.02)
        self.kill()
        raise RuntimeError("the server did not start:\n" + self.tail())

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if isinstance(event, dict) and (name is None or event.get("event") == name):
                        out.append(event)
        return out

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""),
        "PYTHONUNBUFFERED": "1",
    }


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid``, in bytes (empty once the process is gone)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024
    return out


class RssSampler(threading.Thread):
    """VmRSS of one process every ``period`` seconds: (monotonic time, bytes)."""

    def __init__(self, pid: int, period: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            rss = memory(self.pid).get("VmRSS")
            if rss is not None:
                self.samples.append((time.monotonic(), rss))
            self.stopped.wait(self.period)

    def peak(self, start: float, end: float) -> int:
        return max((r for t, r in self.samples if start <= t <= end), default=0)


# ---- the victim (a child process) ------------------------------------------------------------


def _arrive(times: list[float], upto: int, now: float) -> None:
    """Note that items 1 ... ``upto`` have arrived (the new ones at ``now``)."""
    while len(times) < upto:
        times.append(now)


async def _healthz(port: int, timeout: float = 15.0) -> float | None:
    """Seconds one ``GET /healthz`` took, None if it failed."""
    started = time.monotonic()
    try:

        async def get() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = await reader.read()
            writer.close()
            if not data.startswith(b"HTTP/1.1 200"):
                raise OSError("not 200")

        await asyncio.wait_for(get(), timeout)
    except (OSError, TimeoutError):
        return None
    return time.monotonic() - started


async def victim(url: str) -> dict[str, Any]:
    """Run the well-behaved clients until a line arrives on stdin; what they measured."""
    from crdtsync.transports.websocket import connect

    loop = asyncio.get_running_loop()
    port = int(url.rsplit(":", 1)[1])
    events: list[tuple[float, str, str]] = []

    def status(name: str) -> Callable[[str], None]:
        return lambda s: events.append((time.monotonic(), name, s))

    # edits: writer -> relay -> watcher
    writer_doc, watcher_doc = crdtsync.Doc(), crdtsync.Doc()
    wid = writer_doc.replica_id
    made: list[float] = []  # made[k - 1]: when the writer made counter k
    seen: list[float] = []  # seen[k - 1]: when the watcher integrated it

    def on_update(update: bytes, origin: Any) -> None:
        if origin is not None:
            _arrive(seen, watcher_doc._vv.get(wid, 0), time.monotonic())

    watcher_doc.on_update(on_update)
    # presence in a room nobody writes to: reader a -> relay -> reader b
    pa, pb = Presence(crdtsync.Doc().replica_id), Presence(crdtsync.Doc().replica_id)
    p_made: list[float] = []
    p_seen: list[float] = []

    def on_presence(change: Any) -> None:
        state = pb.states.get(pa.replica_id)
        if isinstance(state, dict) and isinstance(state.get("k"), int):
            _arrive(p_seen, state["k"], time.monotonic())

    pb.on_change(on_presence)
    health: list[tuple[float, float | None]] = []

    room, read_room = f"{url}/{VICTIM_ROOM}", f"{url}/{VICTIM_READ_ROOM}"
    clients = [
        await connect(room, writer_doc, token="victim", on_status=status("writer")),
        await connect(room, watcher_doc, token="watcher", on_status=status("watcher")),
        await connect(read_room, crdtsync.Doc(), token="reader-a", presence=pa,
                      on_status=status("reader-a")),
        await connect(read_room, crdtsync.Doc(), token="reader-b", presence=pb,
                      on_status=status("reader-b")),
    ]  # fmt: skip
    stop = asyncio.Event()

    async def edit() -> None:
        text = writer_doc.text("t")
        due = time.monotonic()
        while not stop.is_set():
            if len(text) < 40:
                text.insert(len(text), "x")
            else:
                text.delete(0)
            _arrive(made, writer_doc._vv[wid], time.monotonic())
            due += EDIT_PERIOD
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def wave() -> None:
        due = time.monotonic()
        while not stop.is_set():
            p_made.append(time.monotonic())
            pa.set_local({"k": len(p_made)})
            due += PRESENCE_PERIOD
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def poll_health() -> None:
        while not stop.is_set():
            started = time.monotonic()
            health.append((started, await _healthz(port)))
            await asyncio.sleep(max(0.0, started + HEALTH_PERIOD - time.monotonic()))

    tasks = [asyncio.create_task(f()) for f in (edit, wave, poll_health)]
    deadline = time.monotonic() + 15
    while (not seen or not p_seen) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    print("ready" if seen and p_seen else "not ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    deadline = time.monotonic() + 10  # what is still on its way
    while (len(seen) < len(made) or len(p_seen) < len(p_made)) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    result = {
        "made": made,
        "seen": seen,
        "p_made": p_made,
        "p_seen": p_seen,
        "health": health,
        "events": events,
        "connections": [c.connections for c in clients],
    }
    for client in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), 5)
    return result


class Victim:
    """The victim child process, seen from the harness."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, url: str, timeout: float = 30.0) -> Victim:
        with open(self.log, "wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.attacks", "--victim", url,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                cwd=ROOT, env=_env(), limit=256 * MIB,
            )  # fmt: skip
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if line.strip() != b"ready":
            raise RuntimeError(f"the victim did not get going: {line!r} {self.stderr()}")
        return self

    def stderr(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-10:])
        return ""

    async def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(b"stop\n")
        with contextlib.suppress(OSError):
            await self.proc.stdin.drain()
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            await asyncio.wait_for(self.proc.wait(), 10)
        finally:
            self.kill()
        result: dict[str, Any] = json.loads(line)
        return result

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def latency(made: list[float], seen: list[float], start: float, end: float) -> dict[str, Any]:
    """p50/p99/max (ms) over the items made in [start, end]; lost: those never seen."""
    values, lost = [], 0
    for k, t in enumerate(made):
        if start <= t <= end:
            if k < len(seen):
                values.append(max(0.0, seen[k] - t) * 1000)
            else:
                lost += 1
    return {
        "p50": round(percentile(values, 0.5), 1),
        "p99": round(percentile(values, 0.99), 1),
        "max": round(max(values, default=float("nan")), 1),
        "samples": len(values),
        "lost": lost,
    }


def health_latency(samples: list[list[Any]], start: float, end: float) -> dict[str, Any]:
    inside = [s for s in samples if start <= s[0] <= end]
    values = [s[1] * 1000 for s in inside if s[1] is not None]
    return {
        "p50": round(percentile(values, 0.5), 1),
        "p99": round(percentile(values, 0.99), 1),
        "max": round(max(values, default=float("nan")), 1),
        "samples": len(values),
        "failed": len(inside) - len(values),
    }


# ---- raw protocol helpers ----------------------------------------------------------------------


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def raw(url: str, token: str, room: str = ROOM, **kwargs: Any) -> Any:
    """A bare WebSocket connection to a room (the ``websockets`` client, no sync session)."""
    from websockets.asyncio.client import connect as ws_connect

    kwargs.setdefault("max_size", None)
    kwargs.setdefault("compression", None)
    kwargs.setdefault("close_timeout", 2)
    async with ws_connect(f"{url}/{room}", additional_headers=_headers(token), **kwargs) as ws:
        yield ws


def hello(wants_hello: bool = True) -> bytes:
    return m.encode_message(m.Hello({}, wants_hello))


def update_frame(update: bytes) -> bytes:
    return m.encode_message(m.UpdateMessage(update, m.Transfer(0, 0, 1)))


def raw_update(replica: int, segments: list[Any], roots: list[str] | None = None) -> bytes:
    """An uncompressed update (``0xC1 0x01`` then msgpack) written by hand."""
    return b"\xc1\x01" + msgpack.packb([[replica], roots or [], segments])


def _code(exc: Exception) -> int:
    rcvd = getattr(exc, "rcvd", None)
    return int(rcvd.code) if rcvd is not None else 1006


async def greet(ws: Any, timeout: float = 10.0) -> None:
    """Open the sync session: HELLO, then wait for the relay's DIFF (so that a later DIFF
    can only answer a later request)."""
    await ws.send(hello())
    deadline = time.monotonic() + timeout
    while True:
        data = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
        if isinstance(m.decode_message(data), m.Diff):
            return


async def answer(ws: Any, timeout: float = 10.0) -> int | str | None:
    """Send HELLO(wants_hello=False) and wait for its DIFF: everything sent before has been
    processed. None (still connected), the close code, or "timeout"."""
    from websockets.exceptions import ConnectionClosed

    deadline = time.monotonic() + timeout
    try:
        await ws.send(hello(False))
        while True:
            data = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
            if isinstance(m.decode_message(data), m.Diff):
                return None
    except ConnectionClosed as exc:
        return _code(exc)
    except TimeoutError:
        return "timeout"


async def closed_with(ws: Any, timeout: float) -> int | None:
    """The close code if the server closes ``ws`` within ``timeout`` s, else None."""
    from websockets.exceptions import ConnectionClosed

    deadline = time.monotonic() + timeout
    try:
        while True:
            await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
    except ConnectionClosed as exc:
        return _code(exc)
    except TimeoutError:
        return None


class Client:
    """A well-behaved client (the library's own) in the attacked room."""

    def __init__(self, token: str, presence: dict[str, Any] | None = None) -> None:
        self.token = token
        self.doc = crdtsync.Doc()
        self.presence = Presence(self.doc.replica_id) if presence is not None else None
        if self.presence is not None:
            self.presence.set_local(presence)
        self.client: Any = None

    @property
    def id(self) -> int:
        return self.doc.replica_id

    async def join(self, url: str, room: str = ROOM) -> Client:
        from crdtsync.transports.websocket import connect

        self.client = await connect(
            f"{url}/{room}", self.doc, token=self.token, presence=self.presence
        )
        return self

    @property
    def stayed(self) -> bool:
        return bool(self.client.connected and self.client.connections == 1)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.close(), 5)


async def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def room_doc(url: str, room: str = ROOM, timeout: float = 10.0) -> crdtsync.Doc | None:
    """The room's document as a fresh client receives it (None if it could not sync)."""
    reader = Client("checker")
    try:
        await asyncio.wait_for(reader.join(url, room), timeout)
        await reader.client.wait_synced(timeout)
        return reader.doc
    except Exception:
        return None
    finally:
        if reader.client is not None:
            await reader.close()


async def room_text(url: str, room: str = ROOM, timeout: float = 10.0) -> str | None:
    """The room's text "t" as a fresh client receives it (None if it could not sync)."""
    doc = await room_doc(url, room, timeout)
    return None if doc is None else str(doc.text("t"))


async def writable(url: str, room: str = ROOM, timeout: float = 10.0) -> bool:
    """Whether a new client can still write to the room and another one read it back."""
    writer = Client("checker")
    mark = f"<{secrets.token_hex(4)}>"
    try:
        await asyncio.wait_for(writer.join(url, room), timeout)
        writer.doc.text("t").insert(0, mark)
        await writer.client.wait_synced(timeout)
    except Exception:
        return False
    finally:
        if writer.client is not None:
            await writer.close()
    text = await room_text(url, room, timeout)
    return text is not None and mark in text


def yes(flag: bool | None) -> str:
    return "?" if flag is None else ("yes" if flag else "NO")


def code_text(code: int | str | None) -> str:
    return "stayed connected" if code is None else f"closed {code}"


# ---- the attacks ---------------------------------------------------------------------------------


@dataclass
class Context:
    server: Server
    quick: bool
    min_window: float
    started: float | None = None
    ended: float | None = None
    rss_before: int = 0
    hwm_before: int = 0
    hwm_end: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def begin(self) -> None:
        """The attack starts now (the harness notes memory here)."""
        mem = memory(self.server.pid)
        self.rss_before, self.hwm_before = mem.get("VmRSS", 0), mem.get("VmHWM", 0)
        self.started = time.monotonic()

    async def end(self) -> None:
        """The attack and its connections are over (after at least ``min_window`` s)."""
        assert self.started is not None
        await asyncio.sleep(max(0.0, self.started + self.min_window - time.monotonic()))
        self.ended = time.monotonic()
        self.hwm_end = memory(self.server.pid).get("VmHWM", 0)


Outcome = dict[str, Any]  # "text": the table's outcome cell; anything else goes to the JSON


async def presence_forge(ctx: Context) -> Outcome:
    """A read-only client, then a writer, send AWARENESS for another client's replica id
    with clock 2**63-1 (and a plausible clock, and "the watcher left")."""
    target = await Client("target", {"name": "target"}).join(ctx.url)
    watcher = await Client("bystander", {"name": "watcher"}).join(ctx.url)
    tp, wp = target.presence, watcher.presence
    assert tp is not None and wp is not None
    if not await wait_for(lambda: target.id in wp.states, 10):
        raise RuntimeError("the watcher never saw the target")
    forged = [
        (target.id, 2**63 - 1, {"name": "pwned"}),
        (target.id, 10**6, {"name": "pwned"}),
        (watcher.id, 5, None),
    ]
    ctx.begin()
    codes = {}
    for token in ("spy", "attacker"):
        async with raw(ctx.url, token) as ws:
            await greet(ws)
            await ws.send(m.encode_message(m.Awareness(forged)))
            codes[token] = await answer(ws)
    await ctx.end()
    intact = wp.states.get(target.id) == {"name": "target"} and watcher.id in tp.states
    clock = tp.encode_states([target.id])[0][1]
    tp.set_local({"name": "target", "cursor": 1})
    renewed = await wait_for(lambda: wp.states.get(target.id, {}).get("cursor") == 1, 8)
    stayed = target.stayed and watcher.stayed
    await target.close()
    await watcher.close()
    return {
        "text": f"read-only attacker {code_text(codes['spy'])}, writer "
        f"{code_text(codes['attacker'])}; forged states ignored: {yes(intact)} (target's "
        f"clock {clock}); target's next presence arrived: {yes(renewed)}; room's clients "
        f"stayed connected: {yes(stayed)}",
        "codes": codes,
        "forged_ignored": intact,
        "target_clock": clock,
        "renewal_arrived": renewed,
        "room_clients_stayed": stayed,
    }


async def presence_flood(ctx: Context) -> Outcome:
    """One connection announces 600,000 presence states, in messages under the size limit."""
    total = 60_000 if ctx.quick else 600_000
    chunk = 100_000
    watcher = await Client("bystander", {"name": "watcher"}).join(ctx.url)
    assert watcher.presence is not None
    frames = [
        m.encode_message(m.Awareness([(10_000 + i, 0, {"n": i}) for i in range(s, s + chunk)]))
        for s in range(0, total, chunk)
    ]
    assert all(len(f) < 2 * MIB for f in frames)
    ctx.begin()
    sent = time.monotonic()
    from websockets.exceptions import ConnectionClosed

    code: int | None = None
    async with raw(ctx.url, "attacker") as ws:
        await greet(ws)
        try:
            for frame in frames:
                await ws.send(frame)
        except ConnectionClosed as exc:  # refused part-way: what code?
            code = _code(exc)
        if code is None:
            code = await answer(ws, 60)
        took = time.monotonic() - sent
        await asyncio.sleep(0.5)  # what got through reaches the watcher
        seen = len(watcher.presence.states) - 1  # (not the watcher itself)
    await ctx.end()
    stayed = watcher.stayed
    room_ok = await writable(ctx.url)
    await watcher.close()
    return {
        "text": f"{total:,} states in {len(frames)} message(s) of <= "
        f"{max(len(f) for f in frames) / MIB:.1f} MiB, processed in {took:.1f} s; flooder "
        f"{code_text(code)}; a watcher in the room got {seen} of them; room writable: "
        f"{yes(room_ok)}; watcher stayed connected: {yes(stayed)}",
        "states": total,
        "messages": len(frames),
        "seconds_to_process": round(took, 2),
        "code": code,
        "states_relayed": seen,
        "room_writable": room_ok,
        "room_clients_stayed": stayed,
    }


def _text_insert(replica: int, counter: int, lamport_offset: int, content: str) -> bytes:
    seg: list[Any] = [0, counter]
    if lamport_offset:
        seg += [10, lamport_offset]
    seg += [1, None, content]
    return raw_update(replica, [seg], ["tt"])


async def clock_ceiling(ctx: Context) -> Outcome:
    """Inserts at Lamport 2**63-2 and at counter 2**63-1 (and at Lamport 2**62, the
    ceiling itself); then the room must still take edits."""
    bystander = await Client("bystander").join(ctx.url)
    bystander.doc.text("t").insert(0, "intact")
    await bystander.client.wait_synced(10)
    cases = {
        "lamport 2**63-2": _text_insert(secrets.randbits(62), 1, 2**63 - 3, "a"),
        "counter 2**63-1": _text_insert(secrets.randbits(62), 2**63 - 1, 0, "a"),
        "lamport 2**62": _text_insert(secrets.randbits(62), 1, 2**62 - 1, "a"),
    }
    ctx.begin()
    codes = {}
    for name, update in cases.items():
        async with raw(ctx.url, "attacker") as ws:
            await greet(ws)
            await ws.send(update_frame(update))
            codes[name] = await answer(ws)
    await ctx.end()
    bystander.doc.text("t").insert(6, "!")
    with contextlib.suppress(TimeoutError):
        await bystander.client.wait_synced(10)
    text = await room_text(ctx.url)
    room_ok = text == "intact!"
    stayed = bystander.stayed
    await bystander.close()
    refused = ", ".join(f"{k}: {code_text(v)}" for k, v in codes.items())
    return {
        "text": f"{refused}; the room kept its text and took the next edit: {yes(room_ok)}; "
        f"a writer in the room stayed connected: {yes(stayed)}",
        "codes": codes,
        "room_text": text,
        "room_writable": room_ok,
        "room_clients_stayed": stayed,
    }


async def bomb(ctx: Context) -> Outcome:
    """A 261 KB zlib bomb (256 MiB inflated) sent by 4 connections at once."""
    from benchmarks.bomb import bomb as make_bomb

    data = update_frame(make_bomb(256 * MIB))
    bystander = await Client("bystander").join(ctx.url)
    bystander.doc.text("t").insert(0, "intact")
    await bystander.client.wait_synced(10)

    async def one() -> int | str | None:
        async with raw(ctx.url, "attacker") as ws:
            await greet(ws)
            await ws.send(data)
            return await answer(ws, 30)

    ctx.begin()
    started = time.monotonic()
    codes = await asyncio.gather(*(one() for _ in range(4)))
    took = time.monotonic() - started
    await ctx.end()
    room_ok = await writable(ctx.url)
    text = await room_text(ctx.url)
    kept = text is not None and "intact" in text
    stayed = bystander.stayed
    await bystander.close()
    return {
        "text": f"{len(data) / 1000:.0f} KB x 4 at once: {', '.join(map(code_text, codes))} "
        f"(all answered in {took:.2f} s); room kept its text: {yes(kept)}, writable: "
        f"{yes(room_ok)}; a writer in the room stayed connected: {yes(stayed)}",
        "frame_bytes": len(data),
        "codes": codes,
        "seconds": round(took, 2),
        "room_writable": room_ok,
        "room_clients_stayed": stayed,
    }


def forged_skip(victim: int, start: int) -> bytes:
    """An UPDATE claiming the victim's counters ``start`` ... 2**61 (a bare SKIP)."""
    return update_frame(raw_update(victim, [[0, start, -(2**61 - start)]]))


async def skip_forge(ctx: Context) -> Outcome:
    """A writer sends a bare SKIP over 2**61 of a victim's counters, once while the victim
    is online and once while it is offline; the victim's next (offline) edit must arrive."""
    target = await Client("target").join(ctx.url)
    target.doc.text("t").insert(0, "mine")
    await target.client.wait_synced(10)
    ctx.begin()
    codes = {}
    held = target.doc.version[target.id]
    async with raw(ctx.url, "attacker") as ws:
        await greet(ws)
        await ws.send(forged_skip(target.id, held + 1))
        codes["victim online"] = await answer(ws)
    online_stayed = target.stayed
    await target.close()  # offline now; its edits wait
    held = target.doc.version[target.id]
    async with raw(ctx.url, "attacker") as ws:
        await greet(ws)
        await ws.send(forged_skip(target.id, held + 1))
        codes["victim offline"] = await answer(ws)
    await ctx.end()
    target.doc.text("t").insert(4, "!")  # the offline edit
    from crdtsync.transports.websocket import connect

    async with connect(f"{ctx.url}/{ROOM}", target.doc, token="target") as client:
        with contextlib.suppress(TimeoutError):
            await client.wait_synced(10)
    text = await room_text(ctx.url)
    arrived = text == "mine!"
    return {
        "text": f"{', '.join(f'{k}: {code_text(v)}' for k, v in codes.items())}; the victim's "
        f"next offline edit arrived: {yes(arrived)} (room text {text!r}); victim stayed "
        f"connected while online: {yes(online_stayed)}",
        "codes": codes,
        "offline_edit_arrived": arrived,
        "room_text": text,
        "room_clients_stayed": online_stayed,
    }


async def split_parts(ctx: Context) -> Outcome:
    """Four connections each send 260 parts of 1 MiB of split DIFF transfers that never
    complete (the last part never comes), as fast as the relay reads them. Then, once
    they closed and a settle passed, the same again: if the second round leaves RSS where
    the first did, what the first held was freed inside the process (but kept from the
    OS), not leaked."""
    conns, parts = 4, (48 if ctx.quick else 260)

    async def one(results: list[dict[str, Any]]) -> None:
        from websockets.exceptions import ConnectionClosed

        replica = secrets.randbits(62) + 1
        # a SKIP makes the part depend on the rest of its transfer: it waits, buffered
        part = raw_update(replica, [[0, 1, -1, 1, None, "x" * (MIB - 64)]], ["tt"])
        sent, code, started = 0, None, time.monotonic()
        async with raw(ctx.url, "attacker") as ws:
            await greet(ws)
            try:
                # A stated version the room does not hold, or the relay would retire the
                # transfer as soon as it sees it covered.
                version = {replica: 10**6}
                for index in range(parts):
                    diff = m.Diff(part, version, m.Transfer(7, index, parts + 1))
                    await ws.send(m.encode_message(diff))
                    sent += 1
            except ConnectionClosed as exc:
                code = _code(exc)
            if code is None:
                code = await answer(ws, 60)  # all parts read (or the connection closed)
            seconds = time.monotonic() - started
            if code is None:
                await asyncio.sleep(1.0)  # hold the incomplete transfers a moment
        results.append({"sent": sent, "code": code, "seconds": round(seconds, 1)})

    bystander = await Client("bystander").join(ctx.url)
    ctx.begin()
    first: list[dict[str, Any]] = []
    await asyncio.gather(*(one(first) for _ in range(conns)))
    await ctx.end()
    await asyncio.sleep(2.0)
    after_first = memory(ctx.server.pid).get("VmRSS", 0)
    second: list[dict[str, Any]] = []
    await asyncio.gather(*(one(second) for _ in range(conns)))
    second_peak = memory(ctx.server.pid).get("VmHWM", 0)  # (above the first's, or equal)
    room_ok = await writable(ctx.url)
    stayed = bystander.stayed
    await bystander.close()
    first.sort(key=lambda r: -r["sent"])
    sent_text = ", ".join(f"{r['sent']} ({code_text(r['code'])})" for r in first)
    return {
        "text": f"{conns} connections x {parts} parts of 1 MiB; parts sent: {sent_text}; "
        f"slowest took {max(r['seconds'] for r in first)} s; RSS 2 s after they closed: "
        f"{after_first / MIB:.0f} MB; an identical second round then peaked at "
        f"{second_peak / MIB:.0f} MB ('after' is once it closed too); room writable: "
        f"{yes(room_ok)}; a client in the room stayed connected: {yes(stayed)}",
        "connections": first,
        "second_round": second,
        "parts_each": parts,
        "rss_after_first_round_mb": round(after_first / MIB, 1),
        "rss_peak_second_round_mb": round(second_peak / MIB, 1),
        "room_writable": room_ok,
        "room_clients_stayed": stayed,
    }


def _mask(payload: bytes) -> bytes:
    """One masked binary WebSocket frame (a client's)."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x82, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x82, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x82, 0x80 | 127]) + n.to_bytes(8, "big")
    pad = (key * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(pad, "big")).to_bytes(n, "big")
    return head + key + body


async def _never_reader(port: int, room: str, token: str) -> socket.socket:
    """A WebSocket client that says HELLO and then never reads again (a small receive
    buffer, so that the server's queue is what fills)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /{room} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), 10)
        if not chunk:
            raise OSError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise OSError(f"handshake refused: {head[:40]!r}")
    await loop.sock_sendall(sock, _mask(hello()))
    return sock


async def slow_readers(ctx: Context) -> Outcome:
    """20 clients join a busy room and stop reading while a writer pushes ~1 MiB/s (a map
    value of 100 KB overwritten ten times a second: the room's document stays small)."""
    seconds = 6.0 if ctx.quick else 30.0
    readers = 20
    room = "busy"
    rng = random.Random(10)
    pool = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=100_000)) for _ in range(8)]
    writer = await Client("bystander").join(ctx.url, room)
    socks = [await _never_reader(ctx.server.port, room, "spy") for _ in range(readers)]
    before = len(ctx.server.events("slow_client_dropped"))
    ctx.begin()
    blobs = writer.doc.map("m")  # overwritten: 1 MiB/s of updates, a small document
    pushed = writes = 0
    due = time.monotonic()
    end = due + seconds
    while time.monotonic() < end:
        chunk = pool[writes % len(pool)]
        blobs["blob"] = chunk
        blobs["n"] = writes = writes + 1
        pushed += len(chunk)
        due += 0.1
        await asyncio.sleep(max(0.0, due - time.monotonic()))
    synced = True
    try:
        await writer.client.wait_synced(30)
    except TimeoutError:
        synced = False
    dropped = len(ctx.server.events("slow_client_dropped")) - before
    for sock in socks:
        sock.close()
    await ctx.end()
    got = await room_doc(ctx.url, room, 30)
    intact = got is not None and got.map("m").get("n") == writes
    intact = intact and got is not None and got.map("m").get("blob") == blobs["blob"]
    stayed = writer.stayed
    await writer.close()
    drops = [e for e in ctx.server.events("disconnect") if e.get("room") == room and e.get("code")]
    codes = sorted({int(e["code"]) for e in drops})
    return {
        "text": f"{pushed / MIB:.0f} MiB pushed in {seconds:.0f} s; {dropped} of {readers} "
        f"stalled readers dropped (send queue full) while the flood ran; the writer "
        f"{'synced' if synced else 'did NOT sync'} and stayed connected: {yes(stayed)}; no "
        f"data lost (a late joiner gets the last write): {yes(intact)}; close codes seen in "
        f"the room: {codes}",
        "pushed_bytes": pushed,
        "seconds": seconds,
        "readers": readers,
        "dropped_during_flood": dropped,
        "writer_synced": synced,
        "room_intact": intact,
        "room_clients_stayed": stayed,
    }


LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
print("released", flush=True)
"""


async def sqlite_lock(ctx: Context) -> Outcome:
    """Another process holds a write lock (BEGIN IMMEDIATE) on the server's database for
    5 s, while the victim keeps writing in its room."""
    hold = 2.0 if ctx.quick else 5.0
    ctx.begin()
    locker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOCKER, str(ctx.server.db), str(hold),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert locker.stdout is not None
    try:
        line = await asyncio.wait_for(locker.stdout.readline(), 30)
        locked = line.strip() == b"locked"
        await asyncio.wait_for(locker.wait(), hold + 30)
    finally:
        if locker.returncode is None:
            locker.kill()
    await ctx.end()
    await asyncio.sleep(0.5)
    errors = len(ctx.server.events("storage_error"))
    room_ok = await writable(ctx.url)
    return {
        "text": f"lock held {hold:.0f} s (taken: {yes(locked)}); server alive: "
        f"{yes(ctx.server.alive())}; storage errors logged: {errors}; attacked room "
        f"writable after: {yes(room_ok)}",
        "hold_seconds": hold,
        "locked": locked,
        "storage_errors": errors,
        "room_writable": room_ok,
        "mention_probes": True,
    }


async def over_rate(ctx: Context) -> Outcome:
    """A client sends ACKs as fast as it can for 60 s, far over its message rate (the
    relay throttles by not reading: the client's sends block once the socket buffers are
    full, so it sends as fast as TCP lets it)."""
    from websockets.exceptions import ConnectionClosed

    seconds = 8.0 if ctx.quick else 60.0
    frame = m.encode_message(m.Ack({}))
    sent, code, dropped_at = 0, None, None
    ctx.begin()
    started = time.monotonic()
    async with raw(ctx.url, "attacker") as ws:
        await greet(ws)

        async def drain() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for _ in ws:
                    pass

        reader = asyncio.create_task(drain())
        try:
            while (left := seconds - (time.monotonic() - started)) > 0:
                try:
                    # one send may wait long for the buffer to drain: never past the end
                    await asyncio.wait_for(ws.send(frame), left)
                except TimeoutError:
                    break
                sent += 1
                if sent % 256 == 0:
                    await asyncio.sleep(0)
        except ConnectionClosed as exc:
            code, dropped_at = _code(exc), time.monotonic() - started
        await asyncio.sleep(0.1)
        if code is None and ws.state.name != "OPEN":
            code, dropped_at = _close_code_of(ws) or 1006, time.monotonic() - started
        reader.cancel()
        ws.transport.abort()  # no closing handshake behind the backlog
    await ctx.end()
    when = f" after {dropped_at:.1f} s" if dropped_at is not None else " (throttled)"
    return {
        "text": f"{sent:,} messages sent in {seconds:.0f} s ({sent / seconds:,.0f}/s against "
        f"a rate of 200/s, burst 400); the client {code_text(code)}{when}",
        "seconds": seconds,
        "sent": sent,
        "code": code,
        "dropped_after_s": dropped_at,
    }


def _close_code_of(ws: Any) -> int | None:
    rcvd = getattr(ws, "close_rcvd", None)
    return int(rcvd.code) if rcvd is not None else None


async def equivocation(ctx: Context) -> Outcome:
    """Two connections send the same dot (replica, counter 1) with different content."""
    replica = secrets.randbits(62) + 1
    first, second = crdtsync.Doc(replica_id=replica), crdtsync.Doc(replica_id=replica)
    first.text("t").insert(0, "first")
    second.text("t").insert(0, "other")
    watcher = await Client("bystander").join(ctx.url)
    ctx.begin()
    async with raw(ctx.url, "attacker") as a, raw(ctx.url, "attacker-2") as b:
        await greet(a)
        await a.send(update_frame(first.get_update()))
        code_a = await answer(a)
        await greet(b)
        await b.send(update_frame(second.get_update()))
        code_b = await answer(b)
        # what B hears the room hold: does it look as if B's dot went in?
        b_covered = None
        if code_b is None:
            await b.send(hello(False))
            with contextlib.suppress(TimeoutError):
                while True:
                    msg = m.decode_message(await asyncio.wait_for(b.recv(), 5))
                    if isinstance(msg, m.Diff):
                        b_covered = msg.version.get(replica, 0) >= 5
                        break
    await ctx.end()
    await wait_for(lambda: str(watcher.doc.text("t")) != "", 5)
    watched = str(watcher.doc.text("t"))
    text = await room_text(ctx.url)
    stayed = watcher.stayed
    await watcher.close()
    refused = code_b is not None
    return {
        "text": f"first {code_text(code_a)}; second (same dot, other content) "
        f"{code_text(code_b)}{'' if refused else ' (not refused)'}; the room holds "
        f"{text!r}, a watcher {watched!r}; the second sender is told the room holds its "
        f"dot: {yes(b_covered)}",
        "codes": {"first": code_a, "second": code_b},
        "second_refused": refused,
        "second_told_held": b_covered,
        "room_text": text,
        "watcher_text": watched,
        "room_clients_stayed": stayed,
    }


@dataclass(frozen=True)
class Attack:
    name: str
    run: Callable[[Context], Awaitable[Outcome]]
    timeout: float  # seconds, full run (a --quick run gets at most 90)


ATTACKS = [
    Attack("presence-forge", presence_forge, 60),
    Attack("presence-flood", presence_flood, 120),
    Attack("clock-ceiling", clock_ceiling, 60),
    Attack("bomb", bomb, 90),
    Attack("skip-forge", skip_forge, 60),
    Attack("split-parts", split_parts, 240),
    Attack("slow-readers", slow_readers, 180),
    Attack("sqlite-lock", sqlite_lock, 90),
    Attack("over-rate", over_rate, 150),
    Attack("equivocation", equivocation, 60),
]


# ---- the harness ---------------------------------------------------------------------------------


async def run_attack(attack: Attack, quick: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"crdtsync-attack-{attack.name}-"))
    server = Server(tmp, [])
    victim_proc = Victim(tmp / "victim.log")
    sampler: RssSampler | None = None
    result: dict[str, Any] = {"attack": attack.name, "command": command(attack.name, quick)}
    ctx = Context(server, quick, 1.0 if quick else 2.0)
    try:
        await server.start()
        sampler = RssSampler(server.pid)
        sampler.start()
        await victim_proc.start(server.url)
        await asyncio.sleep(1.0 if quick else 2.0)  # the victim's baseline
        timeout = min(attack.timeout, 90.0) if quick else attack.timeout
        try:
            outcome = await asyncio.wait_for(attack.run(ctx), timeout)
        except TimeoutError:
            outcome = {"text": f"HARNESS: timed out after {timeout:.0f} s", "error": "timeout"}
        except Exception as exc:
            outcome = {"text": f"HARNESS: failed: {exc!r}", "error": repr(exc)}
        if ctx.started is None:
            ctx.begin()
        if ctx.ended is None:
            ctx.ended = time.monotonic()
            ctx.hwm_end = memory(server.pid).get("VmHWM", 0)
        await asyncio.sleep(1.0 if quick else 2.0)  # settle
        mem = memory(server.pid)
        result["server_alive"] = server.alive()
        stats = await victim_proc.stop()
        start, end = ctx.started, ctx.ended
        assert start is not None and end is not None
        peak = max(sampler.peak(start, end), ctx.rss_before)
        if ctx.hwm_end > ctx.hwm_before:
            peak = max(peak, ctx.hwm_end)  # a new peak was set during the attack
        downs = [e for e in stats["events"] if e[2] == "disconnected"]
        result.update(
            {
                "outcome": outcome,
                "attack_seconds": round(end - start, 2),
                "rss_mb": {
                    "before": round(ctx.rss_before / MIB, 1),
                    "peak": round(peak / MIB, 1),
                    "after": round(mem.get("VmRSS", 0) / MIB, 1),
                    "hwm_end": round(mem.get("VmHWM", 0) / MIB, 1),
                },
                "victim_edit_ms": latency(stats["made"], stats["seen"], start, end),
                "victim_presence_ms": latency(stats["p_made"], stats["p_seen"], start, end),
                "healthz_ms": health_latency(stats["health"], start, end),
                "victim_stayed": not downs and all(c == 1 for c in stats["connections"]),
                "victim_disconnects": [[round(t - start, 2), who] for t, who, _ in downs],
                "victim_lost_overall": len(stats["made"]) - len(stats["seen"]),
            }
        )
        if "error" in outcome:
            result["server_log_tail"] = server.tail()
    except Exception as exc:
        result["error"] = repr(exc)
        result["server_log_tail"] = server.tail()
        result["victim_stderr"] = victim_proc.stderr()
    finally:
        if sampler is not None:
            sampler.stopped.set()
        victim_proc.kill()
        server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def command(name: str, quick: bool) -> str:
    return f"python -m benchmarks.attacks --only {name}" + (" --quick" if quick else "")


def _ms(d: dict[str, Any]) -> str:
    lost = f", {d['lost']} lost" if d.get("lost") else ""
    return f"{d['p50']:.0f} / {d['p99']:.0f} / {d['max']:.0f}{lost}"


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| attack | outcome | RSS before / peak / after (MB) | victim latency p50 / p99 / max "
        "during attack (ms) | victim stayed connected |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['attack']} | HARNESS: {r['error']} | | | |")
            continue
        rss = r["rss_mb"]
        stayed = "yes" if r["victim_stayed"] else f"NO {r['victim_disconnects']}"
        text = str(r["outcome"]["text"]).replace("|", "/")
        lines.append(
            f"| {r['attack']} | {text} | {rss['before']:.0f} / {rss['peak']:.0f} / "
            f"{rss['after']:.0f} | {_ms(r['victim_edit_ms'])} | {stayed} |"
        )
    lines += [
        "",
        "| attack | seconds | read-only room (presence) p50 / p99 / max (ms) | /healthz p50 / "
        "p99 / max (ms) | command |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            continue
        h = r["healthz_ms"]
        failed = f", {h['failed']} failed" if h["failed"] else ""
        lines.append(
            f"| {r['attack']} | {r['attack_seconds']:.1f} | {_ms(r['victim_presence_ms'])} | "
            f"{h['p50']:.0f} / {h['p99']:.0f} / {h['max']:.0f}{failed} | `{r['command']}` |"
        )
    return "\n".join(lines)


async def run_all(attacks: list[Attack], quick: bool) -> list[dict[str, Any]]:
    results = []
    for i, attack in enumerate(attacks, 1):
        print(f"[{i}/{len(attacks)}] {attack.name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        result = await run_attack(attack, quick)
        seconds = time.monotonic() - started
        failed = result.get("error") or result.get("outcome", {}).get("error")
        print(
            f"    {'FAILED: ' + str(failed) if failed else 'done'} in {seconds:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        if failed and result.get("server_log_tail"):
            print("    server log (last lines):", file=sys.stderr)
            for line in str(result["server_log_tail"]).splitlines():
                print("      " + line, file=sys.stderr)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated attack names: " + ", ".join(
        a.name for a in ATTACKS))  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="shorter floods and windows")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--victim", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.victim:
        print(json.dumps(asyncio.run(victim(args.victim))), flush=True)
        return 0
    attacks = ATTACKS
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        known = {a.name: a for a in ATTACKS}
        unknown = [n for n in names if n not in known]
        if unknown:
            parser.error(f"unknown attack(s): {', '.join(unknown)}")
        attacks = [known[n] for n in names]
    results = asyncio.run(run_all(attacks, args.quick))
    print(table(results))
    print(f"\nmeasured with: python -m benchmarks.attacks{' --quick' if args.quick else ''}"
          + (f" --only {args.only}" if args.only else ""))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any("error" in r or "error" in r.get("outcome", {}) for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
