"""The benchmark cases: crdt-benchmarks B1-B4, the editing traces, and a two-replica merge.

B1-B4 follow dmonad/crdt-benchmarks (``js-lib/b1.js`` .. ``b4.js``), re-expressed here:

- **B1** (one user, no conflicts): ``doc1`` makes the edits, one transaction (and update) per
  edit; *time* covers the edits, ``doc2`` applying every update, and reading both back.
  *avgUpdateSize* is the bytes of all updates divided by the number of edits.
- **B2** (two users, conflicts): both start from a synced 100-character text; each makes its
  edits in one transaction, and every update is relayed to the other side at once. *time*
  covers both transactions, the relaying and reading both texts; *updateSize* is the bytes
  relayed divided by two (the initial sync included, as in crdt-benchmarks).
- **B3** (``20 * floor(sqrt(N))`` users, many conflicts): every replica makes one edit; replica
  0 is synced with all the updates first, then *time* is replica 1 applying them all and both
  being read. *updateSize* is the bytes of all updates.
- **B4** (the automerge-paper trace, one transaction and one update per edit) and **B4x10**
  (the trace ten times into one document); the other traces run the same way.
- **M1** (not in crdt-benchmarks): two replicas of a 10,000-character text each make 10,000
  random single-character edits offline; *time* is the merge: computing both diffs
  (``get_update(peer_version)`` or the equivalent), applying them, reading both texts.

Everywhere, *encodeTime* and *docSize* are for encoding the whole document, and *parseTime*
is loading that encoding into a new replica and reading its content back (so that lazy
decoding cannot look free). Inputs are generated from fixed seeds, one per case, so a case
sees the same edits whatever else runs; they are generated outside every timed region.
"""

from __future__ import annotations

import gc
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from time import perf_counter
from typing import Any

from benchmarks.systems import Kind, Replica, System
from benchmarks.traces import DEFAULT_TRACE, Patch, Trace, load_trace, trace_files, trace_name

N = 6000
SEED = 42
MERGE_TEXT = 10_000
MERGE_EDITS = 10_000
B4_REPEAT = 10

TextOp = tuple[int, str, int]  # (index, text to insert, or "" to delete `count` characters)


@dataclass
class Outcome:
    """One run of one case on one system."""

    time_s: float
    update_size: float | None  # the case's update metric; None where no updates exist
    encode_s: float
    doc_size: int
    parse_s: float
    ok: bool
    state: bytes  # the encoded document, kept for the memory step (never reported)
    note: str = ""


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    kind: Kind  # what is read back: text, array or map
    update_metric: str  # "avgUpdateSize" or "updateSize"
    body: Callable[[System], Outcome]
    floor: bool = False  # the plain-Python floor applies (single-user edits only)
    max_runs: int | None = None  # cap for the heavy cases
    quick: bool = False  # part of the --quick subset
    #: Builds (and caches) the inputs, so the runner can set them aside before timing.
    prepare: Callable[[], object] = lambda: None
    floor_note: str = ""  # why the floor is left out although the case is single-user

    @property
    def group(self) -> str:
        """B1, B2, B3, B4 (B4 and B4x10), traces (the other traces) or merge (M1)."""
        if self.id.startswith("T:"):
            return "traces"
        if self.id.startswith("M"):
            return "merge"
        return self.id[:2]

    @property
    def label(self) -> str:
        return f"[{self.id}] {self.title}"


class Gen:
    """The lib0/prng helpers crdt-benchmarks uses, on a seeded ``random.Random``.

    Bounds are inclusive, like lib0's ``int32``/``uint32``; ``word`` draws letters a-z.
    """

    def __init__(self, seed: str) -> None:
        self._rng = random.Random(seed)

    def between(self, lo: int, hi: int) -> int:
        return self._rng.randint(lo, hi)

    def coin(self) -> bool:
        return self._rng.random() < 0.5

    def word(self, min_len: int, max_len: int) -> str:
        randint = self._rng.randint
        return "".join(chr(randint(97, 122)) for _ in range(randint(min_len, max_len)))


