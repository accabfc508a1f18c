"""Several relay processes sharing rooms through Redis pub/sub (``pip install 'crdtsync[redis]'``).

One channel per room (``PREFIX + room``). Each process publishes the updates its own
clients sent, once they are committed to the shared log, and applies the updates other
processes publish (its own come back too and are skipped by node id). Each message is
msgpack ``[1, node, seq, update]``: ``seq`` is the update's row in the shared SQLite log.
Presence travels the same way with ``seq`` -1 and an AWARENESS sync message in place of
the update; it is ephemeral (clients renew it), so it is neither stored nor repaired. A
process that opens a room (or gets Redis back) publishes ``seq`` -2, a presence query: each
other process answers with the presence of its own clients in that room (``seq`` -1), so a
client joining there sees everyone at once, not at their next renewal.

Pub/sub delivers at most once: a message published while a process is disconnected from
Redis, or dropped because it fell behind, is simply lost. The shared log makes that
harmless: every process re-reads the log rows of its open rooms that it has not seen
(:meth:`crdtsync.server.Relay.repair`) every few seconds, after a Redis reconnect, and as
soon as an update from Redis cannot be integrated for lack of an earlier one. A process
that opens a room (at start or later) subscribes first and then loads the room from the
log, so it misses nothing in between. Hence the deployment rule: processes that share
rooms through Redis share one database file (docs/server.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import msgpack

try:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "crdtsync.server.redis_bridge needs the redis library: pip install 'crdtsync[redis]'"
    ) from exc

from crdtsync.server.relay import PRESENCE_QUERY_SEQ, PRESENCE_SEQ

if TYPE_CHECKING:
    from crdtsync.server.relay import Relay

__all__ = ["RedisBridge", "DEFAULT_PREFIX"]

log = logging.getLogger("crdtsync.server.redis")

DEFAULT_PREFIX = "crdtsync:room:"
FORMAT = 1


class RedisBridge:
    """Links ``relay`` to the other processes on the same Redis."""

    def __init__(
        self,
        url: str,
        relay: Relay,
        *,
        prefix: str = DEFAULT_PREFIX,
        queue_size: int = 10_000,
        subscribe_timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.relay = relay
        self.prefix = prefix
        self.subscribe_timeout = subscribe_timeout
        self.status = "connecting"
        self.published = 0
        self.received = 0
        self.dropped = 0
        self._redis: Any = aioredis.from_url(url, socket_connect_timeout=2.0)
        self._pubsub: Any = self._redis.pubsub(ignore_subscribe_messages=False)
        self._queue: asyncio.Queue[tuple[str, int, bytes]] = asyncio.Queue(queue_size)
        self._lock = asyncio.Lock()
        self._confirm: dict[bytes, asyncio.Future[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def channel(self, room: str) -> bytes:
        return (self.prefix + room).encode("utf-8")

    async def start(self) -> None:
        """Connect (a Redis that is down is logged, not fatal: the bridge keeps trying,
        and the shared log keeps processes level meanwhile)."""
        try:
            await asyncio.wait_for(self._redis.ping(), 5.0)
            self._set_status("connected")
        except (TimeoutError, RedisError, OSError) as exc:
            self._set_status("down", exc)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen()), loop.create_task(self._publisher())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    async def subscribe(self, room: str) -> None:
        """Subscribe to the room's channel and wait (briefly) for Redis to confirm."""
        channel = self.channel(room)
        loop = asyncio.get_running_loop()
        async with self._lock:
            confirmed = self._confirm[channel] = loop.create_future()
            try:
                await asyncio.wait_for(self._pubsub.subscribe(channel), self.subscribe_timeout)
            except (TimeoutError, RedisError, OSError) as exc:
                self._set_status("down", exc)
                self._confirm.pop(channel, None)
                return  # the room opens anyway; the shared log repairs what Redis misses
        try:
            await asyncio.wait_for(asyncio.shield(confirmed), self.subscribe_timeout)
        except TimeoutError:
            log.warning(
                "no subscription confirmation from Redis",
                extra={"event": "redis_slow", "room": room},
            )
        finally:
            self._confirm.pop(channel, None)

    async def unsubscribe(self, room: str) -> None:
        async with self._lock:
            try:
                await asyncio.wait_for(
                    self._pubsub.unsubscribe(self.channel(room)), self.subscribe_timeout
                )
            except (TimeoutError, RedisError, OSError) as exc:
                self._set_status("down", exc)

    def publish(self, room: str, seq: int, update: bytes) -> None:
        """Queue an update for the other processes (dropped if Redis cannot keep up: the
        others then read it from the shared log)."""
        try:
            self._queue.put_nowait((room, seq, update))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning(
                    "Redis publish queue full: updates reach the others through the log",
                    extra={"event": "redis_backlog", "dropped": self.dropped},
                )

    # ---- internals -------------------------------------------------------------------------

    def _set_status(self, status: str, exc: BaseException | None = None) -> None:
        if status == self.status:
            return
        was, self.status = self.status, status
        if status == "connected":
            log.info("Redis connected", extra={"event": "redis_connected", "url": self.url})
            if was == "down":
                self.relay.resync_all()  # what was published meanwhile is lost: read the log
                self.relay.query_presence_all()  # and presence, which no log keeps
        else:
            log.warning(
                "Redis unavailable: %s",
                exc,
                extra={"event": "redis_down", "url": self.url},
            )

    async def _publisher(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while not self._queue.empty() and len(batch) < 256:
                batch.append(self._queue.get_nowait())
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for room, seq, update in batch:
                        payload = msgpack.packb([FORMAT, self.relay.node, seq, update])
                        pipe.publish(self.channel(room), payload)
                    await pipe.execute()
                self.published += len(batch)
                self._set_status("connected")
            except (RedisError, OSError) as exc:
                self.dropped += len(batch)
                self._set_status("down", exc)
                await asyncio.sleep(0.5)

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            if self._pubsub.connection is None:
                await asyncio.sleep(0.05)  # nothing subscribed yet
                continue
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                self._set_status("down", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            except RuntimeError:  # unsubscribed from everything meanwhile
                await asyncio.sleep(0.05)
                continue
            delay = 0.1
            self._set_status("connected")
            if message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        if kind == "subscribe" and isinstance(channel, bytes):
            future = self._confirm.get(channel)
            if future is not None and not future.done():
                future.set_result(None)
            return
        if kind != "message" or not isinstance(channel, bytes):
            return
        try:
            room = channel.decode("utf-8")[len(self.prefix) :]
            fmt, node, seq, update = msgpack.unpackb(message["data"], raw=False)
            if fmt != FORMAT or type(seq) is not int or type(update) is not bytes:
                raise ValueError("unexpected fields")
        except Exception as exc:
            log.warning(
                "ignored a malformed Redis message: %s", exc, extra={"event": "redis_bad_message"}
            )
            return
        if node == self.relay.node:
            return
        self.received += 1
        if seq == PRESENCE_SEQ:
            self.relay.remote_presence(room, update)
        elif seq == PRESENCE_QUERY_SEQ:
            self.relay.presence_query(room, update)
        else:
            self.relay.remote_update(room, seq, update)
