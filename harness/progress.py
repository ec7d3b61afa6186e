"""Progress lines on stderr, each with the seconds since the process started and the load."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

__all__ = ["every", "load1", "say"]

_T0 = time.perf_counter()


def load1() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def say(message: str) -> None:
    """`[  12.3 s | load  1.50] message` on stderr."""
    elapsed = time.perf_counter() - _T0
    sys.stderr.write(f"[{elapsed:7.1f} s | load {load1():5.2f}] {message}\n")
    sys.stderr.flush()


def every(seconds: float, what: str) -> Callable[[int, int], None]:
    """A `progress(done, total)` that says where it is at most every `seconds`."""
    last = [time.perf_counter()]

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        if done >= total or now - last[0] >= seconds:
            last[0] = now
            say(f"{what}: {done:,} of {total:,}")

    return report
