"""Every error leaves the service in one JSON shape (service/errors.py describes it).

FastAPI's request validation errors become 422 `validation_failed` with pydantic's error
list as details; Starlette's own HTTP errors (unknown route 404, wrong method 405
`method_not_allowed`, a streamed body over the limit 413) keep their status and take the
code of our class for that status; anything unexpected is a 500 `internal_error` that
leaks nothing (the traceback goes to the log only).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from service.errors import ServiceError

__all__ = ["error_response", "install_error_handlers"]

log = logging.getLogger(__name__)


# Codes for errors raised by FastAPI/Starlette themselves (unknown route, wrong method, the
# body limit while streaming): the same code as our own class for that status.
_HTTP_CODES = {cls.status: cls.code for cls in ServiceError.__subclasses__()} | {
    400: "bad_request",
    405: "method_not_allowed",
    408: "request_timeout",
}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": jsonable_encoder(details)}}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        if first.get("type") == "json_invalid":  # loc is ("body", character offset)
            reason = (exc.errors()[0].get("ctx") or {}).get("error", "")
            offset = first["loc"][-1] if first["loc"] else "?"
            return error_response(
                422,
                "validation_failed",
                f"the body is not valid JSON at character {offset}: {reason}",
                details,
            )
        where = ".".join(str(part) for part in first["loc"])
        return error_response(422, "validation_failed", f"{where}: {first['msg']}", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette names the methods of the first route whose path matched; GET and POST
            # /classes are two routes, so it would say only GET
            allowed = allowed_methods(app, request.scope)
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            return error_response(
                405,
                code,
                f"{request.method} is not allowed here; allowed: {', '.join(allowed)}",
                {"allowed": allowed},
                headers,
            )
        return error_response(exc.status_code, code, str(exc.detail), None, headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal server error")


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route answers at this request's path (asked of the router itself,
    which also sees the routes of included routers)."""
    return [
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**scope, "method": method})[0] == Match.FULL
            for route in app.router.routes
        )
    ]
