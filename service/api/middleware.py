"""ASGI middleware: request metrics by route template, and the request body size limit."""

from __future__ import annotations

import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import metrics
from service.api.errors import error_response


class InFlight:
    """How many HTTP requests the app is handling now (the batcher asks, see batcher.py)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        return self.count


class RequestMetrics:
    def __init__(self, app: ASGIApp, in_flight: InFlight | None = None) -> None:
        self.app, self.in_flight = app, in_flight or InFlight()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500
        self.in_flight.count += 1
        metrics.IN_FLIGHT.inc()

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.in_flight.count -= 1
            metrics.IN_FLIGHT.dec()
            route = scope.get("route")
            # the template (/items/{item_id}), never the raw path: bounded label values
            template = getattr(route, "path", "unmatched")
            metrics.REQUESTS.labels(scope["method"], template, str(status)).inc()
            metrics.REQUEST_SECONDS.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )


class BodySizeLimit:
    """413 for a body over `max_bytes`, by Content-Length or by counting what arrives."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body over the limit of {self.max_bytes} bytes"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await error_response(413, "payload_too_large", message)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            incoming = await receive()
            received += len(incoming.get("body", b""))
            if received > self.max_bytes:
                # FastAPI re-raises HTTPException from body parsing as it is: the error
                # handler turns it into the usual JSON shape
                raise HTTPException(413, message)
            return incoming

        await self.app(scope, counting_receive, send)
