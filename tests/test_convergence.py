"""Convergence under an unreliable network, and each type's merge promise.

The state machine runs 2-5 replicas that edit every root type. Each local transaction's update
(captured through ``on_update``) goes into per-destination queues of a simulated network that
delivers in random order, duplicates, drops and delays; replicas also resync with
``get_update(since=other.version)``. After everything is delivered and a final resync, all
replicas must hold identical values and versions.
"""

from __future__ import annotations

import collections
import functools
import random

from crdt_helpers import (
    Recorder,
    budget,
    distinct_ids,
    fresh_from,
    random_edit_all,
    small_text,
    snapshot,
    sync_all,
    sync_pair,
    tag,
    values,
)
from delivery_rules import QueuedReplicas
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

import crdtsync

# small pools, so that replicas keep touching the same elements and keys
SET_POOL = ["a", "b", 1, b"x", None]
MAP_KEYS = ["k", "😀"]
replica = st.integers(0, 4)
position = st.integers(0, 10_000)


class Convergence(QueuedReplicas):
    @initialize(
        ids=st.integers(2, 5).flatmap(distinct_ids),
        gc=st.lists(st.booleans(), min_size=5, max_size=5),
    )
    def setup(self, ids, gc):
        # replicas with and without garbage collection must interoperate
        self.docs = [crdtsync.Doc(i, gc=g) for i, g in zip(ids, gc, strict=False)]
        self.n = len(ids)
        self.queues: list[list[bytes]] = [[] for _ in ids]
        self.applying = False
        self.remote_emits = 0
        self.local_updates: list[bytes] = []
        self.relayed: list[bytes] = []  # what replicas re-emit after integrating remote updates
        self.old_states: list[tuple[crdtsync.VersionVector, bytes]] = []
        for k, d in enumerate(self.docs):
            d.on_update(functools.partial(self._emit, k))
        self.prev_versions = [d.version for d in self.docs]
        # what was ever written, for sanity checks of the merged result
        self.counter_total = 0
        self.inserted_chars: collections.Counter[str] = collections.Counter()
        self.map_written: dict[str, set] = collections.defaultdict(set)
        self.set_added: set = set()

    # -- plumbing ------------------------------------------------------------------------------

    def _emit(self, k, update, origin):
        assert isinstance(update, bytes | bytearray)
        if self.applying:
            self.remote_emits += 1
            self.relayed.append(bytes(update))
            return
        self.local_updates.append(bytes(update))
        for j in range(self.n):
            if j != k:
                self.queues[j].append(bytes(update))

    # -- local operations ----------------------------------------------------------------------

    @rule(r=replica, pos=position, s=small_text)
    def text_insert(self, r, pos, s):
        t = self.doc(r).text("t")
        t.insert(pos % (len(t) + 1), s)
        self.inserted_chars.update(s)

    @rule(r=replica, pos=position, s=small_text)
    def text_type_forward(self, r, pos, s):
        """Type s one character per transaction, like a user."""
        t = self.doc(r).text("t")
        i = pos % (len(t) + 1)
        for ch in s:
            t.insert(i, ch)
            i += 1
        self.inserted_chars.update(s)

    @rule(r=replica, pos=position, n=st.integers(1, 8))
    def text_delete(self, r, pos, n):
        t = self.doc(r).text("t")
        if len(t):
            i = pos % len(t)
            t.delete(i, min(n, len(t) - i))

    @rule(r=replica, pos=position, v=values)
    def list_insert(self, r, pos, v):
        lst = self.doc(r).list("l")
        lst.insert(pos % (len(lst) + 1), v)

    @rule(r=replica, vs=st.lists(values, min_size=1, max_size=3))
    def list_extend(self, r, vs):
        self.doc(r).list("l").extend(vs)

    @rule(r=replica, pos=position)
    def list_delete(self, r, pos):
        lst = self.doc(r).list("l")
        if len(lst):
            del lst[pos % len(lst)]

    @rule(r=replica, e=st.sampled_from(SET_POOL))
    def set_add(self, r, e):
        self.doc(r).set("s").add(e)
        self.set_added.add(tag(e))

    @rule(r=replica, e=st.sampled_from(SET_POOL))
    def set_discard(self, r, e):
        self.doc(r).set("s").discard(e)

    @rule(r=replica, k=st.sampled_from(MAP_KEYS), v=values)
    def map_set(self, r, k, v):
        self.doc(r).map("m")[k] = v
        self.map_written[k].add(tag(v))

    @rule(r=replica, k=st.sampled_from(MAP_KEYS))
    def map_delete(self, r, k):
        m = self.doc(r).map("m")
        if k in m:
            del m[k]

    @rule(r=replica, n=st.integers(1, 100), up=st.booleans())
    def counter_change(self, r, n, up):
        c = self.doc(r).counter("c")
        if up:
            c.increment(n)
            self.counter_total += n
        else:
            c.decrement(n)
            self.counter_total -= n

    @rule(r=replica, seed=st.integers(0, 2**32), n=st.integers(1, 6))
    def transaction(self, r, seed, n):
        """Several random edits over all types as one transaction (one update)."""
        d = self.doc(r)
        rnd = random.Random(seed)
        before = len(self.local_updates)
        c0 = d.counter("c").value
        text0 = str(d.text("t"))
        with d.transaction(origin="txn"):
            random_edit_all(d, rnd, n)
        self.counter_total += d.counter("c").value - c0
        # random_edit_all inserts come from a fixed alphabet; account for them generously
        new = collections.Counter(str(d.text("t"))) - collections.Counter(text0)
        self.inserted_chars.update(new)
        for k in "pqr":
            if k in d.map("m"):
                self.map_written[k].add(tag(d.map("m")[k]))
        for e in d.set("s"):
            self.set_added.add(tag(e))
        assert len(self.local_updates) - before <= 1

    # -- network -------------------------------------------------------------------------------

    @precondition(lambda self: any(self.queues))
    @rule(dst=replica)
    def deliver_all_to(self, dst):
        j = dst % self.n
        while self.queues[j]:
            self._apply(j, self.queues[j].pop(0))

    @precondition(lambda self: any(self.queues))
    @rule(which=replica)
    def delay(self, which):
        qs = [q for q in self.queues if q]
        q = qs[which % len(qs)]
        q.append(q.pop(0))

    @rule(i=replica, j=replica)
    def resync(self, i, j):
        """Replica i sends j what j lacks, through the (unreliable) network."""
        a, b = i % self.n, j % self.n
        if a != b:
            self.queues[b].append(self.docs[a].get_update(self.docs[b].version))

    @rule(i=replica, j=replica)
    def resync_direct(self, i, j):
        a, b = i % self.n, j % self.n
        if a != b:
            self._apply(b, self.docs[a].get_update(self.docs[b].version))

    @rule(i=replica, j=replica, k=replica)
    def resync_through(self, i, j, k):
        """i brings j up to date, then j brings k up to date (j relays i's changes)."""
        a, b, c = i % self.n, j % self.n, k % self.n
        if a != b:
            self._apply(b, self.docs[a].get_update(self.docs[b].version))
        if b != c:
            self._apply(c, self.docs[b].get_update(self.docs[c].version))

    @rule(i=replica, j=replica)
    def send_whole_state(self, i, j):
        a, b = i % self.n, j % self.n
        if a != b:
            self.queues[b].append(self.docs[a].get_update())

    @precondition(lambda self: self.relayed)
    @rule(idx=st.integers(0, 1000), dst=replica)
    def relay(self, idx, dst):
        """Forward an update a replica emitted for a remote change (gossip through a relay)."""
        self.queues[dst % self.n].append(self.relayed[idx % len(self.relayed)])

    @rule(r=replica)
    def remember_state(self, r):
        d = self.doc(r)
        self.old_states.append((d.version, d.get_update()))

    @precondition(lambda self: self.old_states)
    @rule(idx=st.integers(0, 1000), r=replica)
    def catch_up_from_old_state(self, idx, r):
        """A doc at an old version v, given get_update(since=v), equals the merge of both."""
        v, state = self.old_states[idx % len(self.old_states)]
        d = self.doc(r)
        behind = fresh_from(state)
        assert behind.version == v
        behind.apply_update(d.get_update(v))
        merged = fresh_from(state)
        merged.apply_update(d.get_update())
        assert snapshot(behind) == snapshot(merged)
        assert behind.version == merged.version == v | d.version
        if v <= d.version:
            assert snapshot(behind) == snapshot(d)

    @rule(flush_first=st.booleans())
    def converge(self, flush_first):
        self._converge_and_check(flush_first)

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def versions_only_grow(self):
        if not hasattr(self, "docs"):
            return
        for k, d in enumerate(self.docs):
            v = d.version
            assert self.prev_versions[k] <= v, (dict(self.prev_versions[k]), dict(v))
            self.prev_versions[k] = v

    @invariant()
    def replicas_are_self_consistent(self):
        if not hasattr(self, "docs"):
            return
        for d in self.docs:
            snapshot(d)  # asserts len() agrees with contents for every root

    def teardown(self):
        if hasattr(self, "docs"):
            self._converge_and_check(flush_first=False)

    # -- the convergence check -----------------------------------------------------------------

    def _flush(self):
        for j, q in enumerate(self.queues):
            while q:
                self._apply(j, q.pop(0))

    def _converge_and_check(self, flush_first):
        """Resync everyone through replica 0; queued messages are delivered before the resync
        or only after it (then they are stale duplicates, which must change nothing)."""
        if flush_first:
            self._flush()
        hub = 0
        for j in range(1, self.n):
            self._apply(hub, self.docs[j].get_update(self.docs[hub].version))
        for j in range(1, self.n):
            self._apply(j, self.docs[hub].get_update(self.docs[j].version))
        self._flush()
        self.relayed.clear()

        for d in self.docs:
            assert not d.pending, f"replica {d.replica_id} still has pending updates"
        versions = [d.version for d in self.docs]
        for v in versions[1:]:
            assert v == versions[0], [dict(x) for x in versions]
        snaps = [snapshot(d) for d in self.docs]
        for s in snaps[1:]:
            assert s == snaps[0]
        state = snaps[0]

        # the merged values are made of what was written
        assert state["c"] == self.counter_total
        assert not collections.Counter(state["t"]) - self.inserted_chars
        _, mapping = state["m"]
        for k, v in mapping:
            assert v in self.map_written[k], (k, v)
        for e in state["s"]:
            assert e in self.set_added

        # a fresh document loading any replica's whole state is the same document
        for d in self.docs:
            copy = fresh_from(d.get_update())
            assert snapshot(copy) == state
            assert copy.version == versions[0]

        # once level, exchanging updates changes nothing and emits nothing
        emits = self.remote_emits
        for j in range(self.n):
            other = (j + 1) % self.n
            self._apply(j, self.docs[other].get_update(self.docs[j].version))
            self._apply(j, self.docs[other].get_update())
        assert self.remote_emits == emits
        assert [snapshot(d) for d in self.docs] == snaps
        self.prev_versions = [d.version for d in self.docs]