class Mutex:
    """crdt-benchmarks' ``createMutex``: updates emitted while a relay is delivering (the
    receiving replica's own notification of the change) are not relayed back."""

    busy = False

    def __enter__(self) -> None:
        self.busy = True

    def __exit__(self, *exc: object) -> None:
        self.busy = False


def apply_text_op(doc: Replica, op: TextOp) -> None:
    index, insert, count = op
    if insert:
        doc.insert_text(index, insert)
    else:
        doc.delete_text(index, count)


def _encode_and_parse(
    system: System, doc: Replica, kind: Kind, expected: Any
) -> tuple[float, bytes, float, bool]:
    """Encode ``doc``; load the encoding into a new replica and read it back (checked)."""
    t0 = perf_counter()
    state = doc.encode_state()
    encode_s = perf_counter() - t0
    gc.collect()
    t0 = perf_counter()
    loaded = system.load(state, kind)
    content = loaded.read(kind)
    parse_s = perf_counter() - t0
    return encode_s, state, parse_s, content == expected


# ---- B1: one user, no conflicts --------------------------------------------------------------


def run_b1(
    system: System,
    kind: Kind,
    items: Sequence[Any],
    change: Callable[[Replica, Any, int], None],
    expected: Any,
) -> Outcome:
    updates: list[bytes] = []
    doc1 = system.create(1, updates.append if system.is_crdt else None)
    doc2 = system.create(2) if system.is_crdt else None
    gc.collect()
    t0 = perf_counter()
    for i, item in enumerate(items):
        change(doc1, item, i)
    if doc2 is not None:
        for update in updates:
            doc2.apply_update(update)
    got1 = doc1.read(kind)
    got2 = doc2.read(kind) if doc2 is not None else got1
    time_s = perf_counter() - t0
    ok = got1 == got2 == expected
    update_size = sum(map(len, updates)) / len(items) if system.is_crdt else None
    encode_s, state, parse_s, parsed_ok = _encode_and_parse(system, doc1, kind, expected)
    return Outcome(time_s, update_size, encode_s, len(state), parse_s, ok and parsed_ok, state)


def _insert_text(doc: Replica, s: str, i: int) -> None:
    doc.insert_text(i, s)


def _prepend_text(doc: Replica, s: str, i: int) -> None:
    doc.insert_text(0, s)


def _text_op(doc: Replica, op: TextOp, i: int) -> None:
    apply_text_op(doc, op)


def _insert_then_delete(doc: Replica, s: str, i: int) -> None:
    doc.insert_text(i, s)
    doc.delete_text(i, len(s))


def _insert_array(doc: Replica, values: list[int], i: int) -> None:
    doc.insert_array(i, values)


def _append_number(doc: Replica, x: int, i: int) -> None:
    doc.insert_array(i, [x])


def _prepend_number(doc: Replica, x: int, i: int) -> None:
    doc.insert_array(0, [x])


def _insert_number(doc: Replica, op: tuple[int, int], i: int) -> None:
    doc.insert_array(op[0], [op[1]])


def _insert_word(gen: Gen, s: str, index: int, lo: int, hi: int, ops: list[TextOp]) -> str:
    """Insert a random word of ``lo``..``hi`` characters at ``index``; note it in ``ops``."""
    insert = gen.word(lo, hi)
    ops.append((index, insert, 0))
    return s[:index] + insert + s[index:]


def _insert_or_delete(gen: Gen, s: str, index: int, ops: list[TextOp]) -> str:
    """b1.js B1.7's and b2.js B2.4's step: at ``index``, insert a word of 2-10 characters
    or delete up to 9 (always insert at the end)."""
    if len(s) == index or gen.coin():
        return _insert_word(gen, s, index, 2, 10, ops)
    count = gen.between(1, min(9, len(s) - index))
    ops.append((index, "", count))
    return s[:index] + s[index + count :]


def _random_text_inserts(
    gen: Gen, n: int, min_len: int, max_len: int, start: str = ""
) -> tuple[list[TextOp], str]:
    s = start
    ops: list[TextOp] = []
    for _ in range(n):
        s = _insert_word(gen, s, gen.between(0, len(s)), min_len, max_len, ops)
    return ops, s


