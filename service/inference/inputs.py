"""What a client sends to be embedded: an `Input`, in one of three forms.

An input is always one of three things, so a client never needs to know the model's scaling:
`data`, a nested list of numbers in the units the user has (pixels 0..255, H x W or
C x H x W, for image models; a flat list of features for vector models); `image`, a
base64-encoded PNG/JPEG/... file; or `tensor`, the same numbers as `data` packed as base64
bytes (uint8 or float32, C order), the cheapest form to send and to parse.

These are the inference layer's own types: the HTTP schemas reuse them, and
`preprocess.to_model_input` turns one into a model-ready array.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["Input", "Tensor", "exactly_one"]


def exactly_one(**fields: object) -> None:
    """For a model validator: ValueError unless exactly one of these fields is given."""
    if sum(value is not None for value in fields.values()) != 1:
        names = [f"`{name}`" for name in fields]
        raise ValueError(f"give exactly one of {', '.join(names[:-1])} and {names[-1]}")


class Tensor(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"b64": "AP8A/w==", "dtype": "uint8", "shape": [2, 2]}]},
    )

    b64: str = Field(
        description="The array's bytes, base64: C order, little-endian", max_length=32 * 1024 * 1024
    )
    dtype: Literal["uint8", "float32"] = Field("uint8", description="Element type of the bytes")
    shape: list[int] | None = Field(
        None, description="Array shape, as for `data`; default: the model's input shape"
    )


class Input(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"data": [[0, 255], [255, 0]]},
                {"image": "iVBORw0KGgo..."},
                {"tensor": {"b64": "AP8A/w==", "dtype": "uint8"}},
            ]
        },
    )

    data: list[Any] | None = Field(None, description="Numbers in raw units, e.g. 28x28 pixels")
    image: str | None = Field(
        None, description="A base64-encoded image file", max_length=32 * 1024 * 1024
    )
    tensor: Tensor | None = Field(None, description="The numbers of `data` as base64 bytes")

    @model_validator(mode="after")
    def _exactly_one(self) -> Input:
        exactly_one(data=self.data, image=self.image, tensor=self.tensor)
        return self
