"""The examples run against ``crdtsync serve`` on localhost (their scripted modes)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from test_server_support import ServerProcess, servers  # noqa: F401 - fixture

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
