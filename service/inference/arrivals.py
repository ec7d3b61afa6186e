"""Which requests are on their way to the inference queue: what the micro-batcher waits for.

A request counts from when its body has arrived (a client still uploading may take any
time: the batcher must not wait for it) until it puts work on the queue or ends, whichever
comes first. A request that has queued its work is not counted: waiting for it would be
waiting for nothing. Measured under wrk at concurrency 32, counting every request until its
response had gone out made the batcher sleep its full `max_wait_ms` before each batch while
the event loop had nothing left to do (the loop was 76 % busy for /classify).

The ASGI middleware (service/api/middleware.py) calls `arrived` and `ended`; the batcher
calls `queued` when a request puts work on it, reads the count and waits on `settled`.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["Arrivals"]


@dataclass
class _Request:
    arrived: bool = False
    counted: bool = False


class Arrivals:
    def __init__(self) -> None:
        self.count = 0
        self._request: ContextVar[_Request | None] = ContextVar("request", default=None)
        self._settled: asyncio.Event | None = None  # made on first use, in the running loop

    def __call__(self) -> int:
        return self.count

    def begin(self) -> None:
        """A request starts (its task's context now refers to it)."""
        self._request.set(_Request())

    def arrived(self) -> None:
        """The request's body is complete."""
        request = self._request.get()
        if request is not None and not request.arrived:
            request.arrived = request.counted = True
            self.count += 1

    def queued(self) -> None:
        """The request has put work on the inference queue (once is enough)."""
        self._uncount()

    def ended(self) -> None:
        self._uncount()

    async def settled(self) -> None:
        """Return once no request is on its way (at once when none is)."""
        if self.count == 0:
            return
        if self._settled is None:
            self._settled = asyncio.Event()
        self._settled.clear()
        await self._settled.wait()

    def _uncount(self) -> None:
        request = self._request.get()
        if request is not None and request.counted:
            request.counted = False
            self.count -= 1
            if self.count == 0 and self._settled is not None:
                self._settled.set()
