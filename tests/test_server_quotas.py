"""Per-room quotas, through a real relay and real WebSocket clients: an update that would
take a room past ``Limits.max_document_bytes`` is refused (4413) with the room's document
and storage exactly as they were and every other client carrying on; removals still pass,
and free the room once it is compacted; ``Limits.max_rooms_per_token`` refuses a token's
room past the limit (4430, or REFUSED on a multiplexed connection) and nobody else's."""

from __future__ import annotations

import hashlib
import random
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_server_support import (
    close_code,
    multiplexed,
    relay_server,
    run,
    send_all,
    token_file,
    wait_until,
)
from websockets.asyncio.client import connect as raw_connect

import crdtsync
from crdtsync import _encoding as enc
from crdtsync.server import Limits, MemoryStorage, QuotaExceeded, Relay, TokenFile
from crdtsync.server.metrics import available
from crdtsync.server.storage import Loaded, build_doc
from crdtsync.sync import messages as m
from crdtsync.transports import ConnectionRefusedByServer
from crdtsync.transports.codes import FATAL, CloseCode
from crdtsync.transports.websocket import connect


def noise(n: int, seed: int = 0) -> str:
    """``n`` characters that compress poorly (a snapshot is compressed: "a" * 3000 would
    take some 60 bytes once the room is compacted)."""
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


#: Encoding one insert of n characters takes n bytes and a few more (ids, origin, tags).
OVERHEAD = 64


def parts(loaded: Loaded) -> tuple[bytes | None, list[bytes]]:
    return loaded.snapshot, [data for _, data in loaded.rows]


async def stored(relay: Relay, name: str) -> tuple[bytes | None, list[bytes]]:
    """What storage holds of room ``name`` once everything accepted is committed."""
    await relay._wait_committed(name)
    return parts(relay.storage.load(name))


async def stored_state(relay: Relay, name: str) -> bytes:
    """The document storage holds for room ``name`` (whatever form it holds it in: a refusal
    may start a compaction), encoded."""
    snapshot, rows = await stored(relay, name)
    updates = ([snapshot] if snapshot is not None else []) + rows
    return build_doc(updates, max_pending=1024).get_update()


def stored_size(state: tuple[bytes | None, list[bytes]]) -> int:
    snapshot, rows = state
    return len(snapshot or b"") + sum(len(row) for row in rows)


async def fill(storage: MemoryStorage, room: str, text: str, key: str | None = None) -> int:
    """Store ``text`` (and map key "k" = ``key``) in ``room`` through a relay of its own,
    shut down after (as before a restart); return the room's stored size."""
    async with relay_server(storage=storage) as (_, url, _):
        doc = crdtsync.Doc()
        async with connect(f"{url}/{room}", doc) as client:
            doc.text("t").insert(0, text)
            if key is not None:
                doc.map("m")["k"] = key
            await client.wait_synced(5)
    return stored_size(parts(storage.load(room)))


def refusals(relay: Relay) -> dict[str, float]:
    """crdtsync_refusals_total by reason label (empty without prometheus_client)."""
    if not available():
        return {}
    from prometheus_client.parser import text_string_to_metric_families

    _, _, text = relay.metrics.exposition()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "crdtsync_refusals_total":
                found[sample.labels["reason"]] = sample.value
    return found


def test_limits_check_the_quotas() -> None:
    for bad in ({"max_document_bytes": 0}, {"max_rooms_per_token": 0}):
        with pytest.raises(ValueError):
            Limits(**bad)  # type: ignore[arg-type]
    assert Limits().max_document_bytes is None and Limits().max_rooms_per_token is None
    assert CloseCode.DOCUMENT_TOO_LARGE in FATAL  # resending the same update cannot help
    assert CloseCode.TOO_MANY_ROOMS not in FATAL  # the token's other rooms may close


