"""The ``crdtsync demo`` command: replicas editing concurrently over a hostile network.

Several replicas edit the same document at once: a Text of notes, a LWWMap of settings, an
ORSet of tags, a Counter of likes and a todo list, a List of LWWMaps each holding a "title"
Text and a "done" flag (nested containers). Every local transaction is broadcast to the others
through :class:`SimulatedNetwork`, which delays, reorders, duplicates and drops messages. Once
the editing stops the network heals and the replicas run anti-entropy (each asks every peer
for ``get_update(its own version)``) until nothing is missing; the demo then shows that every
replica holds the same values.

Every replica starts with one todo item, "buy milk". The first edit of the first replica
ticks it done and, at the same moment, the first edit of the second renames it "buy oat
milk"; nobody else touches it. Because the item is a map of its own and its title a Text,
the two edits land in different places of the same item, and every replica ends up with ONE
item holding both. (Were the items plain dicts in a List, changing one would mean replacing
it, and the two replacements would leave two items or lose an edit.) The demo checks that
too, and fails if it does not hold.

Everything is driven by seeded ``random.Random`` instances, so a given ``--seed`` always
produces the same run (and the same checksum), which makes a failure reproducible.
"""

from __future__ import annotations

import hashlib
import heapq
import pprint
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TextIO

from crdtsync import Doc, LWWMap, PendingOverflowError, VersionVector

# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------


class Kind(Enum):
    UPDATE = "update"  # payload: update bytes (a broadcast edit or an anti-entropy reply)
    SYNC_REQUEST = "sync-request"  # payload: the sender's encoded VersionVector


@dataclass(frozen=True)
class Message:
    sender: int  # index of the sending replica
    recipient: int
    kind: Kind
    payload: bytes


@dataclass
class NetworkStats:
    sent: int = 0  # messages handed to the network by replicas
    delivered: int = 0  # copies that reached a replica (duplicates count each time)
    dropped: int = 0
    duplicated: int = 0  # extra copies the network made up
    bytes_sent: int = 0  # payload bytes of every message sent (not of the network's copies)


class SimulatedNetwork:
    """A deterministic point-to-point network with latency, reordering, duplication and loss.

    Time is counted in ticks, advanced by the caller. Each message copy gets its own random
    latency, so messages overtake each other freely: that is the reordering. Dropping and
    duplicating are decided once per message when it is sent.
    """

    def __init__(
        self,
        seed: int,
        *,
        loss: float,
        dup: float,
        min_latency: int = 1,
        max_latency: int = 8,
    ) -> None:
        # A separate stream from the editors' so that the network's coin flips do not shift
        # what the replicas type.
        self._rng = random.Random(f"crdtsync-demo-network-{seed}")
        self.loss = loss
        self.dup = dup
        self.min_latency = min_latency
        self.max_latency = max_latency
        self.now = 0
        self.stats = NetworkStats()
        # (due tick, sequence number, message): the sequence number keeps the heap ordering
        # total and deterministic for copies due on the same tick.
        self._queue: list[tuple[int, int, Message]] = []
        self._seq = 0

    def send(self, message: Message) -> None:
        self.stats.sent += 1
        self.stats.bytes_sent += len(message.payload)
        if self._rng.random() < self.loss:
            self.stats.dropped += 1
            return
        self._schedule(message)
        if self._rng.random() < self.dup:
            self.stats.duplicated += 1
            self._schedule(message)

    def _schedule(self, message: Message) -> None:
        due = self.now + self._rng.randint(self.min_latency, self.max_latency)
        heapq.heappush(self._queue, (due, self._seq, message))
        self._seq += 1

    def tick(self) -> list[Message]:
        """Advance time by one tick and return the messages that arrive now."""
        self.now += 1
        arrived: list[Message] = []
        while self._queue and self._queue[0][0] <= self.now:
            arrived.append(heapq.heappop(self._queue)[2])
        self.stats.delivered += len(arrived)
        return arrived

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    def heal(self) -> None:
        """Stop losing messages. Latency, reordering and duplicates stay: CRDTs shrug at those."""
        self.loss = 0.0


