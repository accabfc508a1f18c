"""The examples, run as users run them: against ``crdtsync serve`` on localhost (scripted
modes; chat.py also interactively through pipes, collab_text.py on a pseudo-terminal), and
offline_merge.py, which needs no server; todo.py both ways."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_server_support import (  # noqa: F401 - servers is a fixture
    ServerProcess,
    free_port,
    run,
    servers,
    wait_until,
)

import crdtsync
from crdtsync.sync import Presence
from crdtsync.transports.websocket import connect

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

Start = Callable[..., ServerProcess]


def example(name: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out


def test_chat(servers: Start) -> None:  # noqa: F811
    url = f"{servers('--memory').url}/chat"
    first = finish(example("chat.py", "--url", url, "--name", "alice", "--say", "hi bob"))
    assert "alice: hi bob" in first
    second = finish(example("chat.py", "--url", url, "--name", "bob", "--say", "hello"))
    lines = second.strip().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["alice: hi bob", "bob: hello"]


class Proxy:
    """A TCP forwarder in front of the server that a test can cut and restore: one client
    goes offline while the server stays up for everyone else."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.server: asyncio.Server | None = None
        self.links: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> Proxy:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()  # new connections are refused...
        for writer in self.links:  # ...and open ones drop, as when a network goes away
            writer.transport.abort()
        self.links.clear()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.links += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


class Terminal:
    """``examples/chat.py`` in interactive mode: lines typed on stdin, output read back."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def open(cls, *args: str) -> Terminal:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLES / "chat.py"), *args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )  # fmt: skip
        return cls(proc)

    async def expect(self, pattern: str, timeout: float = 10.0) -> str:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.proc.stdout.readline()).decode()
                assert line, f"chat.py ended before {pattern!r}: {self.lines}"
                self.lines.append(line.rstrip("\n"))
                if re.search(pattern, line):
                    return line

    async def type(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def ctrl_d(self) -> tuple[int, str]:
        """Close stdin (EOF, as Ctrl-D at a terminal); the exit status and stderr."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        assert self.proc.stderr is not None
        self.proc.stdin.close()
        rest, err = await asyncio.gather(self.proc.stdout.read(), self.proc.stderr.read())
        self.lines += rest.decode().splitlines()
        return await self.proc.wait(), err.decode()

    async def __aenter__(self) -> Terminal:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.proc.returncode is None:  # the test failed before Ctrl-D
            self.proc.kill()
            await self.proc.wait()

    def screen(self) -> list[str]:
        """The conversation as the terminal shows it at the end: printed messages, with each
        reprint (from message #k on) replacing what was below #k."""
        shown: list[str] = []
        for line in self.lines:
            if reprint := re.match(r"-- messages merged in above; .* from #(\d+) on", line):
                del shown[int(reprint[1]) - 1 :]
            elif line.startswith("["):
                shown.append(line.split("] ", 1)[1])
        return shown


async def room_log(url: str) -> list[str]:
    doc = crdtsync.Doc()
    async with connect(url, doc) as client:
        await client.wait_synced(10)
        return [f"{m['from']}: {m['text']}" for m in doc.list("messages")]


def test_chat_offline_merge_keeps_every_terminal_in_list_order(
    servers: Start,  # noqa: F811
    tmp_path: Path,
) -> None:
    server = servers("--memory")
    finish(example("chat.py", "--url", f"{server.url}/chat", "--name", "bob", "--say", "before"))

    async def scenario() -> None:
        proxy = await Proxy(server.port).start()
        async with await Terminal.open(
            "--url", f"{proxy.url}/chat", "--name", "alice", "--outbox", str(tmp_path / "a.crdt")
        ) as alice:
            await merge(proxy, alice)
        log = await room_log(f"{server.url}/chat")
        assert log == ["bob: before", "carol: meanwhile", "alice: written offline"]
        assert alice.screen() == log, alice.lines
        assert not (tmp_path / "a.crdt").exists()  # everything was delivered
        await proxy.cut()

    async def merge(proxy: Proxy, alice: Terminal) -> None:
        await alice.expect("-- joined")
        await proxy.cut()
        await alice.expect("-- connection lost")
        await alice.type("written offline")
        await alice.expect("alice: written offline")

        # Meanwhile carol, online, writes at the same spot. Her counter steps first raise her
        # Lamport clock, so her message sorts *before* alice's, already on alice's screen.
        carol = crdtsync.Doc()
        async with connect(f"{server.url}/chat", carol) as client:
            await client.wait_synced(10)
            for _ in range(3):
                carol.counter("steps").increment()
            carol.list("messages").append({"from": "carol", "text": "meanwhile", "ts": 0})
            await client.wait_synced(10)

        await proxy.start()  # back online: alice's client reconnects by itself
        await alice.expect("-- messages merged in above")
        await alice.expect("alice: written offline")
        status, err = await alice.ctrl_d()
        assert status == 0, err
        assert "Traceback" not in err

    run(scenario())


