"""The sequence engine shared by Text and List: a Replicated Growable Array of runs.

Ordering rule (RGA): every element names the element it was inserted after (its *origin*,
or the head) and carries a Lamport timestamp ``(lamport, replica)``. The sequence is the
depth-first walk of that tree with siblings in descending timestamp order. Integrating an
element therefore means: find the origin, then skip every following element with a larger
timestamp (those are newer siblings and their descendants) and insert before the first
smaller one. A replica typing forward makes each character the origin of the next, so two
replicas typing at the same place produce two subtrees that never interleave.

Storage: characters typed one after another by one replica (consecutive counters and
Lamport times, each the origin of the next) form one :class:`Run`. Runs sit in blocks of at
most ``MAX_BLOCK_RUNS``, and blocks in chunks of at most ``MAX_CHUNK_BLOCKS``; a Fenwick tree
per chunk sums its blocks' visible lengths and one more sums the chunks', so position -> run
is O(log blocks + block size) and splitting a block costs O(chunk size). Each replica's runs
are also kept sorted by counter (``IdIndex``) so id -> run is a bisect. Deleted runs stay as
tombstones (id, Lamport time and length) because later inserts may name them as origins;
with garbage collection on, their content is dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any

from crdtsync._bulk import without_gc
from crdtsync._ids import DeferredIds, IdIndex
from crdtsync._order import Placed

if TYPE_CHECKING:
    from crdtsync._order import Order

Dot = tuple[int, int]

#: A block is split in two when it holds more runs than this. Small blocks keep the linear
#: scan inside a block short; the Fenwick trees keep the walk over blocks logarithmic.
MAX_BLOCK_RUNS = 64

#: A chunk is split in two when it holds more blocks than this. Splitting a block renumbers
#: the blocks after it in its chunk and rebuilds the chunk's tree, so this bounds its cost.
MAX_CHUNK_BLOCKS = 64

#: A text run stops growing (by typing on, remote or local, or by tombstones folding
#: together) at this many characters: a str cannot grow in place, so each step copies the
#: run, and copying a million characters per keystroke is a cliff. The next run continues
#: it (origin its last element, the next ids and Lamport times), which the RGA order
#: cannot tell from one run.
MAX_TEXT_RUN = 4096


def _index_in(runs: list[Run], run: Run) -> int:
    """The slot of ``run`` in its block's ``runs``. The run remembers where it was last
    seen, which stays right until something is put before it: checking that slot first
    spares most scans of the block (a scan compares runs one by one, slowly)."""
    i = run.slot
    if i < len(runs) and runs[i] is run:
        return i
    try:
        # Runs put before it since moved it right, usually by a few slots (and a merge
        # of runs before it, by a slot or two to the left).
        i = runs.index(run, i - 2 if i > 2 else 0)
    except ValueError:  # (rare: the error message costs a repr of the run)
        i = runs.index(run)
    run.slot = i
    return i


class Run:
    """Consecutive elements from one replica: ids ``(replica, counter .. counter+length-1)``
    with Lamport times ``lamport ..``; each element's origin is the one before it, and the
    first one's origin is ``origin`` (None: the head of the sequence)."""

    __slots__ = (
        "replica",
        "counter",
        "lamport",
        "origin",
        "content",
        "length",
        "deleted",
        "deleter",
        "block",
        "seq",
        "slot",
    )

    def __init__(
        self,
        seq: Sequence,
        replica: int,
        counter: int,
        lamport: int,
        origin: Dot | None,
        content: Any,
        length: int,
    ) -> None:
        self.seq = seq
        self.replica = replica
        self.counter = counter
        self.lamport = lamport
        self.origin = origin
        self.content = content  # str or list; None for a garbage-collected tombstone
        self.length = length
        self.slot = 0  # where in its block it was last seen: a hint, see _index_in
        self.deleted = False
        #: The dot of a delete that removed this run (for a run merged from several deletes
        #: by one replica, the highest of them). Used to tell which deletes a peer lacks.
        self.deleter: Dot | None = None
        self.block: Block

    def __repr__(self) -> str:
        state = f"deleted by {self.deleter}" if self.deleted else repr(self.content)
        return f"Run({self.replica}:{self.counter}+{self.length} L{self.lamport} {state})"


