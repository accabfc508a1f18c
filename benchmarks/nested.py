"""Nested documents: a notebook (N1) and a board (N2) edited by two replicas offline, merged.

Both cases keep a root map holding a list of records (maps), each record holding a text,
plain values and a nested map or list, and edit *inside* those children:

- **N1 notebook**: replica A builds a list ``cells`` of 1,000 cells, each a map with a
  ``source`` text (five lines of code, about 200 characters, typed a line at a time), a
  ``cell_type`` and a ``metadata`` map (``execution_count``, ``collapsed``, ``tags``), one
  transaction per cell. B loads A's state. Then, offline, A makes four text edits in each
  of half the cells, and B sets 400 metadata fields of random cells and makes four text
  edits in 100 cells, half of them cells A edits too (concurrent edits inside one text).
- **N2 board**: A builds a list ``cards`` of 10,000 cards, each a map with a ``title`` text,
  plain ``status``, ``assignee`` and ``points`` values and a ``tags`` list, one transaction
  per card; B loads A's state; then 10,000 random field edits, half on each replica (a new
  status, assignee or points, an edit of the title, a tag appended), some of them on the
  same field of the same card on both sides.

Every edit of the offline phase is its own transaction and reaches its target from the
root (``root[list][i][field]``), as an application holding only the document would. Then
each replica computes what the other lacks from the other's version (crdtsync
``get_update(version)``, pycrdt ``get_update(state_vector)``, loro
``export(Updates(vv))``) and the other applies it.

Metrics (per run; the table shows medians):

==========  ================================================================================
build       A building the whole list, one transaction per record
edit        A's offline edits, then B's (both timed, summed)
diff        computing both deltas
merge       applying both deltas (B applies A's, A applies B's)
encode      the whole merged document (crdtsync and pycrdt ``get_update()``, loro
            ``export(Snapshot())``)
load        that state loaded into a fresh document *and read back as plain Python*
            (``to_py()`` / ``get_deep_value()``), so lazy loading cannot look free
state       bytes of that state; ``delta A->B``, ``delta B->A``: bytes of each delta
memUsed     memory of the loaded document: tracemalloc for crdtsync (pure Python), RSS
            growth of a fresh child process for pycrdt and loro (see benchmarks/memory.py)
==========  ================================================================================

Checks, outside every timed region: after the merge both replicas' plain-Python
structures are equal, and so is the loaded document's; and the merged structure is what the
edits imply, for every system. A field only one side wrote holds that side's last value; one
both wrote holds one of the two; a list holds the base items, then both sides' appends
(each side's in its order); a text edited by one side is that side's text. A text edited by
both: A inserts only upper-case letters, B only digits and the base has neither, so the
merged text without B's characters must be A's text minus the base characters B deleted
(and the other way round), and its length is exact. The generator replays each side's edits
on plain Python lists of characters tagged with their origin to know those figures.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.nested                  # 5 runs of N1, 3 of N2 (~2.5 min)
    .venv/bin/python -m benchmarks.nested --quick          # smaller sizes, 3 runs (~20 s)
    .venv/bin/python -m benchmarks.nested --systems crdtsync,loro --runs 3 --json out.json
    .venv/bin/python -m benchmarks.nested --profile merge  # crdtsync's merge under cProfile

Inputs come from fixed seeds (one per case), replica ids are fixed (those of
benchmarks/systems.py), the systems' order rotates every run, and the harness's own objects
are set aside with ``gc.freeze()`` while a system runs, as in the main suite.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import random
import statistics
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.memory import child_rss, print_rss_growth, traced_load
from benchmarks.report import format_ratio, format_value
from benchmarks.systems import ALL_SYSTEMS

SEED = 42
FULL_RUNS = 5
QUICK_RUNS = 3
SYSTEMS = ("crdtsync", "pycrdt", "loro")
STAGES = ("build", "edit", "diff", "merge", "encode", "load")
SIZES = ("state", "delta A->B", "delta B->A")
METRICS = (*STAGES, *SIZES, "memUsed")

# Alphabets: the base texts use neither of the two insert alphabets, so the merged text
# tells whose every character is.
A_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
B_CHARS = "0123456789"
WORDS = (
    "data", "frame", "value", "mean", "plot", "axis", "model", "fit", "train", "load", "read",
    "csv", "path", "result", "score", "index", "label", "array", "shape", "print", "sum",
    "count", "items", "key", "list", "dict", "filter", "apply", "group", "sort", "merge",
    "join", "split", "test", "check", "config", "params", "batch", "epoch", "loss", "step",
    "norm", "grid", "cache", "query",
)  # fmt: skip

Op = tuple[str, int, str, Any]
"""One offline edit, one transaction: (kind, record index, field, argument).

