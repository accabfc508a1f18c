"""A deterministic simulated network that drives :class:`~crdtsync.sync.SyncSession` peers.

Peers hold a :class:`~crdtsync.Doc` and one session per link. The network carries the
sessions' byte messages with a latency drawn per message (so messages overtake each other),
drops some (``loss``), delivers some twice (``duplicate``), and cuts links across
partitions. Everything random comes from one ``random.Random(seed)``: the same seed, the
same edits and the same calls give the same run, message for message.

>>> import crdtsync
>>> from crdtsync.testing import SimulatedNetwork
>>> net = SimulatedNetwork.mesh(3, seed=1, latency=(1, 4), loss=0.2, duplicate=0.1)
>>> net["p0"].doc.text("t").insert(0, "hello")
>>> net["p2"].doc.map("m")["k"] = 1
>>> net.partition(["p0"])            # p0 is cut off from p1 and p2
>>> net["p0"].doc.counter("c").increment()
>>> _ = net.run(20)
>>> net.heal()
>>> net.loss = 0.0
>>> _ = net.reconnect_all().run_until_quiet()
>>> net.converged(), net.synced
(True, True)
>>> str(net["p1"].doc.text("t")), net["p1"].doc.counter("c").value
('hello', 1)

Each tick delivers the messages due, hands each to the receiving session's
:meth:`~crdtsync.sync.SyncSession.receive` and sends its replies back over the same link,
then polls every session and sends what :meth:`~crdtsync.sync.SyncSession.poll` returns.
Local edits are made on a peer's document directly, between ticks.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Final, TypedDict, Unpack

from crdtsync._doc import Doc
from crdtsync.sync.session import SyncSession
from crdtsync.testing.edits import assert_converged

__all__ = [
    "TOPOLOGIES",
    "LinkStats",
    "NetworkOptions",
    "NotQuietError",
    "Peer",
    "SessionFactory",
    "SimulatedNetwork",
]

#: The topologies :meth:`SimulatedNetwork.build` knows.
TOPOLOGIES: Final = ("star", "mesh", "chain")

#: Makes the session a peer uses on one link (e.g. to set ``max_message_size`` or a
#: ``Presence``).
SessionFactory = Callable[[Doc], SyncSession]

PeerSpec = int | Sequence[Doc] | Mapping[str, Doc]


class NetworkOptions(TypedDict, total=False):
    """Keyword options of :class:`SimulatedNetwork`, also taken by its topology builders."""

    latency: tuple[int, int]
    loss: float
    duplicate: float
    session_factory: SessionFactory


class NotQuietError(RuntimeError):
    """:meth:`SimulatedNetwork.run_until_quiet` ran out of steps with traffic left."""


@dataclass
class LinkStats:
    """Traffic counters for one direction of a link (or a sum of several)."""

    #: Messages and bytes the sender put on the link (lost ones included, the network's
    #: duplicates not).
    messages: int = 0
    bytes: int = 0
    #: Messages handed to the receiver (duplicates included).
    delivered: int = 0
    #: Dropped at random (``loss``).
    lost: int = 0
    #: Extra copies the network made (``duplicate``).
    duplicated: int = 0
    #: Dropped because the link was cut (a partition, or a reconnect discarding what the
    #: old connection still carried).
    blocked: int = 0
    #: The size of the largest message sent.
    largest: int = 0

    def __add__(self, other: LinkStats) -> LinkStats:
        """Counts add up; ``largest`` is the larger of the two."""
        summed = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        summed["largest"] = max(self.largest, other.largest)
        return LinkStats(**summed)


class Peer:
    """A named replica: a document plus one session per neighbour."""

    def __init__(self, name: str, doc: Doc) -> None:
        self.name = name
        self.doc = doc
        #: neighbour name -> the session that talks to it
        self.sessions: dict[str, SyncSession] = {}

    @property
    def neighbours(self) -> list[str]:
        return list(self.sessions)

    def __repr__(self) -> str:
        return f"Peer({self.name!r}, replica={self.doc.replica_id}, links={self.neighbours})"


@dataclass(order=True)
class _InFlight:
    due: int
    seq: int
    src: str
    dst: str
    message: bytes


class SimulatedNetwork:
    """Named peers, links between them, and messages in flight.

    ``latency=(lo, hi)``: each message takes a whole number of ticks drawn uniformly from
    ``lo..hi`` (``lo >= 1``); a spread reorders messages. ``loss`` and ``duplicate`` are
    per-message probabilities. They are plain attributes: change them between steps (for
    example set ``loss = 0.0`` before checking that the peers converge).
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        latency: tuple[int, int] = (1, 1),
        loss: float = 0.0,
        duplicate: float = 0.0,
        session_factory: SessionFactory = SyncSession,
    ) -> None:
        lo, hi = latency
        if not 1 <= lo <= hi:
            raise ValueError("latency must be (lo, hi) with 1 <= lo <= hi")
        if not (0.0 <= loss <= 1.0 and 0.0 <= duplicate <= 1.0):
            raise ValueError("loss and duplicate are probabilities in [0, 1]")
        self.rng = random.Random(seed)
        self.latency = latency
        self.loss = loss
        self.duplicate = duplicate
        self.session_factory = session_factory
        self.peers: dict[str, Peer] = {}
        #: Ticks elapsed.
        self.now = 0
        self._queue: list[_InFlight] = []
        self._seq = 0
        self._stats: dict[tuple[str, str], LinkStats] = {}
        self._group: dict[str, int] | None = None  # peer -> partition group

    # ---- building ------------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        topology: str,
        peers: PeerSpec,
        seed: int = 0,
        **options: Unpack[NetworkOptions],
    ) -> SimulatedNetwork:
        """A network of ``peers`` in ``topology`` ("star", "mesh" or "chain"), every link
        opened (both sessions started).

        ``peers`` is a count (fresh documents with replica ids drawn from the seed), a
        sequence of documents, or a mapping of names to documents. Peers given as a count
        or sequence are named ``p0``, ``p1``, ...; in a star the first one is the hub.
        ``options`` go to the constructor (``latency``, ``loss``, ...).

        >>> net = SimulatedNetwork.build("chain", 4)
        >>> net.links
        [('p0', 'p1'), ('p1', 'p2'), ('p2', 'p3')]
        """
        if topology not in TOPOLOGIES:
            raise ValueError(f"unknown topology {topology!r}; expected one of {TOPOLOGIES}")
        net = cls(seed, **options)
        if isinstance(peers, int):
            if peers < 1:
                raise ValueError("a network needs at least one peer")
            docs: dict[str, Doc] = {f"p{i}": Doc(net.rng.getrandbits(64)) for i in range(peers)}
        elif isinstance(peers, Mapping):
            docs = dict(peers)
        else:
            docs = {f"p{i}": doc for i, doc in enumerate(peers)}
        for name, doc in docs.items():
            net.add_peer(name, doc)
        names = list(docs)
        if topology == "star":
            pairs = [(names[0], other) for other in names[1:]]
        elif topology == "chain":
            pairs = list(zip(names, names[1:], strict=False))
        else:
            pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
        for a, b in pairs:
            net.connect(a, b)
        return net

    @classmethod
    def star(
        cls, peers: PeerSpec, seed: int = 0, **options: Unpack[NetworkOptions]
    ) -> SimulatedNetwork:
        """Every peer linked to the first one (the hub) only."""
        return cls.build("star", peers, seed, **options)

    @classmethod
    def mesh(
        cls, peers: PeerSpec, seed: int = 0, **options: Unpack[NetworkOptions]
    ) -> SimulatedNetwork:
        """Every pair of peers linked."""
        return cls.build("mesh", peers, seed, **options)

    @classmethod
    def chain(
        cls, peers: PeerSpec, seed: int = 0, **options: Unpack[NetworkOptions]
    ) -> SimulatedNetwork:
        """Each peer linked to the next one."""
        return cls.build("chain", peers, seed, **options)

    def add_peer(self, name: str, doc: Doc | None = None) -> Peer:
        """Add a peer (a fresh document with a replica id drawn from the seed if none)."""
        if name in self.peers:
            raise ValueError(f"peer {name!r} already exists")
        peer = Peer(name, doc if doc is not None else Doc(self.rng.getrandbits(64)))
        self.peers[name] = peer
        return peer

    def connect(self, a: str, b: str) -> None:
        """Link ``a`` and ``b``: a session on each side, both started."""
        if a == b:
            raise ValueError("a peer cannot link to itself")
        pa, pb = self[a], self[b]
        if b in pa.sessions:
            raise ValueError(f"{a!r} and {b!r} are already linked")
        pa.sessions[b] = self.session_factory(pa.doc)
        pb.sessions[a] = self.session_factory(pb.doc)
        self._stats.setdefault((a, b), LinkStats())
        self._stats.setdefault((b, a), LinkStats())
        self._start(a, b)

    def close(self) -> None:
        """Close every session (they stop listening to their documents)."""
        for peer in self.peers.values():
            for session in peer.sessions.values():
                session.close()

    # ---- looking ------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"SimulatedNetwork(peers={list(self.peers)}, links={len(self.links)}, "
            f"now={self.now}, in_flight={self.in_flight})"
        )

    def __getitem__(self, name: str) -> Peer:
        try:
            return self.peers[name]
        except KeyError:
            raise KeyError(f"no peer named {name!r}") from None

    def __iter__(self) -> Iterator[Peer]:
        return iter(self.peers.values())

    @property
    def docs(self) -> list[Doc]:
        """Every peer's document, in the order the peers were added."""
        return [p.doc for p in self.peers.values()]

    @property
    def links(self) -> list[tuple[str, str]]:
        """Each link once, as (earlier peer, later peer)."""
        order = {name: i for i, name in enumerate(self.peers)}
        return [
            (a, b) for a, peer in self.peers.items() for b in peer.sessions if order[a] < order[b]
        ]

    def sessions(self) -> Iterator[tuple[str, str, SyncSession]]:
        """(owner, neighbour, session) for every session."""
        for name, peer in self.peers.items():
            for other, session in peer.sessions.items():
                yield name, other, session

    @property
    def in_flight(self) -> int:
        """Messages sent and not yet delivered or dropped."""
        return len(self._queue)

    @property
    def synced(self) -> bool:
        """True when every session is :attr:`~crdtsync.sync.SyncSession.synced`."""
        return all(s.synced for _, _, s in self.sessions())

    def converged(self) -> bool:
        """True when every document holds the same values and version."""
        try:
            assert_converged(self.docs)
        except AssertionError:
            return False
        return True

    def assert_converged(self) -> None:
        """:func:`~crdtsync.testing.assert_converged` over every peer's document."""
        assert_converged(self.docs)

    def stats(self, src: str, dst: str) -> LinkStats:
        """Counters for messages from ``src`` to ``dst``."""
        try:
            return self._stats[(src, dst)]
        except KeyError:
            raise KeyError(f"no link between {src!r} and {dst!r}") from None

    def link_stats(self, a: str, b: str) -> LinkStats:
        """Counters for both directions of the link between ``a`` and ``b``."""
        return self.stats(a, b) + self.stats(b, a)

    def total(self) -> LinkStats:
        """Counters summed over every link and direction."""
        out = LinkStats()
        for stats in self._stats.values():
            out = out + stats
        return out

    # ---- faults ------------------------------------------------------------------------------

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut every link between peers of different groups; what those links carried is
        lost. Peers named in no group form one more group together; peers added later are
        cut off from everyone until :meth:`heal`.

        >>> net = SimulatedNetwork.mesh(3)
        >>> net.partition(["p0"])
        >>> net.reachable("p1", "p2"), net.reachable("p0", "p1")
        (True, False)
        """
        group: dict[str, int] = {}
        for i, members in enumerate(groups):
            for name in members:
                self[name]  # noqa: B018 - raises KeyError for an unknown peer
                if name in group:
                    raise ValueError(f"peer {name!r} is in two groups")
                group[name] = i
        rest = len(groups)
        self._group = {name: group.get(name, rest) for name in self.peers}
        self._drop_in_flight(lambda msg: not self.reachable(msg.src, msg.dst))

    def heal(self) -> None:
        """Undo the partition. Sessions are not restarted: what was lost is repaired by
        later traffic, or by :meth:`reconnect`."""
        self._group = None

    def reachable(self, a: str, b: str) -> bool:
        """Whether no partition separates ``a`` and ``b``."""
        if self._group is None:
            return True
        return self._group.get(a, -1) == self._group.get(b, -1)

    def reconnect(self, a: str, b: str) -> SimulatedNetwork:
        """Reopen the link: what it carried is dropped and both sessions start again."""
        if b not in self[a].sessions:
            raise KeyError(f"no link between {a!r} and {b!r}")
        self._drop_in_flight(lambda msg: {msg.src, msg.dst} == {a, b})
        self._start(a, b)
        return self

    def reconnect_all(self) -> SimulatedNetwork:
        """:meth:`reconnect` every link."""
        for a, b in self.links:
            self.reconnect(a, b)
        return self

    # ---- running ------------------------------------------------------------------------------

    def tick(self) -> int:
        """One time step: deliver what is due (replies go back over the same link), then
        poll every session and send what it returns. Returns how many messages were
        delivered."""
        self.now += 1
        delivered = 0
        while self._queue and self._queue[0].due <= self.now:
            msg = heapq.heappop(self._queue)
            self._stats[(msg.src, msg.dst)].delivered += 1
            delivered += 1
            replies = self.peers[msg.dst].sessions[msg.src].receive(msg.message)
            for reply in replies:
                self._send(msg.dst, msg.src, reply)
        self.poll_all()
        return delivered

    def run(self, ticks: int) -> SimulatedNetwork:
        """:meth:`tick` ``ticks`` times."""
        for _ in range(ticks):
            self.tick()
        return self

    def poll_all(self) -> int:
        """Poll every session and send what it returns; return how many messages that was."""
        sent = 0
        for name, other, session in self.sessions():
            for message in session.poll():
                self._send(name, other, message)
                sent += 1
        return sent

    def run_until_quiet(self, max_steps: int = 100_000) -> SimulatedNetwork:
        """Tick until no message is in flight and every session's poll() is empty.

        Idle ticks (nothing due yet) are skipped and not counted; raises
        :class:`NotQuietError` after ``max_steps`` delivering ticks. Under a partition,
        "quiet" only means that nothing more can move.
        """
        steps = 0
        while True:
            if not self._queue:
                if self.poll_all() == 0:
                    return self
                continue
            if steps >= max_steps:
                raise NotQuietError(
                    f"still {len(self._queue)} messages in flight after {max_steps} steps"
                )
            self.now = max(self.now, self._queue[0].due - 1)
            self.tick()
            steps += 1

    # ---- plumbing ------------------------------------------------------------------------------

    def _start(self, a: str, b: str) -> None:
        for x, y in ((a, b), (b, a)):
            for message in self.peers[x].sessions[y].start():
                self._send(x, y, message)

    def _send(self, src: str, dst: str, message: bytes) -> None:
        stats = self._stats[(src, dst)]
        stats.messages += 1
        stats.bytes += len(message)
        stats.largest = max(stats.largest, len(message))
        if not self.reachable(src, dst):
            stats.blocked += 1
            return
        if self.loss and self.rng.random() < self.loss:
            stats.lost += 1
            return
        copies = 1
        if self.duplicate and self.rng.random() < self.duplicate:
            copies = 2
            stats.duplicated += 1
        lo, hi = self.latency
        if not 1 <= lo <= hi:
            raise ValueError("latency must be (lo, hi) with 1 <= lo <= hi")
        for _ in range(copies):
            self._seq += 1
            due = self.now + self.rng.randint(lo, hi)
            heapq.heappush(self._queue, _InFlight(due, self._seq, src, dst, message))

    def _drop_in_flight(self, drop: Callable[[_InFlight], bool]) -> None:
        kept = []
        for msg in self._queue:
            if drop(msg):
                self._stats[(msg.src, msg.dst)].blocked += 1
            else:
                kept.append(msg)
        heapq.heapify(kept)
        self._queue = kept
