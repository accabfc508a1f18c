"""crdtsync.testing itself: the simulated network, edits, strategies and comparisons."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from crdt_helpers import budget
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync
from crdtsync.sync import SyncSession
from crdtsync.testing import (
    KINDS,
    TOPOLOGIES,
    CounterAdd,
    LinkStats,
    ListDelete,
    ListInsert,
    MapDelete,
    MapSet,
    NotQuietError,
    SetAdd,
    SetDiscard,
    SimulatedNetwork,
    TextDelete,
    TextInsert,
    Transact,
    apply_edit,
    apply_edits,
    assert_converged,
    random_edits,
    snapshot,
)
from crdtsync.testing.strategies import edit_scripts, edits

# ---- topologies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topology", "links"),
    [
        ("star", [("p0", "p1"), ("p0", "p2"), ("p0", "p3")]),
        (
            "mesh",
            [("p0", "p1"), ("p0", "p2"), ("p0", "p3"), ("p1", "p2"), ("p1", "p3"), ("p2", "p3")],
        ),
        ("chain", [("p0", "p1"), ("p1", "p2"), ("p2", "p3")]),
    ],
)
def test_topologies(topology, links):
    net = SimulatedNetwork.build(topology, 4, seed=1)
    assert net.links == links
    for a, b in links:
        assert b in net[a].sessions and a in net[b].sessions
    sessions = sum(len(p.sessions) for p in net)
    assert sessions == 2 * len(links)
    # edits at both ends travel across the whole topology
    net["p3"].doc.text("t").insert(0, "end")
    net["p0"].doc.map("m")["k"] = "hub"
    net.run_until_quiet()
    net.assert_converged()
    assert net.synced
    assert all(str(d.text("t")) == "end" and d.map("m")["k"] == "hub" for d in net.docs)


def test_peers_from_docs_and_names():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    net = SimulatedNetwork.star({"server": a, "alice": b})
    assert net.links == [("server", "alice")]
    assert net["server"].doc is a and net.docs == [a, b]
    net2 = SimulatedNetwork.chain([crdtsync.Doc(3), crdtsync.Doc(4)])
    assert list(net2.peers) == ["p0", "p1"]
    with pytest.raises(ValueError):
        SimulatedNetwork.build("ring", 3)
    with pytest.raises(KeyError):
        net["nobody"]
    with pytest.raises(ValueError):
        net.connect("server", "alice")
    with pytest.raises(ValueError):
        net.add_peer("alice")


def test_generated_replica_ids_are_deterministic():
    ids1 = [d.replica_id for d in SimulatedNetwork.mesh(4, seed=9).docs]
    ids2 = [d.replica_id for d in SimulatedNetwork.mesh(4, seed=9).docs]
    assert ids1 == ids2 and len(set(ids1)) == 4


# ---- determinism -------------------------------------------------------------------------------


def _faulty_run(seed: int, topology: str = "mesh") -> tuple[list[bytes], LinkStats, int]:
    net = SimulatedNetwork.build(topology, 4, seed=seed, latency=(1, 6), loss=0.2, duplicate=0.2)
    rng = random.Random(seed)
    for step in range(30):
        apply_edits(net[f"p{step % 4}"].doc, random_edits(rng, 3))
        net.run(rng.randint(1, 4))
        if step == 10:
            net.partition(["p0", "p1"])
        if step == 20:
            net.heal()
    net.loss = 0.0
    net.reconnect_all().run_until_quiet()
    return [d.get_update() for d in net.docs], net.total(), net.now


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_same_seed_same_run(topology):
    first = _faulty_run(5, topology)
    assert _faulty_run(5, topology) == first
    assert _faulty_run(6, topology)[1] != first[1]
    # and the faulty run converged
    docs = []
    for update in first[0]:
        doc = crdtsync.Doc()
        doc.apply_update(update)
        docs.append(doc)
    assert_converged(docs)


# ---- faults and counters -------------------------------------------------------------------------


def test_counters_without_faults():
    net = SimulatedNetwork.mesh(2, seed=0)
    net["p0"].doc.text("t").insert(0, "hello")
    net.run_until_quiet()
    ab, ba = net.stats("p0", "p1"), net.stats("p1", "p0")
    for s in (ab, ba):
        assert s.messages == s.delivered > 0
        assert s.lost == s.duplicated == s.blocked == 0
    assert net.link_stats("p0", "p1") == ab + ba == net.total()
    assert net.total().bytes == ab.bytes + ba.bytes > 0
    with pytest.raises(KeyError):
        net.stats("p0", "p9")


def test_total_loss_and_duplication():
    net = SimulatedNetwork.mesh(2, seed=0, loss=1.0)
    net["p0"].doc.text("t").insert(0, "x")
    net.run_until_quiet()
    total = net.total()
    assert total.delivered == 0 and total.lost == total.messages > 0
    assert str(net["p1"].doc.text("t")) == ""
    # duplicate everything: each message is delivered twice, and that is harmless
    net.loss, net.duplicate = 0.0, 1.0
    net.reconnect_all().run_until_quiet()
    net.assert_converged()
    assert net.synced


def test_latency_reorders():
    net = SimulatedNetwork.mesh(2, seed=3, latency=(1, 10))
    t = net["p0"].doc.text("t")
    for ch in "abcdefghij":
        t.insert(len(t), ch)
        net.tick()  # each keystroke goes out in its own message
    net.run_until_quiet()
    assert str(net["p1"].doc.text("t")) == "abcdefghij"
    assert net.synced


def test_partition_blocks_and_heal_with_reconnect():
    net = SimulatedNetwork.chain(3, seed=2, latency=(2, 4))
    net["p0"].doc.text("t").insert(0, "in flight")
    net.tick()
    assert net.in_flight > 0
    net.partition(["p0"], ["p1"], ["p2"])
    assert net.in_flight == 0  # what the cut links carried is gone
    assert net.total().blocked > 0
    assert not net.reachable("p0", "p1") and net.reachable("p0", "p0")
    net["p2"].doc.counter("c").increment(5)
    net.run_until_quiet()
    assert str(net["p1"].doc.text("t")) == "" and net["p1"].doc.counter("c").value == 0
    net.heal()
    assert net.reachable("p0", "p2")
    net.reconnect_all().run_until_quiet()
    net.assert_converged()
    assert net.synced
    with pytest.raises(ValueError):
        net.partition(["p0"], ["p0", "p1"])
    with pytest.raises(KeyError):
        net.partition(["p7"])
    with pytest.raises(KeyError):
        net.reconnect("p0", "p2")  # not a link in a chain


def test_options_are_checked():
    for bad in ({"latency": (0, 1)}, {"latency": (3, 2)}, {"loss": 1.5}, {"duplicate": -0.1}):
        with pytest.raises(ValueError):
            SimulatedNetwork(**bad)


def test_partition_groups_default_to_the_rest():
    net = SimulatedNetwork.mesh(4)
    net.partition(["p0", "p1"])
    assert net.reachable("p2", "p3") and not net.reachable("p1", "p2")


def test_reconnect_drops_what_the_old_connection_carried():
    net = SimulatedNetwork.mesh(2, seed=1, latency=(3, 3))
    net["p0"].doc.text("t").insert(0, "x")
    net.tick()
    before = net.total().blocked
    inflight = net.in_flight
    net.reconnect("p0", "p1")
    assert net.total().blocked == before + inflight
    net.run_until_quiet()
    net.assert_converged()


def test_run_until_quiet_gives_up():
    # A session that always answers keeps the network busy forever.
    class Chatty(SyncSession):
        def receive(self, message: bytes) -> list[bytes]:
            super().receive(message)
            return [self.start()[0]]

    net = SimulatedNetwork.mesh(2, session_factory=Chatty)
    with pytest.raises(NotQuietError):
        net.run_until_quiet(max_steps=50)


def test_session_factory_and_close():
    made = []

    def factory(doc: crdtsync.Doc) -> SyncSession:
        session = SyncSession(doc, max_message_size=256)
        made.append(session)
        return session

    net = SimulatedNetwork.star(3, seed=4, session_factory=factory)
    assert len(made) == 4
    rng = random.Random(0)
    noise = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz😀中") for _ in range(3000))
    net["p1"].doc.text("t").insert(0, noise)  # split into many parts
    net.run_until_quiet()
    assert net.total().messages > 20
    net.assert_converged()
    net.close()
    net["p1"].doc.text("t").insert(0, "after close")
    assert all(s.poll() == [] for s in made)


# ---- edits ---------------------------------------------------------------------------------------


def test_apply_edit_clamps_and_reports():
    doc = crdtsync.Doc(1)
    assert apply_edit(doc, TextInsert("t", -5, "ab"))
    assert apply_edit(doc, TextInsert("t", 99, "c"))
    assert not apply_edit(doc, TextInsert("t", 0, ""))
    assert str(doc.text("t")) == "abc"
    assert apply_edit(doc, TextDelete("t", 2, 10))
    assert not apply_edit(doc, TextDelete("t", 0, 0))
    assert str(doc.text("t")) == "ab"
    assert not apply_edit(doc, ListDelete("l", 3))
    assert apply_edit(doc, ListInsert("l", 7, [1, {"k": None}]))
    assert apply_edit(doc, ListInsert("l", 0, "first"))
    assert apply_edit(doc, ListDelete("l", 50, 5))
    assert list(doc.list("l")) == ["first"]
    assert apply_edit(doc, SetAdd("s", 1)) and apply_edit(doc, SetAdd("s", True))
    assert not apply_edit(doc, SetDiscard("s", "absent"))
    assert apply_edit(doc, SetDiscard("s", 1))
    assert list(doc.set("s")) == [True]
    assert apply_edit(doc, MapSet("m", "k", b"v"))
    assert not apply_edit(doc, MapDelete("m", "other"))
    assert apply_edit(doc, MapDelete("m", "k"))
    assert apply_edit(doc, CounterAdd("c", -3)) and not apply_edit(doc, CounterAdd("c", 0))
    assert doc.counter("c").value == -3
    assert snapshot(doc) == {"c": -3, "l": ["first"], "s": frozenset({True}), "t": "ab"}


def test_transact_is_one_update():
    doc = crdtsync.Doc(1)
    updates = []
    doc.on_update(lambda update, origin: updates.append(update))
    group = Transact((TextInsert("t", 0, "a"), MapSet("m", "k", 1), ListDelete("l", 0)))
    assert apply_edit(doc, group)
    assert len(updates) == 1
    assert not apply_edit(doc, Transact((ListDelete("l", 0), CounterAdd("c", 0))))
    assert len(updates) == 1


def test_assert_converged_is_exact():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.list("l").append(1)
    b.list("l").append(True)
    with pytest.raises(AssertionError, match="root 'l' differs"):
        assert_converged([a, b])
    c, d = crdtsync.Doc(3), crdtsync.Doc(4)
    c.set("s").add(1)
    d.set("s").add(1.0)
    with pytest.raises(AssertionError, match="root 's'"):
        assert_converged([c, d])
    e, f = crdtsync.Doc(5), crdtsync.Doc(6)
    e.counter("c").increment()
    e.counter("c").decrement()
    with pytest.raises(AssertionError, match="versions differ"):
        assert_converged([e, f])  # same values, different histories
    assert_converged([e])
    assert_converged([])


def test_random_edits_cover_every_kind():
    script = random_edits(random.Random(0), 300)
    assert {type(e) for e in script} == {
        TextInsert,
        TextDelete,
        ListInsert,
        ListDelete,
        SetAdd,
        SetDiscard,
        MapSet,
        MapDelete,
        CounterAdd,
    }
    only = random_edits(random.Random(0), 50, kinds=["counter"], roots={"counter": "views"})
    assert {e.root for e in only} == {"views"}
    with pytest.raises(ValueError):
        random_edits(random.Random(0), 1, kinds=["tree"])


# ---- strategies --------------------------------------------------------------------------------


@settings(max_examples=budget(40))
@given(edit_scripts(min_size=1, max_size=30), edit_scripts(max_size=30))
def test_scripts_apply_to_any_doc(first, second):
    a = crdtsync.Doc(1)
    apply_edits(a, first)
    b = crdtsync.Doc(2)
    b.apply_update(a.get_update())
    apply_edits(b, second)  # positions fit whatever b holds
    apply_edits(a, second)
    assert set(snapshot(a)) <= set(KINDS)


@settings(max_examples=budget(20))
@given(edit_scripts(["text", "map"], roots={"text": "body", "map": "meta"}, transactions=False))
def test_scripts_respect_kinds_and_roots(script):
    assert all(not isinstance(e, Transact) for e in script)
    assert {e.root for e in script} <= {"body", "meta"}


def test_strategy_arguments_are_checked():
    with pytest.raises(ValueError):
        edits(["tree"])
    with pytest.raises(ValueError):
        edits([])
    with pytest.raises(ValueError):
        edits(["text", "list"], roots={"list": "text"})


def test_importable_without_hypothesis():
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import crdtsync.testing, crdtsync.testing.strategies as s\n"
        "net = crdtsync.testing.SimulatedNetwork.mesh(2)\n"
        "try:\n"
        "    s.edit_scripts()\n"
        "except ImportError as e:\n"
        "    print('ImportError', 'pip install hypothesis' in str(e))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ImportError True", out.stderr


@settings(max_examples=budget(30))
@given(
    scripts=st.lists(edit_scripts(max_size=10), min_size=2, max_size=4),
    topology=st.sampled_from(TOPOLOGIES),
    seed=st.integers(0, 2**32),
)
def test_concurrent_scripts_converge_over_a_lossless_network(scripts, topology, seed):
    net = SimulatedNetwork.build(topology, len(scripts), seed=seed, latency=(1, 4), duplicate=0.3)
    for peer, script in zip(net, scripts, strict=True):
        apply_edits(peer.doc, script)
    net.run_until_quiet()
    net.assert_converged()
    assert net.synced
    assert all(s.poll() == [] for _, _, s in net.sessions())


def test_presence_through_a_session_factory():
    from crdtsync.sync import Presence

    presences: dict[int, Presence] = {}

    def factory(doc: crdtsync.Doc) -> SyncSession:
        presence = presences.setdefault(doc.replica_id, Presence(doc.replica_id))
        return SyncSession(doc, presence=presence)

    net = SimulatedNetwork.star(3, seed=8, latency=(1, 3), session_factory=factory)
    client = net["p2"].doc.replica_id
    presences[client].set_local({"name": "carol", "cursor": 4})
    net.run_until_quiet()
    for peer in net:  # the hub relays the client's presence to the other client
        assert presences[peer.doc.replica_id].states[client] == {"name": "carol", "cursor": 4}
    presences[client].set_local(None)
    net.run_until_quiet()
    assert all(client not in p.states for p in presences.values())
