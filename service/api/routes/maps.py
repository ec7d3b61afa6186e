"""GET /map: the stored items and the class vectors projected to 2-D (service/maps)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import orjson
from fastapi import Query, Response

from service.api.deps import ClassIndexDep, ItemsDep, MapCacheDep
from service.api.json_route import json_router
from service.api.schemas.errors import errors
from service.api.schemas.maps import MapResponse
from service.errors import ValidationFailedError
from service.maps.latent_map import MAX_ITEMS, Method

router = json_router("clustering")


@router.get("/map", response_model=MapResponse, responses=errors(422, 503))
async def latent_map(
    items: ItemsDep,
    classes: ClassIndexDep,
    cache: MapCacheDep,
    method: Method = "pca",
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_ITEMS["pca"],
            description=f"At most {MAX_ITEMS['pca']:,} (pca), {MAX_ITEMS['tsne']:,} (tsne)",
        ),
    ] = 10_000,
) -> Response:
    """The current model's stored items (the first `limit`) and the class vectors in 2-D,
    by PCA or t-SNE of the L2-normalised embeddings; cached until items or classes change."""
    if limit > MAX_ITEMS[method]:
        raise ValidationFailedError(
            f"limit={limit} is above the limit of {MAX_ITEMS[method]} for method={method}",
            details={"max_limit": MAX_ITEMS[method]},
        )
    rows = await items.corpus(limit + 1)  # one more: tells whether more are stored
    truncated = len(rows.ids) > limit
    if truncated:
        rows = replace(rows, seqs=rows.seqs[:limit], ids=rows.ids[:limit],
                       labels=rows.labels[:limit], vectors=rows.vectors[:limit])  # fmt: skip
    made, cached = await cache.get(method, items.model_id, rows, classes.classes)
    # Written with orjson from plain lists, not through 10,000 pydantic models: measured
    # at 10,000 items, the cached answer took 190-340 ms that way (MapResponse documents
    # the same shape)
    points = [
        {"id": i, "label": label, "x": x, "y": y}
        for i, label, (x, y) in zip(made.ids, made.labels, made.points.tolist(), strict=True)
    ]
    centres = [
        {"name": name, "x": x, "y": y}
        for name, (x, y) in zip(made.class_names, made.class_points.tolist(), strict=True)
    ]
    body = {"method": made.method, "n_items": len(made.ids), "truncated": truncated,
            "cached": cached, "seconds": round(made.seconds, 4), "points": points,
            "classes": centres}  # fmt: skip
    return Response(orjson.dumps(body), media_type="application/json")