def _random_text_edits(gen: Gen, n: int) -> tuple[list[TextOp], str]:
    s = ""
    ops: list[TextOp] = []
    for _ in range(n):
        s = _insert_or_delete(gen, s, gen.between(0, len(s)), ops)
    return ops, s


def _numbers(gen: Gen, n: int) -> list[int]:
    return [gen.between(0, 0x7FFFFFFF) for _ in range(n)]


def _random_number_inserts(gen: Gen, n: int) -> tuple[list[tuple[int, int]], list[int]]:
    numbers: list[int] = []
    ops: list[tuple[int, int]] = []
    for _ in range(n):
        index = gen.between(0, len(numbers))
        x = gen.between(0, 0x7FFFFFFF)
        numbers.insert(index, x)
        ops.append((index, x))
    return ops, numbers


B1Input = tuple[Sequence[Any], Callable[[Replica, Any, int], None], Any]


def b1_cases(n: int, seed: int) -> list[Case]:
    def gen(case_id: str) -> Gen:
        return Gen(f"{seed}:{case_id}")

    def b1_1() -> B1Input:
        s = gen("B1.1").word(n, n)
        return list(s), _insert_text, s

    def b1_2() -> B1Input:
        s = gen("B1.2").word(n, n)
        return [s], _insert_text, s

    def b1_3() -> B1Input:
        s = gen("B1.3").word(n, n)
        return list(reversed(s)), _prepend_text, s

    def b1_4() -> B1Input:
        ops, s = _random_text_inserts(gen("B1.4"), n, 1, 1)
        return ops, _text_op, s

    def b1_5() -> B1Input:
        ops, s = _random_text_inserts(gen("B1.5"), n, 2, 10)
        return ops, _text_op, s

    def b1_6() -> B1Input:
        return [gen("B1.6").word(n, n)], _insert_then_delete, ""

    def b1_7() -> B1Input:
        ops, s = _random_text_edits(gen("B1.7"), n)
        return ops, _text_op, s

    def b1_8() -> B1Input:
        numbers = _numbers(gen("B1.8"), n)
        return numbers, _append_number, numbers

    def b1_9() -> B1Input:
        numbers = _numbers(gen("B1.9"), n)
        return [numbers], _insert_array, numbers

    def b1_10() -> B1Input:
        numbers = _numbers(gen("B1.10"), n)
        return numbers, _prepend_number, numbers[::-1]

    def b1_11() -> B1Input:
        ops, numbers = _random_number_inserts(gen("B1.11"), n)
        return ops, _insert_number, numbers

    specs: list[tuple[str, str, Kind, Callable[[], B1Input], bool]] = [
        ("B1.1", "Append N characters", "text", b1_1, True),
        ("B1.2", "Insert string of length N", "text", b1_2, False),
        ("B1.3", "Prepend N characters", "text", b1_3, False),
        ("B1.4", "Insert N characters at random positions", "text", b1_4, True),
        ("B1.5", "Insert N words at random positions", "text", b1_5, False),
        ("B1.6", "Insert string, then delete it", "text", b1_6, False),
        ("B1.7", "Insert/Delete strings at random positions", "text", b1_7, True),
        ("B1.8", "Append N numbers", "array", b1_8, True),
        ("B1.9", "Insert Array of N numbers", "array", b1_9, False),
        ("B1.10", "Prepend N numbers", "array", b1_10, False),
        ("B1.11", "Insert N numbers at random positions", "array", b1_11, True),
    ]
    cases = []
    for case_id, title, kind, make_input, quick in specs:
        inputs = cache(make_input)

        def body(
            system: System, kind: Kind = kind, inputs: Callable[[], B1Input] = inputs
        ) -> Outcome:
            items, change, expected = inputs()
            return run_b1(system, kind, items, change, expected)

        cases.append(
            Case(
                case_id,
                title,
                kind,
                "avgUpdateSize",
                body,
                floor=True,
                quick=quick,
                prepare=inputs,
            )
        )
    return cases


