"""The base of the stateful sync tests: peers on a SimulatedNetwork, with the rules and the
invariant every such test shares (imported as a plain module: tests/ is on sys.path)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import crdtsync
from crdtsync.sync import SyncSession
from crdtsync.testing import SessionFactory, SimulatedNetwork, apply_edits
from crdtsync.testing.strategies import edit_scripts

MAX_PEERS = 5


def machine_settings(max_examples: int, steps: int, **more: object) -> settings:
    """Settings for a sync state machine: no deadline (machines are noisy), bounded runs."""
    return settings(
        max_examples=max_examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        **more,  # type: ignore[arg-type]
    )


class NetworkMachine(RuleBasedStateMachine):
    """Peers editing and exchanging messages; subclasses build ``self.net`` in their
    ``@initialize`` (with :meth:`build`) and add their own rules and final checks."""

    def __init__(self) -> None:
        super().__init__()
        self.net: SimulatedNetwork | None = None

    def build(
        self,
        topology: str,
        docs: list[crdtsync.Doc],
        *,
        seed: int,
        max_latency: int,
        loss: float = 0.0,
        duplicate: float = 0.0,
        session_factory: SessionFactory = SyncSession,
    ) -> SimulatedNetwork:
        self.net = SimulatedNetwork.build(
            topology,
            docs,
            seed=seed,
            latency=(1, max_latency),
            loss=loss,
            duplicate=duplicate,
            session_factory=session_factory,
        )
        return self.net

    @rule(peer=st.integers(0, MAX_PEERS - 1), script=edit_scripts(max_size=6))
    def edit(self, peer: int, script: list[object]) -> None:
        assert self.net is not None
        docs = self.net.docs
        apply_edits(docs[peer % len(docs)], script)  # type: ignore[arg-type]

    @rule(ticks=st.integers(1, 12))
    def run(self, ticks: int) -> None:
        assert self.net is not None
        self.net.run(ticks)

    @rule(which=st.integers(0, 100))
    def reconnect(self, which: int) -> None:
        assert self.net is not None
        links = self.net.links
        self.net.reconnect(*links[which % len(links)])

    @invariant()
    def peer_versions_never_overclaim(self) -> None:
        """A session may only believe its peer holds what the peer's document holds:
        believing more would make it withhold changes the peer lacks."""
        if self.net is None:
            return
        for owner, other, session in self.net.sessions():
            holds = self.net[other].doc.version
            over = {r: c for r, c in session.peer_version.items() if c > holds.get(r, 0)}
            assert not over, f"{owner} believes {other} holds {over}, it holds {dict(holds)}"
