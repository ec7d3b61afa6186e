"""Bodies of the /classes routes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.inference.inputs import Input


class ClassCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

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
