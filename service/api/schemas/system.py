"""Bodies of GET /healthz, /readyz and /model."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    model: str = Field(description="The bundle's name")
    provider: str = Field(description="onnxruntime execution provider in use")


class IndexSizes(BaseModel):
    classes: int = Field(description="Classes in the class index, imprinted ones included")
    items: int = Field(description="Vectors in the item index (0 while it loads)")


class Batching(BaseModel):
    enabled: bool
    max_batch_size: int
    max_wait_ms: float


class ModelInfo(BaseModel):
    manifest: dict[str, Any] = Field(description="The bundle's manifest.json, as loaded")
    provider: str = Field(description="onnxruntime execution provider in use")
    indexes: IndexSizes
    batching: Batching