# ---- B2: two users, conflicts ----------------------------------------------------------------


def run_b2(
    system: System,
    init_text: str,
    ops1: Sequence[TextOp],
    ops2: Sequence[TextOp],
    expected_len: int | None,
) -> Outcome:
    mutex = Mutex()
    sent = 0
    docs: list[Replica] = []

    def relay_to(target: int) -> Callable[[bytes], None]:
        def on_update(update: bytes) -> None:
            nonlocal sent
            if mutex.busy:
                return
            with mutex:
                sent += len(update)
                docs[target].apply_update(update)

        return on_update

    docs.append(system.create(1, relay_to(1)))
    docs.append(system.create(2, relay_to(0)))
    doc1, doc2 = docs
    doc1.insert_text(0, init_text)
    gc.collect()
    t0 = perf_counter()
    with doc1.transact():
        for op in ops1:
            apply_text_op(doc1, op)
    with doc2.transact():
        for op in ops2:
            apply_text_op(doc2, op)
    text1 = doc1.text()
    text2 = doc2.text()
    time_s = perf_counter() - t0
    ok = text1 == text2 and (expected_len is None or len(text1) == expected_len)
    encode_s, state, parse_s, parsed_ok = _encode_and_parse(system, doc1, "text", text2)
    return Outcome(time_s, sent / 2, encode_s, len(state), parse_s, ok and parsed_ok, state)


def _concurrent_edits(gen: Gen, start: str, n: int) -> list[TextOp]:
    # b2.js B2.4: every step inserts a word, then inserts another or deletes up to 9.
    s = start
    ops: list[TextOp] = []
    for _ in range(n):
        index = gen.between(0, len(s))
        s = _insert_word(gen, s, index, 3, 9, ops)
        s = _insert_or_delete(gen, s, index, ops)
    return ops


B2Input = tuple[str, list[TextOp], list[TextOp], int | None]


def b2_cases(n: int, seed: int) -> list[Case]:
    init_text = Gen(f"{seed}:B2").word(100, 100)

    def b2_1() -> B2Input:
        gen = Gen(f"{seed}:B2.1")
        s1, s2 = gen.word(n, n), gen.word(n, n)
        return init_text, [(0, s1, 0)], [(0, s2, 0)], 2 * n + 100

    def b2_2() -> B2Input:
        gen = Gen(f"{seed}:B2.2")
        ops1 = _random_text_inserts(gen, n, 1, 1, init_text)[0]
        ops2 = _random_text_inserts(gen, n, 1, 1, init_text)[0]
        return init_text, ops1, ops2, 2 * n + 100

    def b2_3() -> B2Input:
        gen = Gen(f"{seed}:B2.3")
        ops1 = _random_text_inserts(gen, n, 3, 9, init_text)[0]
        ops2 = _random_text_inserts(gen, n, 3, 9, init_text)[0]
        return init_text, ops1, ops2, None

    def b2_4() -> B2Input:
        gen = Gen(f"{seed}:B2.4")
        return (
            init_text,
            _concurrent_edits(gen, init_text, n),
            _concurrent_edits(gen, init_text, n),
            None,
        )

    specs: list[tuple[str, str, Callable[[], B2Input], bool]] = [
        ("B2.1", "Concurrently insert string of length N at index 0", b2_1, False),
        ("B2.2", "Concurrently insert N characters at random positions", b2_2, True),
        ("B2.3", "Concurrently insert N words at random positions", b2_3, False),
        ("B2.4", "Concurrently insert & delete", b2_4, True),
    ]
    cases = []
    for case_id, title, make_input, quick in specs:
        inputs = cache(make_input)

        def body(system: System, inputs: Callable[[], B2Input] = inputs) -> Outcome:
            return run_b2(system, *inputs())

        cases.append(Case(case_id, title, "text", "updateSize", body, quick=quick, prepare=inputs))
    return cases


# ---- B3: many users, many conflicts ----------------------------------------------------------


