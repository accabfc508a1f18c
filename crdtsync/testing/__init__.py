"""Tools for testing code built on crdtsync: a simulated network and random edits.

- :class:`SimulatedNetwork`: peers running :class:`~crdtsync.sync.SyncSession` over a
  deterministic (seeded) network with latency, loss, duplication, reordering and
  partitions, in star, mesh or chain topologies.
- Edits (:class:`TextInsert`, :class:`MapSet`, ...) that apply to any document with
  :func:`apply_edit`, :func:`random_edits` to make them without hypothesis, and
  :mod:`crdtsync.testing.strategies` to make them with it (imported on demand, so this
  package works without hypothesis installed).
- :func:`snapshot` and :func:`assert_converged` to compare replicas.

docs/testing.md shows how to check an application's own code for convergence.

>>> from crdtsync.testing import SimulatedNetwork, random_edits, apply_edits
>>> import random
>>> net = SimulatedNetwork.star(4, seed=3, latency=(1, 5), duplicate=0.2)
>>> rng = random.Random(3)
>>> for peer in net:
...     _ = apply_edits(peer.doc, random_edits(rng, 20))
>>> net.run_until_quiet().converged()
True
"""

from crdtsync.testing.edits import (
    DEFAULT_ROOTS,
    KINDS,
    CounterAdd,
    Edit,
    ListDelete,
    ListInsert,
    MapDelete,
    MapSet,
    SetAdd,
    SetDiscard,
    TextDelete,
    TextInsert,
    Transact,
    apply_edit,
    apply_edits,
    assert_converged,
    random_edits,
    snapshot,
)
from crdtsync.testing.network import (
    TOPOLOGIES,
    LinkStats,
    NetworkOptions,
    NotQuietError,
    Peer,
    SessionFactory,
    SimulatedNetwork,
)

__all__ = [
    "DEFAULT_ROOTS",
    "KINDS",
    "TOPOLOGIES",
    "CounterAdd",
    "Edit",
    "LinkStats",
    "ListDelete",
    "ListInsert",
    "MapDelete",
    "MapSet",
    "NetworkOptions",
    "NotQuietError",
    "Peer",
    "SessionFactory",
    "SetAdd",
    "SetDiscard",
    "SimulatedNetwork",
    "TextDelete",
    "TextInsert",
    "Transact",
    "apply_edit",
    "apply_edits",
    "assert_converged",
    "random_edits",
    "snapshot",
]
