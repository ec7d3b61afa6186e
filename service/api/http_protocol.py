"""uvicorn's HTTP protocol with a deadline for request headers.

uvicorn closes idle keep-alive connections, but a client that opens a connection and sends
its headers a byte at a time (or nothing at all) is held forever, and enough of them use up
the server's file descriptors. Here the headers of each request must be complete within
`header_timeout` seconds of the connection opening or the previous response ending;
otherwise the server answers 408 and closes the connection. Bodies have their own timeout
(middleware.RequestBody).
"""

from __future__ import annotations

import asyncio
import functools
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["with_header_timeout"]

_BODY = json.dumps(
    {
        "error": {
            "code": "request_timeout",
            "message": "the request headers took too long",
            "details": None,
        }
    }
).encode()
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + f"content-length: {len(_BODY)}\r\n\r\n".encode()
    + _BODY
)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    header_timeout = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this keep-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()


def with_header_timeout(seconds: float) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (`Config(http=...)`) for this deadline."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": seconds})


class SettingsHeaderTimeoutProtocol(HeaderTimeoutProtocol):
    """For worker processes (COREL_WORKERS > 1), which import the protocol by name: the
    deadline is COREL_HEADER_TIMEOUT_S, read once per process."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.header_timeout = _settings_header_timeout()
        super().connection_made(transport)


@functools.cache
def _settings_header_timeout() -> float:
    from service.settings import Settings

    return Settings().header_timeout_s
