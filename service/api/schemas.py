"""Request and response bodies of the embed, classify, classes and model routes.

An input is always one of three things, so a client never needs to know the model's scaling:
`data`, a nested list of numbers in the units the user has (pixels 0..255, H x W or
C x H x W, for image models; a flat list of features for vector models); `image`, a
base64-encoded PNG/JPEG/... file; or `tensor`, the same numbers as `data` packed as base64
bytes (uint8 or float32, C order), the cheapest form to send and to parse.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EXAMPLE_INPUT: dict[str, Any] = {"data": [[0] * 28 for _ in range(28)]}


def exactly_one(**fields: object) -> None:
    """For a model validator: ValueError unless exactly one of these fields is given."""
    if sum(value is not None for value in fields.values()) != 1:
        names = [f"`{name}`" for name in fields]
        raise ValueError(f"give exactly one of {', '.join(names[:-1])} and {names[-1]}")


class Tensor(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"b64": "AP8A/w==", "dtype": "uint8", "shape": [2, 2]}]})

    b64: str = Field(description="The array's bytes, base64: C order, little-endian",
                     max_length=32 * 1024 * 1024)
    dtype: Literal["uint8", "float32"] = Field("uint8", description="Element type of the bytes")
    shape: list[int] | None = Field(
        None, description="Array shape, as for `data`; default: the model's input shape")


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [
                                  {"data": [[0, 255], [255, 0]]}, {"image": "iVBORw0KGgo..."},
                                  {"tensor": {"b64": "AP8A/w==", "dtype": "uint8"}}]})

    data: list[Any] | None = Field(None, description="Numbers in raw units, e.g. 28x28 pixels")
    image: str | None = Field(None, description="A base64-encoded image file",
                              max_length=32 * 1024 * 1024)
    tensor: Tensor | None = Field(None, description="The numbers of `data` as base64 bytes")

    @model_validator(mode="after")
    def _exactly_one(self) -> Input:
        exactly_one(data=self.data, image=self.image, tensor=self.tensor)
        return self


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"inputs": [EXAMPLE_INPUT]}]})

    inputs: list[Input] = Field(min_length=1)
    normalize: bool = Field(True, description="L2-normalise (cosine geometry); false: raw h")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="`float`: lists of numbers; `base64`: each embedding's float32 "
        "bytes (little-endian), base64-encoded: exact, and about half the size as text")


class EmbedResponse(BaseModel):
    model: str
    dim: int
    normalized: bool
    encoding_format: Literal["float", "base64"]
    embeddings: list[list[float]] | list[str]


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"inputs": [EXAMPLE_INPUT], "k": 3}]})

    inputs: list[Input] = Field(min_length=1)
    k: int = Field(3, ge=1, description="How many top classes to return")
    threshold: float | None = Field(
        None, description="Unknown below this score; default: per-class calibrated thresholds")


class ClassScore(BaseModel):
    label: str
    score: float


class Classification(BaseModel):
    label: str = Field(description="The best class (even when unknown is true)")
    score: float = Field(description="Its score under the class rule (cosine for cosine)")
    margin: float = Field(description="Best score minus second best")
    unknown: bool = Field(description="Best score below the threshold")
    threshold: float | None
    top: list[ClassScore]


class ClassifyResponse(BaseModel):
    model: str
    rule: Literal["cosine", "euclidean", "dot"]
    results: list[Classification]


class ClassCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")
    inputs: list[Input] = Field(min_length=1, description="A few examples of the new class")
    threshold: float | None = Field(None, description="Unknown threshold for this class")


class ClassInfo(BaseModel):
    name: str
    source: Literal["bundle", "imprinted"]
    examples: int | None = Field(None, description="Examples it was imprinted from")
    threshold: float | None


class ClassList(BaseModel):
    rule: str
    classes: list[ClassInfo]
