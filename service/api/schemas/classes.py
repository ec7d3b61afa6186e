"""Bodies of the /classes routes."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.api.paths import CLASS_NAME, CLASS_NAME_PATTERN, not_reserved
from service.api.schemas.common import Truncate, Truncated
from service.inference.inputs import Input


class ClassCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[^\x00-\x1f]+$",
        json_schema_extra={"pattern": CLASS_NAME_PATTERN},
        description="Any text without control characters, not blank and without spaces at "
        "either end (may hold a '/'), and not `restore` (a path of its own)",
    )
    inputs: list[Input] = Field(min_length=1, description="A few examples of the new class")
    threshold: float | None = Field(None, description="Unknown threshold for this class")
    truncate: Truncate = True

    @field_validator("name")
    @classmethod
    def _not_blank(cls, name: str) -> str:
        if not re.fullmatch(CLASS_NAME, name):
            raise ValueError("a class name is not blank and has no spaces at either end")
        return not_reserved("restore")(name)


class ClassRestore(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    names: list[str] | None = Field(
        None, description="The model's classes to bring back; absent: every removed one"
    )


class Restored(BaseModel):
    restored: list[str] = Field(description="Classes brought back")


class ClassInfo(BaseModel):
    name: str
    source: Literal["bundle", "imprinted"]
    examples: int | None = Field(None, description="Examples it was imprinted from")
    threshold: float | None


class ClassCreated(ClassInfo):
    truncated: Truncated = []


class ClassList(BaseModel):
    rule: str
    classes: list[ClassInfo]
