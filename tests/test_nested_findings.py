"""Regression tests for two bugs with nested containers found while writing the demo,
examples/todo.py and the relay tests: list events and ``in`` showed internal child
references instead of the child containers."""

from __future__ import annotations

from typing import Any

import crdtsync
from crdtsync import LWWMap


def test_list_event_delta_inserts_the_child_container() -> None:
    # crdtsync._values.ChildRef: "never a user value: users get the container itself".
    doc, peer = crdtsync.Doc(replica_id=1), crdtsync.Doc(replica_id=2)
    local: list[Any] = []
    remote: list[Any] = []
    doc.list("todos").observe(lambda event: local.append(event.delta))
    peer.list("todos").observe(lambda event: remote.append(event.delta))
    item = doc.list("todos").append_container(LWWMap)
    peer.apply_update(doc.get_update())
    assert local == [[{"insert": [item]}]]
    assert remote == [[{"insert": [peer.list("todos")[0]]}]]
    # so that a mirror kept with apply_delta holds what the list holds
    assert crdtsync.apply_delta([], remote[0]) == list(peer.list("todos"))


def test_a_child_container_is_in_its_list() -> None:
    todos = crdtsync.Doc().list("todos")
    item = todos.append_container(LWWMap)
    assert todos[0] is item and item in list(todos)
    assert item in todos