def test_an_update_past_the_quota_is_refused_and_nothing_of_it_is_kept() -> None:
    async def body() -> None:
        limits = Limits(max_document_bytes=4000)
        async with relay_server(limits=limits) as (relay, url, _):
            writer, other = crdtsync.Doc(), crdtsync.Doc()
            cw = await connect(f"{url}/q", writer)
            async with connect(f"{url}/q", other) as co:
                filler = noise(3000)
                writer.text("t").insert(0, filler)
                await cw.wait_synced(5)
                await co.wait_synced(5)
                room = relay.rooms["q"]
                before_doc = room.doc.get_update()
                before_store = await stored_state(relay, "q")
                assert stored_size(await stored(relay, "q")) <= room.stored_bytes <= 4000

                writer.text("t").insert(0, "b" * 1500)  # 3000 + 1500 > 4000
                with pytest.raises(ConnectionRefusedByServer) as info:
                    await cw.wait_closed()
                assert info.value.code == CloseCode.DOCUMENT_TOO_LARGE
                assert "document quota exceeded" in str(info.value)
                assert "> 4000" in str(info.value)

                # Nothing of it: not in the document, not in storage, not at the other client.
                assert room.doc.get_update() == before_doc
                assert await stored_state(relay, "q") == before_store
                other.text("t").insert(0, "c" * 10)  # the room works on for the others
                await co.wait_synced(5)
                assert str(room.doc.text("t")) == "c" * 10 + filler
                assert str(other.text("t")) == str(room.doc.text("t"))
            if available():
                assert refusals(relay).get("document_too_large") == 1

    run(body())


def test_the_quota_counts_what_was_stored_before_a_restart() -> None:
    async def body() -> None:
        storage = MemoryStorage()
        filler = noise(3000)
        size = await fill(storage, "r", filler)
        # The same storage served again, with a quota: as after a restart.
        limits = Limits(max_document_bytes=size + 200)
        async with relay_server(storage=storage, limits=limits) as (relay, url, _):
            b = crdtsync.Doc()
            c = await connect(f"{url}/r", b)
            await c.wait_synced(5)
            assert relay.rooms["r"].stored_bytes == size > 1000
            b.text("t").insert(0, noise(300, seed=1))
            with pytest.raises(ConnectionRefusedByServer) as info:
                await c.wait_closed()
            assert info.value.code == CloseCode.DOCUMENT_TOO_LARGE
            assert str(relay.rooms["r"].doc.text("t")) == filler

    run(body())


def test_removals_pass_over_the_quota_and_free_the_room_once_compacted() -> None:
    async def body() -> None:
        storage = MemoryStorage()
        filler = noise(3000)
        # Compacted at shutdown; served again with a quota it barely fits in.
        size = await fill(storage, "full", filler, key=noise(200, seed=1))
        limits = Limits(max_document_bytes=size + 10)
        async with relay_server(storage=storage, limits=limits) as (relay, url, _):
            a = crdtsync.Doc()
            ca = await connect(f"{url}/full", a)
            await ca.wait_synced(5)
            room = relay.rooms["full"]
            a.text("t").insert(0, "too much")
            with pytest.raises(ConnectionRefusedByServer):
                await ca.wait_closed()

            # A client of the full room may still remove: text, and map keys.
            b = crdtsync.Doc()
            async with connect(f"{url}/full", b) as cb:
                await cb.wait_synced(5)
                b.text("t").delete(0, 2990)
                del b.map("m")["k"]
                await cb.wait_synced(5)
                assert str(room.doc.text("t")) == filler[2990:]
                assert "k" not in room.doc.map("m")
                assert room.stored_bytes > size + 10  # past the quota, until compacted
                await relay._compact(room)
                assert room.stored_bytes == stored_size(await stored(relay, "full")) < 500
                b.text("t").insert(0, "fits again")
                await cb.wait_synced(5)
                assert str(room.doc.text("t")) == "fits again" + filler[2990:]

    run(body())


def map_deletes(replica: int, first: int, count: int) -> bytes:
    """An UPDATE of ``count`` deletes of key "k" of map "m", counters from ``first``: a
    removal each, and each a new change the log keeps (nothing stops a client sending
    deletes of a key that holds nothing)."""
    entries = [(enc.MAP_DEL, c, ("m", "m"), c, "k") for c in range(first, first + count)]
    update = enc.Update(segments=[enc.Segment(replica, first, first + count, entries)])
    return m.encode_message(m.UpdateMessage(enc.encode_update(update), m.Transfer(0, 0, 1)))