TestConvergence = Convergence.TestCase
# each run takes a few milliseconds: afford more of them than the profile's default
TestConvergence.settings = settings(max_examples=budget(400))


# ---------------------------------------------------------------------------------------------
# Algebraic properties of apply_update and merge_updates


def scenario(seed: int, n_replicas: int, n_ops: int, sync_every: int):
    """Random edits on several replicas with occasional syncs; returns (docs, local updates)."""
    rnd = random.Random(seed)
    docs = [crdtsync.Doc(rid) for rid in rnd.sample(range(1, 1000), n_replicas)]
    updates: list[bytes] = []
    syncing = False

    def record(update, origin):
        if not syncing:
            updates.append(bytes(update))

    unsubscribe = [d.on_update(record) for d in docs]
    for k in range(n_ops):
        random_edit_all(docs[rnd.randrange(n_replicas)], rnd, 1)
        if sync_every and k % sync_every == sync_every - 1:
            a, b = rnd.sample(range(n_replicas), 2)
            syncing = True
            sync_pair(docs[a], docs[b])
            syncing = False
    for unsub in unsubscribe:
        unsub()
    return docs, updates


def reference_state(updates):
    d = crdtsync.Doc(999_999)
    for u in updates:
        d.apply_update(u)
    return d


scenarios = st.builds(
    scenario,
    seed=st.integers(0, 2**32),
    n_replicas=st.integers(2, 4),
    n_ops=st.integers(1, 25),
    sync_every=st.integers(0, 6),
)