# ---------------------------------------------------------------------------------------------
# The replicas and what they type
# ---------------------------------------------------------------------------------------------

# The origin given to local transactions. on_update also fires for remote updates that changed
# the document; only updates with this origin are broadcast, or every replica would echo
# every update it receives.
LOCAL = "local-edit"

# fmt: off
WORDS = (
    "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "replicas",
    "merge", "their", "edits", "without", "any", "coordination", "every", "change", "commutes",
    "so", "order", "does", "not", "matter", "and", "duplicates", "are", "harmless", "offline",
    "work", "syncs", "later", "causal", "delivery", "keeps", "deletes", "after", "inserts",
)
# fmt: on
SETTINGS: dict[str, tuple[str | int | bool, ...]] = {
    "theme": ("light", "dark", "solarized"),
    "font_size": (11, 12, 13, 14, 16),
    "autosave": (True, False),
    "language": ("en", "fr", "de", "pt"),
    "tab_width": (2, 4, 8),
}
# A word and the spaces after it: the unit the simulated users select and delete.
_WORD = re.compile(r"\S+\s*")
TAGS = ("draft", "review", "urgent", "ideas", "todo", "meeting", "crdt", "sync")
# fmt: off
TODO_VERBS = ("buy", "fix", "call", "write", "review", "book", "clean", "plan", "email", "test")
TODO_NOUNS = (
    "flowers", "bread", "the bug", "mom", "docs", "the release", "tickets", "kitchen", "trip",
    "bob", "benchmarks", "garden", "slides", "taxes",
)
TODO_WORDS = ("soon", "today", "again", "first", "properly", "maybe", "twice", "urgently")
# fmt: on
#: Past this many items (besides the opening scene's), a replica that wants to add one deletes
#: one instead. Replicas that miss each other's updates each stop at this many of their own.
MAX_TODOS = 4

# The opening scene: one item everyone holds, then a tick and a rename at the same moment.
SHOWCASE_TITLE = "buy milk"
SHOWCASE_RENAMED = "buy oat milk"

# What Doc.on_update calls: (update bytes, origin of the transaction or None).
UpdateCallback = Callable[[bytes, object], None]


