"""The ``crdtsync`` command line (also ``python -m crdtsync``).

Each feature is a subcommand: ``crdtsync demo`` today. A subcommand is a parser added in
:func:`build_parser` plus a handler taking the parsed arguments and returning an exit code;
handlers import their modules lazily so that ``crdtsync --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

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


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


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
            "Replicas edit a shared document (text, map, set, counter) at the same time. "
            "Every edit is broadcast over a simulated network that delays, reorders, "
            "duplicates and drops messages; afterwards the network heals, the replicas run "
            "anti-entropy, and the demo checks that all of them hold the same values. "
            "Exit status 0 if they converged, 1 if not."
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crdtsync",
        description="crdtsync: conflict-free replicated data types in pure Python.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_demo(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print(file=sys.stderr)  # leave the shell prompt off the progress line
        return 130


if __name__ == "__main__":
    sys.exit(main())
