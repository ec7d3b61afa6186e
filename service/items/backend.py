"""What the routes need from an item store, and the one place that picks it (`open_items`).

Two implementations, chosen by `COREL_STORE`:

- `embedded` (service.items.embedded.EmbeddedItems): SQLite in the data directory plus an
  in-process FAISS cache; one process, which holds the directory exclusively.
- `milvus` (service.items.milvus.MilvusItems): a Milvus server or cluster that every replica
  shares; the service process keeps no item state of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from service.items.types import (
    EmbedSources,
    IndexStats,
    MetadataValue,
    Neighbour,
    NewItem,
    ReembedResult,
    SearchOptions,
    StoredItem,
    VectorRows,
)

if TYPE_CHECKING:
    from corel.bundle import Bundle
    from service.settings import Settings

__all__ = ["ItemBackend", "open_items"]


class ItemBackend(Protocol):
    model_id: str  # sha256 of the encoder whose vectors are searchable
    dim: int

    @property
    def is_ready(self) -> bool: ...

    @property
    def index_size(self) -> int:  # searchable vectors; cheap (no round trip)
        ...

    def wait_ready(self, timeout: float | None = None) -> bool: ...

    def close(self) -> None: ...

    def stats(self) -> IndexStats: ...

    async def check_new_ids(self, ids: list[str]) -> None: ...

    async def add(self, items: list[NewItem]) -> list[StoredItem]: ...

    async def get(self, item_id: str) -> StoredItem: ...

    async def page(
        self,
        *,
        limit: int,
        after_seq: int = 0,
        offset: int = 0,
        label: str | None = None,
        metadata: dict[str, MetadataValue] | None = None,
    ) -> list[StoredItem]:
        """Items of every model in seq order (insertion order), after `after_seq`, skipping
        `offset`; only those with this label and these metadata fields (equal, JSON types
        kept apart, as /neighbors filters), when given."""
        ...

    async def count(
        self, *, label: str | None = None, metadata: dict[str, MetadataValue] | None = None
    ) -> int:
        """Items of every model that `page` would list with these filters, over all pages."""
        ...

    async def delete(self, item_id: str) -> None: ...

    async def reembed(self, embed_sources: EmbedSources, *, batch: int = 256) -> ReembedResult: ...

    async def neighbours(
        self, queries: list[np.ndarray | str], options: SearchOptions
    ) -> list[list[Neighbour]]: ...

    async def corpus(self, limit: int) -> VectorRows: ...


def open_items(settings: Settings, bundle: Bundle) -> ItemBackend:
    """The configured store, loading or connecting in the background (see `is_ready`)."""
    if settings.store == "milvus":
        from service.items.milvus import MilvusItems  # pymilvus only when it is used

        return MilvusItems.open(settings=settings, bundle=bundle)
    from service.items.embedded import EmbeddedItems

    return EmbeddedItems.open(settings=settings, bundle=bundle)