def test_chat_ctrl_d_offline_keeps_the_message_and_sends_it_next_time(
    servers: Start,  # noqa: F811
    tmp_path: Path,
) -> None:
    server = servers("--memory")
    outbox = tmp_path / "outbox" / "alice.crdt"

    async def scenario() -> None:
        proxy = await Proxy(server.port).start()
        room = f"{proxy.url}/chat"
        async with await Terminal.open(
            "--url", room, "--name", "alice", "--outbox", str(outbox), "--wait", "1"
        ) as alice:
            await alice.expect("-- joined")
            await proxy.cut()
            await alice.expect("-- connection lost")
            await alice.type("sent before the server came back")
            await alice.expect("alice: sent before")
            status, err = await alice.ctrl_d()
        assert status == 0, err
        assert "Traceback" not in err
        assert "1 message(s) you wrote" in err and f"kept in {outbox}" in err, err
        assert outbox.exists()

        await proxy.start()
        again = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLES / "chat.py"), "--url", room, "--name", "alice",
            "--outbox", str(outbox), "--say", "and this one",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err_bytes = await again.communicate()
        assert again.returncode == 0, err_bytes.decode()
        assert not outbox.exists()
        expected = ["alice: sent before the server came back", "alice: and this one"]
        assert [line.split("] ", 1)[1] for line in out.decode().splitlines()] == expected
        assert await room_log(f"{server.url}/chat") == expected
        await proxy.cut()

    run(scenario())


def test_chat_say_while_the_server_is_down(tmp_path: Path) -> None:
    outbox = tmp_path / "alice.crdt"
    proc = example("chat.py", "--url", f"ws://127.0.0.1:{free_port()}/chat", "--name", "alice",
                   "--outbox", str(outbox), "--wait", "0.5", "--say", "anyone?")  # fmt: skip
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert "Traceback" not in err and f"kept in {outbox}" in err, err
    assert "alice: anyone?" in out and outbox.exists()


def test_offline_merge_needs_no_server() -> None:
    # Random replica ids, yet the same output on every run: the concurrent writes it shows
    # are decided by Lamport time, not by id.
    outs = {finish(example("offline_merge.py")) for _ in range(2)}
    assert len(outs) == 1
    assert "alice and bob converged" in outs.pop()


TODO_MERGED = "has ['[x] buy oat milk', '[ ] write report', '[ ] book dentist']"
TODO_FINAL: dict[str, object] = {
    "todos": [{"title": "write report", "done": False}, {"title": "book dentist", "done": False}]
}


def check_todo_story(out: str) -> None:
    # After the offline edits: ONE item with alice's tick and bob's rename, on every replica.
    assert out.count(TODO_MERGED) == 3, out
    # Each replica heard of the others' changes through its observers.
    assert "alice  sees 'buy milk' renamed 'buy oat milk'" in out
    assert re.search(r"bob    sees 'buy (oat )?milk' marked done", out), out
    assert "carol  sees new item 'book dentist'" in out
    assert re.search(r"bob    sees 'call mom( back)?' deleted", out), out
    assert "alice  sees 'buy oat milk' deleted" in out
    assert f"everyone holds {TODO_FINAL}" in out
    assert out.endswith("alice, bob and carol converged\n")


