"""The one error family of the service, and the one JSON shape every error is sent in.

    ServiceError                      (status, code)
    ├── UnauthorizedError             401 unauthorized
    ├── NotFoundError                 404 not_found
    ├── ConflictError                 409 conflict
    ├── PayloadTooLargeError          413 payload_too_large
    ├── UnsupportedMediaTypeError     415 unsupported_media_type
    ├── ValidationFailedError         422 validation_failed
    ├── TooManyRequestsError          429 too_many_requests
    ├── ServiceUnavailableError       503 service_unavailable
    └── InsufficientStorageError      507 insufficient_storage (the disk is full)

Body of every error response:

    {"error": {"code": "not_found", "message": "no item with id 'x'", "details": null}}

The handlers that send them, and FastAPI's and Starlette's own errors, in that shape are
in `service.api.errors`.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 500
    code = "internal_error"

    def __init_subclass__(cls, *, status: int, code: str) -> None:
        cls.status, cls.code = status, code

    def __init__(
        self, message: str, *, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message, self.details, self.headers = message, details, headers

    @property
    def status_code(self) -> int:  # the name HTTPException uses, for callers that know it
        return self.status


class UnauthorizedError(ServiceError, status=401, code="unauthorized"): ...


class NotFoundError(ServiceError, status=404, code="not_found"): ...


class ConflictError(ServiceError, status=409, code="conflict"): ...


class PayloadTooLargeError(ServiceError, status=413, code="payload_too_large"): ...


class UnsupportedMediaTypeError(ServiceError, status=415, code="unsupported_media_type"): ...


class ValidationFailedError(ServiceError, status=422, code="validation_failed"): ...


class TooManyRequestsError(ServiceError, status=429, code="too_many_requests"): ...


class ServiceUnavailableError(ServiceError, status=503, code="service_unavailable"): ...


class InsufficientStorageError(ServiceError, status=507, code="insufficient_storage"): ...
