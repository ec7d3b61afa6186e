"""Items: create in batches, read, list (paged), delete, and re-embed after a model change.

An item is an id (client-given, or a generated uuid), an embedding made from an input
(or given as a raw vector), an optional label and JSON metadata, and optionally the input
itself so it can be re-embedded when the model changes. `POST /items` answers 201 only
after the batch is committed to SQLite.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, model_validator

from service.api.deps import EmbedderDep, SettingsDep, check_input_count
from service.api.json_route import ORJSONRoute
from service.api.schemas import EXAMPLE_INPUT, Input, exactly_one
from service.errors import ConflictError, ValidationFailedError
from service.items import ItemService
from service.store import NewItem, StoredItem

__all__ = ["ItemId", "ItemPublic", "ItemsDep", "item_public", "router"]

router = APIRouter(tags=["items"], route_class=ORJSONRoute)


async def get_items(request: Request) -> ItemService:  # async: no thread hop (see deps)
    items: ItemService = request.app.state.items
    return items


ItemsDep = Annotated[ItemService, Depends(get_items)]
# No "/" (it would leave the /items/{id} path) and no control characters.
ItemId = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^/\x00-\x1f]+$")
]
Label = Annotated[str, StringConstraints(min_length=1, max_length=256)]
PAGE_LIMIT = 1_000


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: ItemId | None = Field(None, description="Unique id; a uuid is generated when absent.")
    input: Input | None = Field(None, description="What to embed (exactly one of input, vector).")
    vector: list[float] | None = Field(None, description="A raw embedding of the current model.")
    label: Label | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    store_input: bool = Field(True, description="Keep the input so the item can be re-embedded.")

    @model_validator(mode="after")
    def _one_source(self) -> ItemCreate:
        exactly_one(input=self.input, vector=self.vector)
        return self


class ItemsCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"id": "shoe-1", "input": EXAMPLE_INPUT, "label": "Sneaker",
                         "metadata": {"colour": "white"}},
                    ]
                }
            ]
        },
    )  # fmt: skip

    items: list[ItemCreate] = Field(min_length=1)


class ItemPublic(BaseModel):
    id: str
    label: str | None
    metadata: dict[str, Any]
    model_id: str = Field(description="sha256 of the encoder that made the embedding")
    current_model: bool = Field(description="False: embedded by another model, not searchable")
    has_input: bool = Field(description="The input is stored, so the item can be re-embedded")
    created: str
    updated: str
    vector: list[float] | None = Field(
        None, exclude_if=lambda v: v is None, description="The raw embedding, when asked for"
    )


class ItemsCreated(BaseModel):
    items: list[ItemPublic] = Field(description="In request order, with their ids")


class ItemList(BaseModel):
    items: list[ItemPublic]
    total: int = Field(description="Items matching the filter, over all pages")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")
    index: dict[str, Any] = Field(description="Model identity, index size, items of other models")


class Reembedded(BaseModel):
    reembedded: int
    failed: list[dict[str, str]]
    items_other_models: int = Field(description="Still of another model (no stored input)")


def item_public(item: StoredItem, model_id: str, with_vector: bool = False) -> ItemPublic:
    return ItemPublic(
        id=item.id,
        label=item.label,
        metadata=item.metadata,
        model_id=item.model_id,
        current_model=item.model_id == model_id,
        has_input=item.source is not None,
        created=item.created,
        updated=item.updated,
        vector=item.embedding.tolist() if with_vector else None,
    )


@router.post("/items", status_code=status.HTTP_201_CREATED, response_model=ItemsCreated)
async def create_items(
    body: ItemsCreate, items: ItemsDep, embedder: EmbedderDep, settings: SettingsDep
) -> ItemsCreated:
    """Embed and store a batch of items; all are committed before 201, or none is."""
    check_input_count(len(body.items), settings)
    ids = [item.id or uuid.uuid4().hex for item in body.items]
    if len(set(ids)) != len(ids):
        raise ConflictError("the same id appears twice in one request")
    with_input = [n for n, item in enumerate(body.items) if item.input is not None]
    vectors: dict[int, np.ndarray] = {}
    if with_input:
        embedded = await embedder.embed_inputs([body.items[n].input for n in with_input])  # type: ignore[misc]
        vectors = dict(zip(with_input, embedded, strict=True))
    new = []
    for n, (item, item_id) in enumerate(zip(body.items, ids, strict=True)):
        vector = vectors[n] if n in vectors else np.asarray(item.vector, np.float32)
        source = (
            item.input.model_dump(exclude_none=True) if item.input and item.store_input else None
        )
        new.append(NewItem(item_id, vector, item.label, item.metadata, source))
    stored = await items.add(new)
    return ItemsCreated(items=[item_public(s, items.model_id) for s in stored])


@router.get("/items/{item_id}", response_model=ItemPublic)
async def get_item(item_id: str, items: ItemsDep, include_vector: bool = False) -> ItemPublic:
    """One item; `include_vector` adds its raw embedding."""
    return item_public(await items.get(item_id), items.model_id, include_vector)


@router.get("/items", response_model=ItemList)
async def list_items(
    items: ItemsDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    cursor: str | None = None,
    label: str | None = None,
    include_vectors: bool = False,
) -> ItemList:
    """Items in insertion order (re-embedded ones move to the end), by page.

    Cursor paging (`next_cursor`) stays correct while items are added or deleted;
    `offset` is there for simple clients.
    """
    after = _parse_cursor(cursor)
    page = await items.page(limit=limit, after_seq=after, offset=offset, label=label)
    total = await items.count(label=label)
    return ItemList(
        items=[item_public(i, items.model_id, include_vectors) for i in page],
        total=total,
        next_cursor=str(page[-1].seq) if len(page) == limit else None,
        index=await asyncio.to_thread(items.stats),
    )


def _parse_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit():
        raise ValidationFailedError("cursor: not a cursor this service handed out")
    return int(cursor)


@router.delete("/items/{item_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_item(item_id: str, items: ItemsDep) -> Response:
    await items.delete(item_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/items/reembed", response_model=Reembedded)
async def reembed_items(items: ItemsDep, embedder: EmbedderDep) -> Reembedded:
    """Re-embed, with the current model, every stored item of another model that kept its
    input. Items without a stored input cannot be re-embedded and are counted."""

    async def embed_sources(sources: list[dict[str, Any]]) -> np.ndarray:
        try:
            inputs = [Input.model_validate(s) for s in sources]
        except ValueError as exc:
            raise ValidationFailedError(f"stored input is no longer valid: {exc}") from exc
        return await embedder.embed_inputs(inputs)

    return Reembedded(**await items.reembed(embed_sources))
