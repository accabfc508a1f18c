"""Prometheus metrics of a relay, served at ``GET /metrics`` on the WebSocket port.

Needs the ``prometheus_client`` package (``pip install 'crdtsync[metrics]'``); without it
the relay runs the same and ``/metrics`` answers ``501`` with a line saying what to
install. Every :class:`~crdtsync.server.Relay` has its own registry (never the process-wide
default one), so several relays in one process do not clash. docs/server.md lists the
metrics.

The relay calls a few methods at its existing points (a message in, a message out, a
connection closed, a batch written); what it holds at a moment (rooms, connections, send
queues, transfer parts) is read from it when ``/metrics`` is scraped, so nothing is
counted twice and nothing drifts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from crdtsync.transports.codes import CloseCode

if TYPE_CHECKING:
    from crdtsync.server.relay import Relay

__all__ = ["METRICS_PATH", "NullMetrics", "RelayMetrics", "available", "metrics_for"]

METRICS_PATH = "/metrics"
MISSING = "metrics need the prometheus_client package: pip install 'crdtsync[metrics]'\n"

#: Close codes that are no refusal: the client (or the server's shutdown) ended the
#: connection, or it dropped.
_NOT_REFUSALS = frozenset({CloseCode.NORMAL, CloseCode.GOING_AWAY, 1005, CloseCode.ABNORMAL})

#: Storage commit latency buckets, in seconds (SQLite without fsync: well under 1 ms; with
#: it, a few ms; a busy or remote disk: more).
_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

R = TypeVar("R")


def available() -> bool:
    """Whether ``prometheus_client`` can be imported."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def _code_name(code: int) -> str:
    try:
        return CloseCode(code).name.lower()
    except ValueError:
        return "other"


class NullMetrics:
    """What a relay has without ``prometheus_client``: every call does nothing."""

    enabled = False

    def connected(self) -> None:
        pass

    def received(self, size: int) -> None:
        pass

    def sent(self, size: int) -> None:
        pass

    def closed(self, code: int) -> None:
        pass

    def timed(self, write: Callable[..., R]) -> Callable[..., R]:
        return write

    def exposition(self) -> tuple[int, str, str]:
        """(HTTP status, content type, body) of ``GET /metrics``."""
        return 501, "text/plain; charset=utf-8", MISSING


class RelayMetrics(NullMetrics):
    """The metrics of one relay, in a registry of its own (``self.registry``)."""

    enabled = True

    def __init__(self, relay: Relay) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.relay = relay
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._connections = Counter(
            "crdtsync_connections", "Connections the relay accepted and served.", registry=r
        )
        self._messages_in = Counter(
            "crdtsync_messages_received", "Sync messages received from clients.", registry=r
        )
        self._messages_out = Counter(
            "crdtsync_messages_sent", "Sync messages sent to clients.", registry=r
        )
        self._bytes_in = Counter(
            "crdtsync_received_bytes", "Bytes of sync messages received.", registry=r
        )
        self._bytes_out = Counter("crdtsync_sent_bytes", "Bytes of sync messages sent.", registry=r)
        self._closed = Counter(
            "crdtsync_connections_closed",
            "Connections closed (or refused before being served), by close code.",
            ["code", "reason"],
            registry=r,
        )
        self._refused = Counter(
            "crdtsync_refusals",
            "Connections closed or refused for a reason (every close code but normal, "
            "going away and dropped): forbidden writes, oversized or bad messages, "
            "unauthorized, full send queues, budgets.",
            ["code", "reason"],
            registry=r,
        )
        self._commit = Histogram(
            "crdtsync_storage_commit_seconds",
            "Time the writer thread took to append and commit one batch of updates.",
            buckets=_COMMIT_BUCKETS,
            registry=r,
        )
        self._commit_failures = Counter(
            "crdtsync_storage_commit_failures", "Batches whose commit failed.", registry=r
        )
        r.register(_StateCollector(relay))

    def connected(self) -> None:
        self._connections.inc()

    def received(self, size: int) -> None:
        self._messages_in.inc()
        self._bytes_in.inc(size)

    def sent(self, size: int) -> None:
        self._messages_out.inc()
        self._bytes_out.inc(size)

    def closed(self, code: int) -> None:
        labels = (str(int(code)), _code_name(code))
        self._closed.labels(*labels).inc()
        if code not in _NOT_REFUSALS:
            self._refused.labels(*labels).inc()

    def timed(self, write: Callable[..., R]) -> Callable[..., R]:
        """``write`` (the writer thread's batch write), observed by the commit histogram."""

        def timed_write(*args: Any) -> R:
            started = time.perf_counter()
            try:
                result = write(*args)
            except BaseException:
                self._commit_failures.inc()
                raise
            self._commit.observe(time.perf_counter() - started)
            return result

        return timed_write

    def exposition(self) -> tuple[int, str, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry).decode("utf-8")


class _StateCollector:
    """Gauges read from the relay at scrape time."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def describe(self) -> list[Any]:
        return list(self.collect())

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        relay = self.relay
        conns = list(relay.connections)
        rooms = list(relay.rooms.values())

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        yield gauge("crdtsync_rooms_open", "Rooms loaded in this process.", len(rooms))
        yield gauge("crdtsync_connections_open", "Connections being served.", len(conns))
        yield gauge(
            "crdtsync_room_members",
            "Room memberships (a multiplexed connection counts once per room).",
            sum(len(room.members) for room in rooms),
        )
        yield gauge(
            "crdtsync_send_queue_bytes",
            "Bytes waiting in all connections' send queues.",
            relay.queued_bytes,
        )
        yield gauge(
            "crdtsync_send_queue_max_bytes",
            "Bytes waiting in the fullest connection's send queue.",
            max((c.queued_bytes for c in conns), default=0),
        )
        yield gauge(
            "crdtsync_send_queue_messages",
            "Messages waiting in all connections' send queues.",
            sum(len(c.queue) for c in conns),
        )
        yield gauge(
            "crdtsync_transfer_bytes",
            "Bytes of unfinished split transfers the relay holds.",
            relay.transfer_bytes,
        )
        yield gauge(
            "crdtsync_held_bytes",
            "Bytes of messages held while their room's commit is in flight.",
            sum(room.held_bytes for room in rooms),
        )
        yield gauge("crdtsync_uptime_seconds", "Seconds since the relay started.", _uptime(relay))


def _uptime(relay: Relay) -> float:
    return round(time.monotonic() - relay.started, 3)


def metrics_for(relay: Relay) -> NullMetrics:
    """A relay's metrics: :class:`RelayMetrics` if ``prometheus_client`` can be imported,
    else :class:`NullMetrics`."""
    return RelayMetrics(relay) if available() else NullMetrics()
