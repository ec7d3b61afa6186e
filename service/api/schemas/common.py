"""Field types and examples that several resources' schemas share."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    WithJsonSchema,
)

from service.api.paths import ITEM_ID_PATTERN, not_reserved
from service.inference.inputs import EXAMPLE_DATA
from service.items.types import METADATA_NUMBER_RANGE, MetadataValue, metadata_numbers_in_range

__all__ = [
    "EXAMPLE_INPUT",
    "METADATA_JSON",
    "METADATA_JSON_SCHEMA",
    "ItemId",
    "Label",
    "Metadata",
    "MetadataFilter",
    "Truncate",
    "Truncated",
    "refuse_renamed",
    "request_body",
]

EXAMPLE_INPUT = EXAMPLE_DATA  # a blank 28x28 image: the shipped model's input

# Not "reembed", no "/" and no control characters: service/api/paths.py says why
ItemId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256, pattern=r"^[^/\x00-\x1f]+$"),
    AfterValidator(not_reserved("reembed")),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": 256, "pattern": ITEM_ID_PATTERN}
    ),
]
Label = Annotated[str, StringConstraints(min_length=1, max_length=256)]
# Top-level metadata fields an item must hold with these values: JSON types are kept apart
# (1 matches 1 and 1.0, not true or "1"), null matches a field that is null (not a missing
# one). The filter of POST /neighbors and of GET /items (there as JSON in the query). A key
# holds no NUL: SQLite's JSON paths end at one, so such a key could match nothing but a 503.
_NO_NUL = r"^[^\x00]*$"
_LOW, _HIGH = METADATA_NUMBER_RANGE
# A metadata value as the schema states it: any JSON, its numbers in range, at any depth
# (a component of its own, as it refers to itself: service/api/openapi.py adds it)
METADATA_JSON = "MetadataJson"
METADATA_JSON_SCHEMA = {
    "anyOf": [
        {"type": "string"},
        {"type": "number", "minimum": _LOW, "maximum": _HIGH},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": {"$ref": f"#/components/schemas/{METADATA_JSON}"}},
        {
            "type": "object",
            "additionalProperties": {"$ref": f"#/components/schemas/{METADATA_JSON}"},
        },
    ]
}
MetadataFilter = Annotated[
    dict[Annotated[str, StringConstraints(pattern=_NO_NUL)], MetadataValue],
    AfterValidator(metadata_numbers_in_range),
    WithJsonSchema(  # pydantic would state the key rule as patternProperties, which allow any
        {
            "type": "object",
            "propertyNames": {"pattern": _NO_NUL},
            "additionalProperties": {
                "anyOf": [
                    {"type": "string"},
                    {"type": "number", "minimum": _LOW, "maximum": _HIGH},
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            },
        }
    ),
]
# An item's metadata: any JSON object, its numbers (at any depth) in range
Metadata = Annotated[
    dict[str, JsonValue],
    AfterValidator(metadata_numbers_in_range),
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": {"$ref": f"#/components/schemas/{METADATA_JSON}"},
        }
    ),
]


# A text model keeps a text's first max_length tokens (the request's `truncate`) and says
# which inputs it cut (the answer's `truncated`); both are inert for other models
Truncate = Annotated[
    bool,
    Field(
        description="Text models: keep the first max_length tokens of a longer text (true), "
        "or refuse it with a 422 (false)"
    ),
]
Truncated = Annotated[
    list[int],
    Field(
        description="Text models: positions of the inputs cut to the model's max_length "
        "tokens; absent when none was",
        exclude_if=lambda cut: not cut,
    ),
]


def refuse_renamed(data: Any, *, old: str, new: str) -> Any:
    """For a `mode="before"` model validator: a clear error for a field's former name."""
    if isinstance(data, dict) and old in data:
        raise ValueError(f"`{old}` is spelled `{new}`: send `{new}` instead")
    return data


def request_body(*examples: dict[str, JsonValue]) -> ConfigDict:
    """A request body's `model_config`: an unknown field or a value of another JSON type is
    a 422 (no coercion), and `examples` stand in the schema."""
    extra: dict[str, JsonValue] | None = {"examples": list(examples)} if examples else None
    return ConfigDict(extra="forbid", strict=True, json_schema_extra=extra)