@given(scenarios, st.randoms(use_true_random=False))
@settings(max_examples=budget(50))
def test_apply_update_permutations_and_duplicates(scen, rnd):
    docs, updates = scen
    sync_all(docs)
    expected = snapshot(docs[0])
    ref = reference_state(updates)
    assert snapshot(ref) == expected
    assert ref.version == docs[0].version
    # any order, with duplicates
    msgs = updates + rnd.sample(updates, k=min(len(updates), rnd.randint(0, 5)))
    rnd.shuffle(msgs)
    d = crdtsync.Doc(12345)
    for u in msgs:
        d.apply_update(u)
        # version covers only integrated changes: a copy of what it has shows the same version
        assert fresh_from(d.get_update()).version == d.version
    assert not d.pending
    assert snapshot(d) == expected
    assert d.version == ref.version


@given(scenarios, st.randoms(use_true_random=False))
@settings(max_examples=budget(40))
def test_merge_updates_equals_applying_individually(scen, rnd):
    docs, updates = scen
    ref = reference_state(updates)
    merged = crdtsync.merge_updates(updates)
    assert isinstance(merged, bytes)
    d = fresh_from(merged)
    assert snapshot(d) == snapshot(ref)
    assert d.version == ref.version
    assert not d.pending
    # merge shuffled chunks (with duplicates), apply the chunks in random order
    shuffled = list(updates) + rnd.sample(updates, k=min(2, len(updates)))
    rnd.shuffle(shuffled)
    chunks = []
    while shuffled:
        k = rnd.randint(1, len(shuffled))
        chunks.append(crdtsync.merge_updates(shuffled[:k]))
        shuffled = shuffled[k:]
    rnd.shuffle(chunks)
    e = crdtsync.Doc(777)
    for c in chunks:
        e.apply_update(c)
    assert snapshot(e) == snapshot(ref)
    assert e.version == ref.version
    # merging merged updates is associative
    if len(chunks) >= 2:
        again = crdtsync.merge_updates([crdtsync.merge_updates(chunks[:1]), *chunks[1:]])
        assert snapshot(fresh_from(again)) == snapshot(ref)


