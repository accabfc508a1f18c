"""Bounded traffic: one handshake between replicas that diverged by 10,000 edits each moves
little more than the two deltas (what each side lacks), far less than whole states.

Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import functools
import random
import time

import crdtsync
from crdtsync.sync import SyncSession
from crdtsync.testing import SimulatedNetwork, assert_converged

EDITS = 10_000
WORDS = ["the ", "quick ", "brown ", "fox ", "jumps ", "über ", "😀 ", "中文 ", "\n"]


def _base() -> crdtsync.Doc:
    """The shared starting point: a 20,000-word text, 50 map keys and set elements."""
    doc = crdtsync.Doc(1)
    rng = random.Random(0)
    doc.text("body").insert(0, "".join(rng.choice(WORDS) for _ in range(20_000)))
    for i in range(50):
        doc.map("meta")[f"k{i}"] = i
        doc.set("tags").add(f"t{i}")
    doc.counter("views").increment(10)
    return doc


def _diverge(doc: crdtsync.Doc, seed: int, n: int) -> None:
    """``n`` edits, each its own transaction: typing runs at a moving cursor, backspaces and
    forward deletes, map writes and deletes, set adds and removes, counter steps."""
    rng = random.Random(seed)
    text, meta, tags, views = (
        doc.text("body"),
        doc.map("meta"),
        doc.set("tags"),
        doc.counter("views"),
    )
    cursor = rng.randint(0, len(text))
    done = 0
    while done < n:
        roll = rng.random()
        if roll < 0.55:  # type a word, one keystroke per edit
            cursor = min(cursor, len(text))
            for ch in rng.choice(WORDS)[: n - done]:
                text.insert(cursor, ch)
                cursor += 1
                done += 1
        elif roll < 0.70:  # backspaces
            for _ in range(min(rng.randint(1, 5), n - done)):
                cursor = min(cursor, len(text))
                if cursor:
                    text.delete(cursor - 1)
                    cursor -= 1
                done += 1
        elif roll < 0.75:  # move the cursor (no edit)
            cursor = rng.randint(0, len(text))
        elif roll < 0.77:  # select and delete a range
            if len(text) > 20:
                start = rng.randrange(len(text) - 10)
                text.delete(start, rng.randint(1, 10))
            done += 1
        elif roll < 0.87:
            key = f"k{rng.randrange(80)}"
            if rng.random() < 0.2 and key in meta:
                del meta[key]
            else:
                meta[key] = rng.choice([rng.random(), "v" * rng.randint(1, 8), [1, 2], None])
            done += 1
        elif roll < 0.95:
            tag = f"t{rng.randrange(80)}"
            if rng.random() < 0.4:
                tags.discard(tag)
            else:
                tags.add(tag)
            done += 1
        else:
            views.increment(rng.randint(1, 3))
            done += 1


def test_one_handshake_after_10k_edits_each():
    t0 = time.perf_counter()
    base = _base()
    a, b = crdtsync.Doc(2), crdtsync.Doc(3)
    a.apply_update(base.get_update())
    b.apply_update(base.get_update())
    _diverge(a, 1, EDITS)
    _diverge(b, 2, EDITS)
    t_edit = time.perf_counter() - t0

    a_lacks = len(b.get_update(a.version))
    b_lacks = len(a.get_update(b.version))
    deltas = a_lacks + b_lacks
    states = len(a.get_update()) + len(b.get_update())

    net = SimulatedNetwork.mesh({"a": a, "b": b})  # opening the link: start() on both sides
    net.run_until_quiet()
    wire = net.total()
    t_all = time.perf_counter() - t0

    assert_converged([a, b])
    assert net.synced
    assert wire.bytes <= 1.5 * deltas
    print(
        f"\n{EDITS} edits on each side; deltas {b_lacks:,} B (a->b) + {a_lacks:,} B (b->a) = "
        f"{deltas:,} B; handshake: {wire.messages} messages, {wire.bytes:,} B on the wire "
        f"({wire.bytes / deltas:.3f}x the deltas); whole states {states:,} B "
        f"({states / wire.bytes:.1f}x the handshake); a->b {net.stats('a', 'b').bytes:,} B, "
        f"b->a {net.stats('b', 'a').bytes:,} B; edits {t_edit:.1f} s, total {t_all:.1f} s"
    )


def test_split_handshake_figures():
    """The same divergence through sessions limited to 4 KiB messages: many parts, still
    converging. Parts are not DEFLATE-compressed, so the wire carries more than the
    (compressed) deltas; the figures are printed for comparison."""
    base = _base()
    a, b = crdtsync.Doc(2), crdtsync.Doc(3)
    a.apply_update(base.get_update())
    b.apply_update(base.get_update())
    _diverge(a, 1, EDITS)
    _diverge(b, 2, EDITS)
    deltas = len(a.get_update(b.version)) + len(b.get_update(a.version))
    net = SimulatedNetwork.mesh(
        {"a": a, "b": b}, session_factory=functools.partial(SyncSession, max_message_size=4096)
    )
    net.run_until_quiet()
    wire = net.total()
    assert_converged([a, b])
    assert net.synced
    assert wire.messages > 2 * deltas // 4096
    print(
        f"\nwith 4 KiB messages: {wire.messages} messages, {wire.bytes:,} B on the wire "
        f"({wire.bytes / deltas:.2f}x the {deltas:,} B of deltas), largest {wire.largest:,} B"
    )


def test_messages_stay_near_the_size_limit():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    rng = random.Random(0)
    a.text("t").insert(0, "".join(rng.choice("abcdefgh") for _ in range(5000)))
    b.apply_update(a.get_update())
    text = b.text("t")
    for _ in range(800):  # b deletes scattered characters that a typed
        text.delete(rng.randrange(len(text)))
    limit = 1024
    net = SimulatedNetwork.mesh(
        {"a": a, "b": b}, session_factory=functools.partial(SyncSession, max_message_size=limit)
    )
    net.run_until_quiet()
    assert_converged([a, b])
    assert net.total().largest <= 2 * limit, f"a message of {net.total().largest} bytes"