def _fenwick(values: list[int]) -> list[int]:
    """A Fenwick tree (1-based, ``tree[0]`` unused) over ``values``, built in O(n)."""
    tree = [0, *values]
    n = len(values)
    for i in range(1, n + 1):
        j = i + (i & -i)
        if j <= n:
            tree[j] += tree[i]
    return tree


def _fenwick_add(tree: list[int], index: int, delta: int) -> None:
    """Slot ``index`` (0-based) of ``tree`` changed by ``delta``."""
    n = len(tree) - 1
    i = index + 1
    while i <= n:
        tree[i] += delta
        i += i & -i


def _fenwick_prefix(tree: list[int], index: int) -> int:
    """The sum of slots ``[0, index)``."""
    total = 0
    while index > 0:
        total += tree[index]
        index -= index & -index
    return total


def _fenwick_find(tree: list[int], pos: int) -> tuple[int, int]:
    """The first slot whose running sum passes ``pos``, and ``pos`` less the slots before it."""
    n = len(tree) - 1
    index = 0
    step = 1 << (n.bit_length() - 1) if n else 0
    while step:
        nxt = index + step
        if nxt <= n and tree[nxt] <= pos:
            index = nxt
            pos -= tree[nxt]
        step >>= 1
    return index, pos


#: Held changes of other blocks that reach the trees between two position queries; past
#: this many the trees are dropped instead (see Sequence._flush). An update costs about the
#: depth of two trees, a rebuild the breadth of one.
_TREE_UPDATES = 4

#: Above every run's ``(lamport, replica)``: the ``low`` of a block with no runs.
_NO_RUNS = (float("inf"), 0)


class Block:
    """Up to ``MAX_BLOCK_RUNS`` consecutive runs: slot ``index`` of ``chunk.blocks``.

    ``low`` is at most the ``(lamport, replica)`` of every run in it (not always the least:
    a run that leaves does not raise it), so that placing a remote run can pass a block
    of newer siblings without looking at their runs one by one.
    """

    __slots__ = ("runs", "vis", "chunk", "index", "low")

    def __init__(self, runs: list[Run]) -> None:
        self.runs = runs
        self.vis = 0
        self.chunk: Chunk
        self.index = 0
        self.low = _low(runs)
        for slot, run in enumerate(runs):
            run.block = self
            run.slot = slot
            if not run.deleted:
                self.vis += run.length


def _low(runs: list[Run]) -> tuple[float, int]:
    """The least ``(lamport, replica)`` of ``runs`` (see ``Block.low``)."""
    return min(((run.lamport, run.replica) for run in runs), default=_NO_RUNS)


class Chunk:
    """Up to ``MAX_CHUNK_BLOCKS`` consecutive blocks (never none): slot ``index`` of
    ``Sequence.chunks``, with a Fenwick tree over its blocks' visible lengths (``fen``;
    None until asked for, see :meth:`Sequence._chunk_tree`)."""

    __slots__ = ("blocks", "vis", "fen", "index")

    def __init__(self, blocks: list[Block], index: int) -> None:
        self.blocks = blocks
        self.vis = 0
        self.fen: list[int] | None = None
        self.index = index
        for j, block in enumerate(blocks):
            block.chunk = self
            block.index = j
            self.vis += block.vis


