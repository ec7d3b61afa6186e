"""Neighbours: the stored items nearest by cosine to a stored item, a new input or a vector.

Results are ranked by cosine similarity, then `offset` are skipped, `k` kept, and those
below `min_score` dropped. A stored item is never its own neighbour. Filters (label,
metadata field equality) restrict the candidates before ranking, so `k` counts only
matching items.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import Query

from service.api.deps import EmbedderDep, ItemsDep, SettingsDep, check_input_count
from service.api.json_route import json_router
from service.api.schemas.errors import errors
from service.api.schemas.neighbors import (
    MAX_OFFSET,
    NeighbourOut,
    NeighboursRequest,
    NeighboursResponse,
    NeighboursResult,
)
from service.errors import ValidationFailedError
from service.items.types import Neighbour, SearchOptions

router = json_router("neighbours")


def _check_k(k: int, max_k: int) -> None:
    if k > max_k:
        raise ValidationFailedError(
            f"k={k} is above the limit of {max_k}", details={"max_k": max_k}
        )


def _out(hits: list[Neighbour], include_vectors: bool) -> NeighboursResult:
    return NeighboursResult(
        neighbors=[
            NeighbourOut(
                id=h.item.id,
                score=h.score,
                label=h.item.label,
                metadata=h.item.metadata,
                vector=h.item.embedding.tolist() if include_vectors else None,
            )
            for h in hits
        ]
    )


@router.get("/neighbors", response_model=NeighboursResult, responses=errors(404, 409, 422, 503))
async def neighbours_of_item(
    items: ItemsDep,
    settings: SettingsDep,
    id: Annotated[str, Query(min_length=1, description="A stored item's id")],
    k: Annotated[int, Query(ge=1)] = 10,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    min_score: Annotated[float | None, Query(ge=-1.0, le=1.0)] = None,
    label: str | None = None,
    include_vectors: bool = False,
) -> NeighboursResult:
    """The stored items nearest to the stored item `id` (which is left out)."""
    _check_k(k, settings.max_k)
    options = SearchOptions(k=k, offset=offset, min_score=min_score, label=label)
    (hits,) = await items.neighbours([id], options)
    return _out(hits, include_vectors)


@router.post(
    "/neighbors",
    response_model=NeighboursResponse,
    responses=errors(404, 409, 408, 413, 415, 422, 429, 503),
)
async def neighbours(
    body: NeighboursRequest, items: ItemsDep, embedder: EmbedderDep, settings: SettingsDep
) -> NeighboursResponse:
    """Several queries in one call, each by stored id, new input or raw vector."""
    _check_k(body.k, settings.max_k)
    check_input_count(len(body.queries), settings)
    queries: list[np.ndarray | str] = []
    truncated: list[int] = []
    for query in body.queries:
        if query.id is not None:
            queries.append(query.id)
        else:
            queries.append(np.asarray(query.vector, np.float32) if query.vector else np.empty(0))
    inputs = {n: q.input for n, q in enumerate(body.queries) if q.input is not None}
    if inputs:
        embedded = await embedder.embed_inputs(list(inputs.values()), truncate=body.truncate)
        for n, vector in zip(inputs, embedded.vectors, strict=True):
            queries[n] = vector
        truncated = [list(inputs)[n] for n in embedded.truncated]  # positions among queries
    options = SearchOptions(
        k=body.k,
        offset=body.offset,
        min_score=body.min_score,
        label=body.filter.label,
        metadata=body.filter.metadata or None,
    )
    results = await items.neighbours(queries, options)
    return NeighboursResponse(
        results=[_out(hits, body.include_vectors) for hits in results], truncated=truncated
    )
