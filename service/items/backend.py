"""What the routes need from an item store: `ItemBackend`, over the types of types.py.

Two implementations, chosen by `COREL_STORE` (service/stores.py, the one place that picks):

- `embedded` (service.items.embedded.EmbeddedItems): SQLite in the data directory plus an
  in-process FAISS cache; one process, which holds the directory exclusively.
- `milvus` (service.items.milvus.MilvusItems): a Milvus server or cluster that every replica
  shares; the service process keeps no item state of its own.
"""

from __future__ import annotations

from typing import Protocol

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

__all__ = ["ItemBackend"]


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
