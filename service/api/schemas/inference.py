"""Bodies of POST /embed and POST /classify."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from service.api.schemas.common import (
    EXAMPLE_INPUT,
    Truncate,
    Truncated,
    refuse_renamed,
    request_body,
)
from service.inference.inputs import Input, Int


class EmbedRequest(BaseModel):
    model_config = request_body({"inputs": [EXAMPLE_INPUT]})

    inputs: list[Input] = Field(min_length=1)
    normalize: bool = Field(True, description="L2-normalise (cosine geometry); false: raw h")
    truncate: Truncate = True

    @model_validator(mode="before")
    @classmethod
    def _old_spelling(cls, data: Any) -> Any:
        return refuse_renamed(data, old="normalise", new="normalize")

    encoding_format: Literal["float", "base64"] = Field(
        "float",
        description="`float`: lists of numbers; `base64`: each embedding's float32 "
        "bytes (little-endian), base64-encoded: exact, and about half the size as text",
    )


class EmbedResponse(BaseModel):
    model: str
    dim: int
    normalized: bool
    encoding_format: Literal["float", "base64"]
    embeddings: list[list[float]] | list[str]
    truncated: Truncated = []


class ClassifyRequest(BaseModel):
    model_config = request_body({"inputs": [EXAMPLE_INPUT], "k": 3})

    inputs: list[Input] = Field(min_length=1)
    k: Int = Field(3, ge=1, description="How many top classes to return")
    threshold: float | None = Field(
        None, description="Unknown below this score; default: per-class calibrated thresholds"
    )
    truncate: Truncate = True


class ClassScore(BaseModel):
    label: str
    score: float


class Classification(BaseModel):
    label: str = Field(description="The predicted class (even when unknown is true)")
    score: float = Field(description="Its score under the class rule (cosine for cosine)")
    margin: float = Field(
        description="Its score minus the best other class's (negative when a class imprinted "
        "from a few examples wins by the encoder's features over a class scoring higher)"
    )
    unknown: bool = Field(description="Not one of the known classes: see `reason`")
    threshold: float | None = Field(description="The score threshold applied")
    top: list[ClassScore]
    reason: Literal["outside_data", "far_from_classes", "between_classes"] | None = Field(
        None,
        description="Why unknown (docs/open-world.md): outside_data, the input is unlike any "
        "training input; far_from_classes, far from every class; between_classes, near the "
        "training data but not close enough to one class; null when known",
    )


class ClassifyResponse(BaseModel):
    model: str
    rule: Literal["cosine", "euclidean", "dot"]
    results: list[Classification]
    truncated: Truncated = []
