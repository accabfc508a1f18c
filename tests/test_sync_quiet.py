"""Quiet means level: whenever no session has anything left to send, every replica holds
the same document.

The network reorders and duplicates; it loses messages only in ``lose_then_reconnect``,
which then reconnects every link before it checks (recovery from later traffic alone is
tests/test_sync_stateful.py's business). Beyond edits, the application
also applies updates it got some other way: whole states and diffs of replicas outside the
network (which may themselves have absorbed network states, so what arrives overlaps what
peers already hold). With small message limits every such update becomes a split transfer
whose parts cover counters the receiver may already hold: the case that once left two
sessions quiet, "synced" and different.
"""

from __future__ import annotations

import functools

from crdt_helpers import budget
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import initialize, rule
from sync_machine import MAX_PEERS, NetworkMachine, machine_settings

import crdtsync
from crdtsync.sync import SyncSession
from crdtsync.testing import TOPOLOGIES, apply_edits
from crdtsync.testing.strategies import edit_scripts

OUTSIDERS = 2
ALL = MAX_PEERS + OUTSIDERS


class QuietMeansLevel(NetworkMachine):
    def __init__(self) -> None:
        super().__init__()
        self.outside: list[crdtsync.Doc] = []
        self.quiet_checks = 0

    @initialize(
        n=st.integers(2, MAX_PEERS),
        topology=st.sampled_from(TOPOLOGIES),
        seed=st.integers(0, 2**32 - 1),
        max_latency=st.integers(1, 6),
        duplicate=st.sampled_from([0.0, 0.2]),
        max_message_size=st.sampled_from([256, 300, 512, 1024, 4096]),
        ids=st.lists(st.integers(0, 2**64 - 1), min_size=ALL, max_size=ALL, unique=True),
        gc=st.lists(st.booleans(), min_size=ALL, max_size=ALL),
    )
    def setup(self, n, topology, seed, max_latency, duplicate, max_message_size, ids, gc):
        factory = functools.partial(SyncSession, max_message_size=max_message_size)
        docs = [crdtsync.Doc(ids[i], gc=gc[i]) for i in range(n)]
        self.outside = [crdtsync.Doc(ids[-1 - i], gc=gc[-1 - i]) for i in range(OUTSIDERS)]
        self.build(
            topology,
            docs,
            seed=seed,
            max_latency=max_latency,
            duplicate=duplicate,
            session_factory=factory,
        )
        event(f"max_message_size: {max_message_size}")

    # ---- rules (edit, run, reconnect: NetworkMachine) ----------------------------------------

    @rule(which=st.integers(0, OUTSIDERS - 1), script=edit_scripts(max_size=12))
    def outside_edit(self, which, script) -> None:
        apply_edits(self.outside[which], script)

    @rule(which=st.integers(0, OUTSIDERS - 1), peer=st.integers(0, MAX_PEERS - 1))
    def outside_absorbs(self, which, peer) -> None:
        """An outside replica takes a peer's whole state (so its own states overlap)."""
        docs = self.net.docs
        self.outside[which].apply_update(docs[peer % len(docs)].get_update())

    @rule(
        which=st.integers(0, OUTSIDERS - 1),
        peer=st.integers(0, MAX_PEERS - 1),
        whole=st.booleans(),
    )
    def app_applies(self, which, peer, whole) -> None:
        """The application hands a peer an outside replica's whole state or a diff."""
        doc = self.net.docs[peer % len(self.net.docs)]
        source = self.outside[which]
        doc.apply_update(source.get_update() if whole else source.get_update(doc.version))

    @rule()
    def run_until_quiet(self) -> None:
        self.net.run_until_quiet(max_steps=20_000)
        self.check_quiet()

    @rule(ticks=st.integers(1, 12), loss=st.sampled_from([0.1, 0.3, 1.0]))
    def lose_then_reconnect(self, ticks, loss) -> None:
        """Messages are lost for a while; then every link reconnects (start() on both
        sides), as a client does after a dropped connection, and the network settles."""
        self.net.loss = loss
        self.net.run(ticks)
        self.net.loss = 0.0
        self.net.reconnect_all().run_until_quiet(max_steps=20_000)
        self.check_quiet()

    # ---- the property ------------------------------------------------------------------------

    def check_quiet(self) -> None:
        net = self.net
        assert net.in_flight == 0
        assert all(session.poll() == [] for _, _, session in net.sessions())
        self.quiet_checks += 1
        texts = [doc.get_update() for doc in net.docs]
        versions = [dict(doc.version) for doc in net.docs]
        assert all(v == versions[0] for v in versions), f"quiet, yet versions differ: {versions}"
        net.assert_converged()
        assert texts  # (the states themselves are compared by assert_converged)
        not_synced = [(a, b) for a, b, s in net.sessions() if not s.synced]
        assert not not_synced, f"level and quiet, yet sessions not synced: {not_synced}" + str(
            [
                (
                    a,
                    b,
                    dict(net[a].doc.version),
                    s.peer_version,
                    s._box.waiting(s),
                    s._ack_due,
                    {k: sorted(v) for k, v in s._transfers.items()},
                )
                for a, b, s in net.sessions()
                if not s.synced
            ]
        )
        assert [d.pending for d in net.docs] == [0] * len(net.docs)

    def teardown(self) -> None:
        if self.net is not None:
            self.net.run_until_quiet(max_steps=20_000)
            self.check_quiet()


QuietMeansLevel.TestCase.settings = machine_settings(budget(150), 40)
TestQuietMeansLevel = QuietMeansLevel.TestCase