def test_todo_over_the_simulated_network() -> None:
    # Random replica ids, yet the same run every time: the network is seeded and the story
    # never lets two replicas' concurrent inserts compete for one spot.
    outs = {finish(example("todo.py")) for _ in range(2)}
    assert len(outs) == 1
    out = outs.pop()
    assert out.startswith("(three replicas in this process, over a simulated faulty network)")
    check_todo_story(out)


def test_todo_through_a_relay(servers: Start, tmp_path: Path) -> None:  # noqa: F811
    db = str(tmp_path / "todo.db")
    server = servers("--db", db)
    url = f"{server.url}/todo"
    out = finish(example("todo.py", "--url", url))
    assert out.startswith(f"(three clients of the relay at {url})")
    check_todo_story(out)

    async def room(url: str) -> dict[str, object]:
        doc = crdtsync.Doc()
        async with connect(url, doc) as client:
            await client.wait_synced(10)
            return doc.to_py()

    # The relay stored the list, nested items and all: a later client gets it, and so does
    # one after a restart, from the SQLite file.
    assert run(room(url)) == TODO_FINAL
    assert server.terminate() == 0
    url = f"{servers('--db', db).url}/todo"
    assert run(room(url)) == TODO_FINAL
    # A second run will not tell its story in a room that holds a list already.
    again = example("todo.py", "--url", url)
    _, err = again.communicate(timeout=30)
    assert again.returncode == 1, err
    assert "holds a todo list already" in err and "Traceback" not in err


def test_dashboard(servers: Start) -> None:  # noqa: F811
    url = f"{servers('--memory').url}/dash"
    sources = [
        example("dashboard.py", "--url", url, "source", "--name", name, "--interval", "0.01",
                "--count", "25")
        for name in ("boiler", "chiller", "pump")
    ]  # fmt: skip
    for proc in sources:
        finish(proc)
    view = finish(example("dashboard.py", "--url", url, "view", "--once"))
    assert "events       75" in view
    for name in ("boiler", "chiller", "pump"):
        assert name in view


def test_collab_text_typists_converge(servers: Start) -> None:  # noqa: F811
    url = f"{servers('--memory').url}/text"
    typists = [
        example("collab_text.py", "--url", url, "--type", letter * 15, "--scatter",
                "--delay", "0.01", "--linger", "0", "--until-length", "30")
        for letter in "ab"
    ]  # fmt: skip
    outs = [finish(proc).strip() for proc in typists]
    assert outs[0] == outs[1]
    assert sorted(outs[0]) == sorted("a" * 15 + "b" * 15)


