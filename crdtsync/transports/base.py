"""What every transport shares: the :class:`Channel` a transport provides, and the
:class:`SyncClient` that keeps a document in sync over channels it reopens after each loss.

A channel is one open connection carrying whole binary messages both ways. The client runs
one :class:`~crdtsync.sync.SyncSession` per channel: ``start()`` when it opens (so every
reconnect is a full resync: each side sends exactly what the other lacks), ``receive()``
for each message, ``poll()`` whenever the document changed. Between connections the
document keeps working offline; edits made meanwhile go out on the next connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Literal, Protocol

from crdtsync._callbacks import subscribe
from crdtsync._doc import Doc
from crdtsync._errors import ReplicaIdConflict
from crdtsync.sync import DEFAULT_MAX_MESSAGE_SIZE, Presence, SyncSession
from crdtsync.transports.codes import FATAL, CloseCode, reason_text

__all__ = [
    "Channel",
    "ChannelClosed",
    "ClientStatus",
    "ConnectionRefusedByServer",
    "ErrorCallback",
    "StatusCallback",
    "SyncClient",
    "backoff_delay",
]

log = logging.getLogger("crdtsync.client")


class ChannelClosed(Exception):
    """The connection is closed; ``code`` and ``reason`` say why (1006: it just dropped)."""

    def __init__(self, code: int = CloseCode.ABNORMAL, reason: str = "") -> None:
        super().__init__(f"connection closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


class ConnectionRefusedByServer(ChannelClosed):
    """The server closed the connection with a code after which retrying cannot help
    (bad token, read-only client that edited, malformed or oversized message...)."""


class Channel(Protocol):
    """One open connection, as a transport gives it to :class:`SyncClient` or the relay."""

    #: What the server granted ("read" or "write"), when the transport tells the client.
    access: str | None

    async def send(self, data: bytes) -> None:
        """Send one message; :class:`ChannelClosed` if the connection is gone."""

    async def recv(self) -> bytes:
        """The next message; :class:`ChannelClosed` once the connection is closed."""

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close (idempotent; never raises for a connection that is already gone)."""


ChannelOpener = Callable[[], Awaitable[Channel]]

#: What :attr:`SyncClient.status` says: ``"connected"`` once the server answered on the
#: current connection, ``"disconnected"`` before that and after a loss (the client keeps
#: trying), ``"closed"`` once the client stopped for good.
ClientStatus = Literal["disconnected", "connected", "closed"]
#: ``callback(status)``, after each change of :attr:`SyncClient.status`.
StatusCallback = Callable[[ClientStatus], None]
#: ``callback(exc)``, for each error the client reports (see :meth:`SyncClient.on_error`).
ErrorCallback = Callable[[Exception], None]


def backoff_delay(attempt: int, minimum: float, maximum: float) -> float:
    """Exponential backoff with "equal jitter": half of ``min(maximum, minimum * 2**attempt)``
    plus a random share of the other half, so that clients cut off together do not all
    return at the same instant, and none retries in a tight loop."""
    ceiling = min(maximum, minimum * 2 ** min(attempt, 32))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))


