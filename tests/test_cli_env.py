"""`crdtsync serve` options from CRDTSYNC_* environment variables: the same checks as on
the command line, a flag overrides its variable, a bad value is a usage error naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crdtsync.cli import parse_args

ROOT = Path(__file__).resolve().parents[1]


def test_variables_set_options() -> None:
    args = parse_args(
        ["serve"],
        {
            "CRDTSYNC_PORT": "9001",
            "CRDTSYNC_DB": "/data/rooms.db",
            "CRDTSYNC_REDIS": "redis://cache:6379/0",
            "CRDTSYNC_MAX_MESSAGE_SIZE": "2048",
            "CRDTSYNC_RATE": "12.5",
            "CRDTSYNC_FSYNC": "yes",
            "CRDTSYNC_LOG_FORMAT": "text",
            "CRDTSYNC_PING_INTERVAL": "3",
        },
    )
    assert args.port == 9001
    assert args.db == "/data/rooms.db"
    assert args.redis == "redis://cache:6379/0"
    assert args.max_message_size == 2048
    assert args.rate == 12.5
    assert args.fsync is True
    assert args.log_format == "text"
    assert args.ping_interval == 3.0


def test_defaults_without_variables() -> None:
    args = parse_args(["serve"], {"UNRELATED": "1"})
    assert (args.port, args.db, args.redis, args.fsync, args.memory) == (
        8765,
        "crdtsync.db",
        None,
        False,
        False,
    )


def test_flags_override_variables() -> None:
    env = {"CRDTSYNC_PORT": "9001", "CRDTSYNC_FSYNC": "0", "CRDTSYNC_HOST": "0.0.0.0"}
    args = parse_args(["serve", "--port", "9002", "--fsync"], env)
    assert (args.port, args.fsync, args.host) == (9002, True, "0.0.0.0")


def test_a_flag_overrides_the_variables_of_options_it_excludes() -> None:
    args = parse_args(["serve", "--db", "x.db"], {"CRDTSYNC_MEMORY": "1"})
    assert (args.db, args.memory) == ("x.db", False)
    args = parse_args(["serve", "--memory"], {"CRDTSYNC_DB": "x.db"})
    assert args.memory is True
    args = parse_args(["serve"], {"CRDTSYNC_MEMORY": "on"})
    assert args.memory is True


def test_other_commands_ignore_the_variables() -> None:
    args = parse_args(["demo"], {"CRDTSYNC_PORT": "not a port"})
    assert args.seed == 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CRDTSYNC_PORT": "99999"}, "CRDTSYNC_PORT='99999': must be at most 65535"),
        ({"CRDTSYNC_PORT": "eighty"}, "CRDTSYNC_PORT='eighty': not an integer"),
        ({"CRDTSYNC_RATE": "fast"}, "CRDTSYNC_RATE='fast': not a valid float"),
        ({"CRDTSYNC_PING_TIMEOUT": "-1"}, "CRDTSYNC_PING_TIMEOUT='-1': must be a positive"),
        ({"CRDTSYNC_LOG_LEVEL": "loud"}, "CRDTSYNC_LOG_LEVEL='loud': must be one of"),
        ({"CRDTSYNC_FSYNC": "maybe"}, "CRDTSYNC_FSYNC='maybe': an on/off option"),
        (
            {"CRDTSYNC_MEMORY": "1", "CRDTSYNC_DB": "x.db"},
            "CRDTSYNC_DB and CRDTSYNC_MEMORY exclude each other",
        ),
    ],
)
def test_bad_values_are_usage_errors(
    env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["serve"], env)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_bad_variable_stops_serve_before_it_starts(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "crdtsync", "serve", "--memory"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "CRDTSYNC_PORT": "70000"},
    )
    assert result.returncode == 2, result.stderr
    assert "environment variable CRDTSYNC_PORT='70000': must be at most 65535" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_names_the_variables(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["serve", "--help"], {})
    out = " ".join(capsys.readouterr().out.split())
    for name in ("CRDTSYNC_PORT", "CRDTSYNC_DB", "CRDTSYNC_REDIS", "CRDTSYNC_MAX_MESSAGE_SIZE"):
        assert f"[env {name}]" in out