def run_b3(
    system: System, kind: Kind, clients: int, change: Callable[[Replica, int], None]
) -> Outcome:
    mutex = Mutex()
    updates: list[bytes] = []

    def collect(update: bytes) -> None:
        if not mutex.busy:
            updates.append(update)

    docs = [system.create(i + 1, collect) for i in range(clients)]
    for i, doc in enumerate(docs):
        change(doc, i)
    enough = len(updates) >= clients
    with mutex:  # sync replica 0 for reference
        docs[0].apply_updates(updates)
    gc.collect()
    t0 = perf_counter()
    with mutex:
        docs[1].apply_updates(updates)
    reference = docs[0].read(kind)
    got = docs[1].read(kind)
    time_s = perf_counter() - t0
    ok = enough and got == reference
    encode_s, state, parse_s, parsed_ok = _encode_and_parse(system, docs[0], kind, reference)
    update_size = float(sum(map(len, updates)))
    return Outcome(time_s, update_size, encode_s, len(state), parse_s, ok and parsed_ok, state)


def b3_cases(n: int) -> list[Case]:
    clients = math.isqrt(n) * 20

    def set_number(doc: Replica, i: int) -> None:
        doc.set_map("v", i)

    def set_object(doc: Replica, i: int) -> None:
        doc.set_map("v", {"name": str(i), "address": "here"})

    def set_string(doc: Replica, i: int) -> None:
        doc.set_map("v", str(i) * clients)

    def insert_text(doc: Replica, i: int) -> None:
        doc.insert_array(0, [str(i)])

    specs: list[tuple[str, str, Kind, Callable[[Replica, int], None], bool]] = [
        ("B3.1", "20√N clients concurrently set number in Map", "map", set_number, True),
        ("B3.2", "20√N clients concurrently set Object in Map", "map", set_object, False),
        ("B3.3", "20√N clients concurrently set String in Map", "map", set_string, False),
        ("B3.4", "20√N clients concurrently insert text in Array", "array", insert_text, True),
    ]
    cases = []
    for case_id, title, kind, change, quick in specs:

        def body(
            system: System, kind: Kind = kind, change: Callable[[Replica, int], None] = change
        ) -> Outcome:
            return run_b3(system, kind, clients, change)

        cases.append(Case(case_id, title, kind, "updateSize", body, quick=quick))
    return cases


# ---- B4 and the other traces: replaying real editing histories -------------------------------


def run_trace(system: System, trace: Trace, txns: list[list[Patch]], repeat: int) -> Outcome:
    updates: list[bytes] = []
    doc = system.create(1, updates.append if system.is_crdt else None)
    if trace.start:
        doc.insert_text(0, trace.start)
        updates.clear()
    # Each pass replays the history in front of what the previous passes left.
    expected = trace.end * repeat
    gc.collect()
    t0 = perf_counter()
    doc.replay(txns, repeat)
    text = doc.text()
    time_s = perf_counter() - t0
    edits = len(trace.txns) * repeat
    update_size = sum(map(len, updates)) / edits if system.is_crdt else None
    updates.clear()  # B4x10 makes 2.6 million of them; free them before encoding
    encode_s, state, parse_s, parsed_ok = _encode_and_parse(system, doc, "text", expected)
    return Outcome(
        time_s, update_size, encode_s, len(state), parse_s, text == expected and parsed_ok, state
    )


def trace_case(case_id: str, title: str, path: Path, repeat: int = 1, **options: Any) -> Case:
    load = cache(lambda: load_trace(path))
    prepared: dict[str, list[list[Patch]]] = {}

    def body(system: System) -> Outcome:
        trace = load()
        if repeat > 1 and trace.start:
            raise ValueError("repeating a trace needs an empty start")
        if system.name not in prepared:
            prepared[system.name] = system.prepare_trace(trace.start, trace.txns)
        return run_trace(system, trace, prepared[system.name], repeat)

    return Case(case_id, title, "text", "avgUpdateSize", body, prepare=load, **options)


