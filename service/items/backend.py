"""What the routes need from an item store: `ItemBackend`, over the types of types.py.

Two implementations, chosen by `COREL_STORE` (service/stores.py, the one place that picks):

- `embedded` (service.items.embedded.EmbeddedItems): SQLite in the data directory plus an
  in-process FAISS cache; one process, which holds the directory exclusively.
- `milvus` (service.items.milvus.MilvusItems): a Milvus server or cluster that every replica
  shares; the service process keeps no item state of its own.
"""

from __future__ import annotations

from typing import Protocol, Unpack

import numpy as np

from service.items.types import (
    EmbedSources,
    IndexStats,
    ItemFilter,
    Neighbour,
    NewItem,
    PageQuery,
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

    async def check_new_ids(self, ids: list[str]) -> None:
        """409 when any of these ids is stored."""
        ...

    async def add(self, items: list[NewItem]) -> list[StoredItem]:
        """Store the items, all or none, and make them searchable. Acknowledged on return:
        committed to SQLite and fsynced (embedded), or in Milvus's write-ahead log (milvus:
        service/milvus.py)."""
        ...

    async def get(self, item_id: str) -> StoredItem: ...

    async def page(self, **query: Unpack[PageQuery]) -> list[StoredItem]:
        """Items of every model in seq order (insertion order), after `after_seq`, skipping
        `offset`; only those with this label and these metadata fields (equal, JSON types
        kept apart, as /neighbors filters), when given."""
        ...

    async def count(self, **where: Unpack[ItemFilter]) -> int:
        """Items of every model that `page` would list with these filters, over all pages."""
        ...

    async def delete(self, item_id: str) -> None: ...

    async def reembed(self, embed_sources: EmbedSources, *, batch: int = 256) -> ReembedResult: ...

    async def neighbours(
        self, queries: list[np.ndarray | str], options: SearchOptions
    ) -> list[list[Neighbour]]: ...

    async def corpus(self, limit: int) -> VectorRows: ...
