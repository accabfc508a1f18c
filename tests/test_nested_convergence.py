"""Convergence of nested containers under an unreliable network.

2-5 replicas edit a tree of containers at random depths: each edit walks from a root
down through the children to a random reachable container and creates a child there (at
a map key from a two-letter alphabet, so that replicas collide, or in a list), deletes a
key or an element (holding a child or not), writes a plain value, or edits the leaf
(Text, List, ORSet, Counter). Every local update goes into per-destination queues that
deliver in random order, duplicate and drop; replicas also resync with
``get_update(other.version)``, send whole states and deliver ``merge_updates`` of some
queued messages. After a full resync every replica's ``to_py()`` must be equal, equal to a
fresh document loaded from its ``get_update()``, with equal versions; corrupted copies of
the state must be refused without a trace.
"""

from __future__ import annotations

import functools

from crdt_helpers import budget, small_text, values
from delivery_rules import QueuedReplicas
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule
from nested_helpers import (
    KINDS,
    assert_refused_unchanged,
    check_tree,
    fresh_from,
    kind_of,
    pick,
    state,
    walk,
)

import crdtsync
from crdtsync.types._base import Container

#: Few keys, so that replicas create children at the same key concurrently.
KEYS = ["a", "b"]
SET_POOL = ["x", "y", 1, None]
ROOT_NAMES = ["m", "l"]
#: LWWMap's get-or-create method for each kind letter.
METHOD = {"t": "text", "l": "list", "m": "map", "s": "set", "c": "counter"}
#: Trees deeper than this are not grown further (deep enough for every rule, and small).
MAX_DEPTH = 5

replica = st.integers(0, 4)
position = st.integers(0, 10_000)
paths = st.lists(st.integers(0, 100), max_size=MAX_DEPTH)
kinds = st.sampled_from(sorted(KINDS))
plain = st.one_of(st.integers(-3, 3), st.sampled_from(["v", None, True, 1.5]), values)


def depth_of(container) -> int:
    d = 0
    while container.parent is not None:
        container = container.parent
        d += 1
    return d


