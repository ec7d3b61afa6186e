"""A progress line on stderr: rewritten in place on a terminal, a new line every 10 s in a
log. The serving install has no progress-bar library, and needs none for one line."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    def __init__(
        self, *, total: int, done: int, enabled: bool = True, out: TextIO | None = None
    ) -> None:
        self.out = out or sys.stderr
        self.enabled = enabled
        self.tty = self.out.isatty()
        self.every = 0.5 if self.tty else 10.0
        self.total, self.first, self.done = total, done, done
        self.started = self.last = time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Items per second in this run."""
        return (self.done - self.first) / max(self.seconds, 1e-9)

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if self.enabled and (now - self.last >= self.every or done >= self.total):
            self.last = now
            self._write(self.line(), end="\r" if self.tty else "\n")

    def close(self) -> None:
        if self.enabled and self.tty:
            self._write(self.line(), end="\n")

    def line(self) -> str:
        share = self.done / self.total if self.total else 1.0
        left = (self.total - self.done) / self.rate if self.rate else float("inf")
        eta = f"{left:,.0f} s left" if left != float("inf") else "-- s left"
        return f"{self.done:,}/{self.total:,} items ({share:.0%})  {self.rate:,.0f} items/s  {eta}"

    def _write(self, text: str, end: str) -> None:
        self.out.write(f"\x1b[2K{text}{end}" if self.tty else f"{text}{end}")
        self.out.flush()