class SyncClient:
    """Keeps ``doc`` in sync with a relay over connections from ``open_channel``.

    Usually made by :func:`crdtsync.transports.websocket.connect` or
    :func:`crdtsync.transports.asyncio_stream.connect`. Edit ``doc`` from the event loop's
    thread; transactions go out together ``batch_delay`` seconds (5 ms) after the first
    of them, as one message (0: at the next turn of the loop). After a lost
    connection the client waits ``backoff_delay(attempt, backoff_min, backoff_max)``
    seconds and reconnects, forever, unless the server closed with a code in
    :data:`crdtsync.transports.codes.FATAL` (then :attr:`close_code` says which and
    :meth:`wait_closed` raises :class:`ConnectionRefusedByServer`).

    A UI follows the connection with ``on_status`` (``"connected"``, ``"disconnected"``,
    ``"closed"``) and hears of problems with ``on_error``, rather than polling; both are
    also methods that add more callbacks and return an unsubscribe function:

    >>> import asyncio, crdtsync
    >>> async def opener():
    ...     raise ConnectionRefusedError(111, "Connection refused")
    >>> async def main():
    ...     client = SyncClient(opener, crdtsync.Doc(), name="ws://127.0.0.1:9/notes",
    ...                         on_status=print, backoff_min=0.01, backoff_max=0.01)
    ...     try:
    ...         await client.start(timeout=0.1)
    ...     except TimeoutError as exc:
    ...         print(str(exc).startswith("could not connect to ws://127.0.0.1:9/notes"))
    ...         print(repr(exc.__cause__))
    >>> asyncio.run(main())
    closed
    True
    ConnectionRefusedError(111, 'Connection refused')
    """

    def __init__(
        self,
        open_channel: ChannelOpener,
        doc: Doc,
        *,
        presence: Presence | None = None,
        reconnect: bool = True,
        backoff_min: float = 0.1,
        backoff_max: float = 10.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        ack_delay: float = 0.02,
        batch_delay: float = 0.005,
        name: str = "",
        on_status: StatusCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> None:
        if backoff_min <= 0 or backoff_max < backoff_min:
            raise ValueError("need 0 < backoff_min <= backoff_max")
        self._open_channel = open_channel
        self.doc = doc
        self.presence = presence
        self.reconnect = reconnect
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.max_message_size = max_message_size
        #: Seconds an ACK of received updates may wait to be combined with later ones.
        self.ack_delay = ack_delay
        #: Seconds local edits wait to go out together: transactions made within it (a
        #: burst of keystrokes, a loop of edits with awaits between) are one message.
        self.batch_delay = batch_delay
        self.name = name
        #: What the server granted on the current (or last) connection, if it said.
        self.access: str | None = None
        #: How many connections were opened so far (1 after the first, 2 after a reconnect).
        self.connections = 0
        #: Why the client stopped (None while it runs or after a normal close()).
        self.close_code: int | None = None
        self.close_reason = ""
        #: An error that stopped the client other than a refusal (e.g. a malformed URL).
        self.error: Exception | None = None
        #: Why the last connection attempt failed (None once one got through).
        self.last_connect_error: BaseException | None = None
        #: Connection attempts that failed since the last one that got through.
        self.failed_attempts = 0
        self._status: ClientStatus = "disconnected"
        self._status_callbacks: list[StatusCallback] = []
        self._error_callbacks: list[ErrorCallback] = []
        if on_status is not None:
            self.on_status(on_status)
        if on_error is not None:
            self.on_error(on_error)
        self._session: SyncSession | None = None
        self._channel: Channel | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # the document or presence changed: poll
        self._local = asyncio.Event()  # a local edit or presence change is waiting
        self._ack_wake = asyncio.Event()  # the ACK wait is over: a local edit, or its time
        self._progress = asyncio.Event()  # pulsed after every exchange: re-check waiters
        self._connected = False
        self._got_level = False
        self._closing = False
        self._stopped = asyncio.Event()
        self._unsubscribe = doc.on_update(self._on_doc_update, _internal=True)
        self._unsubscribe_errors = [doc.on_callback_error(self._report)]
        self._unsubscribe_presence = (
            presence.on_change(lambda change: self._local_change())
            if presence is not None
            else None
        )
        if presence is not None:
            self._unsubscribe_errors.append(presence.on_callback_error(self._report))

    # ---- state --------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a connection is open and the server has answered on it."""
        return self._connected

    @property
    def synced(self) -> bool:
        """True when connected and the server is known to hold exactly what ``doc`` holds
        (every local edit acknowledged, nothing in flight)."""
        return self._connected and self._session is not None and self._session.synced

    @property
    def server_version(self) -> dict[int, int]:
        """What the server is known to hold (replica -> counter), from its ACKs and
        messages on the current connection: a local edit whose counter is covered here is
        acknowledged, hence stored by the server."""
        return self._session.peer_version if self._session is not None else {}

    @property
    def closed(self) -> bool:
        return self._stopped.is_set()

    @property
    def status(self) -> ClientStatus:
        """``"connected"``, ``"disconnected"`` (not yet, or lost: the client keeps trying)
        or ``"closed"`` (stopped for good); see :meth:`on_status`."""
        return self._status

    def on_status(self, callback: StatusCallback) -> Callable[[], None]:
        """Call ``callback(status)`` after each change of :attr:`status`: ``"connected"``
        when the server answered on a new connection, ``"disconnected"`` when that
        connection is lost (a reconnect follows), ``"closed"`` when the client stops.
        Returns a function that unsubscribes. Pass ``on_status=`` to ``connect()`` to hear
        of the first connection too."""
        return subscribe(self._status_callbacks, callback)

    def on_error(self, callback: ErrorCallback) -> Callable[[], None]:
        """Call ``callback(exc)`` for each error that does not stop sync but that the
        application should hear of: an exception raised by one of the document's
        ``observe`` / ``on_update`` callbacks or the presence's ``on_change`` callbacks
        (the update was applied and sync goes on regardless), a malformed message from the
        server (the client reconnects), an unexpected failure of a connection (the client
        reconnects), or the error that stopped the client (also in :attr:`error`).
        Everything reported here is logged too. Returns a function that unsubscribes."""
        return subscribe(self._error_callbacks, callback)

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self, *, wait: bool = True, timeout: float | None = 10.0) -> None:
        """Start the connection loop. ``wait``: return once the server answered (raise
        :class:`ConnectionRefusedByServer` if it refused, ``TimeoutError`` after
        ``timeout`` seconds; the client is closed in both cases)."""
        if self._task is not None:
            raise RuntimeError("already started")
        self._task = asyncio.get_running_loop().create_task(self._run())
        if wait:
            try:
                await self.wait_connected(timeout)
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        """Close the connection (code 1000) and stop reconnecting. The document stays
        usable offline."""
        self._closing = True
        self._wake.set()
        self._progress.set()
        channel = self._channel
        if channel is not None:
            with contextlib.suppress(Exception):
                await channel.close(CloseCode.NORMAL, "client closing")
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._finish()

    async def wait_closed(self) -> None:
        """Wait until the client stops; raise :class:`ConnectionRefusedByServer` if the
        server refused it."""
        await self._stopped.wait()
        if self.error is not None:
            raise self.error
        if self.close_code is not None:
            raise ConnectionRefusedByServer(self.close_code, self.close_reason)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until :attr:`connected` (``TimeoutError`` after ``timeout`` seconds, saying
        why the attempts failed, with the last failure as its cause)."""
        started = time.monotonic()
        try:
            await self._wait_for(lambda: self._connected, timeout)
        except TimeoutError as exc:
            cause = self.last_connect_error
            raise TimeoutError(self._connect_failure(time.monotonic() - started)) from (
                cause if cause is not None else exc
            )

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Wait until :attr:`synced` (``TimeoutError`` after ``timeout`` seconds)."""
        await self._wait_for(lambda: self.synced, timeout)

    async def __aenter__(self) -> SyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---- internals ------------------------------------------------------------------------

    def _connect_failure(self, waited: float) -> str:
        where = self.name or "the server"
        last = self.last_connect_error
        if self.failed_attempts and last is not None:
            attempts = (
                "1 attempt" if self.failed_attempts == 1 else f"{self.failed_attempts} attempts"
            )
            return (
                f"could not connect to {where} within {waited:.1f} s: {attempts} failed, "
                f"the last with {type(last).__name__}: {last}"
            )
        return f"could not connect to {where} within {waited:.1f} s: no answer from the server"

    def _set_status(self, status: ClientStatus) -> None:
        if status == self._status:
            return
        self._status = status
        for callback in list(self._status_callbacks):
            try:
                callback(status)
            except Exception:
                log.exception("on_status callback %r raised", callback)

    def _report(self, exc: Exception) -> None:
        for callback in list(self._error_callbacks):
            try:
                callback(exc)
            except Exception:
                log.exception("on_error callback %r raised", callback)

    async def _wait_for(self, ready: Callable[[], bool], timeout: float | None) -> None:
        async def wait() -> None:
            while not ready():
                if self._stopped.is_set():
                    if self.error is not None:
                        raise self.error
                    if self.close_code is not None:
                        raise ConnectionRefusedByServer(self.close_code, self.close_reason)
                    raise ChannelClosed(CloseCode.NORMAL, "client closed")
                self._progress.clear()
                await self._progress.wait()

        await asyncio.wait_for(wait(), timeout)

    def _on_doc_update(self, update: bytes, origin: Any) -> None:
        if origin is not self._session:  # our own session's integrations need no poll
            self._local_change()

    def _local_change(self) -> None:
        self._local.set()
        self._ack_wake.set()
        self._wake.set()

    def _pulse(self) -> None:
        self._progress.set()

    def _finish(self) -> None:
        if not self._stopped.is_set():
            self._unsubscribe()
            for unsubscribe in self._unsubscribe_errors:
                unsubscribe()
            if self._unsubscribe_presence is not None:
                self._unsubscribe_presence()
            if self._session is not None:
                self._session.close()
            self._connected = False
            self._stopped.set()
            self._pulse()
            self._set_status("closed")

    async def _run(self) -> None:
        attempt = 0
        try:
            while not self._closing:
                try:
                    channel = await self._open_channel()
                except ConnectionRefusedByServer as exc:
                    self._refused(exc)
                    return
                except (TimeoutError, OSError, ChannelClosed) as exc:
                    log.debug("connect failed: %s", exc, extra={"event": "connect_failed"})
                    self._attempt_failed(exc)
                except Exception as exc:  # not a network failure: retrying cannot help
                    log.error("cannot connect: %r", exc, extra={"event": "connect_error"})
                    self.error = exc
                    self._report(exc)
                    return
                else:
                    self._got_level = False
                    try:
                        await self._serve(channel)
                    except ReplicaIdConflict as exc:
                        # Our replica id is someone else's too and the document could not
                        # re-issue its changes: every reconnect would end the same way. The
                        # document is as it was; the application must decide (see the error).
                        log.error("%s", exc, extra={"event": "replica_id_conflict"})
                        self.error = exc
                        self._report(exc)
                        with contextlib.suppress(Exception):
                            await channel.close(CloseCode.NORMAL, "replica id conflict")
                        return
                    except ValueError as exc:  # ProtocolError: the server sent garbage
                        log.error(
                            "bad message from the server: %s",
                            exc,
                            extra={"event": "bad_message"},
                        )
                        self._report(exc)
                        with contextlib.suppress(Exception):
                            await channel.close(CloseCode.BAD_MESSAGE, reason_text(str(exc)))
                    except ChannelClosed as exc:
                        if exc.code in FATAL:
                            self._refused(exc)
                            return
                        log.info(
                            "connection lost: %s %s",
                            exc.code,
                            exc.reason,
                            extra={"event": "disconnected", "code": exc.code},
                        )
                        if not self._connected:  # opened, but the server never answered
                            self._attempt_failed(exc)
                    except Exception as exc:
                        # A bug, not the network: the document is intact (callbacks cannot
                        # fail it), so say so loudly and resync on a fresh connection
                        # rather than stop without a word.
                        log.exception("sync connection failed", extra={"event": "connection_error"})
                        self._report(exc)
                        with contextlib.suppress(Exception):
                            await channel.close(
                                CloseCode.INTERNAL_ERROR, reason_text(type(exc).__name__)
                            )
                    finally:
                        self._connected = False
                        self._channel = None
                        if self._got_level:
                            attempt = 0
                        self._pulse()
                        with contextlib.suppress(Exception):
                            await channel.close()
                    if not self._closing:  # (a client that stops goes straight to "closed")
                        self._set_status("disconnected")
                if self._closing or not self.reconnect:
                    return
                delay = backoff_delay(attempt, self.backoff_min, self.backoff_max)
                attempt += 1
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    # close() sets _wake to cut the wait short; edits do too, harmlessly.
                    await asyncio.wait_for(self._sleep_unless_closing(), delay)
        finally:
            self._finish()

    async def _sleep_unless_closing(self) -> None:
        while not self._closing:
            self._wake.clear()
            await self._wake.wait()

    def _attempt_failed(self, exc: BaseException) -> None:
        self.failed_attempts += 1
        self.last_connect_error = exc

    def _refused(self, exc: ChannelClosed) -> None:
        self.close_code = exc.code
        self.close_reason = exc.reason
        log.warning(
            "server refused the connection: %s %s",
            exc.code,
            exc.reason,
            extra={"event": "refused", "code": exc.code},
        )

    async def _serve(self, channel: Channel) -> None:
        """Run one connection until it closes (ChannelClosed). Sets ``_got_level`` once it
        got level with the server (the backoff then starts over after it drops)."""
        if self._session is not None:
            self._session.close()
        session = SyncSession(
            self.doc, presence=self.presence, max_message_size=self.max_message_size
        )
        self._session = session
        self._channel = channel
        self.access = channel.access
        self.connections += 1
        replies: list[bytes] = session.start()
        self._wake.set()

        async def pump() -> None:
            # The only sender: replies first, then whatever poll() gathered, in order.
            nonlocal replies
            while True:
                await self._wake.wait()
                self._wake.clear()
                if not replies and not self._local.is_set() and self.ack_delay > 0:
                    # Only an ACK of what we received is due: wait a little, so that one ACK
                    # covers many updates when they stream in (a local edit cuts it short).
                    # (A timer, not asyncio.wait_for, which makes a task per wait: this
                    # runs for nearly every message a busy room sends.)
                    self._ack_wake.clear()
                    timer = asyncio.get_running_loop().call_later(
                        self.ack_delay, self._ack_wake.set
                    )
                    try:
                        await self._ack_wake.wait()
                    finally:
                        timer.cancel()
                if self._local.is_set() and not replies and self.batch_delay > 0:
                    await asyncio.sleep(self.batch_delay)
                self._local.clear()
                out, replies = replies + session.poll(), []
                for message in out:
                    await channel.send(message)
                if not self._got_level and session.synced:
                    self._got_level = True
                self._pulse()

        async def tick() -> None:
            assert self.presence is not None
            period = min(self.presence.timeout / 4, 5.0)
            loop = asyncio.get_running_loop()
            while True:
                self.presence.tick(loop.time())
                self._wake.set()
                await asyncio.sleep(period)

        async def read() -> None:
            nonlocal replies
            while True:
                data = await channel.recv()
                if not self._connected:
                    self._connected = True
                    self.failed_attempts = 0
                    self.last_connect_error = None
                    log.info(
                        "connected",
                        extra={"event": "connected", "connections": self.connections},
                    )
                    self._set_status("connected")
                replies += session.receive(data)
                self._wake.set()
                if not self._got_level and session.synced:
                    self._got_level = True
                self._pulse()

        tasks = [asyncio.create_task(read()), asyncio.create_task(pump())]
        if self.presence is not None:
            tasks.append(asyncio.create_task(tick()))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # ChannelClosed, or ProtocolError from a bad server message
            raise ChannelClosed()
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t


class Connector:
    """What each transport's ``connect(...)`` returns: awaiting it gives the started
    :class:`SyncClient` (once the server answered, unless ``wait=False``); ``async with``
    also closes the client at the end."""

    def __init__(
        self,
        opener: ChannelOpener,
        doc: Doc,
        *,
        name: str,
        presence: Presence | None,
        wait: bool,
        open_timeout: float,
        reconnect: bool,
        backoff_min: float,
        backoff_max: float,
        on_status: StatusCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> None:
        self.client = SyncClient(
            opener,
            doc,
            presence=presence,
            reconnect=reconnect,
            backoff_min=backoff_min,
            backoff_max=backoff_max,
            name=name,
            on_status=on_status,
            on_error=on_error,
        )
        self._wait = wait
        self._timeout = open_timeout

    async def _start(self) -> SyncClient:
        await self.client.start(wait=self._wait, timeout=self._timeout)
        return self.client

    def __await__(self) -> Generator[Any, None, SyncClient]:
        return self._start().__await__()

    async def __aenter__(self) -> SyncClient:
        return await self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.client.close()
