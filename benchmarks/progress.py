"""A dependency-free progress bar on stderr.

On a terminal it redraws one line; elsewhere (CI logs, pipes) it prints a line each time a
new case starts, so logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._last_case = ""
        self._width = 0

    def _elapsed(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return f"{seconds // 60}:{seconds % 60:02d}"

    def show(self, case: str, detail: str) -> None:
        """Announce the step about to run."""
        if not self.enabled:
            return
        fraction = self.done / self.total
        if self.tty:
            filled = int(fraction * 30)
            bar = "#" * filled + "-" * (30 - filled)
            line = f"[{bar}] {fraction:4.0%} {self._elapsed()}  {case} {detail}"
            pad = " " * max(self._width - len(line), 0)
            self._width = len(line)
            self.stream.write(f"\r{line}{pad}")
            self.stream.flush()
        elif case != self._last_case:
            self.stream.write(f"[{fraction:4.0%} {self._elapsed()}] {case}\n")
            self.stream.flush()
        self._last_case = case

    def advance(self, steps: int = 1) -> None:
        self.done = min(self.done + steps, self.total)

    def message(self, text: str) -> None:
        """A line of its own (a warning, a failure) that the bar does not overwrite."""
        if self.tty and self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + " " * self._width + "\r")
        self.stream.write(f"done: {self.done} steps in {self._elapsed()}\n")
        self.stream.flush()
