"""Items: create in batches, read, list (paged), delete, and re-embed after a model change.

`POST /items` answers 201 only after the store has made the batch durable (SQLite's commit, or
Milvus's acknowledged insert).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import numpy as np
from fastapi import Path, Query, Response, status

from service.api.deps import BundleDep, EmbedderDep, ItemsDep, SettingsDep, check_input_count
from service.api.json_route import json_router
from service.api.paths import ITEM_ID_PATTERN
from service.api.schemas.errors import errors
from service.api.schemas.items import (
    PAGE_LIMIT,
    IndexStatus,
    ItemList,
    ItemPublic,
    ItemsCreate,
    ItemsCreated,
    Reembedded,
    item_public,
    parse_metadata_filter,
)
from service.errors import ConflictError, NotFoundError, ValidationFailedError
from service.inference.inputs import Input
from service.inference.preview import input_png
from service.items.types import NewItem

router = json_router("items")


MAX_PAGE_OFFSET = 1_000_000_000


@router.post(
    "/items",
    status_code=status.HTTP_201_CREATED,
    response_model=ItemsCreated,
    responses=errors(409, 408, 413, 415, 422, 429, 503, 507),
)
async def create_items(
    body: ItemsCreate, items: ItemsDep, embedder: EmbedderDep, settings: SettingsDep
) -> ItemsCreated:
    """Embed and store a batch of items; all are committed before 201, or none is."""
    check_input_count(len(body.items), settings)
    ids = [item.id or uuid.uuid4().hex for item in body.items]
    if len(set(ids)) != len(ids):
        raise ConflictError("the same id appears twice in one request")
    await items.check_new_ids(ids)  # before embedding: a batch sent again costs no model run
    inputs = {n: item.input for n, item in enumerate(body.items) if item.input is not None}
    vectors: dict[int, np.ndarray] = {}
    truncated: list[int] = []
    if inputs:
        embedded = await embedder.embed_inputs(list(inputs.values()), truncate=body.truncate)
        vectors = dict(zip(inputs, embedded.vectors, strict=True))
        truncated = [list(inputs)[n] for n in embedded.truncated]  # positions among items
    new = []
    for n, (item, item_id) in enumerate(zip(body.items, ids, strict=True)):
        vector = vectors[n] if n in vectors else np.asarray(item.vector, np.float32)
        source = (
            item.input.model_dump(exclude_none=True) if item.input and item.store_input else None
        )
        new.append(NewItem(item_id, vector, item.label, item.metadata, source))
    stored = await items.add(new)
    return ItemsCreated(items=[item_public(s, items.model_id) for s in stored], truncated=truncated)


# The convertor keeps "reembed" out, the schema says so
ItemIdPath = Annotated[str, Path(json_schema_extra={"pattern": ITEM_ID_PATTERN})]


@router.get("/items/{item_id:item_id}", response_model=ItemPublic, responses=errors(404, 422, 503))
async def get_item(
    item_id: ItemIdPath, items: ItemsDep, include_vector: bool = False
) -> ItemPublic:
    """One item; `include_vector` adds its raw embedding."""
    return item_public(await items.get(item_id), items.model_id, include_vector)


PNG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "A PNG image"}
}


@router.get(
    "/items/{item_id}/input.png",
    response_class=Response,
    responses={
        **PNG,
        **errors(
            404,
            422,
            503,
            not_found="No such item, or it was stored without its input "
            "(`store_input: false`, or a raw `vector`), or the model takes no images",
        ),
    },
)
async def get_item_input(
    item_id: str, items: ItemsDep, bundle: BundleDep, settings: SettingsDep
) -> Response:
    """The item's stored input as a PNG, as the model sees it (at its input size).

    404 when the item kept no input (`store_input: false`) or the model takes no images.
    """
    item = await items.get(item_id)
    if item.source is None:
        raise NotFoundError(f"item {item_id!r} was stored without its input")
    png = await asyncio.to_thread(
        input_png, item.source, bundle.manifest.input, max_pixels=settings.max_image_pixels
    )
    return Response(png, media_type="image/png")


@router.get("/items", response_model=ItemList, responses=errors(422, 503))
async def list_items(
    items: ItemsDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT)] = 100,
    # bounded: SQLite's integers stop at 2**63 - 1, and an offset past the items gives an
    # empty page long before this
    offset: Annotated[int, Query(ge=0, le=MAX_PAGE_OFFSET)] = 0,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,18}$", description="`next_cursor` of a page")
    ] = None,
    label: str | None = None,
    metadata: Annotated[
        str | None,
        Query(
            description="A JSON object of top-level metadata fields the items must hold with "
            'these values, as in POST /neighbors\' `filter.metadata`: `{"colour": "white"}`',
        ),
    ] = None,
    include_vectors: bool = False,
) -> ItemList:
    """Items in insertion order (re-embedded ones move to the end), by page, optionally only
    those with this `label` and these `metadata` fields.

    Cursor paging (`next_cursor`) stays correct while items are added or deleted, and with
    a filter; `offset` is there for simple clients. `total` counts the matching items.
    """
    after = _parse_cursor(cursor)
    wanted = parse_metadata_filter(metadata)
    page = await items.page(
        limit=limit, after_seq=after, offset=offset, label=label, metadata=wanted
    )
    total = await items.count(label=label, metadata=wanted)
    return ItemList(
        items=[item_public(i, items.model_id, include_vectors) for i in page],
        total=total,
        next_cursor=str(page[-1].seq) if len(page) == limit else None,
        index=IndexStatus.model_validate(
            await asyncio.to_thread(items.stats), from_attributes=True
        ),
    )


def _parse_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    return int(cursor)  # its pattern is checked: digits, within int64


@router.delete(
    "/items/{item_id:item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 422, 503, 507),
)
async def delete_item(item_id: ItemIdPath, items: ItemsDep) -> Response:
    await items.delete(item_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/items/reembed", response_model=Reembedded, responses=errors(429, 503, 507))
async def reembed_items(items: ItemsDep, embedder: EmbedderDep) -> Reembedded:
    """Re-embed, with the current model, every stored item of another model that kept its
    input. Items without a stored input cannot be re-embedded and are counted."""

    async def embed_sources(sources: list[dict[str, Any]]) -> np.ndarray:
        try:
            inputs = [Input.model_validate(s) for s in sources]
        except ValueError as exc:
            raise ValidationFailedError(f"stored input is no longer valid: {exc}") from exc
        return (await embedder.embed_inputs(inputs)).vectors

    return Reembedded.model_validate(await items.reembed(embed_sources), from_attributes=True)
