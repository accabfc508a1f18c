"""One tick of a room, through a real relay and real WebSocket clients: the updates several
clients send within it reach every client as one message, with everyone's changes but its
own (the relay cuts those messages from one shared merge), and all end equal."""

from __future__ import annotations

import asyncio

import pytest
from test_server_support import relay_server, run, wait_until

import crdtsync
from crdtsync import _encoding as enc
from crdtsync.transports.websocket import connect


@pytest.mark.parametrize("writers", [2, 5])
def test_a_tick_reaches_each_client_as_one_update_without_its_own_changes(writers: int) -> None:
    async def body() -> None:
        async with relay_server(tick=0.3) as (relay, url, _):
            docs = [crdtsync.Doc() for _ in range(writers + 2)]  # two only read
            received: list[list[bytes]] = [[] for _ in docs]
            clients = []
            for doc, got in zip(docs, received, strict=True):
                client = await connect(f"{url}/fan", doc)
                await client.wait_synced(5)
                clients.append(client)
                doc.on_update(lambda u, o, got=got: got.append(u) if o is not None else None)
            for i, doc in enumerate(docs[:writers]):
                with doc.transaction():
                    doc.text("t").insert(0, f"<{i}>")
                    doc.map("m")[f"k{i}"] = i
            total = sum(len(f"<{i}>") for i in range(writers))
            await wait_until(lambda: all(len(d.text("t")) == total for d in docs), timeout=10)
            for doc, got in zip(docs, received, strict=True):
                replicas = {s.replica for u in got for s in enc.decode_update(u).segments}
                assert doc.replica_id not in replicas  # never its own changes back
                others = writers - (doc in docs[:writers])
                assert replicas == {d.replica_id for d in docs[:writers]} - {doc.replica_id}
                assert len(got) == 1, f"{len(got)} updates for {others} writers' changes"
            states = {str(d.text("t")) for d in docs}
            assert len(states) == 1 and all(d.to_py() == docs[0].to_py() for d in docs)
            # The room's sessions read one record of what it took (crdtsync/sync/_outbox.py).
            room = relay.rooms["fan"]
            assert all(m.session._box is room.outbox for m in room.members.values())
            for client in clients:
                await client.close()
            await asyncio.sleep(0)

    run(body())
