"""The README's Python examples run as written."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from test_server_support import relay_server, run

import crdtsync

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_namespace() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 3
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    return namespace


def test_readme_examples_run(capsys):
    readme_namespace()
    assert "[{'insert': 'Please: '}] True" in capsys.readouterr().out


def test_readme_client_example_against_a_real_relay():
    # The snippet names `crdtsync serve`'s default address; point it at a relay on a free port.
    namespace = readme_namespace()
    edit_notes, connect = namespace["edit_notes"], namespace["connect"]

    async def scenario() -> None:
        async with relay_server() as (_relay, url, _tcp):
            namespace["connect"] = lambda address, doc, **kw: connect(
                address.replace("ws://127.0.0.1:8765", url), doc, **kw
            )
            await asyncio.wait_for(edit_notes(), 30)
            reader = crdtsync.Doc()
            async with connect(f"{url}/notes", reader) as client:
                await client.wait_synced(timeout=10)
            assert str(reader.text("body")) == "hello"

    run(scenario())