def test_merge_updates_edge_cases():
    a = crdtsync.Doc(1)
    rec = Recorder(a)
    a.text("t").insert(0, "hi")
    a.counter("c").increment(2)
    (u1, u2) = rec.take()
    empty = crdtsync.merge_updates([])
    d = crdtsync.Doc(2)
    d.apply_update(empty)
    assert d.version == crdtsync.VersionVector()
    assert snapshot(d) == snapshot(crdtsync.Doc(3))
    assert snapshot(fresh_from(crdtsync.merge_updates([u1]))) == snapshot(fresh_from(u1))
    both = crdtsync.merge_updates([u2, u1, u2, u1])
    assert snapshot(fresh_from(both)) == snapshot(a)
    # a merged update missing its dependency is buffered, then integrated
    a.text("t").insert(2, "!")
    (u3,) = rec.take()
    partial = crdtsync.merge_updates([u2, u3])  # lacks u1, which "!" depends on
    e = crdtsync.Doc(4)
    e.apply_update(partial)
    assert "!" not in str(e.text("t"))
    e.apply_update(u1)
    assert snapshot(e) == snapshot(a)
    assert not e.pending
    # a merged update with a gap inside integrates what it can, the rest when the gap fills
    base = a.get_update()
    a.counter("c").increment(1)
    a.counter("c").increment(2)
    a.counter("c").increment(4)
    c1, c2, c3 = rec.take()
    g = fresh_from(base)
    g.apply_update(crdtsync.merge_updates([c1, c3]))
    g.apply_update(c2)
    assert snapshot(g) == snapshot(a)
    assert not g.pending


@given(scenarios, st.randoms(use_true_random=False))
@settings(max_examples=budget(30))
def test_updates_arriving_before_dependencies_are_buffered(scen, rnd):
    docs, updates = scen
    ref = reference_state(updates)
    order = list(updates)
    rnd.shuffle(order)
    d = crdtsync.Doc(4242)
    for k, u in enumerate(order):
        d.apply_update(u)
        assert d.version <= ref.version
        if not d.pending:
            # nothing buffered: d holds exactly the union of what it integrated
            assert fresh_from(d.get_update()).version == d.version
        if k == len(order) - 1:
            assert not d.pending
    assert snapshot(d) == snapshot(ref)


# ---------------------------------------------------------------------------------------------
# Each type's promise under concurrency


@given(ids=distinct_ids(3), elem=st.sampled_from(SET_POOL), order=st.permutations(range(3)))
@settings(max_examples=budget(30))
def test_add_wins_three_replicas(ids, elem, order):
    docs = [crdtsync.Doc(i) for i in ids]
    docs[0].set("s").add(elem)
    sync_all(docs)
    recs = [Recorder(d) for d in docs]
    docs[0].set("s").discard(elem)  # concurrent with ...
    docs[1].set("s").add(elem)  # ... a re-add here
    docs[2].set("s").discard(elem)  # and another remove
    ups = [u for r in recs for u in r.take()]
    for k in order:
        for u in ups:
            docs[k].apply_update(u)
    for d in docs:
        assert elem in d.set("s")
    # once everyone has seen the re-add, a remove removes it everywhere
    docs[order[0]].set("s").remove(elem)
    sync_all(docs)
    for d in docs:
        assert elem not in d.set("s")


