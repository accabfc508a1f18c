"""Access control: ``authenticate(token, room) -> "read" | "write" | None``.

The relay asks the hook once per connection and room, before it loads the room. ``None``
refuses (the client is closed with 4401), ``"read"`` lets the client receive the room and
its presence but not change it (a change closes it with 4403), ``"write"`` allows both.
The hook may be a plain function or a coroutine function; :class:`TokenFile` is the
built-in one, :func:`allow_all` the one for a loopback-only development server.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "tokens"
>>> _ = path.write_text('''
... # token          access  rooms
... alice-secret     write   *
... viewer-secret    read    public/*, lobby
... ''')
>>> auth = TokenFile(path)
>>> auth("alice-secret", "notes"), auth("viewer-secret", "public/news")
('write', 'read')
>>> auth("viewer-secret", "notes") is None, auth(None, "lobby") is None
(True, True)
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

__all__ = ["Access", "Authenticator", "TokenFile", "allow_all", "load_authenticator"]

Access = Literal["read", "write"]
#: The hook: token (None when the client sent none) and room name -> access or None.
Authenticator = Callable[[str | None, str], "Access | None | Awaitable[Access | None]"]


def allow_all(token: str | None, room: str) -> Access:
    """Everyone may write everywhere: for a development server on the loopback interface."""
    return "write"


@dataclass(frozen=True)
class _Grant:
    secret: str  # the token, or "sha256:<hex digest>" of it
    access: Access
    rooms: tuple[str, ...]  # fnmatch patterns (case-sensitive)


class TokenFile:
    """Tokens from a text file, re-read whenever the file changes (no restart needed).

    One grant per line: ``TOKEN ACCESS [ROOMS]``, whitespace-separated; ``ACCESS`` is
    ``read`` or ``write``; ``ROOMS`` is a comma-separated list of glob patterns
    (``*`` when absent) matched against the room name (the URL path without its leading
    ``/``). ``TOKEN`` may be written as ``sha256:HEX`` (the SHA-256 of the token) so that
    the file holds no usable secret. ``#`` starts a comment. When several lines match, the
    strongest access wins. Tokens are compared in constant time.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._grants: list[_Grant] = []
        self._reload()

    def _reload(self) -> None:
        st = self.path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        grants = []
        for number, raw in enumerate(self.path.read_text("utf-8").splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split(None, 2)
            if len(fields) < 2 or fields[1] not in ("read", "write"):
                raise ValueError(f"{self.path}:{number}: expected 'TOKEN read|write [ROOMS]'")
            rooms = (
                tuple(p.strip() for p in fields[2].split(",") if p.strip())
                if len(fields) == 3
                else ("*",)
            )
            access: Access = "write" if fields[1] == "write" else "read"
            grants.append(_Grant(fields[0], access, rooms))
        self._grants = grants
        self._stamp = stamp

    def __call__(self, token: str | None, room: str) -> Access | None:
        with contextlib.suppress(OSError, ValueError):
            self._reload()  # on failure keep the last good grants (file being rewritten)
        if not token:
            return None
        digest = "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()
        best: Access | None = None
        for grant in self._grants:
            wanted = digest if grant.secret.startswith("sha256:") else token
            if hmac.compare_digest(grant.secret.encode(), wanted.encode()) and any(
                fnmatchcase(room, pattern) for pattern in grant.rooms
            ):
                if grant.access == "write":
                    return "write"
                best = "read"
        return best


def load_authenticator(spec: str) -> Authenticator:
    """``"package.module:function"`` -> that function (for ``crdtsync serve --auth``)."""
    import importlib

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--auth expects MODULE:FUNCTION, got {spec!r}")
    target: object = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec} is not callable")
    hook: Authenticator = target
    return hook
