"""What decoding a decompression bomb costs: peak memory and time, per inflated-size limit.

The bomb is a valid-looking compressed update (``0xC1 0x02`` then DEFLATE) whose body is
``[[], [], [0, 0, 0, ...]]``: a few hundred KB that inflate to ``--size`` bytes (default
256 MiB) of msgpack zeros, which msgpack would turn into a list with one item per byte.
Each case runs in a fresh child process (``python -m benchmarks.bomb --child ...``) that
reports its peak RSS growth and the time ``decode_update`` took to refuse (or accept) it.

    python -m benchmarks.bomb            # the cases below, as a markdown table
    python -m benchmarks.bomb --size 64  # a bomb of 64 MiB instead

Cases: the limit that applied before it became a parameter (256 MiB: the bomb inflates
whole and msgpack builds the list), the default (64 MiB), a sync session's limit with the
relay's default incoming message size (2 MiB), and the worst a decode can cost under each
of those two limits: a bomb that inflates to just under the limit, all of it parsed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import zlib

MIB = 1 << 20


def bomb(size: int) -> bytes:
    """A compressed update whose body inflates to ``size`` bytes: an array of zeros."""
    n = size - 8  # the body's own header: 93 90 90 dd + 4 length bytes
    body = b"\x93\x90\x90\xdd" + n.to_bytes(4, "big")
    deflater = zlib.compressobj(9)
    parts = [deflater.compress(body)]
    zeros = bytes(MIB)
    while n > 0:
        parts.append(deflater.compress(zeros[: min(n, MIB)]))
        n -= MIB
    parts.append(deflater.flush())
    return b"\xc1\x02" + b"".join(parts)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def child(size: int, limit: int) -> dict[str, object]:
    from crdtsync import DecodeError
    from crdtsync._encoding import decode_update

    data = bomb(size)
    decode_update(b"\xc1\x01\x93\x90\x90\x90")  # warm: imports and first-call costs
    base = _peak_rss()
    start = time.perf_counter()
    try:
        decode_update(data, limit)
        outcome = "accepted"
    except DecodeError as exc:
        outcome = str(exc).split(":")[0]
    seconds = time.perf_counter() - start
    return {
        "compressed": len(data),
        "seconds": seconds,
        "rss_growth": _peak_rss() - base,
        "outcome": outcome,
    }


def run_case(size: int, limit: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bomb", "--child", str(size), str(limit)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="bomb size inflated, MiB")
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    from crdtsync._encoding import DEFAULT_MAX_INFLATED_SIZE

    size = args.size * MIB
    cases = [
        ("limit before it was a parameter (256 MiB)", size, 256 * MIB + 1),
        ("default limit (64 MiB)", size, DEFAULT_MAX_INFLATED_SIZE),
        ("session behind the relay's 2 MiB message limit", size, 2 * MIB),
        ("worst case under the default: 64 MiB - 1 KiB, parsed", 64 * MIB - 1024, 64 * MIB),
        ("worst case under the relay's 2 MiB: 2 MiB - 1 KiB, parsed", 2 * MIB - 1024, 2 * MIB),
    ]
    print("| case | compressed | inflates to | time | peak RSS growth | outcome |")
    print("|---|---|---|---|---|---|")
    for name, bomb_size, limit in cases:
        r = run_case(bomb_size, limit)
        compressed, seconds, rss = (
            int(str(r["compressed"])),
            float(str(r["seconds"])),
            int(str(r["rss_growth"])),
        )
        print(
            f"| {name} | {compressed / 1000:.0f} KB | {bomb_size / MIB:.0f} MiB "
            f"| {seconds:.2f} s | {rss / MIB:.0f} MiB | {r['outcome']} |"
        )


if __name__ == "__main__":
    main()
