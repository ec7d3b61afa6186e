"""Bodies of GET /map."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class MapPoint(BaseModel):
    id: str
    label: str | None
    x: float
    y: float


class MapClass(BaseModel):
    name: str = Field(description="A class of the class index, placed by its vector")
    x: float
    y: float


class MapResponse(BaseModel):
    method: Literal["pca", "tsne"]
    n_items: int = Field(description="Items on the map")
    truncated: bool = Field(description="More items are stored than `limit`: the first are shown")
    cached: bool = Field(description="Served from the cache (same model, items and classes)")
    seconds: float = Field(description="Time the projection took when it was computed")
    points: list[MapPoint] = Field(description="The items, in insertion order")
    classes: list[MapClass]