``("text", i, f, (pos, ndel, ins))`` edits the text at field ``f`` (delete ``ndel`` at
``pos``, then insert ``ins`` there); ``("set", i, f, value)`` writes a plain field;
``("map", i, f, (key, value))`` writes a key of the nested map ``f``; ``("push", i, f,
value)`` appends to the nested list ``f``.
"""


@dataclass
class Record:
    """One cell or card as first built."""

    values: dict[str, Any]  # plain fields
    texts: dict[str, list[str]]  # text fields, as the chunks typed at the end
    maps: dict[str, dict[str, Any]] = field(default_factory=dict)  # nested maps of values
    lists: dict[str, list[Any]] = field(default_factory=dict)  # nested lists of values


@dataclass
class TextCheck:
    view_a: str  # the merged text without B's characters
    view_b: str  # the merged text without A's characters
    length: int


@dataclass
class CaseInput:
    root: str
    root_values: dict[str, Any]
    list_key: str
    records: list[Record]
    ops_a: list[Op]
    ops_b: list[Op]
    texts: dict[tuple[int, str], TextCheck]  # every text edited by either side
    allowed: dict[tuple[Any, ...], list[Any]]  # (i, f) or (i, f, key) written by either side
    appended: dict[tuple[int, str], tuple[list[Any], list[Any]]]  # A's and B's pushes
    both_texts: int = 0  # texts edited on both sides
    both_values: int = 0  # fields written on both sides


@dataclass(frozen=True)
class Case:
    id: str
    title: str  # formatted with n, the size
    make: Callable[[random.Random, int], CaseInput]
    size: int  # full run
    quick_size: int
    #: Runs at most this many times unless --runs says otherwise (N2 takes pycrdt about
    #: 20 s a run with its checks, and the full run must stay within about 3 minutes).
    max_runs: int | None = None


# ---- generating the inputs (plain Python, outside every timed region) -------------------


class _Side:
    """One replica's view of the records while its offline edits are generated."""

    def __init__(self, owner: int, records: list[Record], rng: random.Random) -> None:
        self.owner = owner  # 1 for A, 2 for B
        self.alphabet = A_CHARS if owner == 1 else B_CHARS
        self.records = records
        self.rng = rng
        self.ops: list[Op] = []
        self.tokens: dict[tuple[int, str], list[tuple[str, int, int]]] = {}
        self.written: dict[tuple[Any, ...], Any] = {}
        self.pushed: dict[tuple[int, str], list[Any]] = {}
        self._made = 0

    def text_tokens(self, i: int, name: str) -> list[tuple[str, int, int]]:
        """The text as (char, owner, number): owner 0 is the base, numbered by position."""
        key = (i, name)
        if key not in self.tokens:
            base = "".join(self.records[i].texts[name])
            self.tokens[key] = [(c, 0, j) for j, c in enumerate(base)]
        return self.tokens[key]

    def edit_text(self, i: int, name: str) -> None:
        tokens = self.text_tokens(i, name)
        rng = self.rng
        if tokens and rng.random() < 0.3:
            pos = rng.randrange(len(tokens))
            ndel = min(rng.randint(1, 6), len(tokens) - pos)
            del tokens[pos : pos + ndel]
            self.ops.append(("text", i, name, (pos, ndel, "")))
            return
        pos = rng.randrange(len(tokens) + 1)
        ins = "".join(rng.choice(self.alphabet) for _ in range(rng.randint(1, 8)))
        tokens[pos:pos] = [(c, self.owner, self._made + k) for k, c in enumerate(ins)]
        self._made += len(ins)
        self.ops.append(("text", i, name, (pos, 0, ins)))

    def set_value(self, i: int, name: str, value: Any) -> None:
        self.written[(i, name)] = value
        self.ops.append(("set", i, name, value))

    def set_in_map(self, i: int, name: str, key: str, value: Any) -> None:
        self.written[(i, name, key)] = value
        self.ops.append(("map", i, name, (key, value)))

    def push(self, i: int, name: str, value: Any) -> None:
        self.pushed.setdefault((i, name), []).append(value)
        self.ops.append(("push", i, name, value))


def _expectations(
    root: str,
    root_values: dict[str, Any],
    list_key: str,
    records: list[Record],
    a: _Side,
    b: _Side,
) -> CaseInput:
    """What the merge of A's and B's edits must hold (see the module docstring)."""
    texts: dict[tuple[int, str], TextCheck] = {}
    both_texts = len(a.tokens.keys() & b.tokens.keys())
    for key in a.tokens.keys() | b.tokens.keys():
        ta, tb = a.text_tokens(*key), b.text_tokens(*key)
        kept_a = {n for _, owner, n in ta if owner == 0}  # base characters A did not delete
        kept_b = {n for _, owner, n in tb if owner == 0}
        view_a = "".join(c for c, owner, n in ta if owner != 0 or n in kept_b)
        view_b = "".join(c for c, owner, n in tb if owner != 0 or n in kept_a)
        length = len(view_a) + sum(1 for _, owner, _ in tb if owner == 2)
        texts[key] = TextCheck(view_a, view_b, length)
    allowed: dict[tuple[Any, ...], list[Any]] = {}
    for key in a.written.keys() | b.written.keys():
        allowed[key] = [side.written[key] for side in (a, b) if key in side.written]
    appended = {
        key: (a.pushed.get(key, []), b.pushed.get(key, []))
        for key in a.pushed.keys() | b.pushed.keys()
    }
    return CaseInput(
        root,
        root_values,
        list_key,
        records,
        a.ops,
        b.ops,
        texts,
        allowed,
        appended,
        both_texts=both_texts,
        both_values=sum(1 for v in allowed.values() if len(v) == 2),
    )


