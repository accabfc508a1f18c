"""Structured logging: one JSON object per line, for log shippers.

Every record has ``ts`` (ISO 8601, UTC), ``level``, ``logger`` and ``msg``; fields passed
with ``extra=`` (the relay always sets ``event``, and ``room``, ``conn``, ``code`` where
they apply) are added as they are.

>>> import logging
>>> record = logging.LogRecord("crdtsync.server", logging.INFO, __file__, 1, "hello %s",
...                            ("world",), None)
>>> record.event, record.room = "demo", "notes"
>>> line = JsonFormatter().format(record)
>>> import json; data = json.loads(line)
>>> data["msg"], data["event"], data["room"], data["level"]
('hello world', 'demo', 'notes', 'info')
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter", "configure"]

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, separators=(",", ":"))


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{k}={v}"
            for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_")
        ]
        return f"{line} [{' '.join(extras)}]" if extras else line


def configure(level: str = "info", fmt: str = "json") -> None:
    """Send crdtsync's and the libraries' logs to stderr as JSON lines (or plain text)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # websockets logs every handshake failure at INFO/ERROR with tracebacks; keep warnings.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, root.level))