class Sequence:
    """One Text or List: the ordered runs, their position index and edit primitives.

    Positions are visible indices (tombstones take no room). Every mutator keeps the block
    and chunk lengths, the Fenwick trees and the id index in step.
    """

    def __init__(self, ids: IdIndex, is_text: bool) -> None:
        self.ids = ids
        #: The root key of the container this sequence belongs to.
        self.key: Any = None
        self.is_text = is_text
        self.empty: Any = "" if is_text else []
        self.chunks: list[Chunk] = [Chunk([Block([])], 0)]
        #: A Fenwick tree over the chunks' visible lengths; None until asked for.
        self._top: list[int] | None = None
        #: A change to one block's visible length not yet in its chunk's ``vis`` and trees.
        self._held: Block | None = None
        self._held_delta = 0
        #: Held changes brought into the trees since a position was last asked for.
        self._unread = 0
        self.vis_len = 0
        self._cache: Any = None
        #: Bumped by every change to the runs; a cached look-up is valid while it holds.
        self._stamp = 0
        #: (run, visible index of its start, stamp): where the last local insert went, so
        #: that typing on (and backspacing) skips the position search.
        self._hint: tuple[Run, int, int] | None = None

    # ---- the position index -----------------------------------------------------------
    #
    # Two levels of Fenwick trees: one per chunk over its blocks' visible lengths, and one
    # over the chunks' (their ``vis``). Splitting a block renumbers only the blocks after
    # it in its chunk and drops that chunk's tree; splitting a chunk (rarer by a factor of
    # the chunk size) renumbers the later chunks and drops the top tree. A dropped tree is
    # rebuilt by the next position query, so a burst of remote inserts (a merge, a state
    # load) that asks for no positions pays for no rebuilds.
    #
    # A change to a block's visible length is held back: typing changes the same block's
    # length again and again, so the changes add up in ``_held_delta`` and reach the
    # chunk's ``vis`` and the two trees only when another block changes, a block splits or
    # a position is asked for. ``block.vis`` itself is always up to date.

    @property
    def blocks(self) -> list[Block]:
        """Every block in order (a new list: for tests and diagnostics)."""
        return [block for chunk in self.chunks for block in chunk.blocks]

    def _vis_add(self, block: Block, delta: int) -> None:
        """``block``'s visible length (already updated) changed by ``delta``."""
        if block is self._held:
            self._held_delta += delta
            return
        if self._held_delta:
            self._flush()
        self._held = block
        self._held_delta = delta

    def _flush(self) -> None:
        """Bring the held change into its chunk's length and the trees."""
        delta = self._held_delta
        if delta:
            block = self._held
            assert block is not None
            chunk = block.chunk
            chunk.vis += delta
            if self._unread < _TREE_UPDATES:
                self._unread += 1
                if chunk.fen is not None:
                    _fenwick_add(chunk.fen, block.index, delta)
                if self._top is not None:
                    _fenwick_add(self._top, chunk.index, delta)
            else:
                # Changes to many blocks and no position asked for (remote edits all over
                # the text): updating the trees costs more than the rebuilds of the next
                # query, which rebuilds only the trees it reads.
                chunk.fen = None
                self._top = None
            self._held_delta = 0

    def _top_tree(self) -> list[int]:
        """The tree over the chunks, up to date (and every chunk's held change flushed)."""
        if self._held_delta:
            self._flush()
        self._unread = 0
        top = self._top
        if top is None:
            top = self._top = _fenwick([chunk.vis for chunk in self.chunks])
        return top

    @staticmethod
    def _chunk_tree(chunk: Chunk) -> list[int]:
        """``chunk``'s tree over its blocks; only once the held change is flushed."""
        fen = chunk.fen
        if fen is None:
            fen = chunk.fen = _fenwick([block.vis for block in chunk.blocks])
        return fen

    def _find_block(self, pos: int) -> tuple[Block, int]:
        """The block holding visible index ``pos`` and ``pos`` relative to its start."""
        c, pos = _fenwick_find(self._top_tree(), pos)
        chunk = self.chunks[c]
        b, pos = _fenwick_find(self._chunk_tree(chunk), pos)
        return chunk.blocks[b], pos

    def _block_start(self, block: Block) -> int:
        """Visible length of the blocks before ``block``."""
        chunk = block.chunk
        before = _fenwick_prefix(self._top_tree(), chunk.index)
        return before + _fenwick_prefix(self._chunk_tree(chunk), block.index)

    def _next_block(self, block: Block) -> Block | None:
        """The block after ``block`` (None for the last)."""
        chunk = block.chunk
        if block.index + 1 < len(chunk.blocks):
            return chunk.blocks[block.index + 1]
        if chunk.index + 1 < len(self.chunks):
            return self.chunks[chunk.index + 1].blocks[0]
        return None

    def _block_after(self, block: Block) -> Block:
        """The block after ``block``, which the caller knows is not the last."""
        after = self._next_block(block)
        assert after is not None, "position index out of step with the runs"
        return after

    def _first_block(self) -> Block:
        return self.chunks[0].blocks[0]

    # ---- reading ----------------------------------------------------------------------

    def runs(self) -> Iterator[Run]:
        # (A step per block, not per run: a long text has many runs.)
        return chain.from_iterable(block.runs for chunk in self.chunks for block in chunk.blocks)

    def value(self) -> Any:
        if self._cache is None:
            parts = [
                r.content for c in self.chunks for b in c.blocks for r in b.runs if not r.deleted
            ]
            if self.is_text:
                self._cache = "".join(parts)
            else:
                self._cache = [v for part in parts for v in part]
        return self._cache

    def locate(self, pos: int) -> tuple[Run, int]:
        """The live run holding visible index ``pos`` (0 <= pos < vis_len) and the offset."""
        hint = self._hint
        if hint is not None and hint[2] == self._stamp:
            run, start = hint[0], hint[1]
            if start <= pos < start + run.length:
                return run, pos - start
        block, rel = self._find_block(pos)
        # From the nearer end of the block: in a long text each run read is likely a cache
        # miss, and this halves how many are read on average.
        rest = block.vis - rel  # (how many visible elements from pos to the block's end)
        if rest > rel:
            for run in block.runs:
                if not run.deleted:
                    if rel < run.length:
                        return run, rel
                    rel -= run.length
        else:
            for run in reversed(block.runs):
                if not run.deleted:
                    if rest <= run.length:
                        return run, run.length - rest
                    rest -= run.length
        raise AssertionError("position index out of step with the runs")  # pragma: no cover

    def position_of(self, run: Run) -> int:
        """Visible index of the first element of ``run``."""
        block = run.block
        pos = self._block_start(block)
        for other in block.runs:
            if other is run:
                return pos
            if not other.deleted:
                pos += other.length
        raise AssertionError("run not in its block")  # pragma: no cover

    def slice(self, start: int, stop: int) -> Any:
        if start >= stop:
            return self.empty
        run, offset = self.locate(start)
        parts = []
        need = stop - start
        block = run.block
        i = _index_in(block.runs, run)
        while need > 0:
            if i == len(block.runs):
                block = self._block_after(block)
                i = 0
                continue
            r = block.runs[i]
            i += 1
            if r.deleted:
                continue
            piece = r.content[offset : offset + need]
            offset = 0
            parts.append(piece)
            need -= len(piece)
        if self.is_text:
            return "".join(parts)
        return [v for part in parts for v in part]

    # ---- structural helpers ---------------------------------------------------------

    def _own(self, content: Any) -> Any:
        """A run's content that the run alone holds: lists grow in place later (so that
        appending one value at a time is not quadratic), so they must not be shared."""
        return content if content is None or self.is_text else list(content)

    def _place(self, block: Block, i: int, run: Run) -> None:
        """Put ``run`` at slot ``i`` of ``block`` and account for its visible length."""
        block.runs.insert(i, run)
        run.block = block
        run.slot = i
        key = (run.lamport, run.replica)
        if key < block.low:
            block.low = key
        self._stamp += 1
        if not run.deleted:
            block.vis += run.length
            self.vis_len += run.length
            self._vis_add(block, run.length)
            self._cache = None
        if len(block.runs) > MAX_BLOCK_RUNS:
            self._split_block(block)

    def _split_block(self, block: Block) -> None:
        """Move the second half of an overfull ``block`` into a new block after it, in the
        same chunk: the later blocks of the chunk move up a slot, and its tree is dropped."""
        self._flush()
        chunk = block.chunk
        blocks = chunk.blocks
        half = len(block.runs) // 2
        right = Block(block.runs[half:])
        del block.runs[half:]
        block.low = _low(block.runs)
        block.vis -= right.vis
        right.chunk = chunk
        blocks.insert(block.index + 1, right)
        for j in range(block.index + 1, len(blocks)):
            blocks[j].index = j
        chunk.fen = None
        if len(blocks) > MAX_CHUNK_BLOCKS:
            self._split_chunk(chunk)

    def _split_chunk(self, chunk: Chunk) -> None:
        """Move the second half of an overfull ``chunk`` into a new chunk after it (with no
        change held: see :meth:`_split_block`)."""
        chunks = self.chunks
        half = len(chunk.blocks) // 2
        right = Chunk(chunk.blocks[half:], chunk.index + 1)
        del chunk.blocks[half:]
        chunk.vis -= right.vis
        chunk.fen = None
        chunks.insert(right.index, right)
        for j in range(right.index + 1, len(chunks)):
            chunks[j].index = j
        self._top = None

    def split(self, run: Run, k: int) -> Run:
        """Cut ``run`` after its first ``k`` elements (0 < k < length); return the right part."""
        right = Run(
            self,
            run.replica,
            run.counter + k,
            run.lamport + k,
            (run.replica, run.counter + k - 1),
            None,
            run.length - k,
        )
        if run.content is not None:
            right.content = run.content[k:]
            run.content = run.content[:k]
        right.deleted = run.deleted
        right.deleter = run.deleter
        run.length = k
        self._stamp += 1
        block = run.block
        # The visible length of the block does not change; place without recounting.
        i = _index_in(block.runs, run) + 1
        block.runs.insert(i, right)
        right.block = block
        right.slot = i
        self.ids.add(right)
        if len(block.runs) > MAX_BLOCK_RUNS:
            self._split_block(block)
        return right

    def _next_slot(self, run: Run) -> tuple[Block, int]:
        block = run.block
        return block, _index_in(block.runs, run) + 1

    def _mark_deleted(self, run: Run, deleter: Dot, gc: bool) -> Run:
        """Tombstone ``run``; return the run now holding it (it may merge with neighbours)."""
        run.deleted = True
        run.deleter = deleter
        if gc:
            run.content = None
        block = run.block
        self._hide(block, run.length)
        runs = block.runs
        i = _index_in(runs, run)
        if i + 1 < len(runs) and self._absorb(run, runs[i + 1]):
            del runs[i + 1]
        if i > 0 and self._absorb(runs[i - 1], run):
            del runs[i]
            run = runs[i - 1]
        return run

    def _hide(self, block: Block, n: int) -> None:
        """``n`` visible elements of ``block`` became a tombstone (or part of one)."""
        block.vis -= n
        self.vis_len -= n
        self._vis_add(block, -n)
        self._cache = None
        self._stamp += 1

    def _absorb(self, left: Run, right: Run) -> bool:
        """Fold tombstone ``right`` into tombstone ``left`` when they continue each other
        (same replica, consecutive ids and Lamport times, deleted by the same replica), so
        that deleting typed text leaves one run, not one per character."""
        if not (
            left.deleted
            and right.deleted
            and left.replica == right.replica
            and left.counter + left.length == right.counter
            and left.lamport + left.length == right.lamport
            and right.origin == (right.replica, right.counter - 1)
            and left.deleter[0] == right.deleter[0]  # type: ignore[index]
            and (left.content is None) == (right.content is None)
            and self._may_grow(left, right.length)
        ):
            return False
        if left.content is not None:
            left.content = left.content + right.content
        left.length += right.length
        if right.deleter[1] > left.deleter[1]:  # type: ignore[index]
            left.deleter = right.deleter
        self.ids.remove(right)
        return True

    # ---- local edits ----------------------------------------------------------------

    def insert_local(
        self, pos: int, content: Any, replica: int, counter: int, lamport: int
    ) -> tuple[Dot | None, int]:
        """Insert ``content`` so that it starts at visible index ``pos``; return its origin
        and the Lamport time of its first element.

        That is ``lamport`` (one past the replica's clock), except when the insert goes on
        from the end of this replica's latest change: then it continues that run's Lamport
        times, so that a run typed while others type stays one run (see
        :meth:`_continues_own_run`).
        """
        n = len(content)
        if pos == 0:
            run = Run(self, replica, counter, lamport, None, self._own(content), n)
            self.ids.add(run)
            self._place(self._first_block(), 0, run)
            self._hint = (run, 0, self._stamp)
            return None, lamport
        left, offset = self.locate(pos - 1)
        origin = (left.replica, left.counter + offset)
        if offset == left.length - 1:
            if self._continues_own_run(left, replica, counter):
                lamport = left.lamport + left.length
                if self._may_grow(left, n):
                    # Typing on at the end of our own latest run: grow it in place.
                    self._extend(left, content, n, False)
                    self._hint = (left, pos - 1 - offset, self._stamp)
                    return origin, lamport
        else:
            self.split(left, offset + 1)
        run = Run(self, replica, counter, lamport, origin, self._own(content), n)
        self.ids.add(run)
        block, i = self._next_slot(left)
        self._place(block, i, run)
        self._hint = (run, pos, self._stamp)
        return origin, lamport

    def _continues_own_run(self, left: Run, replica: int, counter: int) -> bool:
        """Whether an insert by ``replica`` with first counter ``counter`` right after the
        last element of ``left`` may take the Lamport time after that element's.

        The RGA rule needs an element newer than its origin (so it is) and newer than every
        element it was placed ahead of. The element after ``left`` is either a child of
        ``left``'s last element, which must be older than the insert, or something outside
        that element's subtree, which is older than one of its ancestors and so than the
        insert. ``left`` must also be this replica's latest change, so that its Lamport
        times stay unique and increasing with its counters.
        """
        if left.replica != replica or left.counter + left.length != counter:
            return False
        nxt = self._run_at(*self._next_slot(left))
        return nxt is None or (nxt.lamport, nxt.replica) < (left.lamport + left.length, replica)

    def _may_grow(self, run: Run, n: int) -> bool:
        """Whether ``run`` may take ``n`` more elements in place (see MAX_TEXT_RUN)."""
        return run.length + n <= MAX_TEXT_RUN or not self.is_text or run.content is None

    def _delete_tail(
        self, run: Run, keep: int, deleter: Dot, gc: bool
    ) -> list[tuple[int, int, int]] | None:
        """Backspacing: when the tombstone right after ``run`` continues it, move the
        deleted tail of ``run`` into that tombstone instead of cutting a new run."""
        runs = run.block.runs
        i = _index_in(runs, run) + 1
        if i == len(runs):
            return None
        nxt = runs[i]
        end = run.counter + run.length
        if not (
            nxt.deleted
            and nxt.counter == end
            and nxt.replica == run.replica
            and nxt.lamport == run.lamport + run.length
            and nxt.origin == (run.replica, end - 1)
            and nxt.deleter[0] == deleter[0]  # type: ignore[index]
            and (nxt.content is None) == gc
            and self._may_grow(nxt, run.length - keep)
        ):
            return None
        k = run.length - keep
        self.ids.move_start(nxt, end - k)
        # Still above ``run``'s Lamport time, so the block's ``low`` holds.
        nxt.lamport -= k
        nxt.origin = (run.replica, end - k - 1)
        nxt.length += k
        if not gc:
            nxt.content = run.content[keep:] + nxt.content
        if deleter[1] > nxt.deleter[1]:  # type: ignore[index]
            nxt.deleter = deleter
        run.content = run.content[:keep]
        run.length = keep
        self._hide(run.block, k)
        return [(run.replica, end - k, k)]

    def delete_local(
        self, pos: int, length: int, deleter: Dot, gc: bool
    ) -> list[tuple[int, int, int]]:
        """Delete ``length`` visible elements from ``pos``; return the id ranges deleted."""
        run, offset = self.locate(pos)
        if offset and offset + length == run.length:
            moved = self._delete_tail(run, offset, deleter, gc)
            if moved is not None:
                self._hint = (run, pos - offset, self._stamp)
                return moved
        if offset:
            run = self.split(run, offset)
        ranges: list[tuple[int, int, int]] = []
        block = run.block
        i = _index_in(block.runs, run)
        while length > 0:
            if i == len(block.runs):
                block = self._block_after(block)
                i = 0
                continue
            run = block.runs[i]
            if run.deleted:
                i += 1
                continue
            if run.length > length:
                self.split(run, length)
                block = run.block
            take = run.length
            deleted = self._mark_deleted(run, deleter, gc)
            if (
                ranges
                and ranges[-1][0] == run.replica
                and (ranges[-1][1] + ranges[-1][2] == run.counter)
            ):
                r, c, n = ranges[-1]
                ranges[-1] = (r, c, n + take)
            else:
                ranges.append((run.replica, run.counter, take))
            length -= take
            block = deleted.block
            i = _index_in(block.runs, deleted) + 1
        return ranges

    # ---- remote integration ---------------------------------------------------------

    def is_blank(self) -> bool:
        """Whether this sequence holds no run at all (not even a tombstone)."""
        return len(self.chunks) == 1 and not self.chunks[0].blocks[0].runs

    def defer(self, order: Order, drop_content: bool) -> None:
        """Take ``order`` whole into this blank sequence without building its runs: its
        value and length are known at once, and the first use of anything else builds
        them (see :class:`_Deferred`). ``drop_content``: drop deleted characters."""
        assert self.is_blank()
        self._cache = order.live
        self.vis_len = len(order.live)
        self._stamp += 1
        self._deferred = (order, drop_content)
        self.__class__ = _Deferred
        ids = self.ids
        if type(ids) is IdIndex:
            ids._deferred = [self]
            ids.__class__ = DeferredIds
        else:
            ids._deferred.append(self)

    def _build_deferred(self) -> None:
        """Build the runs :meth:`defer` left out (and be a plain Sequence again)."""
        self.__class__ = Sequence
        order, drop_content = self._deferred
        del self._deferred
        ids = self.ids
        if type(ids) is DeferredIds:
            waiting = ids._deferred
            waiting.remove(self)
            if not waiting:
                ids.__class__ = IdIndex  # type: ignore[assignment]
        without_gc(lambda: self.build(Placed(order, not drop_content), order.live))

    def build(self, placed: Placed, live: str) -> None:
        """Fill this blank sequence with ``placed``'s pieces (in document order, with
        their origins; ``live`` their visible characters): one run each, in the order
        given, no search. Blocks and chunks start half full, so that later inserts split
        them late."""
        assert self.is_blank()
        runs = list(
            map(
                Run,
                repeat(self),
                placed.replicas,
                placed.counters,
                placed.lamports,
                placed.origins,
                placed.contents,
                placed.lengths,
            )
        )
        for run, deleter in zip(runs, placed.deleters, strict=True):
            if deleter is not None:
                run.deleted = True
                run.deleter = deleter
        step = MAX_BLOCK_RUNS // 2
        blocks = [Block(runs[i : i + step]) for i in range(0, len(runs), step)]
        step = MAX_CHUNK_BLOCKS // 2
        self.chunks = [Chunk(blocks[i : i + step], i // step) for i in range(0, len(blocks), step)]
        self._top = None
        self._held = None
        self._held_delta = 0
        self.vis_len = len(live)
        self._cache = live
        self._stamp += 1
        self.ids.add_many(runs)

    def integrate(
        self,
        replica: int,
        counter: int,
        lamport: int,
        origin: Dot | None,
        content: Any,
        length: int,
        deleter: Dot | None,
        want_pos: bool,
        left: Run | None = None,
    ) -> int | None:
        """Place a remote run by the RGA rule; return its visible index if ``want_pos``.

        ``content`` is None for a tombstone whose content was dropped; ``deleter`` is set
        for a run that arrives already deleted. ``left``: the run that held the origin
        when the caller looked it up (it may have been split since: checked here).
        """
        ids = self.ids
        if origin is None:
            block, i = self._first_block(), 0
        else:
            if left is None or origin[1] >= left.counter + left.length:  # (split since)
                left = ids.find(*origin)  # held: check_ready saw to that
            assert left is not None and left.seq is self
            k = origin[1] - left.counter + 1
            split = k < left.length
            if split:
                self.split(left, k)
            block = left.block
            i = _index_in(block.runs, left) + 1
            if (
                not split
                and left.replica == replica
                and left.counter + left.length == counter
                and left.lamport + left.length == lamport
                and left.deleter == deleter
                and (content is None) == (left.content is None)
                and (deleter is None) != left.deleted
                and self._may_grow(left, length)
            ):
                runs = block.runs
                nxt = runs[i] if i < len(runs) else self._run_at(block, i)
                if (
                    nxt is None
                    or nxt.lamport < lamport
                    or (nxt.lamport == lamport and nxt.replica < replica)
                ):
                    return self._extend(left, content, length, want_pos)
        # Skip newer siblings (and, being contiguous after them, their descendants); a
        # block whose every run is newer is passed whole.
        runs = block.runs
        while True:
            if i < len(runs):
                nxt = runs[i]
                if nxt.lamport > lamport or (nxt.lamport == lamport and nxt.replica > replica):
                    i += 1
                    continue
                break
            after = self._next_block(block)
            if after is None:
                break
            block = after
            runs = block.runs
            i = len(runs) if after.low > (lamport, replica) else 0
        run = Run(self, replica, counter, lamport, origin, self._own(content), length)
        if deleter is not None:
            run.deleted = True
            run.deleter = deleter
        ids.add(run)
        self._place(block, i, run)
        if want_pos and deleter is None:
            return self.position_of(run)
        return None

    def _run_at(self, block: Block, i: int) -> Run | None:
        """The run at slot ``i`` of ``block``, or the first after it (None at the end)."""
        while i == len(block.runs):
            after = self._next_block(block)
            if after is None:
                return None
            block, i = after, 0
        return block.runs[i]

    def _extend(self, run: Run, content: Any, length: int, want_pos: bool) -> int | None:
        """Grow ``run`` at its end by ``length`` elements (typed on, here or remotely);
        their visible index if ``want_pos``."""
        self._stamp += 1
        start = run.length
        run.length += length
        if content is not None:
            if self.is_text:
                run.content = run.content + content
            else:
                run.content.extend(content)
        if run.deleted:
            return None
        block = run.block
        block.vis += length
        self.vis_len += length
        self._vis_add(block, length)
        self._cache = None
        return self.position_of(run) + start if want_pos else None

    def delete_range(
        self,
        replica: int,
        counter: int,
        length: int,
        deleter: Dot,
        gc: bool,
        positions: list[tuple[int, int]] | None,
    ) -> None:
        """Delete the elements with ids ``(replica, counter .. counter+length-1)``.

        Ids that are not elements of this sequence are ignored (so every replica treats a
        bogus target the same way). Visible deletions are reported to ``positions`` as
        ``(index, count)`` in the order they happen.
        """
        end = counter + length
        while counter < end:
            run = self.ids.find(replica, counter)
            if run is None:
                # Not an element anywhere: go on at this replica's next run, if any.
                nxt = self.ids.next_start(replica, counter)
                if nxt is None or nxt >= end:
                    return
                counter = nxt
                continue
            if run.seq is not self or run.deleted:
                # Another container's elements, or deleted already: cutting the run would
                # undo the folding of tombstones for nothing.
                counter = run.counter + run.length
                continue
            if run.counter < counter and end < run.counter + run.length:
                # Inside a live run (a merge's deletes, one keystroke each, mostly are).
                self._delete_inside(
                    run, counter - run.counter, end - counter, deleter, gc, positions
                )
                return
            if run.counter < counter:
                run = self.split(run, counter - run.counter)
            if run.counter + run.length > end:
                self.split(run, end - run.counter)
            if positions is not None:
                positions.append((self.position_of(run), run.length))
            end_of_run = run.counter + run.length
            self._mark_deleted(run, deleter, gc)
            counter = end_of_run

    def _delete_inside(
        self,
        run: Run,
        k: int,
        m: int,
        deleter: Dot,
        gc: bool,
        positions: list[tuple[int, int]] | None,
    ) -> None:
        """Delete elements ``k .. k+m-1`` of the live ``run``, none of them its first or
        last: the two cuts and the tombstone in one step (what :meth:`split` twice and
        :meth:`_mark_deleted` do; no tombstone can fold with the live runs around it)."""
        replica, at, lamport = run.replica, run.counter + k, run.lamport + k
        content = run.content
        mid = Run(self, replica, at, lamport, (replica, at - 1), None, m)
        right = Run(
            self, replica, at + m, lamport + m, (replica, at + m - 1), None, run.length - k - m
        )
        if content is not None:
            if not gc:
                mid.content = content[k : k + m]
            right.content = content[k + m :]
            run.content = content[:k]
        run.length = k
        mid.deleted = True
        mid.deleter = deleter
        block = run.block
        runs = block.runs
        i = _index_in(runs, run) + 1
        runs[i:i] = (mid, right)
        mid.block = right.block = block
        mid.slot, right.slot = i, i + 1
        self.ids.add(mid)
        self.ids.add(right)
        if positions is not None:
            positions.append((self.position_of(mid), m))
        self._hide(block, m)
        if len(runs) > MAX_BLOCK_RUNS:
            self._split_block(block)


#: What a deferred sequence answers without being built.
_CHEAP = frozenset(
    {"value", "vis_len", "_cache", "key", "is_text", "empty", "is_blank", "_deferred", "ids"}
)


class _Deferred(Sequence):
    """A sequence taken whole from an order (:meth:`Sequence.defer`) whose runs are not
    built yet: its value, length and key are at hand, and the first use of anything else
    builds the runs and turns it back into a plain :class:`Sequence`, so no caller can tell
    the difference, and a document that is only read never builds them."""

    _deferred: tuple[Order, bool]

    def __getattribute__(self, name: str) -> Any:
        if name not in _CHEAP:
            Sequence._build_deferred(self)
        return object.__getattribute__(self, name)

    def is_blank(self) -> bool:
        return False