class NestedConvergence(QueuedReplicas):
    @initialize(
        ids=st.lists(st.integers(0, 2**64 - 1), min_size=2, max_size=5, unique=True),
        gc=st.lists(st.booleans(), min_size=5, max_size=5),
    )
    def setup(self, ids, gc):
        self.docs = [crdtsync.Doc(i, gc=g) for i, g in zip(ids, gc, strict=False)]
        self.n = len(ids)
        self.queues: list[list[bytes]] = [[] for _ in ids]
        self.applying = False
        self.remote_emits = 0
        self.prev_versions = [d.version for d in self.docs]
        for k, d in enumerate(self.docs):
            d.on_update(functools.partial(self._emit, k))

    # -- plumbing ------------------------------------------------------------------------------

    def _emit(self, k, update, origin):
        if self.applying:
            self.remote_emits += 1
            return
        for j in range(self.n):
            if j != k:
                self.queues[j].append(bytes(update))

    def target(self, r, root, path):
        d = self.doc(r)
        top = d.map("m") if root == "m" else d.list("l")
        return pick(top, path)

    # -- local edits ---------------------------------------------------------------------------

    def _edit(self, c, op, key, kind, pos, value, s):
        """One edit on container ``c``, chosen by ``op`` among those its type allows."""
        if isinstance(c, crdtsync.LWWMap):
            op %= 6
            if op <= 3:
                if depth_of(c) >= MAX_DEPTH:
                    c[key] = value
                    return
                held, before = c.get(key), c.doc.version
                try:
                    child = getattr(c, METHOD[kind])(key)
                except TypeError:
                    # the key holds another kind of container: refused, nothing written
                    assert isinstance(held, Container) and kind_of(held) != kind
                    assert c.doc.version == before
                    return
                assert kind_of(child) == kind
                assert c[key] is child and child.parent is c
                if isinstance(held, Container):  # got, not created: nothing written
                    assert child is held and c.doc.version == before
                # (a new child need not be empty: a concurrent creator's child is the same
                # one, and edits to it may have arrived before its creation did)
            elif op == 4:
                c[key] = value
            elif key in c:
                del c[key]
        elif isinstance(c, crdtsync.List):
            op %= 4
            if op <= 1 and depth_of(c) < MAX_DEPTH:
                i = pos % (len(c) + 1)
                child = c.insert_container(i, KINDS[kind])
                assert c[i] is child and child.parent is c and kind_of(child) == kind
            elif op <= 2:
                c.insert(pos % (len(c) + 1), value)
            elif len(c):
                del c[pos % len(c)]
        elif isinstance(c, crdtsync.Text):
            if op % 2 == 0 or not len(c):
                c.insert(pos % (len(c) + 1), s)
            else:
                i = pos % len(c)
                c.delete(i, min(1 + op % 3, len(c) - i))
        elif isinstance(c, crdtsync.ORSet):
            e = SET_POOL[pos % len(SET_POOL)]
            if op % 2:
                c.discard(e)
            else:
                c.add(e)
        else:
            c.increment(1 + pos % 5) if op % 2 else c.decrement(1 + pos % 3)

    @rule(
        r=replica,
        root=st.sampled_from(ROOT_NAMES),
        path=paths,
        op=st.integers(0, 11),
        key=st.sampled_from(KEYS),
        kind=kinds,
        pos=position,
        value=plain,
        s=small_text,
    )
    def edit(self, r, root, path, op, key, kind, pos, value, s):
        self._edit(self.target(r, root, path), op, key, kind, pos, value, s)

    @rule(
        r=replica,
        root=st.sampled_from(ROOT_NAMES),
        path=st.lists(st.integers(0, 100), min_size=MAX_DEPTH, max_size=MAX_DEPTH),
        key=st.sampled_from(KEYS),
        kind=kinds,
        pos=position,
    )
    def grow(self, r, root, path, key, kind, pos):
        """Create a child in the deepest map or list on the path (trees grow deep)."""
        c = self.target(r, root, path)
        while not isinstance(c, crdtsync.LWWMap | crdtsync.List):
            c = c.parent
        self._edit(c, 0, key, kind, pos, None, "")

    @rule(
        r=replica,
        edits=st.lists(
            st.tuples(
                st.sampled_from(ROOT_NAMES),
                paths,
                st.integers(0, 11),
                st.sampled_from(KEYS),
                kinds,
                position,
                plain,
                small_text,
            ),
            min_size=1,
            max_size=5,
        ),
    )
    def transaction(self, r, edits):
        """Several edits, at several depths, as one update (a child created and filled in
        the same transaction among them)."""
        with self.doc(r).transaction():
            for root, path, *rest in edits:
                self._edit(self.target(r, root, path), *rest)

    @rule(r=replica, root=st.sampled_from(ROOT_NAMES), path=paths, s=small_text)
    def type_forward(self, r, root, path, s):
        """Keystrokes into a Text found somewhere in the tree, one per transaction."""
        c = self.target(r, root, path)
        if isinstance(c, crdtsync.Text):
            i = len(c) // 2
            for k, ch in enumerate(s):
                c.insert(i + k, ch)

    # -- network -------------------------------------------------------------------------------

    @precondition(lambda self: any(self.queues))
    @rule(dst=replica, newest_first=st.booleans())
    def deliver_all_to(self, dst, newest_first):
        j = dst % self.n
        q = self.queues[j]
        while q:
            self._apply(j, q.pop() if newest_first else q.pop(0))

    @rule(i=replica, j=replica, direct=st.booleans())
    def resync(self, i, j, direct):
        a, b = i % self.n, j % self.n
        if a == b:
            return
        delta = self.docs[a].get_update(self.docs[b].version)
        if direct:
            self._apply(b, delta)
        else:
            self.queues[b].append(delta)

    @rule(i=replica, j=replica)
    def send_whole_state(self, i, j):
        a, b = i % self.n, j % self.n
        if a != b:
            self.queues[b].append(self.docs[a].get_update())

    @rule(flush_first=st.booleans(), cut=st.integers(0, 10_000), flip=st.integers(0, 10_000))
    def converge(self, flush_first, cut, flip):
        self._converge_and_check(flush_first, cut, flip)

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def trees_are_self_consistent(self):
        if not hasattr(self, "docs"):
            return
        for d in self.docs:
            check_tree(d.map("m"))
            check_tree(d.list("l"))

    @invariant()
    def versions_only_grow(self):
        if not hasattr(self, "docs"):
            return
        for k, d in enumerate(self.docs):
            assert self.prev_versions[k] <= d.version
            self.prev_versions[k] = d.version

    def teardown(self):
        if hasattr(self, "docs"):
            self._converge_and_check(False, 7, 3)
            d = self.docs[0]
            deepest = max(depth_of(c) for top in (d.map("m"), d.list("l")) for c in walk(top))
            event(f"deepest container at the end: {deepest}")

    # -- the convergence check -----------------------------------------------------------------

    def _flush(self):
        for j, q in enumerate(self.queues):
            while q:
                self._apply(j, q.pop(0))

    def _converge_and_check(self, flush_first, cut, flip):
        if flush_first:
            self._flush()
        for j in range(1, self.n):
            self._apply(0, self.docs[j].get_update(self.docs[0].version))
        for j in range(1, self.n):
            self._apply(j, self.docs[0].get_update(self.docs[j].version))
        self._flush()  # stale duplicates now: they must change nothing

        for d in self.docs:
            assert not d.pending, f"replica {d.replica_id} has pending updates"
        versions = [d.version for d in self.docs]
        assert all(v == versions[0] for v in versions), [dict(v) for v in versions]
        states = [state(d) for d in self.docs]
        assert all(s == states[0] for s in states), states
        for d in self.docs:
            copy = fresh_from(d.get_update())
            copy.map("m"), copy.list("l")  # empty roots do not travel: make them here
            assert state(copy) == states[0]
            assert copy.version == versions[0]
            assert not copy.pending

        # once level, exchanging updates changes nothing and emits nothing
        emits = self.remote_emits
        for j in range(self.n):
            other = (j + 1) % self.n
            self._apply(j, self.docs[other].get_update(self.docs[j].version))
            self._apply(j, self.docs[other].get_update())
        assert self.remote_emits == emits
        assert [state(d) for d in self.docs] == states

        # broken copies of a state are refused and leave the receiver as it was
        whole = self.docs[0].get_update()
        victim = self.docs[cut % self.n]
        assert_refused_unchanged(victim, whole[: cut % len(whole)])
        broken = bytearray(whole)
        broken[flip % len(broken)] ^= 0xFF
        probe = fresh_from(self.docs[-1].get_update())
        probe.map("m"), probe.list("l")
        try:
            probe.apply_update(bytes(broken))
        except ValueError:
            assert state(probe) == states[0]
            assert probe.version == versions[0]
        self.prev_versions = [d.version for d in self.docs]


