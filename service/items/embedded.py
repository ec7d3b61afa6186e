"""The embedded item store (COREL_STORE=embedded): SQLite (truth) and FAISS (cache) in step.

Model identity: the sha256 of the bundle's `encoder.onnx`. Every stored vector records it;
only vectors of the current model enter the index, so two models' spaces never mix. Items
of another model are counted (`stats`) and can be re-embedded from their stored inputs.

Start-up (`open`) returns at once; a thread loads the index snapshot and catches it up with
the store by set difference of seqs (live_index.py). Until it is done `is_ready` is False
and index-backed calls answer 503. Writes commit to SQLite, then update the index, under
one lock, so the index never holds a vector the store has deleted and always takes them
in commit order; updating the index is O(batch), the heavy work runs in the background.
A crash between the two is repaired by the next start's catch-up.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Unpack

import faiss
import numpy as np

from service.errors import NotFoundError
from service.items.background import StartsInBackground
from service.items.filter_index import FilterIndex
from service.items.live_index import LiveIndex
from service.items.sqlite_store import ItemStore
from service.items.types import (
    IndexedItem,
    IndexStats,
    Neighbour,
    ReembedFailure,
    ReembedResult,
    check_new_items,
    embed_each,
    rank,
    resolve_queries,
)

if TYPE_CHECKING:  # in annotations only
    from service.items.types import (
        EmbedSources,
        IndexSetting,
        ItemFilter,
        MetadataValue,
        ModelCounts,
        NewItem,
        PageQuery,
        SearchOptions,
        StoredItem,
        VectorRows,
    )

__all__ = ["EmbeddedItems"]

log = logging.getLogger(__name__)


_PAGE_SLACK = 16


def _indexed(item: StoredItem) -> IndexedItem:
    return IndexedItem(item.seq, item.model_id, item.label, item.metadata, item.source is not None)


class EmbeddedItems(StartsInBackground):
    _thread_name = "item-index-load"
    _waiting = "the item index is still loading"

    def __init__(
        self,
        store: ItemStore,
        *,
        index_path: Path,
        model_id: str,
        dim: int,
        kind: IndexSetting = "auto",
        auto_threshold: int = 50_000,
    ) -> None:
        super().__init__()
        self.store, self.model_id, self.dim, self.kind = store, model_id, dim, kind
        self._index = LiveIndex(
            dim,
            setting=kind,
            snapshot_path=index_path,
            model_id=model_id,
            read_store=lambda up_to: store.iter_vectors(model_id, up_to_seq=up_to),
            auto_threshold=auto_threshold,
        )
        self._filters = FilterIndex()
        self._lock = threading.Lock()  # a store write and its index changes, as one step

    def close(self) -> None:
        self._stop()
        self._index.close()
        with self._lock:
            self.store.close()

    # -- state -------------------------------------------------------------------------

    @property
    def index_size(self) -> int:
        return self._index.size if self.is_ready else 0

    def stats(self) -> IndexStats:
        counts = self._count_by_model()
        return IndexStats(
            model_id=self.model_id,
            ready=self.is_ready,
            index_kind=self._index.kind,
            index_setting=self.kind,
            index_device=self._index.device,
            index_size=self.index_size,
            index=self._index.status() if self.is_ready else None,
            items_current_model=counts.current,
            items_other_models=counts.other,
            items_other_models_reembeddable=counts.other_reembeddable,
            load_error=self._load_error,
        )

    # -- loading -----------------------------------------------------------------------

    def _run(self) -> None:
        """Load the snapshot and catch it up with the store, in step when ready."""
        started, delay = time.perf_counter(), 1.0
        while True:
            try:
                with self._lock:  # writes wait: the catch-up must see a store that holds still
                    self._index.open(self.store.seqs(self.model_id), self._fetch)
                    self._filters = FilterIndex()
                    for chunk in self.store.iter_indexed():
                        self._filters.add(chunk)
                break
            except Exception as exc:  # the service stays up, says why, and tries again
                self._load_error = f"item index failed to load: {exc} (trying again)"
                log.exception("item index: loading failed; trying again in %g s", delay)
                if self._closing.wait(delay):
                    return
                delay = min(2 * delay, 30.0)
        self._load_error = None
        self._ready.set()
        counts = self._filters.count_by_model(self.model_id)
        log.info(
            "item index: ready, %d vectors (%.2fs)", self._index.size, time.perf_counter() - started
        )
        if counts.other:
            log.warning(
                "%d stored items were embedded by another model and are not searchable;"
                " %d can be re-embedded (POST /items/reembed)",
                counts.other,
                counts.other_reembeddable,
            )

    def _count_by_model(self) -> ModelCounts:
        # SQLite counts by scanning the table (0.6 s at 1M items); the filter index keeps them
        if self.is_ready:
            return self._filters.count_by_model(self.model_id)
        return self.store.count_by_model(self.model_id)

    def _fetch(self, seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = self.store.vectors(self.model_id, seqs=seqs)
        return rows.seqs, rows.vectors.reshape(len(rows.seqs), self.dim)

    # -- items -------------------------------------------------------------------------

    async def check_new_ids(self, ids: list[str]) -> None:
        """409 when any of these ids is stored (insert checks again, in its transaction)."""
        await asyncio.to_thread(self.store.check_new, ids)

    async def add(self, items: list[NewItem]) -> list[StoredItem]:
        """Store items (committed on return) and index them."""
        self._require_ready()
        check_new_items(items, self.dim)
        return await asyncio.to_thread(self._add_sync, items)

    def _add_sync(self, items: list[NewItem]) -> list[StoredItem]:
        with self._lock:
            stored = self.store.insert(items, self.model_id)
            self._index.add(
                np.array([s.seq for s in stored]), np.stack([s.embedding for s in stored])
            )
            self._filters.add(_indexed(s) for s in stored)
        return stored

    async def get(self, item_id: str) -> StoredItem:
        item = await asyncio.to_thread(self.store.get, item_id)
        if item is None:
            raise NotFoundError(f"no item with id {item_id!r}")
        return item

    async def page(self, **query: Unpack[PageQuery]) -> list[StoredItem]:
        if not self.is_ready:  # until the filter index is loaded, SQLite answers alone
            return await asyncio.to_thread(self.store.page, **query)
        return await asyncio.to_thread(self._page_sync, **query)

    def _page_sync(
        self,
        *,
        limit: int,
        after_seq: int = 0,
        offset: int = 0,
        label: str | None = None,
        metadata: dict[str, MetadataValue] | None = None,
    ) -> list[StoredItem]:
        seqs = self._filters.matching(label, metadata)
        start = int(np.searchsorted(seqs, after_seq, side="right")) + offset
        # a little more than a page: an item deleted since `matching` is skipped, not a
        # hole that would end the page early and read as the last one
        wanted = seqs[start : start + limit + _PAGE_SLACK]
        found = self.store.get_by_seqs(wanted)
        return [found[int(s)] for s in wanted if int(s) in found][:limit]

    async def count(self, **where: Unpack[ItemFilter]) -> int:
        if not self.is_ready:
            return await asyncio.to_thread(self.store.count, **where)
        return self._filters.count(where.get("label"), where.get("metadata"))

    async def delete(self, item_id: str) -> None:
        self._require_ready()
        await asyncio.to_thread(self._delete_sync, item_id)

    def _delete_sync(self, item_id: str) -> None:
        with self._lock:
            gone = self.store.delete(item_id)
            if gone is None:
                raise NotFoundError(f"no item with id {item_id!r}")
            self._index.remove(np.array([gone.seq]))
            self._filters.remove(gone)

    async def reembed(self, embed_sources: EmbedSources, *, batch: int = 256) -> ReembedResult:
        """Re-embed every item of another model that has a stored input, batch by batch."""
        self._require_ready()
        done, after = 0, 0
        failed: list[ReembedFailure] = []
        while True:
            todo = await asyncio.to_thread(
                self.store.reembed_candidates, self.model_id, after_seq=after, limit=batch
            )
            if not todo:
                break
            after = todo[-1].seq
            ok, vectors, errors = await embed_each(todo, embed_sources)
            failed += errors
            if ok:
                await asyncio.to_thread(self._replace_sync, ok, vectors)
                done += len(ok)
        counts = self._count_by_model()
        return ReembedResult(reembedded=done, failed=failed, items_other_models=counts.other)

    def _replace_sync(self, items: list[StoredItem], vectors: np.ndarray) -> None:
        with self._lock:
            stored = self.store.replace_embeddings(items, vectors, self.model_id)
            self._index.add(np.array([s.seq for s in stored]), vectors)
            for old in items:
                self._filters.remove(_indexed(old))
            self._filters.add(_indexed(s) for s in stored)

    # -- neighbours --------------------------------------------------------------------

    async def neighbours(
        self, queries: list[np.ndarray | str], options: SearchOptions
    ) -> list[list[Neighbour]]:
        """Nearest stored items by cosine for raw vectors or stored ids (excluded from their
        own results), ranked, then `offset` skipped, `k` kept and `min_score` applied."""
        self._require_ready()
        return await asyncio.to_thread(self._neighbours_sync, queries, options)

    def _neighbours_sync(
        self, queries: list[np.ndarray | str], options: SearchOptions
    ) -> list[list[Neighbour]]:
        # One OpenMP thread per request: FAISS would otherwise split even one query over
        # the cores and wait for a second thread to be scheduled. Measured at 1M items
        # (HNSW, 2 busy cores): GET /neighbors p99 30.4 ms with both, 9.5 ms with one.
        faiss.omp_set_num_threads(1)
        vectors, own = resolve_queries(
            queries, dim=self.dim, model_id=self.model_id, get=self.store.get
        )
        allowed = None
        if options.filtered:  # of every model: the index holds the current model's only
            allowed = self._filters.matching(options.label, options.metadata)
        scores, seqs = self._index.search(vectors, options.fetch, allowed)
        items = self.store.get_by_seqs(np.unique(seqs[seqs >= 0]).tolist())
        return [
            rank(
                (
                    Neighbour(items[int(s)], float(score))
                    for score, s in zip(scores[q], seqs[q], strict=True)
                    if s >= 0 and int(s) in items  # not in items: deleted meanwhile
                ),
                own[q],
                options,
            )
            for q in range(len(vectors))
        ]

    # -- corpus, for the clustering report ---------------------------------------------

    async def corpus(self, limit: int) -> VectorRows:
        """The current model's stored vectors (raw), labels and ids, at most `limit`."""
        self._require_ready()
        return await asyncio.to_thread(self.store.vectors, self.model_id, limit=limit)