class Replica:
    """One user's copy of the document plus a simple model of how that user edits it."""

    def __init__(self, index: int, rng: random.Random) -> None:
        self.index = index
        self.name = f"replica {index + 1}"
        # Fixed small ids rather than random ones: concurrent-write tie-breaks (and hence the
        # checksum) then depend only on the seed.
        self.doc = Doc(replica_id=index + 1)
        self.notes = self.doc.text("notes")
        self.settings = self.doc.map("settings")
        self.tags = self.doc.set("tags")
        self.likes = self.doc.counter("likes")
        self.todos = self.doc.list("todos")  # a List of LWWMaps: {"title": Text, "done": bool}
        # The opening scene's item (see Simulation.opening_scene), which the random edits
        # leave alone so that its outcome is known; None until the scene is set.
        self.showcase: LWWMap | None = None
        self._rng = rng
        self._cursor = 0  # where this user types; clamped because remote deletes shrink text

    def edit(self) -> None:
        """Make one user-level edit as one transaction, hence one update on the wire."""
        rng = self._rng
        roll = rng.random()
        with self.doc.transaction(origin=LOCAL):
            if roll < 0.40:
                self._type_word()
            elif roll < 0.48:
                self._delete_range()
            elif roll < 0.58:
                self._change_setting()
            elif roll < 0.68:
                self._toggle_tag()
            elif roll < 0.88:
                self._edit_todo()
            elif rng.random() < 0.7:
                self.likes.increment()
            else:
                self.likes.decrement()

    def _type_word(self) -> None:
        text = str(self.notes)
        if self._rng.random() < 0.15:  # the user clicks somewhere else in the text
            self._cursor = self._rng.randint(0, len(text))
        # The cursor is a plain index, so other replicas' edits shift the text under it.
        # Snapping to the next word boundary keeps us from typing into someone else's word
        # (a real editor would anchor the cursor to a character instead).
        cursor = min(self._cursor, len(text))
        if 0 < cursor < len(text) and text[cursor - 1] != " ":
            space = text.find(" ", cursor)
            cursor = len(text) if space < 0 else space + 1
        word = self._rng.choice(WORDS)
        if self._rng.random() < 0.1:
            word += "."
        chunk = word + " "
        self.notes.insert(cursor, chunk)
        self._cursor = cursor + len(chunk)

    def _delete_range(self) -> None:
        """Select one to three whole words somewhere and delete them."""
        text = str(self.notes)
        words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        if not words:
            return
        first = self._rng.randrange(len(words))
        last = min(len(words), first + self._rng.randint(1, 3)) - 1
        start, end = words[first][0], words[last][1]
        self.notes.delete(start, end - start)
        if self._cursor > start:
            self._cursor = max(start, self._cursor - (end - start))

    def _change_setting(self) -> None:
        key = self._rng.choice(sorted(SETTINGS))
        if key in self.settings and self._rng.random() < 0.1:
            del self.settings[key]
        else:
            self.settings[key] = self._rng.choice(SETTINGS[key])

    def _toggle_tag(self) -> None:
        # Sorted, because set iteration order is not something to build determinism on.
        present = sorted(str(tag) for tag in self.tags)
        if present and self._rng.random() < 0.4:
            self.tags.discard(self._rng.choice(present))
        else:
            self.tags.add(self._rng.choice(TAGS))

    # -- the todo list: containers inside containers --------------------------------------------

    def _items(self) -> list[LWWMap]:
        """The todo items the random edits may touch: all but the opening scene's."""
        return [item for item in self.todos if item is not self.showcase]

    def _edit_todo(self) -> None:
        items = self._items()
        roll = self._rng.random()
        if roll < 0.3 or not items:
            if len(items) < MAX_TODOS:
                self._add_todo()
            else:
                self._delete_todo(items)
        elif roll < 0.55:
            self._tick_todo(items)
        elif roll < 0.85:
            self._rename_todo(items)
        else:
            self._delete_todo(items)

    def _add_todo(self) -> None:
        rng = self._rng
        item = self.todos.insert_container(rng.randint(0, len(self.todos)), LWWMap)
        item.text("title").insert(0, f"{rng.choice(TODO_VERBS)} {rng.choice(TODO_NOUNS)}")
        item["done"] = False

    def _tick_todo(self, items: list[LWWMap]) -> None:
        item = self._rng.choice(items)
        item["done"] = not item.get("done", False)

    def _rename_todo(self, items: list[LWWMap]) -> None:
        """Add a word to an item's title or take an added one away again: an edit *inside*
        the item, which merges with whatever the others do to the same item meanwhile."""
        title = self._rng.choice(items).text("title")
        text = str(title)
        last = text.rpartition(" ")[2]
        if last in TODO_WORDS and self._rng.random() < 0.4:
            title.delete(len(text) - len(last) - 1, len(last) + 1)  # with the space before it
        else:
            title.insert(len(text), " " + self._rng.choice(TODO_WORDS))

    def _delete_todo(self, items: list[LWWMap]) -> None:
        victim = self._rng.choice(items)
        for index, item in enumerate(self.todos):
            if item is victim:
                del self.todos[index]
                return

    # -- what the demo shows -------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The replica's values (``doc.to_py()``) in a canonical form, for display and
        comparison: dict keys sorted, sets as sorted lists."""
        canonical: dict[str, Any] = _canonical(self.doc.to_py())
        return canonical

    def checksum(self) -> str:
        return hashlib.sha256(repr(self.snapshot()).encode("utf-8")).hexdigest()[:12]


def _canonical(value: Any) -> Any:
    """``value`` with dict keys in sorted order and sets as sorted lists, so that equal
    documents have equal reprs whatever order their keys or elements arrived in."""
    if isinstance(value, dict):
        return {key: _canonical(value[key]) for key in sorted(value)}
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, list):
        return [_canonical(x) for x in value]
    return value


# ---------------------------------------------------------------------------------------------
# Progress display
# ---------------------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr, redrawn with ``\\r``.

    When stderr is not a terminal (a log file, CI) redrawing would leave hundreds of lines of
    junk, so only each phase's final state is written, one line per phase.
    """

    WIDTH = 24
    INTERVAL = 0.05  # seconds between redraws: drawing is far slower than simulating

    def __init__(self, stream: TextIO, enabled: bool = True) -> None:
        self._stream = stream
        self._enabled = enabled
        self._animate = enabled and stream.isatty()
        self._last_draw = 0.0
        self._line = ""

    def update(self, phase: str, done: int, total: int, stats: NetworkStats) -> None:
        self._line = self._format(phase, done, total, stats)
        now = time.monotonic()
        if self._animate and now - self._last_draw >= self.INTERVAL:
            self._last_draw = now
            self._stream.write("\r" + self._line + "\x1b[K")  # \x1b[K clears leftovers
            self._stream.flush()

    def finish(self) -> None:
        """End the current phase: leave its final state on its own line."""
        if not self._enabled or not self._line:
            return
        prefix = "\r" if self._animate else ""
        self._stream.write(prefix + self._line + ("\x1b[K" if self._animate else "") + "\n")
        self._stream.flush()
        self._line = ""

    def _format(self, phase: str, done: int, total: int, stats: NetworkStats) -> str:
        fraction = done / total if total else 1.0
        filled = round(fraction * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        return (
            f"{phase:<8} [{bar}] {done}/{total}  msgs sent {stats.sent} "
            f"delivered {stats.delivered} dropped {stats.dropped} dup {stats.duplicated}"
        )


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass
class DemoConfig:
    seed: int = 1
    replicas: int = 4
    edits: int = 300
    loss: float = 0.1
    dup: float = 0.05
    max_latency: int = 8
    edit_probability: float = 0.35  # chance per tick that a replica makes its next edit
    max_rounds: int = 10  # anti-entropy rounds before the demo gives up
    progress: bool = True


@dataclass
class UpdateStats:
    local_updates: int = 0
    local_update_bytes: int = 0
    sync_requests: int = 0
    sync_replies: int = 0
    sync_reply_bytes: int = 0
    refused: int = 0  # updates refused because the receiver's pending buffer was full
    repairs: int = 0  # sync requests sent during editing because of such refusals


@dataclass
class Simulation:
    config: DemoConfig
    replicas: list[Replica]
    network: SimulatedNetwork
    # Decides when each replica types, apart from what it types, for the same reason the
    # network has its own stream.
    clock_rng: random.Random
    updates: UpdateStats = field(default_factory=UpdateStats)
    # (replica, peer) -> tick of the last repair request, to rate-limit them.
    _repair_asked: dict[tuple[int, int], int] = field(default_factory=dict)
    # Whether the opening scene's tick and rename were made (see opening_scene).
    scene: bool = False

    @classmethod
    def create(cls, config: DemoConfig) -> Simulation:
        editors_rng = random.Random(f"crdtsync-demo-editors-{config.seed}")
        network = SimulatedNetwork(
            config.seed, loss=config.loss, dup=config.dup, max_latency=config.max_latency
        )
        replicas = [
            Replica(i, random.Random(editors_rng.getrandbits(64))) for i in range(config.replicas)
        ]
        clock_rng = random.Random(f"crdtsync-demo-clock-{config.seed}")
        sim = cls(config, replicas, network, clock_rng)
        for replica in replicas:
            replica.doc.on_update(sim._broadcaster(replica.index))
        return sim

    def _broadcaster(self, sender: int) -> UpdateCallback:
        def on_update(update: bytes, origin: object) -> None:
            if origin != LOCAL:
                return  # a remote update being integrated: its author already broadcast it
            self.updates.local_updates += 1
            self.updates.local_update_bytes += len(update)
            for peer in self.replicas:
                if peer.index != sender:
                    self.network.send(Message(sender, peer.index, Kind.UPDATE, update))

        return on_update

    def deliver(self, message: Message) -> None:
        replica = self.replicas[message.recipient]
        if message.kind is Kind.UPDATE:
            # Updates whose dependencies were dropped or are still in flight are buffered by
            # the document (see doc.pending) and integrated once the gap is filled.
            try:
                replica.doc.apply_update(message.payload)
            except PendingOverflowError:
                # The buffer is bounded (Doc(max_pending=...)) so that a lost message cannot
                # make memory grow without limit. The update was refused; rather than wait
                # for the heal, ask its sender for everything we lack.
                self.updates.refused += 1
                self._ask_for_repair(replica, message.sender)
        else:
            # A peer told us what it has; send back exactly what it lacks, if anything.
            their_version = VersionVector.decode(message.payload)
            if replica.doc.version <= their_version:
                return
            diff = replica.doc.get_update(their_version)
            self.updates.sync_replies += 1
            self.updates.sync_reply_bytes += len(diff)
            self.network.send(Message(replica.index, message.sender, Kind.UPDATE, diff))

    def _ask_for_repair(self, replica: Replica, peer: int) -> None:
        # Once the buffer is full every further update from that peer is refused too; one
        # request per round trip is enough, more would only flood the network.
        key = (replica.index, peer)
        round_trip = 2 * self.network.max_latency
        if self.network.now - self._repair_asked.get(key, -round_trip) < round_trip:
            return
        self._repair_asked[key] = self.network.now
        self.updates.repairs += 1
        request = replica.doc.version.encode()
        self.network.send(Message(replica.index, peer, Kind.SYNC_REQUEST, request))

    def opening_scene(self) -> None:
        """Give every replica the same todo item, then tick it on one replica and rename it
        on another at the same moment: two concurrent edits inside one item. They are those
        replicas' first edits; with fewer than two replicas or no edits there are none."""
        first = self.replicas[0]
        # The shared start is copied to everyone directly, not broadcast (origin is not
        # LOCAL): the replicas begin the run from the same document.
        with first.doc.transaction(origin="shared start"):
            item = first.todos.append_container(LWWMap)
            item.text("title").insert(0, SHOWCASE_TITLE)
            item["done"] = False
        start = first.doc.get_update()
        for replica in self.replicas:
            if replica is not first:
                replica.doc.apply_update(start)
            replica.showcase = replica.todos[0]
        if len(self.replicas) < 2 or self.config.edits < 1:
            return
        # Both edits are made before anything is delivered: neither replica sees the other's.
        ticker, renamer = self.replicas[0].showcase, self.replicas[1].showcase
        assert ticker is not None and renamer is not None
        with self.replicas[0].doc.transaction(origin=LOCAL):
            ticker["done"] = True
        with self.replicas[1].doc.transaction(origin=LOCAL):
            renamer.text("title").insert(len("buy "), "oat ")
        self.scene = True

    def scene_outcome(self) -> dict[str, Any]:
        """What the opening scene's item must be on every replica at the end."""
        if self.scene:
            return {"title": SHOWCASE_RENAMED, "done": True}
        return {"title": SHOWCASE_TITLE, "done": False}

    def showcase_results(self) -> list[list[dict[str, Any]]]:
        """Per replica: the todo items that came out of the opening scene's item (those
        about milk; nothing else ever mentions it)."""
        return [
            [item for item in replica.doc.to_py()["todos"] if "milk" in item.get("title", "")]
            for replica in self.replicas
        ]

    def run_edits(self, progress: Progress) -> None:
        remaining = [self.config.edits] * len(self.replicas)
        total = sum(remaining)
        if self.scene:  # the opening scene's tick and rename were edits of the first two
            remaining[0] -= 1
            remaining[1] -= 1
        # Replicas edit on a shared clock, with edits landing while other replicas' updates are
        # still in flight: that is what makes them concurrent.
        while any(remaining) or self.network.in_flight:
            for replica in self.replicas:
                turn = self.clock_rng.random() < self.config.edit_probability
                if remaining[replica.index] and turn:
                    replica.edit()
                    remaining[replica.index] -= 1
            for message in self.network.tick():
                self.deliver(message)
            progress.update("editing", total - sum(remaining), total, self.network.stats)
        progress.finish()

    def heal(self, progress: Progress) -> int:
        """Run anti-entropy rounds on the healed network; return how many were needed."""
        self.network.heal()
        rounds = 0
        # Looking at every replica to decide whether to go on is a simulator's privilege; real
        # peers would simply keep running anti-entropy on a timer.
        while not self.converged() and rounds < self.config.max_rounds:
            rounds += 1
            for asker in self.replicas:
                request = asker.doc.version.encode()
                for peer in self.replicas:
                    if peer is not asker:
                        self.updates.sync_requests += 1
                        self.network.send(
                            Message(asker.index, peer.index, Kind.SYNC_REQUEST, request)
                        )
            while self.network.in_flight:
                for message in self.network.tick():
                    self.deliver(message)
                progress.update(
                    "healing", self.up_to_date(), len(self.replicas), self.network.stats
                )
        progress.update("healing", self.up_to_date(), len(self.replicas), self.network.stats)
        progress.finish()
        return rounds

    def up_to_date(self) -> int:
        """How many replicas hold every change that any replica has integrated."""
        everything = VersionVector()
        for replica in self.replicas:
            everything = everything | replica.doc.version
        return sum(r.doc.pending == 0 and r.doc.version == everything for r in self.replicas)

    def converged(self) -> bool:
        first = self.replicas[0]
        checksum = first.checksum()
        return all(
            r.doc.pending == 0 and r.doc.version == first.doc.version and r.checksum() == checksum
            for r in self.replicas
        )


def _preview(text: str, width: int = 60) -> str:
    shown = text[:width] + ("..." if len(text) > width else "")
    return repr(shown)


def _todo_line(todos: list[dict[str, Any]], width: int = 72) -> str:
    """The todo list on one line: ``3 items, 1 done: [x] buy oat milk | [ ] fix docs ...``."""
    done = sum(bool(item.get("done")) for item in todos)
    shown = " | ".join(
        f"[{'x' if item.get('done') else ' '}] {item.get('title', '')}" for item in todos
    )
    if len(shown) > width:
        shown = shown[:width] + "..."
    return f"{len(todos)} item(s), {done} done: {shown}"


class _SortedSet:
    """Prints as a set literal in sorted order (a set's own order changes from run to run)."""

    def __init__(self, elements: set[Any]) -> None:
        self._elements = sorted(elements, key=repr)

    def __repr__(self) -> str:
        return "{" + ", ".join(map(repr, self._elements)) + "}" if self._elements else "set()"


def _shorten(value: Any, width: int = 60) -> Any:
    """``value`` for printing: every str longer than ``width`` cut, sets sorted."""
    if isinstance(value, str) and len(value) > width:
        return f"{value[:width]}... ({len(value)} chars)"
    if isinstance(value, dict):
        return {key: _shorten(x, width) for key, x in value.items()}
    if isinstance(value, list):
        return [_shorten(x, width) for x in value]
    if isinstance(value, set):
        return _SortedSet(value)
    return value


def run_demo(config: DemoConfig, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the demo, print the report to ``out`` and progress to ``err``; return an exit code."""
    started = time.perf_counter()
    sim = Simulation.create(config)
    net = sim.network
    print(
        f"crdtsync demo: {config.replicas} replicas x {config.edits} edits, seed {config.seed}",
        file=out,
    )
    print(
        f"network: latency {net.min_latency}-{net.max_latency} ticks (reorders freely), "
        f"loss {config.loss:.0%}, duplicates {config.dup:.0%}",
        file=out,
    )
    sim.opening_scene()
    if sim.scene:
        scene = (
            f"in their first edits, at the same moment, {sim.replicas[0].name} ticks it done "
            f"and {sim.replicas[1].name} renames it {SHOWCASE_RENAMED!r}"
        )
    else:
        scene = "nobody touches it (ticking and renaming it at once takes 2 replicas, 1 edit)"
    print(f"todo list: every replica starts with {SHOWCASE_TITLE!r}; {scene}", file=out)
    out.flush()  # so the header precedes the progress bar when both go to a terminal
    progress = Progress(err, enabled=config.progress)

    sim.run_edits(progress)
    pending = [r.doc.pending for r in sim.replicas]
    distinct = len({r.checksum() for r in sim.replicas})
    print(
        f"\nafter {net.now} ticks of editing: {distinct} distinct state(s); updates buffered "
        f"for missing dependencies per replica: {pending}",
        file=out,
    )
    if sim.updates.refused:
        print(
            f"pending buffers overflowed: {sim.updates.refused} updates refused, "
            f"{sim.updates.repairs} repair requests sent",
            file=out,
        )

    rounds = sim.heal(progress)
    print(f"network healed; anti-entropy rounds run: {rounds}\n", file=out)

    for replica in sim.replicas:
        state = replica.snapshot()
        notes = state.get("notes", "")
        print(f"{replica.name}  (id {replica.doc.replica_id})", file=out)
        print(f"  notes     {len(notes)} chars: {_preview(notes)}", file=out)
        print(f"  settings  {state.get('settings', {})}", file=out)
        print(f"  tags      {state.get('tags', [])}", file=out)
        print(f"  likes     {state.get('likes', 0)}", file=out)
        print(f"  todos     {_todo_line(state.get('todos', []))}", file=out)
        print(f"  checksum  {replica.checksum()}", file=out)

    # The opening scene: one item with both edits, on every replica.
    milk = sim.showcase_results()
    expected = sim.scene_outcome()
    scene_ok = all(found == [expected] for found in milk)
    if sim.scene:
        print(
            f"\n{SHOWCASE_TITLE!r}, ticked by {sim.replicas[0].name} and renamed by "
            f"{sim.replicas[1].name} concurrently, is now",
            file=out,
        )
    else:
        print(f"\n{SHOWCASE_TITLE!r}, which nobody touched, is now", file=out)
    shown = [repr(_canonical(found)) for found in milk]
    for found in sorted(set(shown)):
        print(f"  {found}  on {shown.count(found)} of {len(milk)} replica(s)", file=out)
    if scene_ok and sim.scene:
        print("  one item with both changes, everywhere", file=out)

    first = sim.replicas[0]
    print(f"\n{first.name}'s doc.to_py() (long strings shortened):", file=out)
    document = _shorten(first.doc.to_py())
    for line in pprint.pformat(document, width=96).splitlines():
        print(f"  {line}", file=out)

    u, s = sim.updates, net.stats
    avg = u.local_update_bytes / u.local_updates if u.local_updates else 0.0
    print(
        f"\nupdates: {u.local_updates} from {config.replicas * config.edits} edits (an edit that "
        f"changed nothing sends nothing), {u.local_update_bytes:,} bytes, "
        f"average {avg:.1f} B per update",
        file=out,
    )
    print(
        f"wire: {s.sent:,} messages, {s.bytes_sent:,} bytes ({u.sync_requests} anti-entropy "
        f"and {u.repairs} repair requests, "
        f"{u.sync_replies} diff replies of {u.sync_reply_bytes:,} bytes); delivered "
        f"{s.delivered:,}, dropped {s.dropped:,}, duplicated {s.duplicated:,}",
        file=out,
    )
    print(f"time: {time.perf_counter() - started:.2f} s\n", file=out)

    converged = sim.converged()
    if converged and scene_ok:
        checksum = sim.replicas[0].checksum()
        print(f"all {len(sim.replicas)} replicas converged (checksum {checksum})", file=out)
        return 0
    if not converged:
        print(
            f"FAILED: replicas did not converge after {rounds} anti-entropy rounds "
            f"(checksums {[r.checksum() for r in sim.replicas]}, "
            f"pending {[r.doc.pending for r in sim.replicas]})",
            file=out,
        )
    if not scene_ok:
        print(
            f"FAILED: the todo scene's item is not one item {expected} on every replica "
            f"(found {milk})",
            file=out,
        )
    return 1