TestNestedConvergence = NestedConvergence.TestCase
TestNestedConvergence.settings = settings(
    max_examples=budget(150), stateful_step_count=max(settings().stateful_step_count, 50)
)


# ---- splitting nested updates ------------------------------------------------------------------


def big_nested_doc() -> crdtsync.Doc:
    doc = crdtsync.Doc(1)
    doc.map("m").text("k").insert(0, "x" * 400)
    doc.list("l").append_container(crdtsync.LWWMap)["v"] = "y" * 400
    return doc


def test_split_update_of_a_nested_state():
    from crdtsync._merge import split_update

    doc = big_nested_doc()
    parts = split_update(doc.get_update(), 300)
    assert len(parts) > 1
    copy = crdtsync.Doc(2)
    for part in reversed(parts):
        copy.apply_update(part)
    assert copy.to_py() == doc.to_py() and copy.version == doc.version


def test_sync_session_sends_a_large_nested_state():
    from crdtsync.sync import SyncSession

    a, b = big_nested_doc(), crdtsync.Doc(2)
    sa, sb = SyncSession(a, max_message_size=256), SyncSession(b, max_message_size=256)
    queue = [(sb, m) for m in sa.start()] + [(sa, m) for m in sb.start()]
    while queue:
        dst, message = queue.pop(0)
        src = sa if dst is sb else sb
        queue += [(src, reply) for reply in dst.receive(message)]
    assert b.to_py() == a.to_py()
