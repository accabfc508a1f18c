"""A collaborative todo list: a List of maps, each item with a "title" Text and a "done" flag.

This is what nested containers are for. ``todos`` is a List whose elements are LWWMaps, and
each item's title is a Text of its own. When two people change the same item at the same
time, one ticking it done and the other renaming it, both edits land *inside* that one
item, so everyone ends up with ONE item holding both. (Were the items plain
``{"title": ..., "done": ...}`` values in a List, changing one would mean replacing it, and
two concurrent replacements would leave two items, or lose one of the edits.)

Alice, Bob and Carol each hold a replica of the list:

1. Alice writes three items; everyone gets them.
2. Offline, unaware of each other: Alice ticks "buy milk" done while Bob renames it "buy
   oat milk"; Carol deletes "call mom" while Bob is adding to its title; Bob adds an item.
3. Back online: one "buy oat milk", done; "call mom" is gone (a deleted item takes the
   edits made inside it with it); Bob's new item is there for everyone.
4. Carol clears the items that are done, and everyone sees them go.

Every replica observes its list (``observe`` on the List and on each item and title) and
prints the changes that reach it from the others.

Run it (from a checkout, after ``pip install -e .``)::

    python examples/todo.py

which keeps the three replicas in one process and syncs them with ``SyncSession`` over
``crdtsync.testing``'s simulated network (latency, reordering, duplicates and lost
messages; "offline" is a network partition). Or through a real relay, each replica a
WebSocket client (``pip install -e '.[websocket]'``; "offline" closes the connections)::

    crdtsync serve --memory &
    python examples/todo.py --url ws://127.0.0.1:8765/todo
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import crdtsync
from crdtsync import LWWMap, Text
from crdtsync.testing import SimulatedNetwork

NAMES = ("alice", "bob", "carol")


# ---------------------------------------------------------------------------------------------
# The todo list
# ---------------------------------------------------------------------------------------------


def add_item(todos: crdtsync.List, title: str) -> LWWMap:
    """Append an item: a map holding a Text title and a done flag, created in one go (call
    it inside a transaction to send the item as one update)."""
    item = todos.append_container(LWWMap)
    item.text("title").insert(0, title)
    item["done"] = False
    return item


def find(todos: crdtsync.List, title: str) -> tuple[int, LWWMap]:
    """The index and item whose title is ``title``."""
    for index, item in enumerate(todos):
        if isinstance(item, LWWMap) and str(item.get("title", "")) == title:
            return index, item
    raise LookupError(title)


def show(doc: crdtsync.Doc) -> list[str]:
    return [
        f"[{'x' if item.get('done') else ' '}] {item.get('title', '')}"
        for item in doc.to_py().get("todos", [])
    ]


class Watcher:
    """Prints what changes in one replica's todo list because of the others' edits.

    The List's events say that items came or went; each item's own events say that its
    ``done`` flag moved, and its title's events that the title was edited. New items are
    subscribed to as they arrive, deleted ones unsubscribed.
    """

    def __init__(self, name: str, todos: crdtsync.List, say: Callable[[str], None]) -> None:
        self.name = name
        self.todos = todos
        self.say = say
        # item.name (its place in the list, the same on every replica) -> last known title,
        # and the functions that unsubscribe from it.
        self.titles: dict[str, str] = {}
        self.unsubscribe: dict[str, list[Callable[[], None]]] = {}
        todos.observe(self._list_changed)
        self._rescan(report=False)

    def _tell(self, what: str) -> None:
        self.say(f"  {self.name:<6} sees {what}")

    def _items(self) -> dict[str, LWWMap]:
        return {item.name: item for item in self.todos if isinstance(item, LWWMap)}

    def _listed(self, key: str) -> bool:
        return key in self._items()

    def _list_changed(self, event: crdtsync.ListEvent) -> None:
        self._rescan(report=not event.local)

    def _rescan(self, report: bool) -> None:
        items = self._items()
        for key in [key for key in self.titles if key not in items]:
            if report:
                self._tell(f"{self.titles[key]!r} deleted")
            for unsubscribe in self.unsubscribe.pop(key):
                unsubscribe()
            del self.titles[key]
        for key, item in items.items():
            if key not in self.titles:
                self._follow(key, item)
                if report:
                    self._tell(f"new item {self.titles[key]!r}")

    def _follow(self, key: str, item: LWWMap) -> None:
        title = item.get("title")  # not item.text("title"): that would create one
        self.titles[key] = str(title) if isinstance(title, Text) else ""

        # An item deleted in the same transaction (ours or a peer's) may report changes of
        # its own as it goes, its content removed with it: the List's event tells of the
        # deletion, so those are not news.
        def done_changed(event: crdtsync.MapEvent) -> None:
            if not event.local and "done" in event.keys_changed and self._listed(key):
                state = "done" if item.get("done") else "not done"
                self._tell(f"{self.titles[key]!r} marked {state}")

        def title_changed(event: crdtsync.TextEvent) -> None:
            if not self._listed(key):
                return
            old, new = self.titles[key], str(event.target)
            self.titles[key] = new
            if not event.local:
                self._tell(f"{old!r} renamed {new!r}")

        self.unsubscribe[key] = [item.observe(done_changed)]
        if isinstance(title, Text):
            self.unsubscribe[key].append(title.observe(title_changed))


# ---------------------------------------------------------------------------------------------
# Two ways to connect the replicas
# ---------------------------------------------------------------------------------------------


def level(docs: Iterable[crdtsync.Doc]) -> bool:
    """Whether the documents hold the same changes (and hence the same values)."""
    versions = [doc.version for doc in docs]
    return all(version == versions[0] for version in versions)


class Network(Protocol):
    docs: dict[str, crdtsync.Doc]

    async def go_offline(self) -> None: ...
    async def go_online(self) -> None: ...
    async def settle(self) -> None:
        """Return once every replica holds everything any of them holds."""
        ...


class Simulated:
    """The replicas in this process, each pair linked by two SyncSessions over a seeded
    network that delays, reorders, duplicates and drops messages."""

    def __init__(self) -> None:
        self.docs = {name: crdtsync.Doc() for name in NAMES}
        self.net = SimulatedNetwork.mesh(self.docs, seed=7, latency=(1, 5), loss=0.1, duplicate=0.1)

    async def go_offline(self) -> None:
        self.net.partition(*([name] for name in NAMES))  # nobody reaches anybody

    async def go_online(self) -> None:
        self.net.heal()

    async def settle(self) -> None:
        for _ in range(50):
            self.net.run_until_quiet()
            if level(self.docs.values()) and self.net.synced:
                return
            # The last message of an exchange was lost, so nothing more moves: a real
            # client notices the silence and reconnects, which brings both sides level.
            self.net.reconnect_all()
        raise RuntimeError("the replicas did not converge")


class Relayed:
    """Each replica a WebSocket client of ``crdtsync serve`` in the room at ``url``."""

    def __init__(self, url: str) -> None:
        from crdtsync.transports import SyncClient

        self.url = url
        self.docs = {name: crdtsync.Doc() for name in NAMES}
        self.clients: dict[str, SyncClient] = {}

    async def go_online(self) -> None:
        from crdtsync.transports.websocket import connect

        for name, doc in self.docs.items():
            self.clients[name] = await connect(self.url, doc)

    async def go_offline(self) -> None:
        await self.settle()  # what was written goes out before the connections close
        for client in self.clients.values():
            await client.close()  # the documents stay usable offline
        self.clients.clear()

    async def settle(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for client in self.clients.values():
                await client.wait_synced(timeout=max(0.1, deadline - time.monotonic()))
            # Synced means the relay holds what the client holds; the others may still be
            # receiving it.
            if level(self.docs.values()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the replicas did not converge")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()


# ---------------------------------------------------------------------------------------------
# The story
# ---------------------------------------------------------------------------------------------


async def story(network: Network, say: Callable[[str], None] = print) -> dict[str, Any]:
    docs = network.docs
    alice, bob, carol = (docs[name] for name in NAMES)
    for name, doc in docs.items():
        Watcher(name, doc.list("todos"), say)  # kept alive by the callbacks it registers

    say("1. alice writes the list")
    with alice.transaction():  # one transaction: the three items travel as one update
        for title in ("buy milk", "call mom", "write report"):
            add_item(alice.list("todos"), title)
    await network.settle()

    await network.go_offline()
    say("\n2. offline, at the same time:")
    say("   alice ticks 'buy milk' done; bob renames it 'buy oat milk'")
    find(alice.list("todos"), "buy milk")[1]["done"] = True
    _, milk = find(bob.list("todos"), "buy milk")
    milk.text("title").insert(len("buy "), "oat ")
    say("   carol deletes 'call mom' while bob writes 'call mom back'")
    index, _ = find(carol.list("todos"), "call mom")
    del carol.list("todos")[index]
    find(bob.list("todos"), "call mom")[1].text("title").insert(len("call mom"), " back")
    say("   bob adds 'book dentist'")
    with bob.transaction():
        add_item(bob.list("todos"), "book dentist")
    for name, doc in docs.items():
        say(f"   {name:<6} has {show(doc)}")

    say("\n3. back online")
    await network.go_online()
    await network.settle()
    merged = show(alice)
    for name, doc in docs.items():
        say(f"   {name:<6} has {show(doc)}")
    assert all(show(doc) == merged for doc in docs.values()), "replicas diverged"
    assert merged == ["[x] buy oat milk", "[ ] write report", "[ ] book dentist"], merged

    say("\n4. carol clears the items that are done")
    todos = carol.list("todos")
    with carol.transaction():
        for index in reversed(range(len(todos))):
            if todos[index].get("done"):
                del todos[index]
    await network.settle()

    final = alice.to_py()
    assert all(doc.to_py() == final for doc in docs.values()), "replicas diverged"
    assert final == {
        "todos": [
            {"title": "write report", "done": False},
            {"title": "book dentist", "done": False},
        ]
    }, final
    say(f"\neveryone holds {final}")
    return final


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument(
        "--url",
        help="sync through the crdtsync serve room at this URL (e.g. "
        "ws://127.0.0.1:8765/todo, a fresh room) instead of a simulated network",
    )
    args = parser.parse_args()
    if args.url is None:
        print("(three replicas in this process, over a simulated faulty network)\n")
        await story(Simulated())
    else:
        print(f"(three clients of the relay at {args.url})\n")
        relayed = Relayed(args.url)
        await relayed.go_online()
        try:
            await relayed.settle()
            if len(relayed.docs["alice"].list("todos")):
                sys.exit(
                    f"{args.url} holds a todo list already (an earlier run?): name a fresh room"
                )
            await story(relayed)
        finally:
            await relayed.close()
    print("alice, bob and carol converged")


if __name__ == "__main__":
    asyncio.run(main())
