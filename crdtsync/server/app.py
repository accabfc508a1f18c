"""The ``crdtsync serve`` process: a relay behind WebSockets (and optionally TCP), with
SQLite storage, access control, Redis, health, structured logs and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crdtsync.server.auth import Authenticator, TokenFile, allow_all, load_authenticator
from crdtsync.server.limits import Limits
from crdtsync.server.relay import Relay
from crdtsync.server.storage import MemoryStorage, SQLiteStorage, Storage

if TYPE_CHECKING:
    from crdtsync.server.postgres import PostgresStorage

__all__ = ["ConfigError", "ServerConfig", "authenticator", "open_storage", "run"]

log = logging.getLogger("crdtsync.server")


class ConfigError(ValueError):
    """A configuration that must not run (explained in the message)."""


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    #: Also serve the plain TCP transport on this port (None: WebSockets only).
    tcp_port: int | None = None
    #: SQLite file, or a ``postgresql://`` URL (None: keep rooms in memory only).
    db: str | None = "crdtsync.db"
    fsync: bool = False
    tokens: str | None = None
    auth: str | None = None
    #: Without --tokens or --auth: everyone may write. Allowed on loopback addresses only,
    #: unless this is set.
    allow_anonymous: bool = False
    redis: str | None = None
    redis_prefix: str = "crdtsync:room:"
    node: str | None = None
    limits: Limits = field(default_factory=Limits)
    compact_rows: int = 2000
    idle_unload: float = 60.0
    resync_interval: float = 5.0
    #: Seconds accepted updates wait to be committed and sent together (Relay.tick).
    tick: float = 0.005
    #: A room of N members waits at least N times this (Relay.tick_per_member).
    tick_per_member: float = 0.0004
    shutdown_timeout: float = 10.0
    #: WebSocket keepalive: a ping every ping_interval seconds; a client from which nothing
    #: came for ping_interval + ping_timeout seconds while the server was reading is closed
    #: with 1011 (a client the relay throttles is never dropped for it).
    ping_interval: float = 20.0
    ping_timeout: float = 20.0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def authenticator(config: ServerConfig) -> Authenticator:
    if config.tokens and config.auth:
        raise ConfigError("give --tokens or --auth, not both")
    if config.tokens:
        return TokenFile(config.tokens)
    if config.auth:
        return load_authenticator(config.auth)
    if not (config.allow_anonymous or _is_loopback(config.host)):
        raise ConfigError(
            f"refusing to serve {config.host} without access control: pass --tokens FILE, "
            "--auth MODULE:FUNCTION, or --allow-anonymous"
        )
    log.warning(
        "no --tokens or --auth: every client may read and write every room",
        extra={"event": "anonymous_access"},
    )
    return allow_all


def open_storage(db: str, *, node: str, fsync: bool = False) -> SQLiteStorage | PostgresStorage:
    """The store ``--db`` names: a :class:`~crdtsync.server.postgres.PostgresStorage` for a
    ``postgresql://`` (or ``postgres://``) URL, else a :class:`SQLiteStorage` on that path.
    ConfigError, naming the URL without its password, if psycopg is missing or the
    database server does not answer. (``fsync`` is SQLite's: a PostgreSQL commit is as
    durable as the server's own settings make it.)"""
    from crdtsync.server.postgres import is_postgres_url, redact_url

    if not is_postgres_url(db):
        return SQLiteStorage(db, node=node, synchronous="FULL" if fsync else "NORMAL")
    shown = redact_url(db)
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            f"--db {shown} needs psycopg 3: pip install 'crdtsync[postgres]'"
        ) from None
    from crdtsync.server.postgres import PostgresStorage

    try:
        return PostgresStorage(db, node=node)
    except (psycopg.Error, RuntimeError) as exc:
        # One line (libpq's hints come on lines of their own); psycopg's messages name the
        # host and port, never the password.
        reason = " ".join(str(exc).split())
        raise ConfigError(f"cannot use the database {shown}: {reason}") from None


async def run(
    config: ServerConfig,
    *,
    authenticate: Authenticator | None = None,
    stop: asyncio.Event | None = None,
    install_signals: bool = True,
) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set); then shut down gracefully.
    ``authenticate``: the hook (default: from the config, see :func:`authenticator`)."""
    from crdtsync.server._memory import keep_large_blocks_unmappable
    from crdtsync.server.postgres import redact_url
    from crdtsync.transports import websocket

    keep_large_blocks_unmappable()  # memory of closed connections goes back to the OS
    auth = authenticate if authenticate is not None else authenticator(config)
    node = config.node or f"{socket.gethostname()}-{os.getpid()}"
    storage: Storage
    if config.db is None:
        storage = MemoryStorage(node=node)
    else:
        storage = open_storage(config.db, node=node, fsync=config.fsync)
    relay = Relay(
        storage=storage,
        authenticate=auth,
        limits=config.limits,
        node=node,
        compact_rows=config.compact_rows,
        idle_unload=config.idle_unload,
        resync_interval=config.resync_interval,
        tick=config.tick,
        tick_per_member=config.tick_per_member,
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    bridge: Any = None
    if config.redis:
        from crdtsync.server.redis_bridge import RedisBridge

        bridge = RedisBridge(config.redis, relay, prefix=config.redis_prefix)
        await bridge.start()
        relay.bridge = bridge
    relay.start()
    ws_server = await websocket.serve(
        relay,
        config.host,
        config.port,
        ping_interval=config.ping_interval,
        ping_timeout=config.ping_timeout,
    )
    tcp_server = None
    if config.tcp_port is not None:
        from crdtsync.transports import asyncio_stream

        tcp_server = await asyncio_stream.serve(relay, config.host, config.tcp_port)
    port = ws_server.sockets[0].getsockname()[1]
    tcp_port = tcp_server.sockets[0].getsockname()[1] if tcp_server is not None else None
    log.info(
        "listening on ws://%s:%s",
        config.host,
        port,
        extra={
            "event": "listening",
            "host": config.host,
            "port": port,
            "tcp_port": tcp_port,
            "db": redact_url(config.db) if config.db is not None else None,
            "redis": config.redis,
            "node": node,
        },
    )
    try:
        await stop.wait()
    finally:
        ws_server.close(close_connections=False)
        if tcp_server is not None:
            tcp_server.close()
        await relay.close(timeout=config.shutdown_timeout)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws_server.wait_closed(), 5.0)
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    return 0
