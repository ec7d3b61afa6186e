"""Field types and examples that several resources' schemas share."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints, WithJsonSchema

from service.api.paths import ITEM_ID_PATTERN, not_reserved
from service.inference.inputs import EXAMPLE_DATA
from service.items.types import MetadataValue

__all__ = ["EXAMPLE_INPUT", "ItemId", "Label", "MetadataFilter", "refuse_renamed"]

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
MetadataFilter = Annotated[
    dict[Annotated[str, StringConstraints(pattern=_NO_NUL)], MetadataValue],
    WithJsonSchema(  # pydantic would state the key rule as patternProperties, which allow any
        {
            "type": "object",
            "propertyNames": {"pattern": _NO_NUL},
            "additionalProperties": {
                "anyOf": [{"type": t} for t in ("string", "integer", "number", "boolean", "null")]
            },
        }
    ),
]


def refuse_renamed(data: Any, *, old: str, new: str) -> Any:
    """For a `mode="before"` model validator: a clear error for a field's former name."""
    if isinstance(data, dict) and old in data:
        raise ValueError(f"`{old}` is spelled `{new}`: send `{new}` instead")
    return data
