"""Bodies of the /items routes.

An item is an id (client-given, or a generated uuid), an embedding made from an input
(or given as a raw vector), an optional label and JSON metadata, and optionally the input
itself so it can be re-embedded when the model changes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from service.api.schemas.common import (
    EXAMPLE_INPUT,
    ItemId,
    Label,
    Metadata,
    MetadataFilter,
    Truncate,
    Truncated,
    request_body,
)
from service.errors import ValidationFailedError
from service.inference.inputs import Input, exactly_one, one_given
from service.items.types import IndexDevice, StoredItem

PAGE_LIMIT = 1_000


class ItemCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"oneOf": one_given("input", "vector")}
    )

    id: ItemId | None = Field(None, description="Unique id; a uuid is generated when absent.")
    input: Input | None = Field(None, description="What to embed (exactly one of input, vector).")
    vector: list[float] | None = Field(None, description="A raw embedding of the current model.")
    label: Label | None = None
    metadata: Metadata = Field(
        default_factory=dict,
        description="Any JSON object; its numbers, at any depth, at most 2**53 "
        "(9007199254740992) in magnitude: the integers float64, and JavaScript, keep "
        "exactly. A larger one (an id, say) goes as a string.",
    )
    store_input: bool = Field(True, description="Keep the input so the item can be re-embedded.")

    @model_validator(mode="after")
    def _one_source(self) -> ItemCreate:
        exactly_one(input=self.input, vector=self.vector)
        return self


class ItemsCreate(BaseModel):
    model_config = request_body(
        {
            "items": [
                {"id": "shoe-1", "input": EXAMPLE_INPUT, "label": "Sneaker",
                 "metadata": {"colour": "white"}},
            ]
        }
    )  # fmt: skip

    items: list[ItemCreate] = Field(min_length=1)
    truncate: Truncate = True


class ItemPublic(BaseModel):
    id: str
    label: str | None
    metadata: dict[str, Any]
    model_id: str = Field(description="sha256 of the encoder that made the embedding")
    current_model: bool = Field(description="False: embedded by another model, not searchable")
    has_input: bool = Field(description="The input is stored, so the item can be re-embedded")
    text: str | None = Field(
        None, exclude_if=lambda v: v is None, description="The stored input, when it is a text"
    )
    created: str
    updated: str
    vector: list[float] | None = Field(
        None, exclude_if=lambda v: v is None, description="The raw embedding, when asked for"
    )


class ItemsCreated(BaseModel):
    items: list[ItemPublic] = Field(description="In request order, with their ids")
    truncated: Truncated = []


class IndexJob(BaseModel):
    job: Literal["merge", "rebuild"] = Field(
        description="merge: fold recent writes into the main index; rebuild: from the store"
    )
    kind: Literal["flat", "hnsw", "ivf"] = Field(description="Kind of the index being made")
    done: int = Field(description="Vectors done")
    total: int
    started: float = Field(description="Unix time it started")


class IndexState(BaseModel):
    kind: Literal["flat", "hnsw", "ivf"] = Field(description="Kind of the index serving now")
    wanted: Literal["flat", "hnsw", "ivf"] = Field(
        description="Kind the setting asks for at this size; a rebuild runs while they differ"
    )
    size: int = Field(description="Searchable vectors")
    main: int = Field(description="... in the main index")
    delta: int = Field(description="... added since it was built, searched exactly")
    removed: int = Field(description="Deleted since the main index was built")
    job: IndexJob | None = Field(description="The background merge or rebuild running now")
    last_snapshot: float | None = Field(description="Unix time of the last snapshot written")
    last_error: str | None = Field(description="Why the last background job failed")


class IndexStatus(BaseModel):
    model_id: str = Field(description="sha256 of the encoder whose vectors are searchable")
    ready: bool
    index_setting: Literal["auto", "flat", "hnsw", "ivf"] = Field(description="COREL_INDEX_KIND")
    index_device: IndexDevice = Field(
        description="Where the item index runs: cpu or gpu (the embedded store), milvus"
    )
    index_size: int = Field(description="Vectors in the item index")
    index: IndexState | None = Field(description="The index in detail; null while it loads")
    items_current_model: int
    items_other_models: int = Field(description="Not searchable until re-embedded")
    items_other_models_reembeddable: int = Field(description="... of those, with a stored input")
    load_error: str | None = Field(description="Why the index is not ready, if it failed")


class ItemList(BaseModel):
    items: list[ItemPublic]
    total: int = Field(
        description="Items matching the filters (label, metadata), of every model, over all "
        "pages; every item without a filter"
    )
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")
    index: IndexStatus = Field(description="Model identity, index size, items of other models")


class ReembedFailure(BaseModel):
    id: str
    error: str = Field(description="Why its stored input could not be embedded")


class Reembedded(BaseModel):
    reembedded: int
    failed: list[ReembedFailure]
    items_other_models: int = Field(description="Still of another model (no stored input)")


def item_public(item: StoredItem, model_id: str, with_vector: bool = False) -> ItemPublic:
    # Built without validation: every value is the store's own, of the declared type, and
    # validating them took 18 ms of each 1,024-item POST /items (a bulk import's batch)
    return ItemPublic.model_construct(
        id=item.id,
        label=item.label,
        metadata=item.metadata,
        model_id=item.model_id,
        current_model=item.model_id == model_id,
        has_input=item.source is not None,
        text=(item.source or {}).get("text"),
        created=item.created,
        updated=item.updated,
        vector=item.embedding.tolist() if with_vector else None,
    )


# strict, as POST /neighbors' filter (a strict model): true is no number, "1" no 1
_METADATA_FILTER = TypeAdapter(MetadataFilter, config=ConfigDict(strict=True))


def parse_metadata_filter(text: str | None) -> MetadataFilter | None:
    """GET /items' `metadata` (a JSON object in the query), or 422 in the shape FastAPI's
    own validation errors take, its place named `query.metadata...`."""
    if text is None:
        return None
    try:
        return _METADATA_FILTER.validate_json(text) or None
    except ValidationError as exc:
        details = [
            {"loc": ["query", "metadata", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        where = ".".join(str(part) for part in details[0]["loc"])
        raise ValidationFailedError(f"{where}: {details[0]['msg']}", details=details) from exc
