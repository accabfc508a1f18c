"""Reporting an exception raised by an application callback: the ``crdtsync`` logger with
its traceback, then each error listener (one that raises itself is only logged)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

log = logging.getLogger("crdtsync")


def report_callback_error(
    exc: Exception, message: str, listeners: Iterable[Callable[[Exception], None]]
) -> None:
    log.error("%s", message, exc_info=exc, extra={"event": "callback_error"})
    for listener in list(listeners):
        try:
            listener(exc)
        except Exception:
            log.exception("on_callback_error listener %r raised", listener)
