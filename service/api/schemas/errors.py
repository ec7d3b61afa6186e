"""The error body every failure is sent in (service/errors.py), for the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["ErrorBody", "errors"]


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable, machine-readable: not_found, validation_failed, ...")
    message: str = Field(description="What went wrong, for a person")
    details: Any = Field(None, description="Structured context, e.g. pydantic's error list")


class ErrorBody(BaseModel):
    error: ErrorInfo


_MEANING = {
    401: "Missing or wrong API key (only when the service sets COREL_API_KEY)",
    404: "No such item or class",
    408: "The request's headers or body stalled (COREL_HEADER_TIMEOUT_S, COREL_BODY_TIMEOUT_S)",
    409: "Conflicts with what is stored (an id or class name taken, another model's item)",
    413: "Body, input count, image size or k over a limit (COREL_MAX_*)",
    415: "The body is not declared JSON (Content-Type: application/json)",
    422: "The request is malformed: the message names the field",
    429: "The inference queue is full: retry after the Retry-After seconds",
    503: "Loading, overloaded (queued too long) or shutting down: retry later",
    507: "The disk is full: nothing of the request was stored; retry once space is freed",
}

_STATUS_NAMES = {"not_found": 404, "conflict": 409, "unprocessable": 422}


def errors(*statuses: int, **meaning: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each in the one error shape; a route
    whose status means more than the usual says so by keyword (`not_found="..."`)."""
    own = {_STATUS_NAMES[name]: text for name, text in meaning.items()}
    return {
        status: {"model": ErrorBody, "description": own.get(status, _MEANING[status])}
        for status in statuses
    }
