"""Shared pytest configuration: hypothesis profiles, and a throwaway PostgreSQL server.

``HYPOTHESIS_PROFILE=dev pytest`` runs the same properties with more examples and longer
stateful runs; the default ``ci`` profile keeps the whole suite within a few minutes on a
small machine.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=60,
    stateful_step_count=40,
    print_blob=True,
    suppress_health_check=_SUPPRESS,
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=400,
    stateful_step_count=80,
    print_blob=True,
    suppress_health_check=_SUPPRESS,
)
settings.register_profile(
    "quick",
    deadline=None,
    max_examples=10,
    stateful_step_count=15,
    print_blob=True,
    suppress_health_check=_SUPPRESS,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# ---- PostgreSQL ------------------------------------------------------------------------------
# One throwaway cluster for the whole session (initdb into a temporary directory, on a free
# loopback port), a fresh database per test that asks for ``postgres_url``. Here rather than
# in test_server_support.py: a session fixture imported into several modules would start
# one cluster per module.


def _postgres_binary(name: str) -> str | None:
    """``name`` (initdb, pg_ctl) on PATH, else from Debian's versioned directories."""
    import glob
    import shutil

    found = shutil.which(name)
    if found is not None:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    return max(candidates, key=lambda p: int(p.split("/")[4]), default=None)


def _postgres_unavailable(reason: str) -> None:
    """Skip (with the reason) unless CI asked for the PostgreSQL tests to run for sure."""
    import pytest

    if os.environ.get("CRDTSYNC_REQUIRE_POSTGRES"):
        pytest.fail(f"PostgreSQL tests required (CRDTSYNC_REQUIRE_POSTGRES) but: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL cluster of our own: its URL without a database name."""
    import pwd
    import shutil
    import socket
    import subprocess
    import tempfile

    try:
        import psycopg  # noqa: F401
    except ImportError:
        _postgres_unavailable("psycopg is not installed (pip install -e '.[test]')")
    initdb, pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        _postgres_unavailable("initdb/pg_ctl not found (.ci/run installs Debian's postgresql)")
    assert initdb is not None and pg_ctl is not None
    # Not under pytest's tmp_path: as root that is private to root, and the server runs as
    # the postgres user (it refuses to run as root).
    workdir = tempfile.mkdtemp(prefix="crdtsync-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(workdir)
            _postgres_unavailable("running as root and there is no postgres user to run as")
        os.chown(workdir, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(workdir, "data")
    logfile = os.path.join(workdir, "server.log")
    init = subprocess.run(
        [*as_user, initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
         "--no-sync"],
        capture_output=True, text=True,
    )  # fmt: skip
    if init.returncode != 0:
        shutil.rmtree(workdir)
        _postgres_unavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
    started = None
    for _ in range(5):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # fsync off: the tests kill relays, never the database server; this spares the disk.
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {workdir} -c fsync=off"
        start = subprocess.run(
            [*as_user, pg_ctl, "-D", data, "-l", logfile, "-o", options, "-w", "-t", "30",
             "start"],
            capture_output=True, text=True,
        )  # fmt: skip
        if start.returncode == 0:
            started = port
            break
    if started is None:
        with open(logfile) as f:
            tail = f.read()[-500:]
        shutil.rmtree(workdir)
        _postgres_unavailable(f"the PostgreSQL server did not start: {tail}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{started}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's cluster, dropped after the test."""
    import psycopg

    name = f"t{os.getpid()}_{next(_DATABASES)}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{postgres_server}/{name}"
    finally:
        with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


_DATABASES = itertools.count()
