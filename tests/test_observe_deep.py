"""observe_deep: one call per transaction with the events of a container's whole subtree,
each with the path from the observed container down to the changed one."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crdtsync


def _recorder(container: Any) -> list[list[tuple[str, tuple[Any, ...], Any]]]:
    calls: list[list[tuple[str, tuple[Any, ...], Any]]] = []
    container.observe_deep(
        lambda events: calls.append([(type(e).__name__, e.path, e.target) for e in events])
    )
    return calls


def test_local_edits_at_every_depth_arrive_in_one_call_per_transaction() -> None:
    doc = crdtsync.Doc(1)
    board = doc.map("board")
    calls = _recorder(board)
    with doc.transaction():
        cards = board.list("cards")
        card = cards.append_container(crdtsync.LWWMap)
        card.text("title").insert(0, "milk")
        card.counter("votes").increment(2)
        card.set("tags").add("food")
    assert len(calls) == 1
    assert [(name, path) for name, path, _ in calls[0]] == [
        ("MapEvent", ()),
        ("ListEvent", ("cards",)),
        ("MapEvent", ("cards", 0)),
        ("TextEvent", ("cards", 0, "title")),
        ("CounterEvent", ("cards", 0, "votes")),
        ("SetEvent", ("cards", 0, "tags")),
    ]
    assert calls[0][3][2] is card.text("title")
    card.text("title").insert(4, "!")
    assert [(n, p) for n, p, _ in calls[1]] == [("TextEvent", ("cards", 0, "title"))]


def test_paths_hold_the_indices_after_the_transaction_and_remote_changes_arrive() -> None:
    a, b = crdtsync.Doc(1), crdtsync.Doc(2)
    cards = a.list("cards")
    for name in ["x", "y", "z"]:
        cards.append_container(crdtsync.LWWMap)["name"] = name
    b.apply_update(a.get_update())
    calls = _recorder(b.list("cards"))
    with a.transaction():
        cards.insert(0, "first")  # shifts the cards by one
        cards[3]["name"] = "Z"
    b.apply_update(a.get_update(b.version))
    assert [(n, p) for n, p, _ in calls[-1]] == [("ListEvent", ()), ("MapEvent", (3,))]
    assert b.list("cards")[3]["name"] == "Z"


def test_a_removed_child_is_not_reported_to_its_ancestors_but_to_itself() -> None:
    doc = crdtsync.Doc(1)
    root = doc.map("root")
    title = root.map("card").text("title")
    title.insert(0, "hello")
    deep = _recorder(root)
    own: list[Any] = []
    title.observe(own.append)
    del root["card"]
    assert [(n, p) for n, p, _ in deep[-1]] == [("MapEvent", ())]
    assert own and own[-1].delta == [{"delete": 5}]


def test_unsubscribe_and_a_failing_callback() -> None:
    doc = crdtsync.Doc(1)
    m = doc.map("m")
    errors: list[Exception] = []
    doc.on_callback_error(errors.append)

    def boom(events: list[Any]) -> None:
        raise RuntimeError("boom")

    stop_boom = m.observe_deep(boom)
    calls = _recorder(m)
    with pytest.raises(RuntimeError, match="boom"):
        m.text("t").insert(0, "a")  # a local edit re-raises it once every callback ran
    assert len(errors) == 1 and len(calls) == 1
    stop_boom()
    stop_boom()  # a second call does nothing
    m.text("t").insert(0, "b")
    assert len(errors) == 1 and len(calls) == 2
    assert doc._deep == 1


_steps = st.lists(
    st.tuples(st.sampled_from(["new", "edit", "delete", "plain"]), st.integers(0, 10)),
    max_size=25,
)


@settings(max_examples=40)
@given(_steps)
def test_every_path_leads_to_the_target(steps: list[tuple[str, int]]) -> None:
    """Whatever is edited, each path followed from the observed container leads to the
    event's target, and every changed reachable container is reported."""
    doc = crdtsync.Doc(1)
    root = doc.map("root")
    calls: list[list[Any]] = []
    root.observe_deep(calls.append)
    containers: list[Any] = [root]
    for op, n in steps:
        target = containers[n % len(containers)]
        before, shown = len(calls), root.to_py()
        try:
            if op == "new":
                if isinstance(target, crdtsync.LWWMap):
                    child: Any = target.map(f"k{n % 3}") if n % 2 else target.list(f"k{n % 3}")
                elif isinstance(target, crdtsync.List):
                    child = target.insert_container(
                        n % (len(target) + 1), crdtsync.Text if n % 2 else crdtsync.LWWMap
                    )
                else:
                    continue
                containers.append(child)
            elif op == "edit":
                if isinstance(target, crdtsync.Text):
                    target.insert(0, "x")
                elif isinstance(target, crdtsync.List):
                    target.append(n)
                else:
                    target[f"v{n % 2}"] = n
            elif op == "delete":
                if isinstance(target, crdtsync.LWWMap) and len(target):
                    del target[next(iter(target))]
                elif isinstance(target, crdtsync.List) and len(target):
                    del target[n % len(target)]
                else:
                    continue
            else:
                if isinstance(target, crdtsync.LWWMap):
                    target[f"k{n % 3}"] = n
                else:
                    continue
        except TypeError:
            continue  # another kind of container at that key
        reachable = _reachable(root)
        if any(c is target for c in reachable) and root.to_py() != shown:
            assert len(calls) == before + 1
        for event in calls[-1] if len(calls) > before else []:
            assert _follow(root, event.path) is event.target


def _follow(container: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        container = container[step]
    return container


def _reachable(container: Any) -> list[Any]:
    out = [container]
    if isinstance(container, crdtsync.LWWMap):
        values = [container[k] for k in container]
    elif isinstance(container, crdtsync.List):
        values = list(container)
    else:
        values = []
    for value in values:
        if isinstance(value, crdtsync.LWWMap | crdtsync.List | crdtsync.Text):
            out.extend(_reachable(value))
    return out