@given(ids=distinct_ids(2), v1=values, v2=values)
@settings(max_examples=budget(30))
def test_causal_lww_smaller_id_writes_later_and_wins(ids, v1, v2):
    lo, hi = crdtsync.Doc(min(ids)), crdtsync.Doc(max(ids))
    hi.map("m")["k"] = v1
    for i in range(3):  # push hi's clock ahead
        hi.map("m")["other"] = i
    lo.apply_update(hi.get_update())
    lo.map("m")["k"] = v2  # causally after every write of hi
    third = crdtsync.Doc()
    for order in ((lo, hi), (hi, lo)):
        for d in order:
            third.apply_update(d.get_update())
    sync_pair(lo, hi)
    for d in (lo, hi, third):
        assert tag(d.map("m")["k"]) == tag(v2)


@given(
    ids=distinct_ids(2),
    base=st.text(alphabet="xyz", max_size=10),
    pos=st.integers(0, 10),
    ta=st.text(alphabet="aA1😀", min_size=1, max_size=8),
    tb=st.text(alphabet="bB2🎉", min_size=1, max_size=8),
)
@settings(max_examples=budget(60))
def test_concurrent_forward_typing_does_not_interleave(ids, base, pos, ta, tb):
    a, b = crdtsync.Doc(ids[0]), crdtsync.Doc(ids[1])
    if base:
        a.text("t").insert(0, base)
    sync_pair(a, b)
    i = pos % (len(base) + 1)
    for doc, typed in ((a, ta), (b, tb)):
        t = doc.text("t")
        for k, ch in enumerate(typed):
            t.insert(i + k, ch)
    sync_pair(a, b)
    sa, sb = str(a.text("t")), str(b.text("t"))
    assert sa == sb
    assert sa in (base[:i] + ta + tb + base[i:], base[:i] + tb + ta + base[i:])


@given(
    ids=distinct_ids(3),
    base=st.text(alphabet="xyz", max_size=6),
    pos=st.integers(0, 6),
    typed=st.lists(st.text(alphabet="abc", min_size=1, max_size=5), min_size=3, max_size=3),
)
@settings(max_examples=budget(30))
def test_three_way_forward_typing_does_not_interleave(ids, base, pos, typed):
    docs = [crdtsync.Doc(i) for i in ids]
    if base:
        docs[0].text("t").insert(0, base)
    sync_all(docs)
    i = pos % (len(base) + 1)
    tagged = [s.replace("a", str(k)) + str(k) for k, s in enumerate(typed)]  # distinct runs
    for d, s in zip(docs, tagged, strict=True):
        for k, ch in enumerate(s):
            d.text("t").insert(i + k, ch)
    sync_all(docs)
    out = {str(d.text("t")) for d in docs}
    assert len(out) == 1
    (s,) = out
    assert s[:i] == base[:i] and s[len(s) - (len(base) - i) :] == base[i:]
    middle = s[i : len(s) - (len(base) - i)]
    assert sorted(middle) == sorted("".join(tagged))
    for run in tagged:
        assert run in middle


def test_typing_after_concurrent_deletion_of_anchor():
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    a.text("t").insert(0, "0123456789")
    sync_pair(a, b)
    a.text("t").delete(3, 4)  # 012789
    for k, ch in enumerate("new"):
        b.text("t").insert(5 + k, ch)  # 01234new56789
    sync_pair(a, b)
    assert str(a.text("t")) == str(b.text("t")) == "012new789"


@given(
    ids=distinct_ids(4),
    amounts=st.lists(st.integers(-1000, 1000).filter(bool), min_size=1, max_size=20),
)
@settings(max_examples=budget(30))
def test_counter_is_sum_of_all_changes(ids, amounts):
    docs = [crdtsync.Doc(i) for i in ids]
    for k, n in enumerate(amounts):
        c = docs[k % 4].counter("c")
        c.increment(n) if n > 0 else c.decrement(-n)
        if k % 5 == 4:
            sync_pair(docs[0], docs[k % 4])
    sync_all(docs)
    assert {d.counter("c").value for d in docs} == {sum(amounts)}


def test_all_types_in_one_doc_converge_with_gc_and_concurrent_edits():
    rnd = random.Random(7)
    docs = [crdtsync.Doc(i) for i in (3, 1, 2)]
    for _ in range(20):
        for d in docs:
            random_edit_all(d, rnd, 5)
        a, b = rnd.sample(docs, 2)
        sync_pair(a, b)
    sync_all(docs)
    snaps = [snapshot(d) for d in docs]
    assert snaps[0] == snaps[1] == snaps[2]
    assert docs[0].version == docs[1].version == docs[2].version
