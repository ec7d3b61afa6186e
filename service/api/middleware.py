"""ASGI middleware: request metrics by route template and the arrivals the micro-batcher
waits for (service/inference/arrivals.py); the request body's size limit and read timeout;
and admission, which refuses a POST with 429 while the inference queue is full, before its
body is read (reading and parsing a large body only to refuse it cost 200-350 ms
of a loaded server's time per rejection)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import metrics
from service.api.errors import error_response
from service.inference.arrivals import Arrivals
from service.inference.batcher import MicroBatcher


class RequestMetrics:
    def __init__(self, app: ASGIApp, arrivals: Arrivals | None = None) -> None:
        self.app, self.arrivals = app, arrivals or Arrivals()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500
        metrics.IN_FLIGHT.inc()
        self.arrivals.begin()

        async def receive_and_count() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body"):
                self.arrivals.arrived()
            return message

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive_and_count, send_and_record)
        finally:
            self.arrivals.ended()
            metrics.IN_FLIGHT.dec()
            route = scope.get("route")
            # the template as OpenAPI spells it (/items/{item_id}, no convertor), never the
            # raw path: bounded label values
            template = getattr(route, "path_format", "unmatched")
            metrics.REQUESTS.labels(scope["method"], template, str(status)).inc()
            metrics.REQUEST_SECONDS.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )


class RequestBody:
    """413 for a body over `max_bytes`, by Content-Length or by counting what arrives; 408
    when the next part of the body takes longer than `timeout` seconds to arrive."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body over the limit of {self.max_bytes} bytes"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await error_response(413, "payload_too_large", message)(scope, receive, send)
            return
        received, complete = 0, False

        async def counting_receive() -> Message:
            nonlocal received, complete
            if complete:  # the body is in: what follows is the disconnect, with no deadline
                return await receive()
            try:
                async with asyncio.timeout(self.timeout):  # a timer, not a task as wait_for's
                    incoming = await receive()
            except TimeoutError:
                raise HTTPException(
                    408, f"the request body stalled: nothing arrived for {self.timeout:g} s"
                ) from None
            received += len(incoming.get("body", b""))
            if received > self.max_bytes:
                # FastAPI re-raises HTTPException from body parsing as it is: the error
                # handler turns it into the usual JSON shape
                raise HTTPException(413, message)
            complete = incoming["type"] != "http.request" or not incoming.get("more_body")
            return incoming

        await self.app(scope, counting_receive, send)


class Admission:
    """429 for a POST while the inference queue is full, decided before the body is read."""

    def __init__(self, app: ASGIApp, batcher: Callable[[], MicroBatcher | None]) -> None:
        self.app, self.batcher = app, batcher

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        batcher = self.batcher() if scope["type"] == "http" else None
        if scope.get("method") == "POST" and batcher is not None and batcher.full:
            refusal = batcher.refusal()
            metrics.DROPPED.labels(reason="queue_full").inc()
            response = error_response(429, refusal.code, refusal.message, None, refusal.headers)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
