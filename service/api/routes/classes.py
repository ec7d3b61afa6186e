"""GET /classes, POST /classes (imprint from examples), DELETE /classes/{name} and
POST /classes/restore.

Names may hold a '/' (the shipped model has "T-shirt/top"): the DELETE path takes the rest
of the URL, encoded or not; "restore" is not a name (service/api/paths.py). The model's own
classes are removed only with `force=true`, and `POST /classes/restore` brings them back.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Path, Query, status

from service import metrics
from service.api.deps import ClassIndexDep, EmbedderDep, SettingsDep, check_input_count
from service.api.json_route import json_router
from service.api.paths import CLASS_NAME_PATTERN
from service.api.schemas.classes import (
    ClassCreate,
    ClassCreated,
    ClassInfo,
    ClassList,
    ClassRestore,
    Restored,
)
from service.api.schemas.errors import errors

router = json_router("classes", prefix="/classes")


def _listing(classes: ClassIndexDep) -> ClassList:
    return ClassList(
        rule=classes.rule.name,
        classes=[
            ClassInfo.model_validate(record, from_attributes=True)
            for record in classes.classes.records
        ],
    )


@router.get("", responses=errors(503))
async def list_classes(classes: ClassIndexDep) -> ClassList:
    return _listing(classes)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 408, 413, 415, 422, 429, 503, 507),
)
async def add_class(
    body: ClassCreate, classes: ClassIndexDep, embedder: EmbedderDep, settings: SettingsDep
) -> ClassCreated:
    """Add a class from a few examples: its vector is their normalised mean embedding; its
    threshold, unless given, comes from the examples themselves (leave-one-out)."""
    check_input_count(len(body.inputs), settings)
    prepared = embedder.prepare(body.inputs, truncate=body.truncate)
    encoded = await embedder.encode(prepared.arrays)
    stored = [i.model_dump(exclude_none=True) for i in body.inputs]
    await asyncio.to_thread(
        classes.add, body.name, encoded.vectors, body.threshold, stored, encoded.features
    )
    metrics.INDEX_SIZE.labels(index="classes").set(len(classes))
    info = next(c for c in _listing(classes).classes if c.name == body.name)
    return ClassCreated(**info.model_dump(), truncated=prepared.truncated)


@router.post("/restore", responses=errors(404, 415, 422, 503, 507))
async def restore_classes(body: ClassRestore, classes: ClassIndexDep) -> Restored:
    """Bring back the model's own classes that were removed (all, or those named)."""
    restored = await asyncio.to_thread(classes.restore, body.names)
    metrics.INDEX_SIZE.labels(index="classes").set(len(classes))
    return Restored(restored=restored)


@router.delete(
    "/{name:class_name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 409, 503, 507),
)
async def remove_class(
    name: Annotated[
        str, Path(json_schema_extra={"pattern": CLASS_NAME_PATTERN})
    ],  # the convertor keeps "restore" out
    classes: ClassIndexDep,
    force: Annotated[bool, Query(description="Needed to remove a class of the model")] = False,
) -> None:
    await asyncio.to_thread(classes.remove, name, force=force)
    metrics.INDEX_SIZE.labels(index="classes").set(len(classes))
