"""What a client sends to be embedded: an `Input`, in one of four forms.

An input is always one of four things, so a client never needs to know the model's scaling
or its tokenizer: `data`, a nested list of numbers in the units the user has (pixels 0..255,
H x W or C x H x W, for image models; a flat list of features for vector models); `image`, a
base64-encoded PNG/JPEG/... file; `tensor`, the same numbers as `data` packed as base64
bytes (uint8 or float32, C order), the cheapest form to send and to parse; or `text`, a
string, for text models (the bundle's tokenizer makes it token ids).

These are the inference layer's own types: the HTTP schemas reuse them, and
`preprocess.to_model_input` turns one into a model-ready array.
"""

from __future__ import annotations

import base64
import io
from typing import Annotated, Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, model_validator

__all__ = [
    "EXAMPLE_TEXT",
    "MAX_TEXT_CHARS",
    "WHITESPACE",
    "Input",
    "Int",
    "Tensor",
    "exactly_one",
    "one_given",
    "whole",
]


def _png_base64(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def whole(value: object) -> object:
    """3.0 is the integer 3 (JSON has one number type, and JSON Schema's `integer` says so);
    3.5, "3" and true stay what they are, for the strict check to refuse."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# An integer field of a request body: strict, but a whole number written as 3.0 is 3
Int = Annotated[int, BeforeValidator(whole)]


def exactly_one(**fields: object) -> None:
    """For a model validator: ValueError unless exactly one of these fields is given."""
    if sum(value is not None for value in fields.values()) != 1:
        names = [f"`{name}`" for name in fields]
        raise ValueError(f"give exactly one of {', '.join(names[:-1])} and {names[-1]}")


def one_given(*names: str) -> list[JsonValue]:
    """The `oneOf` of a schema whose model validates with `exactly_one(*names)`: exactly one
    of these fields is present and not null (a null counts as absent)."""
    return [{"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in names]


# Examples for the OpenAPI schema, each accepted by the shipped 28x28 model: a blank image.
EXAMPLE_TENSOR: dict[str, Any] = {
    "b64": base64.b64encode(bytes(28 * 28)).decode(),
    "dtype": "uint8",
}
EXAMPLE_DATA: dict[str, Any] = {"data": [[0] * 28 for _ in range(28)]}
EXAMPLE_IMAGE: dict[str, Any] = {"image": _png_base64(np.zeros((28, 28), np.uint8))}
EXAMPLE_TEXT: dict[str, Any] = {"text": "a seat for one person, with a back and four legs"}
# Far more than any text model keeps (its max_length tokens): the rest is truncated anyway
MAX_TEXT_CHARS = 100_000
# Unicode's White_Space characters, spelled out so that the schema's pattern (any regex
# engine) and the service's check agree: a text of these alone is refused
WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
NOT_ONLY_WHITESPACE = f"[^{WHITESPACE}]"


class Tensor(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [EXAMPLE_TENSOR]},
    )

    b64: str = Field(
        description="The array's bytes, base64: C order, little-endian", max_length=32 * 1024 * 1024
    )
    dtype: Literal["uint8", "float32"] = Field("uint8", description="Element type of the bytes")
    shape: list[Int] | None = Field(
        None, description="Array shape, as for `data`; default: the model's input shape"
    )


class Input(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [EXAMPLE_DATA, EXAMPLE_IMAGE, {"tensor": EXAMPLE_TENSOR}, EXAMPLE_TEXT],
            "oneOf": one_given("data", "image", "tensor", "text"),
        },
    )

    data: list[Any] | None = Field(None, description="Numbers in raw units, e.g. 28x28 pixels")
    image: str | None = Field(
        None, description="A base64-encoded image file", max_length=32 * 1024 * 1024
    )
    tensor: Tensor | None = Field(None, description="The numbers of `data` as base64 bytes")
    text: str | None = Field(
        None,
        description="A text, for text models: not only whitespace",
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        json_schema_extra={"pattern": NOT_ONLY_WHITESPACE},
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Input:
        exactly_one(data=self.data, image=self.image, tensor=self.tensor, text=self.text)
        return self
