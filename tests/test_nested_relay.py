"""Nested documents through the sync, relay and server paths, unchanged.

Real WebSocket (and TCP) clients through a real relay with SQLite storage: several clients
editing maps of lists of maps with Texts, Counters and ORSets inside; two clients creating
the same child at the same key at once; a late joiner; a restart that reloads the room from
SQLite (with and without compaction); and two ``crdtsync serve`` processes bridged by Redis.
Every check compares ``doc.to_py()`` of every client and of the relay's own room document.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from test_server_support import (  # noqa: F401 - fixtures
    ServerProcess,
    redis_url,
    relay_server,
    run,
    servers,
    wait_until,
)

import crdtsync
from crdtsync import LWWMap, Text
from crdtsync.server import SQLiteStorage
from crdtsync.server.relay import Relay
from crdtsync.transports import asyncio_stream
from crdtsync.transports.websocket import connect

Start = Callable[..., ServerProcess]


# ---- helpers -----------------------------------------------------------------------------------


def card(cards: crdtsync.List, index: int, title: str, tag: str) -> LWWMap:
    """A card: {"title": Text, "done": bool, "votes": Counter, "labels": ORSet,
    "checklist": List of {"text": Text, "done": bool}}."""
    item = cards.insert_container(index, LWWMap)
    item.text("title").insert(0, title)
    item["done"] = False
    item.counter("votes").increment()
    item.set("labels").add(tag)
    step = item.list("checklist").append_container(LWWMap)
    step.text("text").insert(0, f"first step of {title}")
    step["done"] = False
    return item


def nested_edit(doc: crdtsync.Doc, rng: random.Random, tag: str) -> None:
    """One random edit somewhere in a board: a map of lists of maps with containers inside."""
    board = doc.map("board")
    columns = ("todo", "doing")
    cards = board.list(rng.choice(columns))
    items = [c for c in cards if isinstance(c, LWWMap)]
    roll = rng.random()
    with doc.transaction():
        if roll < 0.2 or not items:
            card(cards, rng.randint(0, len(cards)), f"{tag}{rng.randrange(100)}", tag)
        elif roll < 0.35:
            title = rng.choice(items).text("title")
            title.insert(rng.randint(0, len(title)), rng.choice("abc"))
        elif roll < 0.45:
            item = rng.choice(items)
            item["done"] = not item.get("done")
        elif roll < 0.55:
            rng.choice(items).counter("votes").increment(rng.randint(1, 3))
        elif roll < 0.65:
            labels = rng.choice(items).set("labels")
            if tag in labels and rng.random() < 0.5:
                labels.discard(tag)
            else:
                labels.add(tag)
        elif roll < 0.75:
            steps = rng.choice(items).list("checklist")
            step = steps.append_container(LWWMap)
            step.text("text").insert(0, f"{tag} step")
            step["done"] = rng.random() < 0.5
        elif roll < 0.82:
            del cards[rng.randrange(len(cards))]
        elif roll < 0.9:
            board.map("meta").text("name").insert(0, tag)
            board.map("meta").counter("edits").increment()
        else:
            doc.text("notes").insert(0, tag)


def to_py(doc: crdtsync.Doc) -> dict[str, Any]:
    return doc.to_py()


async def level(docs: list[crdtsync.Doc], timeout: float = 15.0, what: str = "") -> None:
    """Wait until every document holds the same version and the same to_py()."""
    await wait_until(
        lambda: (
            all(d.version == docs[0].version for d in docs)
            and all(to_py(d) == to_py(docs[0]) for d in docs)
        ),
        timeout,
        what or "documents to converge",
    )


def room_doc(relay: Relay, room: str) -> crdtsync.Doc:
    return relay.rooms[room].doc


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def board_state(doc: crdtsync.Doc) -> dict[str, Any]:
    state: dict[str, Any] = to_py(doc).get("board", {})
    return state


# ---- one relay ---------------------------------------------------------------------------------


def test_three_clients_edit_a_nested_board_and_converge(tmp_path: Path) -> None:
    async def body() -> None:
        storage = SQLiteStorage(tmp_path / "rooms.db", node="one")
        async with relay_server(storage=storage, tcp=True) as (relay, url, tcp_url):
            assert tcp_url is not None
            docs = [crdtsync.Doc() for _ in range(3)]
            clients = [
                await connect(f"{url}/board", docs[0]),
                await connect(f"{url}/board", docs[1]),
                await asyncio_stream.connect(f"{tcp_url}/board", docs[2]),  # plain TCP too
            ]
            rng = random.Random(5)
            for step in range(150):
                i = rng.randrange(3)
                nested_edit(docs[i], rng, "abc"[i])
                if step % 6 == 0:
                    await asyncio.sleep(0)  # edits cross the relay while others are made
            await level([*docs, room_doc(relay, "board")], what="three clients and the room")
            for client in clients:
                await client.wait_synced(5)
            state = to_py(docs[0])
            assert depth(state) >= 5, state  # board -> column -> card -> checklist -> step
            cards = state["board"]["todo"] + state["board"]["doing"]
            assert any(c["votes"] > 1 for c in cards) and any(c["checklist"] for c in cards)
            assert all(isinstance(c["labels"], set) for c in cards)
            for client in clients:
                await client.close()

    run(body())


def test_concurrent_creation_of_the_same_child_key_merges() -> None:
    async def body() -> None:
        async with relay_server() as (relay, url, _):
            a, b = crdtsync.Doc(), crdtsync.Doc()
            ca, cb = await connect(f"{url}/same", a), await connect(f"{url}/same", b)
            await ca.wait_synced(5)
            await cb.wait_synced(5)
            # Both edits run before the event loop turns: neither client has sent anything,
            # so neither has seen the other's child. Each creates every kind at the same keys.
            for doc, who in ((a, "A"), (b, "B")):
                with doc.transaction():
                    board = doc.map("board")
                    board.text("title").insert(0, who)
                    board.counter("votes").increment(1 if who == "A" else 10)
                    board.set("labels").add(who)
                    board.list("cards").append(f"card {who}")
                    settings = board.map("settings")
                    settings[f"by {who}"] = True
                    settings.map("deeper").text("note").insert(0, who.lower())
            await level([a, b, room_doc(relay, "same")])
            state = board_state(a)
            # ONE child per key, holding both sides' edits.
            assert sorted(state["title"]) == ["A", "B"]
            assert state["votes"] == 11
            assert state["labels"] == {"A", "B"}
            assert sorted(state["cards"]) == ["card A", "card B"]
            assert state["settings"]["by A"] is state["settings"]["by B"] is True
            assert sorted(state["settings"]["deeper"]["note"]) == ["a", "b"]
            # ... and they really are one: edits on either side land in the same child.
            a.map("board").text("title").insert(0, "<")
            b.map("board").map("settings").map("deeper").counter("n").increment()
            await level([a, b, room_doc(relay, "same")])
            assert board_state(b)["title"].startswith("<")
            assert board_state(a)["settings"]["deeper"]["n"] == 1

            # A late joiner gets the merged children whole.
            late = crdtsync.Doc()
            async with connect(f"{url}/same", late) as cl:
                await cl.wait_synced(5)
                assert to_py(late) == to_py(a)
                assert isinstance(late.map("board")["title"], Text)
            await ca.close()
            await cb.close()

    run(body())


def test_offline_clients_create_the_same_child_and_merge_on_connect() -> None:
    async def body() -> None:
        async with relay_server() as (relay, url, _):
            # The shared start: one card, then everyone goes offline.
            start = crdtsync.Doc()
            async with connect(f"{url}/offline", start) as client:
                card(start.map("board").list("todo"), 0, "ship it", "s")
                await client.wait_synced(5)
            a, b = crdtsync.Doc(), crdtsync.Doc()
            for doc in (a, b):
                async with connect(f"{url}/offline", doc) as client:
                    await client.wait_synced(5)
            # Offline: both give the card a "notes" Text (the same new child key), a tick and
            # a rename, and vote on it.
            for doc, who in ((a, "A"), (b, "B")):
                item = doc.map("board").list("todo")[0]
                item.text("notes").insert(0, f"{who} was here")
                item.counter("votes").increment()
            a.map("board").list("todo")[0]["done"] = True
            b.map("board").list("todo")[0].text("title").insert(0, "really ")
            ca, cb = await connect(f"{url}/offline", a), await connect(f"{url}/offline", b)
            await level([a, b, room_doc(relay, "offline")])
            (item,) = board_state(a)["todo"]
            assert item["title"] == "really ship it" and item["done"] is True
            assert item["votes"] == 3
            # One "notes" Text holding both, neither run split by the other.
            assert item["notes"] in ("A was hereB was here", "B was hereA was here"), item
            await ca.close()
            await cb.close()

    run(body())


def test_removed_children_through_the_relay() -> None:
    async def body() -> None:
        async with relay_server() as (relay, url, _):
            a, b = crdtsync.Doc(), crdtsync.Doc()
            ca, cb = await connect(f"{url}/rm", a), await connect(f"{url}/rm", b)
            with a.transaction():
                cards = a.map("board").list("todo")
                card(cards, 0, "keep", "k")
                card(cards, 1, "drop", "d")
                a.map("board").text("title").insert(0, "old title")
            await level([a, b, room_doc(relay, "rm")])
            # At once: a deletes the card "drop" while b edits inside it; b deletes the
            # board's title and makes a new one at the same key, which starts empty.
            del a.map("board").list("todo")[1]
            drop = b.map("board").list("todo")[1]
            drop.text("title").insert(0, "edited ")
            drop.list("checklist")[0]["done"] = True
            del b.map("board")["title"]
            b.map("board").text("title").insert(0, "new")
            await level([a, b, room_doc(relay, "rm")])
            state = board_state(a)
            assert [c["title"] for c in state["todo"]] == ["keep"]
            assert state["title"] == "new"
            # A joiner sees the same, with none of the removed content.
            late = crdtsync.Doc()
            async with connect(f"{url}/rm", late) as cl:
                await cl.wait_synced(5)
                assert to_py(late) == to_py(a) == to_py(b)
            await ca.close()
            await cb.close()

    run(body())


def test_nested_room_survives_a_restart_from_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "rooms.db"

    async def first() -> dict[str, Any]:
        # compact_rows: the room is also folded into a snapshot (merge_updates of nested
        # updates) while the clients edit, and the rest on shutdown.
        storage = SQLiteStorage(db, node="one")
        async with relay_server(storage=storage, compact_rows=20) as (relay, url, _):
            docs = [crdtsync.Doc(), crdtsync.Doc()]
            clients = [await connect(f"{url}/kept", d) for d in docs]
            rng = random.Random(9)
            for step in range(80):
                i = step % 2
                nested_edit(docs[i], rng, "xy"[i])
                if step % 5 == 0:
                    await clients[i].wait_synced(5)
            await level([*docs, room_doc(relay, "kept")])
            for client in clients:
                await client.wait_synced(5)
                await client.close()
            await wait_until(lambda: not relay.rooms["kept"].compacting, what="compaction")
            return to_py(docs[0])

    expected = run(first())
    assert depth(expected) >= 4

    async def second() -> None:
        async with relay_server(storage=SQLiteStorage(db, node="two")) as (relay, url, _):
            late = crdtsync.Doc()
            async with connect(f"{url}/kept", late) as client:
                await client.wait_synced(5)
                assert to_py(late) == expected
                assert to_py(room_doc(relay, "kept")) == expected
                # The reloaded children are live: edit inside one, and a new child.
                cards = late.map("board").list("todo")
                if not len(cards):
                    card(cards, 0, "fresh", "z")
                cards[0].text("title").insert(0, "after restart: ")
                cards[0].set("labels").add("restarted")
                late.map("board").map("meta").counter("restarts").increment()
                await client.wait_synced(5)
            other = crdtsync.Doc()
            async with connect(f"{url}/kept", other) as client:
                await client.wait_synced(5)
                assert to_py(other) == to_py(late)
                assert board_state(other)["todo"][0]["title"].startswith("after restart: ")
                assert board_state(other)["meta"]["restarts"] == 1

    run(second())


# ---- two processes, Redis ----------------------------------------------------------------------


def test_two_processes_bridged_by_redis_carry_nested_documents(
    tmp_path: Path,
    servers: Start,  # noqa: F811
    redis_url: str,  # noqa: F811
) -> None:
    db = str(tmp_path / "shared.db")
    # A long resync interval: what crosses between processes within the test comes by Redis.
    common = ("--db", db, "--redis", redis_url, "--resync-interval", "600")
    one = servers(*common, "--node", "one")
    two = servers(*common, "--node", "two")

    async def body() -> None:
        docs = [crdtsync.Doc() for _ in range(3)]
        urls = [one.url, two.url, two.url]
        clients = [await connect(f"{u}/team", d) for u, d in zip(urls, docs, strict=True)]
        for client in clients:
            await client.wait_synced(5)
        # The same child created on both processes at once...
        for doc, who in ((docs[0], "one"), (docs[1], "two")):
            doc.map("board").map("shared").text("title").insert(0, who)
            doc.map("board").map("shared").counter("hits").increment()
        # ...and random nested edits from all three.
        rng = random.Random(13)
        for step in range(90):
            i = rng.randrange(3)
            nested_edit(docs[i], rng, "pqr"[i])
            if step % 8 == 0:
                await asyncio.sleep(0.01)
        await level(docs, 20, "clients on two processes to converge")
        shared = board_state(docs[2])["shared"]
        assert shared["hits"] == 2 and sorted(shared["title"]) == sorted("onetwo")
        for client in clients:
            await client.wait_synced(5)
        # A third process starting now loads the room from the shared log.
        three = servers(*common, "--node", "three")
        late = crdtsync.Doc()
        async with connect(f"{three.url}/team", late) as cl:
            await cl.wait_synced(5)
            assert to_py(late) == to_py(docs[0])
            late.map("board").map("shared").text("title").insert(0, "3:")
            await level([late, *docs], 10, "an edit from the late process to reach the others")
        assert board_state(docs[0])["shared"]["title"].startswith("3:")
        for client in clients:
            await client.close()

    run(body(), timeout=60)
