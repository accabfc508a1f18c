"""Callback lists: subscribing to one, and reporting an exception an application callback
raised (the ``crdtsync`` logger with its traceback, then each error listener; one that
raises itself is only logged)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

log = logging.getLogger("crdtsync")

F = TypeVar("F")


def subscribe(callbacks: list[F], callback: F) -> Callable[[], None]:
    """Append ``callback`` to ``callbacks``; return a function that removes it again (a
    second call does nothing)."""
    callbacks.append(callback)

    def unsubscribe() -> None:
        if callback in callbacks:
            callbacks.remove(callback)

    return unsubscribe


def report_callback_error(
    exc: Exception, message: str, listeners: Iterable[Callable[[Exception], None]]
) -> None:
    log.error("%s", message, exc_info=exc, extra={"event": "callback_error"})
    for listener in list(listeners):
        try:
            listener(exc)
        except Exception:
            log.exception("on_callback_error listener %r raised", listener)
