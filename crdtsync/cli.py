"""The ``crdtsync`` command line (also ``python -m crdtsync``).

Each feature is a subcommand: ``crdtsync demo``, ``crdtsync serve``, ``crdtsync rooms``. A
subcommand is a parser added in :func:`build_parser` plus a handler taking the parsed arguments and
returning an exit code; handlers import their modules lazily so that ``crdtsync --help``
stays instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence

Handler = Callable[[argparse.Namespace], int]


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("crdtsync")
    except metadata.PackageNotFoundError:  # running from a source tree that isn't installed
        return "unknown"


def _rate(text: str) -> float:
    """argparse type for a probability such as --loss 0.1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _count(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value

    return parse


#: TCP ports: 0 (any free port) to 65535.
_port = _count(0, 65535)


def _run_demo(args: argparse.Namespace) -> int:
    from crdtsync._demo import DemoConfig, run_demo

    config = DemoConfig(
        seed=args.seed,
        replicas=args.replicas,
        edits=args.edits,
        loss=args.loss,
        dup=args.dup,
        max_latency=args.max_latency,
        progress=not args.no_progress,
    )
    return run_demo(config)


def _add_demo(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="simulate replicas editing concurrently over a lossy network, then converging",
        description=(
            "Replicas edit a shared document (text, map, set, counter, and a todo list of "
            "maps with a text inside each) at the same time. "
            "Every edit is broadcast over a simulated network that delays, reorders, "
            "duplicates and drops messages; afterwards the network heals, the replicas run "
            "anti-entropy, and the demo checks that all of them hold the same values and "
            "that the todo item ticked and renamed at the same moment kept both changes. "
            "Exit status 0 if so, 1 if not."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    demo.add_argument("--seed", type=int, default=1, help="makes the whole run reproducible")
    demo.add_argument("--replicas", type=_count(1), default=4, help="number of replicas")
    demo.add_argument("--edits", type=_count(0), default=300, help="edits per replica")
    demo.add_argument("--loss", type=_rate, default=0.1, help="message drop probability")
    demo.add_argument("--dup", type=_rate, default=0.05, help="message duplication probability")
    demo.add_argument(
        "--max-latency", type=_count(1), default=8, help="maximum delivery delay in ticks"
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    demo.set_defaults(handler=_run_demo)


def _freeze_what_lives_forever() -> None:
    """Move what the server process holds before it serves (modules, classes, functions:
    tens of thousands of objects that live as long as it does) out of the cyclic garbage
    collector's full collections, which would otherwise rescan all of it every time, in
    the middle of serving (see docs/performance.md, "Garbage collection"). Only this
    command does it: the process is ours, where an application embedding the relay is
    not."""
    import gc

    import crdtsync.server.relay  # noqa: F401  (imported now, so frozen with the rest)
    import crdtsync.transports.websocket  # noqa: F401

    gc.collect()
    gc.freeze()


def _run_serve(args: argparse.Namespace) -> int:
    import asyncio
    import sqlite3

    from crdtsync.server.app import ConfigError, ServerConfig, authenticator, run
    from crdtsync.server.limits import Limits
    from crdtsync.server.logs import configure

    configure(args.log_level, args.log_format)
    try:
        limits = Limits(**{name: getattr(args, name) for name in _limit_fields()})
        config = ServerConfig(
            host=args.host,
            port=args.port,
            tcp_port=args.tcp_port,
            db=None if args.memory else args.db,
            fsync=args.fsync,
            tokens=args.tokens,
            auth=args.auth,
            allow_anonymous=args.allow_anonymous,
            redis=args.redis,
            redis_prefix=args.redis_prefix,
            node=args.node,
            limits=limits,
            compact_rows=args.compact_rows,
            idle_unload=args.idle_unload,
            resync_interval=args.resync_interval,
            tick=args.tick,
            tick_per_member=args.tick_per_member,
            ping_interval=args.ping_interval,
            ping_timeout=args.ping_timeout,
        )
        auth = authenticator(config)  # a bad token file or --auth hook fails here
    except (ValueError, OSError, ImportError, AttributeError, TypeError) as exc:
        print(f"crdtsync serve: {exc}", file=sys.stderr)
        return 2
    _freeze_what_lives_forever()
    try:
        return asyncio.run(run(config, authenticate=auth))
    except (ConfigError, OSError, sqlite3.Error) as exc:  # the port is taken, the db unusable
        what = f" ({config.db})" if isinstance(exc, sqlite3.Error) else ""
        print(f"crdtsync serve: {exc}{what}", file=sys.stderr)
        return 2


#: The ``serve`` options that set the :class:`~crdtsync.server.limits.Limits` field of the
#: same name (default: that field's): (flag, argparse type, help), in --help order.
_LIMIT_OPTIONS: list[tuple[str, Callable[[str], object], str]] = [
    ("--max-message-size", _count(1024), "bytes"),
    ("--rate", float, "messages/s per connection"),
    ("--burst", float, "message burst"),
    (
        "--send-queue-bytes",
        _count(1024),
        "per-connection send queue; a client that falls further behind is dropped",
    ),
    (
        "--process-send-queue-bytes",
        _count(1024),
        "all connections' send queues; past it the longest queue's client is dropped",
    ),
    (
        "--process-transfer-bytes",
        _count(1024),
        "parts of unfinished transfers, all connections; past it the biggest holder goes",
    ),
    ("--max-rooms-per-connection", _count(1), "rooms on one multiplexed connection"),
    ("--max-connections", _count(1), "per process"),
    (
        "--max-document-bytes",
        _count(1),
        "quota of one room's stored document; an update past it is refused (4413)",
    ),
    (
        "--max-rooms-per-token",
        _count(1),
        "rooms one token may have open at once on this process (4430 past it)",
    ),
]


def _field(flag: str) -> str:
    """The argparse dest (and Limits field) of ``flag``."""
    return flag.removeprefix("--").replace("-", "_")


def _limit_fields() -> list[str]:
    return [_field(flag) for flag, _, _ in _LIMIT_OPTIONS]


def _add_serve(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    serve = subparsers.add_parser(
        "serve",
        help="run a relay server: rooms synced over WebSockets, stored in SQLite or PostgreSQL",
        description=(
            "Relay server. Each room (the URL path: ws://HOST:PORT/ROOM) has a server-side "
            "document that clients sync with; every accepted update is stored (a SQLite file, "
            "or PostgreSQL with --db postgresql://...) before it is acknowledged. Several "
            "processes share rooms through Redis (--redis) when they share the --db file "
            "or PostgreSQL database. GET /healthz reports status. "
            "Logs are JSON lines on stderr. SIGTERM shuts down gracefully. "
            "Every option can also come from the environment variable CRDTSYNC_<OPTION> "
            "(CRDTSYNC_PORT=8000, CRDTSYNC_MAX_MESSAGE_SIZE=...; on/off options take "
            "1/true/yes/on or 0/false/no/off); an option on the command line wins. "
            "See docs/server.md."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    from crdtsync.server.limits import Limits  # light: dataclass defaults only

    d = Limits()
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=_port, default=8765, help="WebSocket port (0: any)")
    serve.add_argument(
        "--tcp-port", type=_port, default=None, help="also serve plain TCP on this port"
    )
    store = serve.add_mutually_exclusive_group()
    store.add_argument(
        "--db", default="crdtsync.db", help="SQLite database file or postgresql:// URL"
    )
    store.add_argument("--memory", action="store_true", help="keep rooms in memory only")
    serve.add_argument(
        "--fsync", action="store_true", help="fsync every commit (survive power loss too)"
    )
    serve.add_argument("--tokens", help="token file: lines of 'TOKEN read|write [ROOM,...]'")
    serve.add_argument("--auth", help="authenticate hook MODULE:FUNCTION(token, room)")
    serve.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="without --tokens/--auth, allow everyone even on a non-loopback address",
    )
    serve.add_argument("--redis", help="Redis URL shared with the other processes")
    serve.add_argument("--redis-prefix", default="crdtsync:room:", help="Redis channel prefix")
    serve.add_argument("--node", help="this process's name in logs and the log table")
    for flag, kind, help in _LIMIT_OPTIONS:
        serve.add_argument(flag, type=kind, default=getattr(d, _field(flag)), help=help)
    serve.add_argument(
        "--compact-rows", type=_count(1), default=2000, help="log rows before a snapshot"
    )
    serve.add_argument(
        "--idle-unload", type=float, default=60.0, help="seconds before an empty room unloads"
    )
    serve.add_argument(
        "--resync-interval",
        type=float,
        default=5.0,
        help="with --redis: seconds between reads of the shared log for missed updates",
    )
    serve.add_argument(
        "--tick",
        type=float,
        default=0.005,
        help="seconds a room's accepted updates wait to be committed and sent together, "
        "as one merged update per client (0: at once; default 0.005)",
    )
    serve.add_argument(
        "--tick-per-member",
        type=float,
        default=0.0004,
        help="a room of N clients waits at least N times this many seconds (a room of 100: "
        "40 ms), so that a large room's messages stay few (default 0.0004)",
    )
    serve.add_argument(
        "--ping-interval", type=_seconds, default=20.0, help="seconds between keepalive pings"
    )
    serve.add_argument(
        "--ping-timeout",
        type=_seconds,
        default=20.0,
        help="a client silent for ping interval + this many seconds is dropped (1011); "
        "a throttled client is never silent",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default="json", choices=["json", "text"])
    serve.set_defaults(handler=_run_serve)
    for action in _env_actions(serve):
        action.help = f"{action.help or ''} [env {_env_name(action)}]".lstrip()
    return serve


#: ``crdtsync serve --some-flag`` can also be set by ``CRDTSYNC_SOME_FLAG``.
ENV_PREFIX = "CRDTSYNC_"
_ENV_TRUE = ("1", "true", "yes", "on")
_ENV_FALSE = ("0", "false", "no", "off", "")


def _env_name(action: argparse.Action) -> str:
    return ENV_PREFIX + action.dest.upper()


def _env_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options that an environment variable may set (all but --help)."""
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


def _env_value(action: argparse.Action, raw: str) -> object:
    """``raw`` converted and checked as argparse would check it on the command line;
    ValueError with the reason if it is no valid value."""
    if isinstance(action, argparse._StoreTrueAction):
        word = raw.strip().lower()
        if word in _ENV_TRUE:
            return True
        if word in _ENV_FALSE:
            return False
        raise ValueError(f"an on/off option takes one of {', '.join(_ENV_TRUE + _ENV_FALSE[:-1])}")
    convert: Callable[[str], object] = action.type if callable(action.type) else str
    try:
        value = convert(raw)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(str(exc)) from None
    except (ValueError, TypeError):
        raise ValueError(f"not a valid {getattr(convert, '__name__', 'value')}") from None
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"must be one of {', '.join(map(str, action.choices))}")
    return value


def _apply_env(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    argv: Sequence[str] | None,
    environ: Mapping[str, str],
) -> None:
    """Set, in ``args``, each option of ``parser`` that the command line left out and its
    ``CRDTSYNC_*`` variable gives (an option given on the command line also overrides the
    variables of the options it excludes: ``--db`` beats ``CRDTSYNC_MEMORY``). A bad value
    is a usage error (exit status 2) naming the variable."""
    explicit = _explicit_options(argv)
    groups = [g._group_actions for g in parser._mutually_exclusive_groups]
    chosen: dict[str, tuple[argparse.Action, object]] = {}
    for action in _env_actions(parser):
        name = _env_name(action)
        raw = environ.get(name)
        if raw is None or action.dest in explicit:
            continue
        if any(action in g and any(o.dest in explicit for o in g) for g in groups):
            continue
        try:
            chosen[action.dest] = (action, _env_value(action, raw))
        except ValueError as exc:
            parser.error(f"environment variable {name}={raw!r}: {exc}")
    for group in groups:
        # (an on/off option set to off by its variable excludes nothing)
        set_by_env = [a for a in group if a.dest in chosen and chosen[a.dest][1] is not False]
        if len(set_by_env) > 1:
            names = " and ".join(_env_name(a) for a in set_by_env)
            parser.error(f"environment variables {names} exclude each other")
    for dest, (_, value) in chosen.items():
        setattr(args, dest, value)


def _explicit_options(argv: Sequence[str] | None) -> set[str]:
    """The destinations of the ``serve`` options given on the command line ``argv``."""
    top, serve = _build_parsers()
    for action in serve._actions:
        action.default = argparse.SUPPRESS
    given = vars(top.parse_args(argv))
    return {a.dest for a in _env_actions(serve) if a.dest in given}


#: How long ``crdtsync rooms`` waits for a lock a server holds on the database (ms).
ROOMS_BUSY_TIMEOUT_MS = 10_000


def _rooms_error(message: str) -> int:
    print(f"crdtsync rooms: {message}", file=sys.stderr)
    return 2


def _run_rooms(args: argparse.Namespace) -> int:
    import sqlite3
    from pathlib import Path

    from crdtsync.server.postgres import PostgresStorage, is_postgres_url, redact_url
    from crdtsync.server.rooms import IMPORT_NODE
    from crdtsync.server.storage import SQLiteStorage

    storage: SQLiteStorage | PostgresStorage
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    shown = args.db
    if is_postgres_url(args.db):
        from crdtsync.server.app import ConfigError, open_storage

        shown = redact_url(args.db)
        try:
            storage = open_storage(args.db, node=IMPORT_NODE)
        except ConfigError as exc:
            return _rooms_error(str(exc))
        import psycopg

        errors = (psycopg.Error,)
    else:
        path = Path(args.db)
        if args.rooms_command != "import" and not path.is_file():
            return _rooms_error(f"no database file {args.db}")
        try:
            # Opening checks the schema in a write transaction: wait for a server's lock.
            storage = SQLiteStorage(path, node=IMPORT_NODE, busy_timeout_ms=ROOMS_BUSY_TIMEOUT_MS)
        except (sqlite3.Error, RuntimeError, OSError) as exc:
            return _rooms_error(f"{exc} ({args.db})")
    try:
        command: Handler = args.rooms_handler
        return command(argparse.Namespace(**vars(args), storage=storage, db_shown=shown))
    except errors as exc:
        return _rooms_error(f"{exc} ({shown})")
    finally:
        storage.close()
        storage.close_thread()


def _rooms_list(args: argparse.Namespace) -> int:
    import json

    infos = args.storage.rooms()
    if args.json:
        rows = [
            {
                "room": info.name,
                "bytes": info.bytes,
                "log_rows": info.log_rows,
                "log_bytes": info.log_bytes,
                "snapshot_bytes": info.snapshot_bytes,
                "owners": info.owners,
            }
            for info in infos
        ]
        print(json.dumps(rows, indent=2))
        return 0
    for info in infos:
        print(
            f"{info.name}\t{info.bytes} bytes\t{info.log_rows} log rows\t"
            f"snapshot {info.snapshot_bytes} bytes\t{info.owners} owners"
        )
    return 0


def _rooms_export(args: argparse.Namespace) -> int:
    import json

    from crdtsync.server.rooms import load_doc, to_json

    if args.room not in {info.name for info in args.storage.rooms()}:
        return _rooms_error(f"no room {args.room!r} in {args.db_shown}")
    doc = load_doc(args.storage, args.room)
    if doc.pending:
        print(
            f"crdtsync rooms: warning: {doc.pending} stored updates of {args.room!r} wait for "
            "updates the room lacks; they are not in the export",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(to_json(doc.to_py()), indent=2, sort_keys=True, ensure_ascii=False))
        return 0
    update = doc.get_update()
    try:
        with open(args.out, "wb") as file:
            file.write(update)
    except OSError as exc:
        return _rooms_error(str(exc))
    print(f"wrote {len(update)} bytes to {args.out}", file=sys.stderr)
    return 0


def _rooms_import(args: argparse.Namespace) -> int:
    from crdtsync._errors import DecodeError, PendingOverflowError
    from crdtsync.server.rooms import check_room_name, import_update

    try:
        check_room_name(args.room)
    except ValueError as exc:
        return _rooms_error(f"bad room name {args.room!r}: {exc}")
    try:
        with open(args.file, "rb") as file:
            update = file.read()
    except OSError as exc:
        return _rooms_error(str(exc))
    try:
        seq = import_update(args.storage, args.room, update)
    except (DecodeError, PendingOverflowError) as exc:
        return _rooms_error(f"{args.file}: {exc}")
    print(f"appended {len(update)} bytes to {args.room!r} (seq {seq})", file=sys.stderr)
    return 0


def _rooms_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        return _rooms_error(f"deleting room {args.room!r} needs --yes")
    removed = args.storage.delete(args.room)
    if not removed:
        return _rooms_error(f"no room {args.room!r} in {args.db_shown}")
    print(f"deleted room {args.room!r} ({removed} rows)", file=sys.stderr)
    return 0


def _add_rooms(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rooms = subparsers.add_parser(
        "rooms",
        help="list, export, import and delete the rooms in a server's database",
        description=(
            "Inspect and manage the rooms stored in the database of crdtsync serve --db (a "
            "SQLite file or a postgresql:// URL); safe while servers run on the same "
            "database (see docs/server.md, Managing rooms). "
            "Exit status 2 on an error."
        ),
    )
    commands = rooms.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help,
            description=help,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        sub.add_argument(
            "--db", default="crdtsync.db", help="SQLite database file or postgresql:// URL"
        )
        sub.set_defaults(handler=_run_rooms, rooms_handler=handler, rooms_command=name)
        return sub

    listing = command("list", _rooms_list, "room names with their stored bytes and rows")
    listing.add_argument("--json", action="store_true", help="a JSON array of objects")
    export = command("export", _rooms_export, "a room's merged state, as an update or JSON")
    export.add_argument("room", metavar="ROOM")
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", metavar="FILE", help="write the state as a crdtsync update")
    target.add_argument(
        "--json",
        action="store_true",
        help='print Doc.to_py() as JSON (sets: sorted lists; bytes: {"$base64": ...})',
    )
    imp = command("import", _rooms_import, "append an update file to a room (creates the db)")
    imp.add_argument("room", metavar="ROOM")
    imp.add_argument("file", metavar="FILE", help="a crdtsync update (Doc.get_update())")
    delete = command("delete", _rooms_delete, "remove a room's log, snapshot and owners")
    delete.add_argument("room", metavar="ROOM")
    delete.add_argument("--yes", action="store_true", help="really delete (required)")


def build_parser() -> argparse.ArgumentParser:
    """The ``crdtsync`` argument parser (``CRDTSYNC_*`` variables are applied by
    :func:`main`, after parsing)."""
    return _build_parsers()[0]


def _build_parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The ``crdtsync`` parser and its ``serve`` subparser."""
    parser = argparse.ArgumentParser(
        prog="crdtsync",
        description="crdtsync: conflict-free replicated data types in pure Python.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_demo(subparsers)
    serve = _add_serve(subparsers)
    _add_rooms(subparsers)
    return parser, serve


#: Exit status after the reader of stdout went away: what a shell reports for a process
#: killed by SIGPIPE (128 + 13), as ``yes | head`` gives.
EXIT_BROKEN_PIPE = 141


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at interpreter exit does not raise a
    second BrokenPipeError ("Exception ignored ...") for the output still buffered."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # replaced by something without a file
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    """The parsed command line ``argv``, with the ``crdtsync serve`` options it leaves out
    taken from ``CRDTSYNC_*`` variables in ``environ``; SystemExit (status 2) on a usage
    error, a bad variable's value included."""
    parser, serve = _build_parsers()
    args = parser.parse_args(argv)
    if args.handler is _run_serve:
        _apply_env(serve, args, argv, environ)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (``argv``: the arguments after ``crdtsync``, default
    ``sys.argv[1:]``); return the exit status, e.g. ``main(["demo", "--seed", "3"])``.
    ``crdtsync serve`` options missing from ``argv`` come from ``CRDTSYNC_*`` variables.

    A closed stdout (``crdtsync demo | head``) ends the command quietly with
    :data:`EXIT_BROKEN_PIPE` instead of a traceback.
    """
    args = parse_args(argv, os.environ)
    handler: Handler = args.handler
    try:
        status = handler(args)
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
        return status
    except KeyboardInterrupt:
        print(file=sys.stderr)  # leave the shell prompt off the progress line
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