class PseudoTerminal:
    """A program on a real pseudo-terminal of a fixed size, its output rendered by a
    terminal emulator (pyte), so that a test reads the screen a user would see."""

    def __init__(self, args: list[str], lines: int = 10, columns: int = 40) -> None:
        pyte = pytest.importorskip("pyte", reason="pyte renders the terminal (test extra)")
        self.screen = pyte.Screen(columns, lines)
        self.stream = pyte.ByteStream(self.screen)
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", LC_ALL="C.UTF-8", ESCDELAY="25")
        self.proc = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)

    def pump(self, timeout: float = 0.05) -> None:
        while select.select([self.master], [], [], timeout)[0]:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # the program ended and the terminal closed
                return
            if not data:
                return
            self.stream.feed(data)
            timeout = 0.05

    def wait_for(self, what: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < deadline, "\n".join(self.screen.display)
            self.pump()

    def keys(self, data: str) -> None:
        os.write(self.master, data.encode())

    def close(self) -> int:
        try:
            return self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            os.close(self.master)


def test_collab_text_draws_wide_characters_where_the_terminal_puts_them(
    servers: Start,  # noqa: F811
) -> None:
    url = f"{servers('--memory').url}/text"
    wide = "日本語😀ab"  # 6 characters, 10 columns
    finish(example("collab_text.py", "--url", url, "--type", wide, "--delay", "0",
                   "--linger", "0"))  # fmt: skip
    term = PseudoTerminal([sys.executable, str(EXAMPLES / "collab_text.py"), "--url", url,
                           "--name", "carol"])  # fmt: skip
    try:
        term.wait_for(lambda: term.screen.display[1].startswith(wide))
        term.keys("\x05")  # Ctrl-E: end of the line, which is 10 columns in, not 6
        term.wait_for(lambda: (term.screen.cursor.y, term.screen.cursor.x) == (1, 10))
        term.keys("!")
        term.wait_for(lambda: term.screen.display[1].rstrip() == wide + "!")
        # Wrapping counts columns too (39 usable of 40): after 32 x's and three 2-column
        # characters, the emoji has one column left on the row and moves down whole.
        term.keys("\x01" + "x" * 32)  # Ctrl-A: to the start, then type
        term.wait_for(lambda: term.screen.display[2].startswith("😀ab!"))
        assert term.screen.display[1] == "x" * 32 + "日本語" + "  "
        assert (term.screen.cursor.y, term.screen.cursor.x) == (1, 32)
        term.keys("\x03")  # Ctrl-C quits
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    typed = finish(example("collab_text.py", "--url", url, "--type", "", "--linger", "0"))
    assert typed.strip() == "x" * 32 + wide + "!"


def test_collab_text_undoes_only_its_own_typing_and_shows_a_caret_from_presence(
    servers: Start,  # noqa: F811
) -> None:
    url = f"{servers('--memory').url}/text"
    term = PseudoTerminal([sys.executable, str(EXAMPLES / "collab_text.py"), "--url", url,
                           "--name", "dana"])  # fmt: skip

    def line() -> str:
        return str(term.screen.display[1]).rstrip()

    def at() -> tuple[int, int]:
        return term.screen.cursor.y, term.screen.cursor.x

    def reversed_columns() -> list[int]:
        row = term.screen.buffer[1]
        return [x for x in range(term.screen.columns) if row[x].reverse]

    async def screen(what: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 15
        while not what():
            assert time.monotonic() < deadline, "\n".join(term.screen.display)
            term.pump(0.01)
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        await screen(lambda: "dana (online)" in term.screen.display[0])
        term.keys("abc")  # one burst: one undo step
        await screen(lambda: line() == "abc")
        await asyncio.sleep(0.8)  # past the capture timeout: the next keys are a new step
        term.keys("def")
        await screen(lambda: line() == "abcdef")
        term.keys("\x1a")  # Ctrl-Z
        await screen(lambda: line() == "abc" and at() == (1, 3))
        term.keys("\x19")  # Ctrl-Y
        await screen(lambda: line() == "abcdef" and at() == (1, 6))
        term.keys("\x1a")
        await screen(lambda: line() == "abc")
        doc = crdtsync.Doc()
        presence = Presence(doc.replica_id)
        async with connect(url, doc, presence=presence) as client:
            await client.wait_synced(10)
            text = doc.text("text")
            # A caret into text the editor never receives: the name shows, the caret not.
            elsewhere = crdtsync.Doc()
            elsewhere.text("text").insert(0, "??")
            presence.set_local({"name": "zed", "cursor": elsewhere.text("text").cursor(1).encode()})
            await screen(lambda: "also here: zed" in term.screen.display[0])
            assert reversed_columns() == []
            text.insert(0, ">")  # a remote edit, before dana's text
            presence.set_local({"name": "zed", "cursor": text.cursor(2).encode()})  # at "b"
            await screen(lambda: line() == ">abc" and reversed_columns() == [2])
            assert at() == (1, 4)  # dana's caret followed her text
            term.keys("\x1a")  # undoes dana's "abc", not zed's ">"
            await screen(lambda: line() == ">" and at() == (1, 1))
            await wait_until(lambda: str(text) == ">", 10)
            assert reversed_columns() == [1]  # zed's caret stays where "b" was
            presence.set_local(None)  # zed leaves
            await screen(lambda: "also here: nobody" in term.screen.display[0])
        term.keys("\x03")

    try:
        run(scenario())
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