def trace_cases(traces_dir: Path) -> list[Case]:
    cases: list[Case] = []
    paper = traces_dir / "sequential" / DEFAULT_TRACE.name
    if paper.exists():
        cases.append(
            trace_case(
                "B4", "Apply real-world editing dataset", paper, floor=True, max_runs=3, quick=True
            )
        )
        cases.append(
            trace_case(
                "B4x10",
                f"Apply real-world editing dataset {B4_REPEAT} times",
                paper,
                repeat=B4_REPEAT,
                max_runs=1,
                floor_note="str slicing is quadratic: a 1 MB string copied 2.6 million times",
            )
        )
    for path in trace_files(traces_dir):
        if path == paper:
            continue  # that is B4
        name = trace_name(path)
        cases.append(
            trace_case(
                f"T:{name}",
                "Apply real-world editing trace",
                path,
                floor=True,
                quick=name.startswith("friendsforever"),
            )
        )
    return cases


# ---- M1: merging two replicas that edited offline --------------------------------------------


def merge_replicas(
    system: System, base: str, edits_a: Sequence[TextOp], edits_b: Sequence[TextOp]
) -> tuple[Replica, Replica]:
    """M1's two replicas: ``base`` shared, then each one's edits made offline."""
    a = system.create(1)
    a.insert_text(0, base)
    b = system.create(2)
    b.apply_update(a.encode_state())
    for op in edits_a:  # one transaction per keystroke, as an editor makes them
        apply_text_op(a, op)
    for op in edits_b:
        apply_text_op(b, op)
    return a, b


def merge_both(a: Replica, b: Replica) -> tuple[float, tuple[bytes, bytes], str, str]:
    """M1's timed part: each replica's diff for the other computed and applied, both texts
    read back. Seconds taken, the two diffs (for a, for b) and the two texts."""
    gc.collect()
    t0 = perf_counter()
    for_a = b.diff(a.version())
    for_b = a.diff(b.version())
    a.apply_update(for_a)
    b.apply_update(for_b)
    text_a = a.text()
    text_b = b.text()
    return perf_counter() - t0, (for_a, for_b), text_a, text_b


def run_merge(
    system: System, base: str, edits_a: Sequence[TextOp], edits_b: Sequence[TextOp]
) -> Outcome:
    a, b = merge_replicas(system, base, edits_a, edits_b)
    time_s, (for_a, for_b), text_a, text_b = merge_both(a, b)
    update_size = (len(for_a) + len(for_b)) / 2
    encode_s, state, parse_s, parsed_ok = _encode_and_parse(system, a, "text", text_a)
    return Outcome(
        time_s, update_size, encode_s, len(state), parse_s, text_a == text_b and parsed_ok, state
    )


def _single_char_edits(gen: Gen, length: int, count: int) -> list[TextOp]:
    ops: list[TextOp] = []
    for _ in range(count):
        if length == 0 or gen.coin():
            ops.append((gen.between(0, length), chr(gen.between(97, 122)), 0))
            length += 1
        else:
            ops.append((gen.between(0, length - 1), "", 1))
            length -= 1
    return ops


MergeInput = tuple[str, list[TextOp], list[TextOp]]


def merge_case(seed: int, text_len: int = MERGE_TEXT, edits: int = MERGE_EDITS) -> Case:
    @cache
    def inputs() -> MergeInput:
        gen = Gen(f"{seed}:M1")
        base = gen.word(text_len, text_len)
        return (
            base,
            _single_char_edits(gen, text_len, edits),
            _single_char_edits(gen, text_len, edits),
        )

    def body(system: System) -> Outcome:
        return run_merge(system, *inputs())

    title = f"Merge 2 replicas with {edits:,} concurrent 1-char edits each ({text_len:,} chars)"
    return Case("M1", title, "text", "updateSize", body, quick=True, prepare=inputs)


def all_cases(n: int = N, seed: int = SEED, traces_dir: Path | None = None) -> list[Case]:
    from benchmarks.traces import TRACES_DIR

    return [
        *b1_cases(n, seed),
        *b2_cases(n, seed),
        *b3_cases(n),
        *trace_cases(traces_dir or TRACES_DIR),
        merge_case(seed),
    ]
