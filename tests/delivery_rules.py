"""What the stateful convergence machines share: replicas whose updates wait in one queue
per receiver, and the faulty deliveries every machine runs on them (merged batches,
duplicates, losses).

A machine subclasses :class:`QueuedReplicas`, sets ``docs``, ``n``, ``queues`` and
``applying`` in its initializer, and gets these rules with it.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

import crdtsync

replica = st.integers(0, 4)


class QueuedReplicas(RuleBasedStateMachine):
    docs: list[crdtsync.Doc]
    n: int
    queues: list[list[bytes]]
    applying: bool

    def _apply(self, j: int, update: bytes) -> None:
        self.applying = True
        try:
            self.docs[j].apply_update(update)
        finally:
            self.applying = False

    def doc(self, r: int) -> crdtsync.Doc:
        return self.docs[r % self.n]

    @precondition(lambda self: any(self.queues))
    @rule(dst=replica, idx=st.integers(0, 1000))
    def deliver(self, dst: int, idx: int) -> None:
        """Deliver one queued message, chosen at random (reordering)."""
        j = dst % self.n
        if not self.queues[j]:
            j = next(k for k, q in enumerate(self.queues) if q)
        q = self.queues[j]
        self._apply(j, q.pop(idx % len(q)))

    @precondition(lambda self: any(self.queues))
    @rule(dst=replica, picks=st.lists(st.integers(0, 1000), min_size=1, max_size=6))
    def deliver_merged(self, dst: int, picks: list[int]) -> None:
        """Merge some queued messages with merge_updates (gaps allowed) and deliver the result."""
        j = dst % self.n
        if not self.queues[j]:
            j = next(k for k, q in enumerate(self.queues) if q)
        q = self.queues[j]
        chosen = sorted({p % len(q) for p in picks}, reverse=True)
        batch = [q.pop(i) for i in chosen]
        self._apply(j, crdtsync.merge_updates(batch))

    @precondition(lambda self: any(self.queues))
    @rule(src=replica, idx=st.integers(0, 1000), dst=replica)
    def duplicate(self, src: int, idx: int, dst: int) -> None:
        """Copy a queued message; the copy may go to any replica (even back to its author)."""
        qs = [q for q in self.queues if q]
        q = qs[src % len(qs)]
        self.queues[dst % self.n].append(q[idx % len(q)])

    @precondition(lambda self: any(self.queues))
    @rule(which=replica, idx=st.integers(0, 1000))
    def drop(self, which: int, idx: int) -> None:
        """Lose a queued message (a resync brings what it held)."""
        qs = [q for q in self.queues if q]
        q = qs[which % len(qs)]
        q.pop(idx % len(q))


__all__: Any = ["QueuedReplicas", "replica"]
