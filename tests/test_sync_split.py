"""Split transfers: updates larger than the message limit, relayed and applied by the app.

The general property (quiet means level) is in tests/test_sync_quiet.py; these are the
cases that once went wrong, as deterministic checks, and the traffic a large relayed update
costs. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import collections
import functools
import random

import pytest

import crdtsync
from crdtsync.sync import SyncSession
from crdtsync.sync import messages as m
from crdtsync.testing import SimulatedNetwork


class CountingSession(SyncSession):
    """A SyncSession that counts the kinds of message it receives."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.received: collections.Counter[str] = collections.Counter()

    def receive(self, message: bytes) -> list[bytes]:
        self.received[type(m.decode_message(message)).__name__] += 1
        return super().receive(message)


def _received(net: SimulatedNetwork) -> collections.Counter[str]:
    total: collections.Counter[str] = collections.Counter()
    for _, _, session in net.sessions():
        total += session.received
    return total


def _reset_counts(net: SimulatedNetwork) -> None:
    for _, _, session in net.sessions():
        session.received.clear()


def _text_with_deletes(doc: crdtsync.Doc, rng: random.Random, size: int) -> None:
    text = doc.text("t")
    text.insert(0, "".join(rng.choice("abcdef") for _ in range(size)))
    for _ in range(size // 15):  # scattered deletes: state updates get SKIPs and facts
        text.delete(rng.randrange(len(text)), 1)


@pytest.mark.parametrize("limit", [256, 1024])
def test_an_app_applied_overlapping_state_over_small_messages(limit):
    """The issue's repro: two sessions level on a 3,000-character text; the application
    applies a third replica's whole state (most of which both already hold) to one side."""
    rng = random.Random(1)
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    _text_with_deletes(a, rng, 3000)
    factory = functools.partial(CountingSession, max_message_size=limit)
    net = SimulatedNetwork.build(
        "chain", {"a": a, "b": b}, seed=3, latency=(1, 5), session_factory=factory
    )
    sa, sb = net["a"].sessions["b"], net["b"].sessions["a"]
    net.run_until_quiet()
    assert str(a.text("t")) == str(b.text("t"))

    third = crdtsync.Doc(3)
    third.apply_update(a.get_update())
    tt = third.text("t")
    for _ in range(50):
        tt.delete(rng.randrange(len(tt)), 1)
        tt.insert(rng.randrange(len(tt)), "X")
    _reset_counts(net)
    a.apply_update(third.get_update())
    net.run_until_quiet()
    assert str(a.text("t")) == str(b.text("t")) == str(tt)
    assert sa.synced and sb.synced
    assert not sb._transfers
    counts = _received(net)
    # Only the third replica's 100 changes travel, once, and nobody asks for anything.
    assert counts["Hello"] == counts["Diff"] == 0, counts
    diff = a.get_update(b.version)  # (nothing left: they are level)
    assert crdtsync.Doc().apply_update(diff) is None
    print(f"\nlimit {limit}: {dict(counts)}, whole state {len(third.get_update())} bytes")


@pytest.mark.parametrize("limit", [256, 1024])
def test_a_large_relayed_update_costs_no_extra_requests(limit, capsys):
    """A client pastes a large text (with deletes, so its state has SKIPs and facts); the
    relay passes it on to the others in parts, which arrive out of order. Nobody sends an
    extra HELLO or DIFF for it: parts waiting for earlier parts of their own transfer are
    not gaps."""
    rng = random.Random(2)
    factory = functools.partial(CountingSession, max_message_size=limit)
    docs = [crdtsync.Doc(i + 1) for i in range(4)]
    net = SimulatedNetwork.star(docs, seed=5, latency=(1, 8), session_factory=factory)
    net.run_until_quiet()
    _reset_counts(net)
    source = crdtsync.Doc(99)
    _text_with_deletes(source, rng, 6000)
    with docs[1].transaction():
        docs[1].text("t").insert(0, str(source.text("t")))
        docs[1].text("t").delete(100, 2000)
    net.run_until_quiet()
    net.assert_converged()
    assert net.synced
    counts = _received(net)
    assert counts["Hello"] == 0 and counts["Diff"] == 0, counts
    with capsys.disabled():
        print(f"\nlimit {limit}: one large relayed update: {dict(counts)}")


def test_a_late_duplicate_part_does_not_start_a_transfer_that_never_ends():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    sa, sb = SyncSession(a, max_message_size=256), SyncSession(b, max_message_size=256)
    for answer in sb.receive(sa.start()[0]):  # a DIFF and b's HELLO
        sa.receive(answer)  # (a's reply to that HELLO is not needed here)
    _text_with_deletes(a, random.Random(3), 600)
    parts = sa.poll()
    assert len(parts) > 3
    for part in parts:
        sb.receive(part)
    assert str(b.text("t")) == str(a.text("t"))
    sb.receive(parts[1])  # a duplicate, after its transfer went in
    assert not sb._transfers


def test_parts_held_already_do_not_end_the_transfer():
    """The first parts of a transfer may carry only what the receiver holds: the transfer
    is not over until its last part is in (the receiver once dropped it here)."""
    rng = random.Random(4)
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    _text_with_deletes(a, rng, 2000)
    b.apply_update(a.get_update())
    third = crdtsync.Doc(3)
    third.apply_update(a.get_update())
    third.text("t").delete(5, 10)
    third.text("t").insert(0, "new")
    update = third.get_update()  # mostly what b holds
    sb = SyncSession(b, max_message_size=256)
    from crdtsync._merge import split_update

    parts = split_update(update, 256)
    assert len(parts) > 4
    for i, part in enumerate(parts):
        sb.receive(m.encode_message(m.UpdateMessage(part, m.Transfer(7, i, len(parts)))))
    assert str(b.text("t")) == str(third.text("t"))
    assert not sb._transfers


def test_a_diff_whose_lost_parts_are_held_another_way_is_retired():
    """Parts of a DIFF were lost, and the receiver got level another way (here, the
    application applied the sender's state). Nothing would ever complete that transfer:
    the receiver retires it, since the DIFF's version is covered, and ends synced. (It
    stayed unsynced, level and silent; the stateful tests found it.)"""
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    _text_with_deletes(a, random.Random(4), 3000)
    sa, sb = SyncSession(a, max_message_size=256), SyncSession(b, max_message_size=256)
    answer = sa.receive(sb.start()[0])
    diff_parts = [x for x in answer if isinstance(m.decode_message(x), m.Diff)]
    assert len(diff_parts) > 3
    for part in diff_parts[1:]:  # the first part is lost
        sb.receive(part)
    assert sb._transfers
    b.apply_update(a.get_update())
    to_a = sb.poll()
    assert not sb._transfers
    to_b = [r for x in to_a for r in sa.receive(x)] + sa.poll()
    for _ in range(4):
        to_a = [r for x in to_b for r in sb.receive(x)] + sb.poll()
        to_b = [r for x in to_a for r in sa.receive(x)] + sa.poll()
    assert sa.synced and sb.synced
    assert str(a.text("t")) == str(b.text("t"))