def test_removals_cannot_grow_a_room_without_bound() -> None:
    async def body() -> None:
        limits = Limits(max_document_bytes=2000)
        async with relay_server(limits=limits) as (relay, url, _):
            a = crdtsync.Doc()
            async with connect(f"{url}/m", a) as c:
                a.map("m")["k"] = "v" * 1900
                await c.wait_synced(5)
            async with raw_connect(f"{url}/m") as ws:
                await ws.send(m.encode_message(m.Hello({}, True)))
                for i in range(200):  # 200 x 50 deletes: far more than the headroom holds
                    await ws.send(map_deletes(4242, 1 + 50 * i, 50))
                assert await close_code(ws) == CloseCode.DOCUMENT_TOO_LARGE
            # (the refusal compacted the room: its deletes of nothing fold to nearly nothing)
            assert stored_size(await stored(relay, "m")) <= 2000 + 2000 // 4

    run(body())


def test_a_server_side_edit_past_the_quota_raises_and_changes_nothing() -> None:
    async def body() -> None:
        limits = Limits(max_document_bytes=1000)
        async with relay_server(limits=limits) as (relay, url, _):
            async with relay.room("s") as doc:
                doc.text("t").insert(0, "x" * 500)
            before = relay.rooms["s"].doc.get_update()
            with pytest.raises(QuotaExceeded, match="document quota exceeded"):
                async with relay.room("s") as doc:
                    doc.text("t").insert(0, "y" * 600)
            assert relay.rooms["s"].doc.get_update() == before

    run(body())


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    quota=st.integers(min_value=200, max_value=6000),
    sizes=st.lists(st.integers(min_value=1, max_value=1500), min_size=1, max_size=12),
    compact_rows=st.sampled_from([1, 3, 2000]),
)
def test_the_room_never_stores_past_its_quota(
    quota: int, sizes: list[int], compact_rows: int
) -> None:
    """Edits of random sizes, compactions now and then: whatever the room took, storage
    holds at most the quota and the relay's count never runs under it; an edit is refused
    only if it would have passed the quota, and then the room is unchanged."""

    async def body() -> None:
        limits = Limits(max_document_bytes=quota)
        async with relay_server(limits=limits, compact_rows=compact_rows) as (relay, url, _):
            doc = crdtsync.Doc()
            client = await connect(f"{url}/p", doc)
            await client.wait_synced(5)
            expected = ""
            for i, size in enumerate(sizes):
                text = chr(ord("a") + i % 26) * size
                before = await stored(relay, "p")
                before_state = await stored_state(relay, "p")
                doc.text("t").insert(len(str(doc.text("t"))), text)
                try:
                    await client.wait_synced(5)
                    expected += text
                except ConnectionRefusedByServer as exc:
                    assert exc.code == CloseCode.DOCUMENT_TOO_LARGE
                    assert stored_size(before) + size + OVERHEAD > quota, "refused though it fit"
                    assert await stored_state(relay, "p") == before_state
                    doc = crdtsync.Doc()  # the refused edit stays with the old document
                    client = await connect(f"{url}/p", doc)
                    await client.wait_synced(5)
                room = relay.rooms["p"]
                assert str(room.doc.text("t")) == expected
                now = stored_size(await stored(relay, "p"))
                assert now <= quota
                await wait_until(lambda r=room: not r.compacting, what="compaction")
                assert room.stored_bytes >= stored_size(await stored(relay, "p"))
            await client.close()

    run(body())


# ---- rooms per token -----------------------------------------------------------------------


#: alice's identity in the relay (as a Connection derives it from her token).
ALICE = "token:" + hashlib.sha256(b"alice").hexdigest()[:32]


@pytest.fixture
def tokens(tmp_path: Path) -> TokenFile:
    return token_file(tmp_path, "alice write *", "bob write *")