def _words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(WORDS) for _ in range(n)]


def _code_line(rng: random.Random) -> str:
    w = _words(rng, 6)
    return f"{w[0]}_{w[1]} = {w[2]}.{w[3]}({w[4]}, {w[5]}=true)\n"


def notebook(rng: random.Random, n: int) -> CaseInput:
    """N1: ``n`` cells; A edits the sources of half, B metadata and a few sources."""
    tags = ["parameters", "skip", "slow", "plot", "todo"]
    records = [
        Record(
            values={"cell_type": "code", "id": f"cell-{i}"},
            texts={"source": [_code_line(rng) for _ in range(5)]},
            maps={"metadata": {"execution_count": i + 1, "collapsed": False, "tags": []}},
        )
        for i in range(n)
    ]
    a, b = _Side(1, records, rng), _Side(2, records, rng)
    cells_a = rng.sample(range(n), n // 2)
    for i in cells_a:
        for _ in range(4):
            a.edit_text(i, "source")
    # B: metadata of random cells, then sources of n/10 cells, half of them also A's.
    for _ in range(n * 2 // 5):
        i = rng.randrange(n)
        what = rng.random()
        if what < 0.5:
            b.set_in_map(i, "metadata", "execution_count", rng.randint(1, 10_000))
        elif what < 0.75:
            b.set_in_map(i, "metadata", "collapsed", rng.random() < 0.5)
        else:
            b.set_in_map(i, "metadata", "tags", rng.sample(tags, rng.randint(1, 2)))
    a_set = set(cells_a)
    others = [i for i in range(n) if i not in a_set]
    shared = rng.sample(cells_a, max(1, n // 20))
    for i in shared + rng.sample(others, max(1, n // 20)):
        for _ in range(4):
            b.edit_text(i, "source")
    return _expectations("nb", {"nbformat": 4, "kernel": "python3"}, "cells", records, a, b)


def board(rng: random.Random, n: int) -> CaseInput:
    """N2: ``n`` cards and ``n`` random field edits, half on each replica."""
    statuses = ["todo", "doing", "review", "done"]
    people = ["ann", "bob", "cleo", "dev", "eli", "fay"]
    records = [
        Record(
            values={
                "status": rng.choice(statuses),
                "assignee": rng.choice(people),
                "points": rng.choice((1, 2, 3, 5, 8)),
            },
            texts={"title": [" ".join(_words(rng, rng.randint(3, 6)))]},
            lists={"tags": _words(rng, rng.randint(0, 2))},
        )
        for _ in range(n)
    ]
    a, b = _Side(1, records, rng), _Side(2, records, rng)
    for k in range(n):
        side = a if k % 2 == 0 else b
        i = rng.randrange(n)
        what = rng.random()
        if what < 0.3:
            side.set_value(i, "status", rng.choice(statuses))
        elif what < 0.5:
            side.set_value(i, "assignee", rng.choice(people))
        elif what < 0.7:
            side.set_value(i, "points", rng.choice((1, 2, 3, 5, 8, 13)))
        elif what < 0.9:
            side.edit_text(i, "title")
        else:
            side.push(i, "tags", f"{'AB'[side.owner - 1]}:{k}")
    return _expectations("board", {"name": "sprint", "version": 1}, "cards", records, a, b)


CASES = (
    Case("N1", "Notebook: {n:,} cells, sources and metadata edited on 2 replicas", notebook,
         1_000, 200),
    Case("N2", "Board: {n:,} cards, {n:,} field edits on 2 replicas", board, 10_000, 2_000,
         max_runs=3),
)  # fmt: skip


# ---- checking a merged structure -------------------------------------------------------


def problems(inp: CaseInput, got: Any, limit: int = 5) -> list[str]:
    """What is wrong with ``got`` (the root as plain Python) after the merge; [] if nothing."""
    out: list[str] = []

    def bad(msg: str) -> bool:
        out.append(msg)
        return len(out) >= limit

    if not isinstance(got, dict):
        return [f"the root is a {type(got).__name__}, not a dict"]
    want_keys = set(inp.root_values) | {inp.list_key}
    if set(got) != want_keys:
        return [f"root keys {sorted(got)} != {sorted(want_keys)}"]
    for k, v in inp.root_values.items():
        if got[k] != v and bad(f"root[{k!r}] = {got[k]!r}, not {v!r}"):
            return out
    items = got[inp.list_key]
    if not isinstance(items, list) or len(items) != len(inp.records):
        n = len(items) if isinstance(items, list) else type(items).__name__
        return [f"{inp.list_key}: {n} records, not {len(inp.records)}"]
    for i, (rec, item) in enumerate(zip(inp.records, items, strict=True)):
        where = f"{inp.list_key}[{i}]"
        names = set(rec.values) | set(rec.texts) | set(rec.maps) | set(rec.lists)
        if not isinstance(item, dict) or set(item) != names:
            if bad(f"{where} = {item!r}"):
                return out
            continue
        for name, value in rec.values.items():
            allowed = inp.allowed.get((i, name), [value])
            if item[name] not in allowed and bad(f"{where}.{name} = {item[name]!r} ∉ {allowed}"):
                return out
        for name, chunks in rec.texts.items():
            text = item[name]
            check = inp.texts.get((i, name))
            if check is None:
                base = "".join(chunks)
                check = TextCheck(base, base, len(base))
            if not isinstance(text, str):
                ok = False
            else:
                ok = (
                    len(text) == check.length
                    and "".join(c for c in text if c not in B_CHARS) == check.view_a
                    and "".join(c for c in text if c not in A_CHARS) == check.view_b
                )
            if not ok and bad(f"{where}.{name} = {text!r}, expected {check}"):
                return out
        for name, base_map in rec.maps.items():
            sub = item[name]
            if not isinstance(sub, dict) or set(sub) != set(base_map):
                if bad(f"{where}.{name} = {sub!r}"):
                    return out
                continue
            for key, value in base_map.items():
                allowed = inp.allowed.get((i, name, key), [value])
                if sub[key] not in allowed and bad(f"{where}.{name}.{key} = {sub[key]!r}"):
                    return out
        for name, base_list in rec.lists.items():
            values = item[name]
            pushed_a, pushed_b = inp.appended.get((i, name), ([], []))
            ok = (
                isinstance(values, list)
                and values[: len(base_list)] == base_list
                and len(values) == len(base_list) + len(pushed_a) + len(pushed_b)
                and [v for v in values[len(base_list) :] if v in pushed_a] == pushed_a
                and [v for v in values[len(base_list) :] if v in pushed_b] == pushed_b
            )
            if not ok and bad(f"{where}.{name} = {values!r}, +A {pushed_a}, +B {pushed_b}"):
                return out
    return out


# ---- the systems ---------------------------------------------------------------------------


class NestedDoc(ABC):
    """One replica of one system, holding one root map."""

    def __init__(self, root: str, replica_id: int) -> None:
        self.root = root

    @abstractmethod
    def build(self, root_values: dict[str, Any], list_key: str, records: list[Record]) -> None:
        """Write the root values, create the list, append every record (one transaction
        each, texts typed a chunk at a time at the end)."""

    @abstractmethod
    def edit(self, list_key: str, ops: Sequence[Op]) -> None:
        """Apply offline edits, one transaction each, reaching each from the root."""

    @abstractmethod
    def to_py(self) -> Any:
        """The root map as plain Python."""

    @abstractmethod
    def encode_state(self) -> bytes: ...

    @abstractmethod
    def version(self) -> Any: ...

    @abstractmethod
    def diff(self, since: Any) -> bytes: ...

    @abstractmethod
    def apply_update(self, update: bytes) -> None: ...


class CrdtsyncDoc(NestedDoc):
    def __init__(self, root: str, replica_id: int) -> None:
        import crdtsync

        super().__init__(root, replica_id)
        self.doc = crdtsync.Doc(replica_id=replica_id)

    def build(self, root_values: dict[str, Any], list_key: str, records: list[Record]) -> None:
        from crdtsync import LWWMap

        doc = self.doc
        root = doc.map(self.root)
        with doc.transaction():
            for key, value in root_values.items():
                root[key] = value
            items = root.list(list_key)
        transaction = doc.transaction
        append_container = items.append_container
        for rec in records:
            with transaction():
                item = append_container(LWWMap)
                for key, value in rec.values.items():
                    item[key] = value
                for key, chunks in rec.texts.items():
                    text = item.text(key)
                    for chunk in chunks:
                        text.insert(len(text), chunk)
                for key, entries in rec.maps.items():
                    sub = item.map(key)
                    for k, v in entries.items():
                        sub[k] = v
                for key, values in rec.lists.items():
                    item.list(key).extend(values)

    def edit(self, list_key: str, ops: Sequence[Op]) -> None:
        transaction = self.doc.transaction
        items = self.doc.map(self.root)[list_key]
        for kind, i, name, arg in ops:
            with transaction():
                if kind == "text":
                    pos, ndel, ins = arg
                    text = items[i][name]
                    if ndel:
                        text.delete(pos, ndel)
                    if ins:
                        text.insert(pos, ins)
                elif kind == "set":
                    items[i][name] = arg
                elif kind == "map":
                    items[i][name][arg[0]] = arg[1]
                else:
                    items[i][name].append(arg)

    def to_py(self) -> Any:
        return self.doc.to_py()[self.root]

    def encode_state(self) -> bytes:
        return self.doc.get_update()

    def version(self) -> Any:
        return self.doc.version

    def diff(self, since: Any) -> bytes:
        return self.doc.get_update(since)

    def apply_update(self, update: bytes) -> None:
        self.doc.apply_update(update)


class PycrdtDoc(NestedDoc):
    def __init__(self, root: str, replica_id: int) -> None:
        import pycrdt

        super().__init__(root, replica_id)
        self.doc: Any = pycrdt.Doc(client_id=replica_id)

    def _root(self) -> Any:
        import pycrdt

        return self.doc.get(self.root, type=pycrdt.Map)

    def build(self, root_values: dict[str, Any], list_key: str, records: list[Record]) -> None:
        from pycrdt import Array, Map, Text

        doc = self.doc
        root = self._root()
        with doc.transaction():
            for key, value in root_values.items():
                root[key] = value
            root[list_key] = Array()
        items = root[list_key]
        transaction = doc.transaction
        for rec in records:
            with transaction():
                fields: dict[str, Any] = dict(rec.values)
                for key in rec.texts:
                    fields[key] = Text()
                for key, entries in rec.maps.items():
                    fields[key] = Map(entries)
                for key, values in rec.lists.items():
                    fields[key] = Array(values)
                item = Map(fields)
                items.append(item)  # the prelim map is integrated in place
                for key, chunks in rec.texts.items():
                    text = item[key]
                    for chunk in chunks:  # ASCII: pycrdt's UTF-8 offsets are characters
                        text.insert(len(text), chunk)

    def edit(self, list_key: str, ops: Sequence[Op]) -> None:
        transaction = self.doc.transaction
        items = self._root()[list_key]
        for kind, i, name, arg in ops:
            with transaction():
                if kind == "text":
                    pos, ndel, ins = arg
                    text = items[i][name]
                    if ndel:
                        del text[pos : pos + ndel]
                    if ins:
                        text.insert(pos, ins)
                elif kind == "set":
                    items[i][name] = arg
                elif kind == "map":
                    items[i][name][arg[0]] = arg[1]
                else:
                    items[i][name].append(arg)

    def to_py(self) -> Any:
        return self._root().to_py()

    def encode_state(self) -> bytes:
        return self.doc.get_update()  # type: ignore[no-any-return]

    def version(self) -> Any:
        return self.doc.get_state()

    def diff(self, since: Any) -> bytes:
        return self.doc.get_update(since)  # type: ignore[no-any-return]

    def apply_update(self, update: bytes) -> None:
        self.doc.apply_update(update)


class LoroDocument(NestedDoc):
    def __init__(self, root: str, replica_id: int) -> None:
        import loro as loro_module

        super().__init__(root, replica_id)
        loro: Any = loro_module  # its constructors are untyped
        self.doc: Any = loro.LoroDoc()
        self.doc.peer_id = replica_id

    def build(self, root_values: dict[str, Any], list_key: str, records: list[Record]) -> None:
        import loro as loro_module

        loro: Any = loro_module
        LoroList, LoroMap, LoroText = loro.LoroList, loro.LoroMap, loro.LoroText
        doc = self.doc
        root = doc.get_map(self.root)
        for key, value in root_values.items():
            root.insert(key, value)
        items = root.insert_container(list_key, LoroList())
        doc.commit()
        commit = doc.commit
        push_container = items.push_container
        for rec in records:
            item = push_container(LoroMap())
            for key, value in rec.values.items():
                item.insert(key, value)
            for key, chunks in rec.texts.items():
                text = item.insert_container(key, LoroText())
                for chunk in chunks:
                    text.insert(text.len_unicode, chunk)
            for key, entries in rec.maps.items():
                sub = item.insert_container(key, LoroMap())
                for k, v in entries.items():
                    sub.insert(k, v)
            for key, values in rec.lists.items():
                sub = item.insert_container(key, LoroList())
                for v in values:
                    sub.push(v)
            commit()  # ends the record's transaction

    def edit(self, list_key: str, ops: Sequence[Op]) -> None:
        commit = self.doc.commit
        items = self.doc.get_map(self.root).get(list_key).container
        for kind, i, name, arg in ops:
            item = items.get(i).container
            if kind == "text":
                pos, ndel, ins = arg
                text = item.get(name).container
                if ndel:
                    text.delete(pos, ndel)
                if ins:
                    text.insert(pos, ins)
            elif kind == "set":
                item.insert(name, arg)
            elif kind == "map":
                item.get(name).container.insert(arg[0], arg[1])
            else:
                item.get(name).container.push(arg)
            commit()

    def to_py(self) -> Any:
        return self.doc.get_deep_value()[self.root]

    def encode_state(self) -> bytes:
        import loro

        return self.doc.export(loro.ExportMode.Snapshot())  # type: ignore[no-any-return]

    def version(self) -> Any:
        return self.doc.oplog_vv

    def diff(self, since: Any) -> bytes:
        import loro

        mode: Any = loro.ExportMode.Updates(since)
        return self.doc.export(mode)  # type: ignore[no-any-return]

    def apply_update(self, update: bytes) -> None:
        self.doc.import_(update)


DOCS: dict[str, type[NestedDoc]] = {
    "crdtsync": CrdtsyncDoc,
    "pycrdt": PycrdtDoc,
    "loro": LoroDocument,
}


def create(system: str, root: str, number: int) -> NestedDoc:
    """A new empty replica, the case's ``number``-th (which fixes its replica id)."""
    return DOCS[system](root, ALL_SYSTEMS[system].replica_id(number))


def load(system: str, root: str, state: bytes) -> tuple[NestedDoc, Any]:
    """A fresh replica loaded from ``state``, and its root read back as plain Python."""
    doc = create(system, root, 1_000_000)
    doc.apply_update(state)
    return doc, doc.to_py()


# ---- one run -----------------------------------------------------------------------------


@dataclass
class RunResult:
    metrics: dict[str, float]
    state: bytes
    problems: list[str]


class Stages:
    """Times stages, each after a full collection (untimed: as the main suite does before
    its merge and parse timings); profiles the one named ``profile`` if any (cProfile)."""

    def __init__(self, profile: str | None = None) -> None:
        self.times: dict[str, float] = {}
        self.profile = profile
        self.profiler: cProfile.Profile | None = None

    def run(self, stage: str, work: Callable[[], Any]) -> Any:
        profiler = None
        if stage == self.profile:  # "edit" runs twice: one profile for both
            profiler = self.profiler = self.profiler or cProfile.Profile()
        gc.collect()
        t0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        out = work()
        if profiler is not None:
            profiler.disable()
        self.times[stage] = self.times.get(stage, 0.0) + time.perf_counter() - t0
        return out


def run_case(system: str, inp: CaseInput, stages: Stages | None = None) -> RunResult:
    """Build on A, sync B, edit both offline, merge, encode and load; check everything."""
    timed = stages or Stages()
    a = create(system, inp.root, 1)
    b = create(system, inp.root, 2)
    timed.run("build", lambda: a.build(inp.root_values, inp.list_key, inp.records))
    b.apply_update(a.encode_state())  # the initial sync, untimed (checked with the merge)

    timed.run("edit", lambda: a.edit(inp.list_key, inp.ops_a))
    timed.run("edit", lambda: b.edit(inp.list_key, inp.ops_b))

    def deltas() -> tuple[bytes, bytes]:
        return a.diff(b.version()), b.diff(a.version())

    to_b, to_a = timed.run("diff", deltas)

    def merge() -> None:
        b.apply_update(to_b)
        a.apply_update(to_a)

    timed.run("merge", merge)
    state = timed.run("encode", a.encode_state)
    loaded, loaded_py = timed.run("load", lambda: load(system, inp.root, state))
    del loaded

    found: list[str] = []
    merged_a, merged_b = a.to_py(), b.to_py()
    if merged_a != merged_b:
        found.append("A and B differ after the merge")
    if loaded_py != merged_a:
        found.append("the loaded document differs from A")
    found += [f"A: {p}" for p in problems(inp, merged_a)]
    if merged_a != merged_b:
        found += [f"B: {p}" for p in problems(inp, merged_b)]
    metrics = dict(timed.times)
    metrics["state"] = len(state)
    metrics["delta A->B"] = len(to_b)
    metrics["delta B->A"] = len(to_a)
    return RunResult(metrics, state, found)


# ---- memory -----------------------------------------------------------------------------


def traced_bytes(system: str, root: str, state: bytes) -> int:
    """Python memory held by a replica loaded from ``state`` and read back (tracemalloc)."""
    return traced_load(lambda: load(system, root, state))


def rss_bytes(system: str, root: str, state: bytes, timeout: float = 300) -> int:
    """RSS growth of a fresh child process that loads ``state`` (raises on failure)."""
    return child_rss(["benchmarks.nested", "--memory-child", system, root], state, timeout)


def memory_child(system: str, root: str, state_file: str) -> int:
    state = Path(state_file).read_bytes()
    # Warm up: the first document pays for imports, caches and interned names.
    warm = create(system, root, 1)
    warm.build({"warm": 1}, "items", [Record({"a": 1}, {"t": ["warm"]}, {"m": {"k": 1}})])
    load(system, root, warm.encode_state())
    del warm
    return print_rss_growth(lambda: load(system, root, state))


# ---- the runner ---------------------------------------------------------------------------


@dataclass
class SystemResult:
    runs: list[dict[str, float]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    mem_traced: int | None = None
    mem_rss: int | None = None
    mem_error: str | None = None

    def median(self, metric: str) -> float | None:
        if metric == "memUsed":
            mem = self.mem_traced if self.mem_traced is not None else self.mem_rss
            return None if mem is None else float(max(mem, 0))
        values = [run[metric] for run in self.runs if metric in run]
        return statistics.median(values) if values else None


def measure(
    case: Case,
    inp: CaseInput,
    systems: list[str],
    runs: int,
    with_memory: bool,
    log: Callable[[str], None],
) -> dict[str, SystemResult]:
    results = {name: SystemResult() for name in systems}
    states: dict[str, bytes] = {}
    for run in range(runs):
        k = run % len(systems)  # rotate, so that no system always goes first
        for name in systems[k:] + systems[:k]:
            result = results[name]
            if result.error is not None:
                continue
            log(f"{case.id} {name} run {run + 1}/{runs}")
            # Don't bill a system for the previous one's garbage, and keep the inputs out
            # of the collector's way (a pure-Python library would pay for traversing them).
            gc.collect()
            gc.freeze()
            try:
                outcome = run_case(name, inp)
            except Exception as exc:  # noqa: BLE001 - one broken system must not hide the rest
                result.error = f"{type(exc).__name__}: {exc}"
                log(f"{case.id} {name} failed: {result.error}")
                continue
            finally:
                gc.unfreeze()
            result.runs.append(outcome.metrics)
            states[name] = outcome.state
            for p in outcome.problems:
                if p not in result.problems:
                    result.problems.append(p)
    if with_memory:
        for name in systems:
            state = states.pop(name, None)
            if state is None:
                continue
            log(f"{case.id} {name} memUsed")
            result = results[name]
            try:
                if name == "crdtsync":  # pure Python: tracemalloc sees all of it
                    result.mem_traced = traced_bytes(name, inp.root, state)
                result.mem_rss = rss_bytes(name, inp.root, state)
            except Exception as exc:  # noqa: BLE001 - a failed measurement is a note
                result.mem_error = f"{type(exc).__name__}: {exc}"
    return results


def format_metric(metric: str, value: float) -> str:
    if metric in STAGES:
        return format_value("time", value)
    if metric == "memUsed":
        return format_value("memUsed", value)
    return format_value("docSize", value)


def table(cases: list[tuple[Case, CaseInput, dict[str, SystemResult]]], systems: list[str]) -> str:
    peers = [s for s in systems if s != "crdtsync"] if "crdtsync" in systems else []
    head = ["case (metric)", *systems, *(f"crdtsync / {p}" for p in peers)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case, _inp, results in cases:
        for metric in METRICS:
            row = [f"[{case.id}] {metric}"]
            values: dict[str, float | None] = {}
            for name in systems:
                r = results[name]
                v = r.median(metric)
                values[name] = v
                if v is not None:
                    row.append(format_metric(metric, v))
                else:
                    row.append("error" if r.error else "")
            for p in peers:
                row.append(format_ratio(values["crdtsync"], values[p]))
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def environment(
    args: argparse.Namespace, runs: dict[str, int], sizes: dict[str, int]
) -> dict[str, Any]:
    from benchmarks.run import busy_cores, cpu_model, git_commit

    busy = busy_cores()
    return {
        "mode": "quick" if args.quick else "full",
        "runs": runs,
        "seed": args.seed,
        "sizes": sizes,
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
        "platform": f"{platform.system()} {platform.machine()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": {name: ALL_SYSTEMS[name].version_string() for name in args.system_names},
        "commit": git_commit(),
        "busy_cores_at_start": None if busy is None else round(busy, 2),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.nested",
        description="Nested documents (a notebook, a board) on crdtsync, pycrdt and loro.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 3 runs (~20 s)")
    parser.add_argument("--runs", type=int, help=f"runs per case, median reported (default "
                        f"{FULL_RUNS}, N2 3; {QUICK_RUNS} with --quick)")  # fmt: skip
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated")
    parser.add_argument("--only", help="comma-separated case ids (N1, N2)")
    parser.add_argument("--size", type=int, help="records per case instead of the defaults")
    parser.add_argument("--seed", type=int, default=SEED, help=f"input seed (default {SEED})")
    parser.add_argument("--json", type=Path, help="write every run, medians and the machine")
    parser.add_argument("--no-memory", action="store_true", help="skip memUsed")
    parser.add_argument(
        "--profile",
        choices=STAGES,
        help="run crdtsync once per case with this stage under cProfile; print the top",
    )
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    args.system_names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(args.system_names) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    return args


def case_input(case: Case, seed: int, size: int) -> CaseInput:
    return case.make(random.Random(f"{seed}:{case.id}"), size)


def profile(cases: list[Case], args: argparse.Namespace) -> int:
    for case in cases:
        size = args.size or (case.quick_size if args.quick else case.size)
        inp = case_input(case, args.seed, size)
        stages = Stages(args.profile)
        gc.collect()
        gc.freeze()
        try:
            run_case("crdtsync", inp, stages)
        finally:
            gc.unfreeze()
        print(f"## {case.id}, {args.profile}: {stages.times[args.profile] * 1e3:.1f} ms\n")
        assert stages.profiler is not None
        pstats.Stats(stages.profiler, stream=sys.stdout).sort_stats("tottime").print_stats(20)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        return memory_child(*args.memory_child)
    cases = list(CASES)
    if args.only:
        wanted = {t.strip().upper() for t in args.only.split(",") if t.strip()}
        cases = [c for c in cases if c.id in wanted]
        if not cases:
            raise SystemExit(f"--only {args.only!r} matches no case (N1, N2)")
    if args.profile:
        return profile(cases, args)
    systems: list[str] = []
    skipped: dict[str, str] = {}
    for name in args.system_names:
        reason = ALL_SYSTEMS[name].unavailable()
        if reason is None:
            systems.append(name)
        else:
            skipped[name] = reason
            print(f"note: {name} skipped: {reason}", file=sys.stderr)
    if not systems:
        print("no system can run", file=sys.stderr)
        return 2
    runs = args.runs or (QUICK_RUNS if args.quick else FULL_RUNS)
    sizes = {c.id: args.size or (c.quick_size if args.quick else c.size) for c in cases}
    case_runs = {
        c.id: runs if args.runs or c.max_runs is None else min(runs, c.max_runs) for c in cases
    }
    meta = environment(args, case_runs, sizes)

    def log(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)

    from benchmarks.run import CpuMeter

    started = time.monotonic()
    meter = CpuMeter()
    done: list[tuple[Case, CaseInput, dict[str, SystemResult]]] = []
    for case in cases:
        inp = case_input(case, args.seed, sizes[case.id])
        log(
            f"{case.id}: {len(inp.records)} records, {len(inp.ops_a)} + {len(inp.ops_b)} "
            f"edits, {inp.both_texts} texts and {inp.both_values} fields edited on both sides"
        )
        results = measure(case, inp, systems, case_runs[case.id], not args.no_memory, log)
        done.append((case, inp, results))
    meta["wall_s"] = round(time.monotonic() - started, 1)
    others = meter.others()
    meta["other_cores_during_run"] = None if others is None else round(others, 2)

    failed = False
    out = [f"# Nested documents ({meta['mode']}, medians)", ""]
    out += [f"- [{c.id}] {c.title.format(n=sizes[c.id])}; {case_runs[c.id]} runs" for c in cases]
    out += [
        f"- {meta['cpu']}, {meta['nproc']} cores, {meta['python']}, "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + f", commit {meta['commit']}, wall {meta['wall_s']} s",
        "",
        table(done, systems),
        "",
    ]
    for case, _inp, results in done:
        for name, r in results.items():
            if r.error:
                failed = True
                out.append(f"- **{case.id} {name} failed**: {r.error}")
            for p in r.problems:
                failed = True
                out.append(f"- **{case.id} {name} check failed**: {p}")
            if r.mem_error:
                out.append(f"- {case.id} {name} memUsed: {r.mem_error}")
    for name, why in skipped.items():
        out.append(f"- {name} skipped: {why}")
    if others is not None and others > 0.2:
        out.append(
            f"- other processes used {others:.1f} of {os.cpu_count()} cores on average during "
            "this run: the times may be inflated"
        )
    print("\n".join(out))
    if args.json:
        payload = {
            "meta": meta,
            "systems": systems,
            "skipped": skipped,
            "cases": {
                case.id: {
                    "title": case.title.format(n=len(inp.records)),
                    "records": len(inp.records),
                    "edits": [len(inp.ops_a), len(inp.ops_b)],
                    "systems": {
                        name: {
                            "median": {m: r.median(m) for m in METRICS},
                            "runs": r.runs,
                            "memUsed": {"tracemalloc": r.mem_traced, "rss": r.mem_rss},
                            "problems": r.problems,
                            "error": r.error,
                            "memError": r.mem_error,
                        }
                        for name, r in results.items()
                    },
                }
                for case, inp, results in done
            },
        }
        args.json.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
