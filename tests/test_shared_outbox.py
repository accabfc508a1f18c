"""Sessions of one document that share a SharedOutbox (a relay's room) must send exactly
what sessions with outboxes of their own send: the same messages with the same changes
(their bytes may differ: a merge cut from a shared one keeps its tables), whatever the
clients type, whenever they are polled, whatever is lost on the way."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import crdtsync
from crdtsync import _encoding as enc
from crdtsync.sync import SharedOutbox, SyncSession, _outbox
from crdtsync.sync import messages as m

CLIENTS = 4

# (kind, client, argument): a keystroke by a client, a message delivered or lost, a poll
# of some of the room's sessions, a client's reconnect, a client taking another's changes
# directly (a peer-to-peer link beside the room: it then sends the room changes of a
# replica that another session's peer sends too).
Action = tuple[str, int, int]

actions = st.lists(
    st.tuples(
        st.sampled_from(
            ["type", "type", "erase", "to_room", "to_client", "lose", "poll", "reopen"]
        ),
        st.integers(0, CLIENTS - 1),
        st.integers(0, 1_000),
    ),
    max_size=60,
)


class Room:
    """A document with a session per client, and the clients at the other ends."""

    def __init__(self, shared: bool) -> None:
        # Merges are cached across sessions (and across runs): start both runs level.
        _outbox.merged.cache_clear()
        _outbox._merge_base[0] = None
        self.doc = crdtsync.Doc(replica_id=1)
        self.outbox = SharedOutbox(self.doc) if shared else None
        self.sessions = [SyncSession(self.doc, outbox=self.outbox) for _ in range(CLIENTS)]
        self.clients = [crdtsync.Doc(replica_id=100 + i) for i in range(CLIENTS)]
        self.client_sessions = [SyncSession(doc) for doc in self.clients]
        self.up: list[list[bytes]] = [s.start() for s in self.client_sessions]  # to the room
        self.down: list[list[bytes]] = [[] for _ in range(CLIENTS)]  # to the clients
        self.sent: list[bytes] = []  # everything the room's sessions sent, in order
        self.gossiped = False

    def room_says(self, i: int, out: list[bytes]) -> None:
        for message in out:
            decoded = m.decode_message(message, 1 << 30)
            if isinstance(decoded, m.UpdateMessage):
                # A client's own changes never come back to it in an UPDATE (unless another
                # client passed them on).
                replicas = {s.replica for s in enc.decode_update(decoded.update, None).segments}
                assert 100 + i not in replicas or self.gossiped
        self.down[i] += out
        self.sent += out

    def step(self, action: Action) -> None:
        kind, i, n = action
        text = self.clients[i].text("t")
        if kind == "type":
            text.insert(n % (len(text) + 1), "abc"[n % 3])
            self.up[i] += self.client_sessions[i].poll()
        elif kind == "erase" and len(text):
            text.delete(n % len(text))
            self.up[i] += self.client_sessions[i].poll()
        elif kind == "to_room" and self.up[i]:
            self.room_says(i, self.sessions[i].receive(self.up[i].pop(0)))
        elif kind == "to_client" and self.down[i]:
            self.up[i] += self.client_sessions[i].receive(self.down[i].pop(0))
        elif kind == "lose":
            queue = self.up[i] if n % 2 else self.down[i]
            if queue:
                queue.pop(n % len(queue))
        elif kind == "poll":
            # Some of the sessions, starting anywhere: a tick polls them all, in any order.
            for k in range(n % (CLIENTS + 1)):
                j = (i + k) % CLIENTS
                self.room_says(j, self.sessions[j].poll())
        elif kind == "gossip":
            self.clients[i].apply_update(self.clients[n % CLIENTS].get_update())
            self.gossiped = True
            self.up[i] += self.client_sessions[i].poll()
        elif kind == "reopen":
            # A new connection: a new session on the room's side too, as in a relay.
            self.sessions[i].close()
            self.sessions[i] = SyncSession(self.doc, outbox=self.outbox)
            self.down[i].clear()
            self.up[i] = self.client_sessions[i].start()

    def settle(self) -> None:
        """Deliver everything until quiet; a client whose session waits for an answer
        that was lost reconnects (as a transport's keepalive would make it) and goes on."""
        for _ in range(3):
            self._deliver_all()
            stuck = [i for i in range(CLIENTS) if not self.client_sessions[i].synced]
            if not stuck:
                break
            for i in stuck:
                self.step(("reopen", i, 0))
        for i in range(CLIENTS):
            assert self.client_sessions[i].synced, i
            assert self.sessions[i].synced, i

    def _deliver_all(self) -> None:
        for _ in range(200):
            busy = False
            for i in range(CLIENTS):
                self.up[i] += self.client_sessions[i].poll()
                while self.up[i]:
                    busy = True
                    self.room_says(i, self.sessions[i].receive(self.up[i].pop(0)))
            for i in range(CLIENTS):
                self.room_says(i, self.sessions[i].poll())
                while self.down[i]:
                    busy = True
                    self.up[i] += self.client_sessions[i].receive(self.down[i].pop(0))
            if not busy:
                return


def _meaning(message: bytes) -> object:
    """A message as what it says: an update's changes by replica, whatever its tables."""
    decoded = m.decode_message(message, 1 << 30)
    if isinstance(decoded, m.UpdateMessage | m.Diff):
        update = enc.decode_update(decoded.update, None)
        changes = sorted((s.replica, s.start, s.end, s.entries) for s in update.segments)
        version = decoded.version if isinstance(decoded, m.Diff) else None
        return type(decoded).__name__, decoded.part, version, changes, update.facts
    return decoded


def _run(script: list[Action], shared: bool) -> Room:
    room = Room(shared)
    for action in script:
        room.step(action)
    room.settle()
    return room


@given(actions)
def test_a_shared_outbox_sends_what_own_outboxes_send(script: list[Action]) -> None:
    own = _run(script, shared=False)
    shared = _run(script, shared=True)
    assert [_meaning(x) for x in shared.sent] == [_meaning(x) for x in own.sent]
    expected = str(own.doc.text("t"))
    assert str(shared.doc.text("t")) == expected
    assert all(str(doc.text("t")) == expected for doc in shared.clients)


def test_sessions_polled_at_different_times_each_send_what_they_have_not_sent() -> None:
    doc = crdtsync.Doc(replica_id=1)
    outbox = SharedOutbox(doc)
    a, b = SyncSession(doc, outbox=outbox), SyncSession(doc, outbox=outbox)
    text = doc.text("t")
    text.insert(0, "x")
    assert len(a.poll()) == 1  # a has sent "x", b not yet
    text.insert(1, "y")
    seen = []
    for session in (a, b):
        (message,) = session.poll()
        update = m.decode_message(message, 1 << 30).update  # type: ignore[attr-defined]
        seen.append([(seg.start, seg.end) for seg in enc.decode_update(update).segments])
    assert seen == [[(2, 3)], [(1, 3)]]  # a sends "y"; b sends "x" and "y"


def _update_message(update: bytes) -> bytes:
    return m.encode_message(m.UpdateMessage(update, m.Transfer(0, 0, 1)))


def test_a_peer_that_passed_on_another_replicas_changes_still_gets_its_new_ones() -> None:
    """Client j passed on k's first change (it had it from k directly); in the same tick k
    sends its second: j's session leaves out j's own update, not everything of k."""
    room = crdtsync.Doc(replica_id=1)
    outbox = SharedOutbox(room)
    sj, sk, sl = (SyncSession(room, outbox=outbox) for _ in range(3))
    k = crdtsync.Doc(replica_id=101)
    k.text("t").insert(0, "a")
    first = k.get_update()
    sk.receive(_update_message(first))
    for session in (sj, sk, sl):
        session.poll()
    j = crdtsync.Doc(replica_id=100)
    j.apply_update(first)
    j.text("t").insert(1, "b")
    k.text("t").insert(1, "c")
    sj.receive(_update_message(j.get_update()))  # k's "a" and j's "b"
    sk.receive(_update_message(k.get_update({101: 1})))  # k's "c"
    other = crdtsync.Doc(replica_id=102)
    other.text("t").insert(0, "d")
    sl.receive(_update_message(other.get_update()))  # (a third: a merge to cut from)
    messages = [m.decode_message(x, 1 << 30) for x in sj.poll()]
    sent = [x.update for x in messages if isinstance(x, m.UpdateMessage)]
    for update in sent:
        j.apply_update(update)
    assert str(j.text("t")) == str(room.text("t"))


def test_the_shared_log_is_trimmed_once_every_session_has_read_it() -> None:
    doc = crdtsync.Doc(replica_id=1)
    outbox = SharedOutbox(doc)
    sessions = [SyncSession(doc, outbox=outbox) for _ in range(3)]
    text = doc.text("t")
    for k in range(500):
        text.insert(k, "x")
        for s in sessions:
            s.poll()
    assert len(outbox._log) < 200  # what all three read is gone
    quiet = sessions.pop()
    for k in range(500):
        text.insert(k, "y")
        for s in sessions:
            s.poll()
    # A session that does not poll keeps what it has not read (as its own outbox would).
    assert len(outbox._log) >= 500
    assert len(quiet.poll()) >= 1
    quiet.close()
    for s in sessions:
        s.close()
    outbox.close()


def test_an_update_may_come_from_any_origin() -> None:
    """Origins are any objects (a list is not hashable): the shared log takes them all."""
    room = crdtsync.Doc(replica_id=1)
    outbox = SharedOutbox(room)
    sessions = [SyncSession(room, outbox=outbox) for _ in range(2)]
    other = crdtsync.Doc(replica_id=2)
    other.text("t").insert(0, "hi")
    room.apply_update(other.get_update(), origin=["not", "hashable"])
    assert [len(s.poll()) for s in sessions] == [1, 1]


def test_a_shared_outbox_belongs_to_one_document() -> None:
    outbox = SharedOutbox(crdtsync.Doc())
    with pytest.raises(ValueError, match="its own document"):
        SyncSession(crdtsync.Doc(), outbox=outbox)


def test_a_session_that_closes_stops_reading() -> None:
    doc = crdtsync.Doc(replica_id=1)
    outbox = SharedOutbox(doc)
    a, b = SyncSession(doc, outbox=outbox), SyncSession(doc, outbox=outbox)
    a.close()
    doc.text("t").insert(0, "hi")
    assert id(a) not in outbox._cursors
    assert len(b.poll()) == 1
    assert not b.synced  # (the peer has said nothing yet)