def test_a_token_past_its_rooms_is_refused_and_others_are_not(tokens: TokenFile) -> None:
    async def body() -> None:
        limits = Limits(max_rooms_per_token=2)
        async with relay_server(limits=limits, authenticate=tokens) as (relay, url, _):
            alice = {"Authorization": "Bearer alice"}
            bob = {"Authorization": "Bearer bob"}
            one = await raw_connect(f"{url}/one", additional_headers=alice)
            two = await raw_connect(f"{url}/two", additional_headers=alice)
            await wait_until(lambda: len(relay.rooms_of.get(ALICE, {})) == 2)
            three = await raw_connect(f"{url}/three", additional_headers=alice)
            assert await close_code(three) == CloseCode.TOO_MANY_ROOMS
            assert three.close_reason == "too many rooms: at most 2 open per token"
            assert "three" not in relay.rooms
            # A room the token has open already is no new one; another token is not counted.
            again = await raw_connect(f"{url}/one", additional_headers=alice)
            elsewhere = await raw_connect(f"{url}/three", additional_headers=bob)
            await wait_until(lambda: "three" in relay.rooms)
            await wait_until(lambda: relay.rooms_of[ALICE].get("one") == 2, what="one, again")
            assert sorted(relay.rooms_of[ALICE]) == ["one", "two"]
            # Once one of its rooms is closed, the token may open another.
            await two.close()
            await wait_until(lambda: "two" not in relay.rooms_of[ALICE])
            three = await raw_connect(f"{url}/three", additional_headers=alice)
            await wait_until(lambda: "three" in relay.rooms_of[ALICE])
            for ws in (one, again, elsewhere, three):
                await ws.close()
            await wait_until(lambda: not relay.rooms_of, what="every membership released")
            if available():
                assert refusals(relay).get("too_many_rooms") == 1

    run(body())


def test_a_multiplexed_connection_is_refused_the_room_past_its_token_limit(
    tokens: TokenFile,
) -> None:
    async def body() -> None:
        limits = Limits(max_rooms_per_token=2)
        async with relay_server(limits=limits, authenticate=tokens) as (relay, url, _):
            elsewhere = await raw_connect(
                f"{url}/a", additional_headers={"Authorization": "Bearer alice"}
            )
            await wait_until(lambda: len(relay.rooms_of) == 1)
            docs = {name: crdtsync.Doc() for name in ("a", "b", "c")}
            headers = {"Authorization": "Bearer alice"}
            async with (
                raw_connect(f"{url}/", additional_headers=headers) as ws,
                multiplexed(ws, docs) as hub,
            ):
                await wait_until(lambda: len(hub.refused) == 1, what="a refusal")
                # a (open elsewhere for the same token) and b fit; c is the third room.
                assert hub.refused == {"c": "too many rooms: at most 2 open per token"}
                docs["b"].text("t").insert(0, "still served")
                await send_all(ws, hub.poll())
                await wait_until(lambda: str(relay.rooms["b"].doc.text("t")) == "still served")
            await elsewhere.close()

    run(body())


def test_a_client_refused_for_its_rooms_gets_in_once_its_token_closes_one(
    tokens: TokenFile,
) -> None:
    pytest.importorskip("prometheus_client")  # (the refusals are watched through metrics)

    async def body() -> None:
        limits = Limits(max_rooms_per_token=1)
        async with relay_server(limits=limits, authenticate=tokens) as (relay, url, _):
            held = await raw_connect(
                f"{url}/first", additional_headers={"Authorization": "Bearer alice"}
            )
            await wait_until(lambda: "first" in relay.rooms_of.get(ALICE, {}))
            doc = crdtsync.Doc()
            doc.text("t").insert(0, "waiting")
            client = await connect(
                f"{url}/second", doc, token="alice", wait=False, backoff_min=0.01, backoff_max=0.05
            )
            # Refused (twice: once is not retrying), yet it does not stop.
            await wait_until(lambda: refusals(relay).get("too_many_rooms", 0) >= 2)
            assert client.error is None and client.close_code is None
            await held.close()
            await client.wait_synced(10)
            assert str(relay.rooms["second"].doc.text("t")) == "waiting"
            await client.close()

    run(body())


def test_a_multiplexed_room_past_its_quota_is_refused_and_the_others_go_on() -> None:
    async def body() -> None:
        limits = Limits(max_document_bytes=2000)
        async with relay_server(limits=limits) as (relay, url, _):
            docs = {"small": crdtsync.Doc(), "big": crdtsync.Doc()}
            async with raw_connect(f"{url}/") as ws, multiplexed(ws, docs) as hub:
                await wait_until(lambda: {"small", "big"} <= set(relay.rooms))
                docs["big"].text("t").insert(0, noise(2500))
                await send_all(ws, hub.poll())
                await wait_until(lambda: "big" in hub.refused, what="the refusal")
                assert hub.refused["big"].startswith("forbidden: document quota exceeded")
                assert str(relay.rooms["big"].doc.text("t")) == ""
                docs["small"].text("t").insert(0, "fits")
                await send_all(ws, hub.poll())
                await wait_until(lambda: str(relay.rooms["small"].doc.text("t")) == "fits")

    run(body())
