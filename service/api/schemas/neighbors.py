"""Bodies of GET and POST /neighbors."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.api.schemas.common import (
    EXAMPLE_INPUT,
    ItemId,
    Label,
    MetadataFilter,
    Truncate,
    Truncated,
    request_body,
)
from service.inference.inputs import Input, Int, exactly_one, one_given

MAX_OFFSET = 10_000


class NeighbourQuery(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"oneOf": one_given("id", "input", "vector")}
    )

    id: ItemId | None = Field(None, description="A stored item's id")
    input: Input | None = Field(None, description="A new input, embedded for this query")
    vector: list[float] | None = Field(None, description="A raw embedding of the current model")

    @model_validator(mode="after")
    def _exactly_one(self) -> NeighbourQuery:
        exactly_one(id=self.id, input=self.input, vector=self.vector)
        return self


class NeighbourFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    label: Label | None = None
    metadata: MetadataFilter = Field(
        default_factory=dict, description="Top-level metadata fields that must equal these"
    )


class NeighboursRequest(BaseModel):
    model_config = request_body(
        {
            "queries": [{"id": "shoe-1"}, {"input": EXAMPLE_INPUT}],
            "k": 5,
            "min_score": 0.5,
            "filter": {"label": "Sneaker", "metadata": {"colour": "white"}},
        }
    )

    queries: list[NeighbourQuery] = Field(min_length=1)
    k: Int = Field(10, ge=1)
    offset: Int = Field(0, ge=0, le=MAX_OFFSET)
    min_score: float | None = Field(None, ge=-1.0, le=1.0)
    filter: NeighbourFilter = Field(default_factory=NeighbourFilter)
    include_vectors: bool = False
    truncate: Truncate = True


class NeighbourOut(BaseModel):
    id: str
    score: float = Field(description="Cosine similarity to the query")
    label: str | None
    metadata: dict[str, Any]
    vector: list[float] | None = Field(None, exclude_if=lambda v: v is None)


class NeighboursResult(BaseModel):
    neighbors: list[NeighbourOut]


class NeighboursResponse(BaseModel):
    results: list[NeighboursResult] = Field(description="One per query, in order")
    truncated: Truncated = []
