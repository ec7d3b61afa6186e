"""The OpenAPI schema as this server really answers.

- FastAPI documents a 422 as its own `HTTPValidationError`; ours is the one error shape
  (`ErrorBody`, service/api/errors.py), so every 422 says so.
- The limits are settings (COREL_MAX_K, COREL_MAX_INPUTS_PER_REQUEST), which the pydantic
  models cannot carry; they are written into the generated schema once, where a client or
  a fuzzer reads them: every `k` gets its `maximum`, every list of inputs its `maxItems`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from service.settings import Settings

__all__ = ["with_limits"]

INPUT_LISTS = ("inputs", "items", "queries", "vectors")
ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


def with_limits(app: FastAPI, settings: Settings) -> Callable[[], dict[str, Any]]:
    """A replacement for `app.openapi` that adds the limits to FastAPI's schema."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for model in schema.get("components", {}).get("schemas", {}).values():
                _limit_properties(model.get("properties", {}), settings)
            schemas = schema.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    if "422" in operation["responses"]:
                        operation["responses"]["422"] = {
                            "description": "The request is malformed: the message names the field",
                            "content": {"application/json": {"schema": ERROR_BODY}},
                        }
                    for parameter in operation.get("parameters", []):
                        if parameter["name"] == "k":
                            parameter["schema"]["maximum"] = settings.max_k
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def _limit_properties(properties: dict[str, Any], settings: Settings) -> None:
    if "k" in properties:
        _each_branch(properties["k"], "integer", "maximum", settings.max_k)
    for name in INPUT_LISTS:
        if name in properties:
            _each_branch(properties[name], "array", "maxItems", settings.max_inputs_per_request)


def _each_branch(schema: dict[str, Any], type_: str, key: str, value: int) -> None:
    """Set `key` on the schema, or on its branches of `type_` when it is an anyOf (optional)."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == type_:
            branch[key] = value
