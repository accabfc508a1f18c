"""`crdtsync serve` configuration errors: one clear line on stderr and exit status 2, no
traceback (a real subprocess, as an operator would run it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CASES = [
    (["--memory", "--port", "99999"], "must be at most 65535"),
    (["--memory", "--tcp-port", "70000"], "must be at most 65535"),
    (["--db", "/nonexistent/dir/x.db", "--port", "0"], "unable to open database file"),
]


@pytest.mark.parametrize(("args", "message"), CASES)
def test_config_errors_are_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str):
    result = subprocess.run(
        [sys.executable, "-m", "crdtsync", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
