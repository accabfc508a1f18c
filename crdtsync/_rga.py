"""The sequence engine shared by Text and List: a Replicated Growable Array of runs.

Ordering rule (RGA): every element names the element it was inserted after (its *origin*,
or the head) and carries a Lamport timestamp ``(lamport, replica)``. The sequence is the
depth-first walk of that tree with siblings in descending timestamp order. Integrating an
element therefore means: find the origin, then skip every following element with a larger
timestamp (those are newer siblings and their descendants) and insert before the first
smaller one. A replica typing forward makes each character the origin of the next, so two
replicas typing at the same place produce two subtrees that never interleave.

Storage: characters typed one after another by one replica (consecutive counters and
Lamport times, each the origin of the next) form one :class:`Run`. Runs sit in blocks
(``sortedcontainers``-style list of lists) whose visible lengths are summed in a Fenwick
tree, so position -> run is O(log blocks + block size). Each replica's runs are also kept
sorted by counter (``IdIndex``) so id -> run is a bisect. Deleted runs stay as tombstones
(id, Lamport time and length) because later inserts may name them as origins; with
garbage collection on, their content is dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate
from typing import Any

from crdtsync._ids import IdIndex

Dot = tuple[int, int]

#: A block is split in two when it holds more runs than this. Small blocks keep the linear
#: scan inside a block short; the Fenwick tree keeps the walk over blocks logarithmic.
MAX_BLOCK_RUNS = 64

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
    i = run.slot = runs.index(run)
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


class Block:
    __slots__ = ("runs", "vis", "index")

    def __init__(self, runs: list[Run], index: int) -> None:
        self.runs = runs
        self.vis = 0
        self.index = index
        for run in runs:
            run.block = self
            if not run.deleted:
                self.vis += run.length


class Sequence:
    """One Text or List: the ordered runs, their position index and edit primitives.

    Positions are visible indices (tombstones take no room). Every mutator keeps the block
    lengths, the Fenwick tree and the id index in step.
    """

    def __init__(self, ids: IdIndex, is_text: bool) -> None:
        self.ids = ids
        #: The root key of the container this sequence belongs to.
        self.key: Any = None
        self.is_text = is_text
        self.empty: Any = "" if is_text else []
        self.blocks: list[Block] = [Block([], 0)]
        #: How many of the first blocks are empty spares (see :meth:`_split_block`): the
        #: sequence's first run is in ``blocks[_spares]``.
        self._spares = 0
        self._fen: list[int] | None = [0, 0]
        self._held_slot = -1
        self._held_delta = 0
        self.vis_len = 0
        self._cache: Any = None
        #: Bumped by every change to the runs; a cached look-up is valid while it holds.
        self._stamp = 0
        #: (run, visible index of its start, stamp): where the last local insert went, so
        #: that typing on (and backspacing) skips the position search.
        self._hint: tuple[Run, int, int] | None = None

    # ---- Fenwick tree over block visible lengths -------------------------------------
    #
    # The tree is built lazily: splitting a block in the middle shifts every later block's
    # slot, so it drops the tree (``_fen = None``) and the next position query rebuilds it
    # in one O(blocks) pass. A burst of remote inserts (a merge, a state load) asks for no
    # positions and so pays for no rebuilds.
    #
    # Changes are also held back for one slot: typing changes the same block's length again
    # and again, so they add up in ``_held_delta`` and reach the tree (O(log B)) only when
    # another slot changes or a position is asked for.

    def _tree(self) -> list[int]:
        """The Fenwick tree, up to date."""
        tree = self._fen
        if tree is None:
            tree = [0]
            tree.extend([b.vis for b in self.blocks])
            n = len(tree) - 1
            for i in range(1, n + 1):
                j = i + (i & -i)
                if j <= n:
                    tree[j] += tree[i]
            self._fen = tree
            self._held_delta = 0  # already in the blocks' lengths it was built from
        elif self._held_delta:
            self._tree_add(tree, self._held_slot, self._held_delta)
            self._held_delta = 0
        return tree

    def _fen_add(self, index: int, delta: int) -> None:
        """Block ``index``'s visible length changed by ``delta``."""
        if self._fen is None:
            return
        if index == self._held_slot:
            self._held_delta += delta
            return
        if self._held_delta:
            self._tree_add(self._fen, self._held_slot, self._held_delta)
        self._held_slot = index
        self._held_delta = delta

    @staticmethod
    def _tree_add(tree: list[int], index: int, delta: int) -> None:
        n = len(tree) - 1
        i = index + 1
        while i <= n:
            tree[i] += delta
            i += i & -i

    def _prefix(self, index: int) -> int:
        """Visible length of blocks ``[0, index)``."""
        tree = self._tree()
        total = 0
        while index > 0:
            total += tree[index]
            index -= index & -index
        return total

    def _find_block(self, pos: int) -> tuple[Block, int]:
        """The block holding visible index ``pos`` and ``pos`` relative to its start."""
        tree = self._tree()
        n = len(tree) - 1
        index = 0
        step = 1 << (n.bit_length() - 1) if n else 0
        while step:
            nxt = index + step
            if nxt <= n and tree[nxt] <= pos:
                index = nxt
                pos -= tree[nxt]
            step >>= 1
        return self.blocks[index], pos

    # ---- reading ----------------------------------------------------------------------

    def runs(self) -> Iterator[Run]:
        for block in self.blocks:
            yield from block.runs

    def value(self) -> Any:
        if self._cache is None:
            parts = [r.content for b in self.blocks for r in b.runs if not r.deleted]
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
        for run in block.runs:
            if not run.deleted:
                if rel < run.length:
                    return run, rel
                rel -= run.length
        raise AssertionError("position index out of step with the runs")  # pragma: no cover

    def position_of(self, run: Run) -> int:
        """Visible index of the first element of ``run``."""
        block = run.block
        pos = self._prefix(block.index)
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
                block = self.blocks[block.index + 1]
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
        self._stamp += 1
        if not run.deleted:
            block.vis += run.length
            self.vis_len += run.length
            self._fen_add(block.index, run.length)
            self._cache = None
        if len(block.runs) > MAX_BLOCK_RUNS:
            self._split_block(block)

    def _split_block(self, block: Block) -> None:
        """Move the second half of an overfull ``block`` into a new block after it.

        A block added in the middle shifts the slots of the blocks on one side of it. The
        side nearer an end of the sequence moves: the blocks after it (their slots go up by
        one), or, by taking one of the empty *spare* blocks kept at the front, the blocks
        before it (their slots go down by one). Either way the cost is the distance to that
        end, so editing near the start of a long document is as cheap as near its end.
        """
        blocks = self.blocks
        b = block.index
        half = len(block.runs) // 2
        right = Block(block.runs[half:], b + 1)
        del block.runs[half:]
        if b + 1 == len(blocks):
            # Splitting the last block (appending, or loading a state): grow the tree in
            # O(log n) instead of dropping it.
            block.vis -= right.vis
            blocks.append(right)
            self._fen_add(b, -right.vis)
            self._fen_append(right.vis)
        elif 2 * b >= len(blocks):
            block.vis -= right.vis
            blocks.insert(b + 1, right)
            for j in range(b + 2, len(blocks)):
                blocks[j].index = j
            self._fen = None  # rebuilt when next asked for a position
        else:
            if not self._spares:
                self._add_spares()
                b = block.index
            # Slots start .. b change: the last spare's and those of the blocks up to this
            # one, which move down one. The spares before them keep their (stale) indices.
            start = self._spares - 1
            old_vis = [x.vis for x in blocks[start : b + 1]]
            block.vis -= right.vis
            del blocks[0]  # a spare
            self._spares = start
            blocks.insert(b, right)
            for j in range(start, b + 1):
                blocks[j].index = j
            self._shift_tree_front(start, old_vis, [x.vis for x in blocks[start : b + 1]])

    def _add_spares(self) -> None:
        """Put empty blocks in front, a quarter as many as there are blocks."""
        count = max(4, len(self.blocks) // 4)
        self.blocks[0:0] = [Block([], 0) for _ in range(count)]
        for j in range(self._spares, len(self.blocks)):
            self.blocks[j].index = j
        self._spares += count
        self._fen = None

    def _shift_tree_front(self, start: int, old: list[int], new: list[int]) -> None:
        """Update the Fenwick tree after the values of slots ``start ..`` (0-based) changed
        from ``old`` to ``new``, with the same total; the slots before ``start`` hold 0."""
        if self._fen is None:
            return
        tree = self._tree()  # with the held change, in the slots as they were
        n = len(tree) - 1
        p_old = [0, *accumulate(old)]  # p[k - start]: the sum of 1-based slots 1 .. k
        p_new = [0, *accumulate(new)]
        end = start + len(new)
        for i in range(start + 1, end + 1):  # slots ending inside the changed range
            low = i & (i - 1)
            tree[i] = p_new[i - start] - (p_new[low - start] if low > start else 0)
        i = end + (end & -end)
        while i <= n:  # slots whose range starts inside it and ends beyond
            low = i & (i - 1)
            if low > start:
                tree[i] += p_old[low - start] - p_new[low - start]
            i += i & -i

    def _fen_append(self, value: int) -> None:
        """Add a last slot to the Fenwick tree holding ``value``."""
        if self._fen is None:
            return
        tree = self._tree()
        i = len(tree)  # the new slot's 1-based index
        low = i - (i & -i)
        # tree[i] covers slots (low, i]: the sum of slots low+1 .. i-1, plus value.
        tree.append(self._prefix(i - 1) - self._prefix(low) + value)

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
        block.vis -= run.length
        self.vis_len -= run.length
        self._fen_add(block.index, -run.length)
        self._cache = None
        self._stamp += 1
        runs = block.runs
        i = _index_in(runs, run)
        if i + 1 < len(runs) and self._absorb(run, runs[i + 1]):
            del runs[i + 1]
        if i > 0 and self._absorb(runs[i - 1], run):
            del runs[i]
            run = runs[i - 1]
        return run

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
            self._place(self.blocks[self._spares], 0, run)
            self._hint = (run, 0, self._stamp)
            return None, lamport
        left, offset = self.locate(pos - 1)
        origin = (left.replica, left.counter + offset)
        if offset == left.length - 1:
            if self._continues_own_run(left, replica, counter):
                lamport = left.lamport + left.length
                if self._may_grow(left, n):
                    # Typing on at the end of our own latest run: grow it in place.
                    if self.is_text:
                        left.content = left.content + content
                    else:
                        left.content.extend(content)
                    left.length += n
                    block = left.block
                    block.vis += n
                    self.vis_len += n
                    self._fen_add(block.index, n)
                    self._cache = None
                    self._stamp += 1
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
        nxt.lamport -= k
        nxt.origin = (run.replica, end - k - 1)
        nxt.length += k
        if not gc:
            nxt.content = run.content[keep:] + nxt.content
        if deleter[1] > nxt.deleter[1]:  # type: ignore[index]
            nxt.deleter = deleter
        run.content = run.content[:keep]
        run.length = keep
        block = run.block
        block.vis -= k
        self.vis_len -= k
        self._fen_add(block.index, -k)
        self._cache = None
        self._stamp += 1
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
                block = self.blocks[block.index + 1]
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
    ) -> int | None:
        """Place a remote run by the RGA rule; return its visible index if ``want_pos``.

        ``content`` is None for a tombstone whose content was dropped; ``deleter`` is set
        for a run that arrives already deleted.
        """
        ids = self.ids
        if origin is None:
            block, i = self.blocks[self._spares], 0
        else:
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
                if nxt is None or (nxt.lamport, nxt.replica) < (lamport, replica):
                    return self._extend(left, content, length, want_pos)
        # Skip newer siblings (and, being contiguous after them, their descendants).
        runs = block.runs
        while True:
            if i < len(runs):
                nxt = runs[i]
                if nxt.lamport > lamport or (nxt.lamport == lamport and nxt.replica > replica):
                    i += 1
                    continue
                break
            if block.index + 1 == len(self.blocks):
                break
            block = self.blocks[block.index + 1]
            runs = block.runs
            i = 0
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
            if block.index + 1 == len(self.blocks):
                return None
            block = self.blocks[block.index + 1]
            i = 0
        return block.runs[i]

    def _extend(self, run: Run, content: Any, length: int, want_pos: bool) -> int | None:
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
        self._fen_add(block.index, length)
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
            if run.counter < counter:
                run = self.split(run, counter - run.counter)
            if run.counter + run.length > end:
                self.split(run, end - run.counter)
            if positions is not None:
                positions.append((self.position_of(run), run.length))
            end_of_run = run.counter + run.length
            self._mark_deleted(run, deleter, gc)
            counter = end_of_run
