"""Presence through the real relay cannot be used against other clients: a connection
publishes presence only for its own replica ids, forged clocks are ignored, and a room's
presence is bounded. Real WebSocket connections on loopback."""

from __future__ import annotations

import asyncio

from test_server_support import close_code, relay_server, run, wait_until
from websockets.asyncio.client import connect as raw_connect

from benchmarks.presence_join import Person
from crdtsync.server import Limits
from crdtsync.sync import messages as m
from crdtsync.transports.codes import CloseCode


def _hello() -> bytes:
    return m.encode_message(m.Hello({}, True))


def _awareness(states: list[tuple[int, int, object]]) -> bytes:
    return m.encode_message(m.Awareness(states))


def test_a_client_cannot_speak_for_another_or_knock_it_off() -> None:
    async def body() -> None:
        async with relay_server() as (relay, url, _tcp):
            victim, watcher = Person("victim"), Person("watcher")
            await victim.join(f"{url}/room")
            await watcher.join(f"{url}/room")
            await wait_until(lambda: watcher.sees(victim), 8, "the watcher to see the victim")
            async with raw_connect(f"{url}/room") as attacker:
                await attacker.send(_hello())
                forged = [
                    (victim.id, 2**63 - 1, {"name": "pwned"}),  # a clock past every limit
                    (victim.id, 10**6, {"name": "pwned"}),  # a plausible clock, someone else's
                    (watcher.id, 5, None),  # "the watcher left"
                ]
                await attacker.send(_awareness(forged))
                await asyncio.sleep(0.3)
            # Nothing of it reached anyone; the victim's own clock did not move.
            assert watcher.sees(victim) and victim.sees(watcher)
            assert victim.presence.encode_states([victim.id])[0][1] < 100
            # and the victim keeps working: its next presence change arrives
            victim.presence.set_local({"name": "victim", "cursor": 3})
            await wait_until(
                lambda: watcher.presence.states.get(victim.id, {}).get("cursor") == 3,
                8,
                "the victim's next presence",
            )
            assert victim.client.connected and victim.client.connections == 1
            await victim.client.close()
            await watcher.client.close()

    run(body())


def test_presence_per_connection_and_per_room_is_bounded() -> None:
    limits = Limits(presence_per_connection=2, presence_per_room=5)

    async def body() -> None:
        async with relay_server(limits=limits) as (relay, url, _tcp):
            watcher = Person("watcher")
            await watcher.join(f"{url}/room")
            async with raw_connect(f"{url}/room") as flooder:
                await flooder.send(_hello())
                # more states in one message than the room may hold: refused unread (4400)
                await flooder.send(_awareness([(1000 + i, 0, {"n": i}) for i in range(600)]))
                assert await close_code(flooder) == CloseCode.BAD_MESSAGE
            assert watcher.client.connections == 1
            async with raw_connect(f"{url}/room") as flooder:
                await flooder.send(_hello())
                await flooder.send(_awareness([(1000 + i, 0, {"n": i}) for i in range(5)]))
                room_presence = relay.rooms["room"].presence
                await wait_until(lambda: len(room_presence.states) == 1 + 2, 8, "two")
                await wait_until(lambda: len(watcher.presence.states) == 1 + 2, 8, "two")
                await asyncio.sleep(0.3)
                # two of them (this connection's own, by the limit), nothing more
                assert len(room_presence.states) == len(watcher.presence.states) == 1 + 2
            async with raw_connect(f"{url}/room") as a, raw_connect(f"{url}/room") as b:
                for i, ws in enumerate((a, b)):
                    await ws.send(_hello())
                    await ws.send(_awareness([(2000 + 10 * i + k, 0, {}) for k in range(2)]))
                await asyncio.sleep(0.3)
                assert len(relay.rooms["room"].presence._meta) <= 5
            await watcher.client.close()

    run(body())


def test_forged_clocks_are_ignored_by_any_presence() -> None:
    from crdtsync.sync import Presence
    from crdtsync.sync.awareness import PRESENCE_CLOCK_CEILING

    me = Presence(1)
    me.set_local({"name": "me"})
    me.apply([(1, 2**63 - 1, None), (1, PRESENCE_CLOCK_CEILING - 1, None)])
    assert me.encode_states([1])[0][1] == 0  # no jump: our next message stays valid
    me.apply([(2, PRESENCE_CLOCK_CEILING, {"x": 1}), (3, PRESENCE_CLOCK_CEILING - 2, {"y": 1})])
    assert me.states == {1: {"name": "me"}, 3: {"y": 1}}
    me.apply([(1, 7, None)])  # an older incarnation of us, remembered: jump past it
    assert me.encode_states([1])[0][1] == 8
