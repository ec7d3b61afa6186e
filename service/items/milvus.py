"""Items and neighbours in Milvus (COREL_STORE=milvus): the service keeps no item state.

One collection per model, `{prefix}_items_{sha256[:16]}`, so two models' spaces never mix:
an item lives in the collection of the model that embedded it, with its raw vector (COSINE
metric, so scores are cosine similarities as with the embedded store), label, metadata,
the input it was embedded from (for re-embedding), and its times. Re-embedding moves an
item into the current model's collection under a new `seq`, as the embedded store does.

`seq` is the primary key, allocated by Milvus (auto_id, increasing), so paging in
insertion order and the cursor work as with SQLite: a query returns rows in key order.
Consistency and durability: service/milvus.py. An id is refused (409) when any replica's
write of it is visible; two replicas writing one new id within the same ~0.2 s can both
succeed (Milvus has no unique constraint but the key): ids are meant to be unique per
writer, or generated.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any, Unpack

import numpy as np
from pymilvus import DataType, MilvusClient

from service.errors import (
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
)
from service.items.background import StartsInBackground
from service.items.types import (
    EmbedSources,
    IndexStats,
    ItemFilter,
    MetadataValue,
    ModelCounts,
    Neighbour,
    NewItem,
    PageQuery,
    ReembedFailure,
    ReembedResult,
    SearchOptions,
    StoredItem,
    VectorRows,
    check_new_items,
    embed_each,
    no_vector_rows,
    rank,
    resolve_queries,
)
from service.milvus import (
    CONSISTENCY,
    MAX_VARCHAR,
    load_collection,
    milvus_errors,
    quote,
)

__all__ = ["MilvusItems"]

log = logging.getLogger(__name__)

_FIELDS = ["seq", "id", "model_id", "vector", "label", "metadata", "source", "created", "updated"]
# A neighbour is shown without its stored input, the largest field (a 28x28 image is ~1 KB
# of JSON): searches leave it out. Measured in process at 50,000 items with stored inputs,
# GET /neighbors's two calls: p50 13.4 -> 12.1 ms, p99 85 -> 59 ms
_HIT_FIELDS = [f for f in _FIELDS if f != "source"]
# Milvus caps a query's limit (+offset) at this
QUERY_WINDOW = 16_384
_INDEX = {
    "flat": ("FLAT", {}, {}),
    "hnsw": ("HNSW", {"M": 16, "efConstruction": 200}, {"ef": 128}),
    "auto": ("HNSW", {"M": 16, "efConstruction": 200}, {"ef": 128}),
    "ivf": ("IVF_FLAT", {"nlist": 1024}, {"nprobe": 32}),
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _row_to_item(row: dict[str, Any]) -> StoredItem:
    return StoredItem(
        seq=int(row["seq"]),
        id=row["id"],
        model_id=row["model_id"],
        embedding=np.asarray(row["vector"], np.float32),
        label=row["label"] or None,  # "" is no label (a label is never empty)
        metadata=row["metadata"] or {},
        source=json.loads(row["source"]) if row.get("source") else None,
        created=row["created"],
        updated=row["updated"],
    )


def _filter_clauses(
    label: str | None, metadata: dict[str, MetadataValue] | None, *, lite: bool
) -> tuple[list[str], list[str]]:
    """(Milvus clauses, metadata keys that must hold null) of a label and metadata filter.

    Milvus cannot tell a null value from a missing key, so the rows a null key selects are
    checked here (`_holds_nulls`); its clause only narrows them down: on a Milvus server to
    the rows that have the key (`exists` holds for a null value there), on Milvus Lite to
    those whose key is null or missing (`exists` is false for a null value there, and
    `is null` holds for both)."""
    clauses = [] if label is None else [f"label == {quote(label)}"]
    nulls: list[str] = []
    for key, value in (metadata or {}).items():
        field = f"metadata[{quote(key)}]"
        if value is None:
            clauses.append(f"{field} is null" if lite else f"exists {field}")
            nulls.append(key)
        else:  # true stays apart from 1: Milvus compares JSON values by type
            clauses.append(f"{field} == {quote(value)}")
    return clauses, nulls


def _holds_nulls(row: dict[str, Any], nulls: list[str]) -> bool:
    """Whether the row's metadata has each of these keys, with the value null."""
    metadata = row["metadata"] or {}
    return all(key in metadata and metadata[key] is None for key in nulls)


class MilvusItems(StartsInBackground):
    _thread_name = "milvus-items"
    _waiting = "connecting to Milvus"

    def __init__(
        self,
        client: MilvusClient,
        *,
        prefix: str,
        model_id: str,
        dim: int,
        kind: str,
        lite: bool = False,
    ) -> None:
        super().__init__()
        self.client, self.prefix, self.model_id, self.dim, self.kind = (
            client,
            prefix,
            model_id,
            dim,
            kind,
        )
        # the index on `id` (lookups by id): Trie on a Milvus server (2.3 has no other for
        # strings); Milvus Lite has INVERTED only
        self._id_index = "INVERTED" if lite else "Trie"
        self._lite = lite
        self.collection = f"{prefix}_items_{model_id[:16]}"
        self._size = 0  # refreshed in the background: /model and /metrics read it per request
        self._others: list[str] = []  # other models' collections, listed in the background

    # -- state -------------------------------------------------------------------------

    @property
    def index_size(self) -> int:
        return self._size if self.is_ready else 0

    def close(self) -> None:
        self._stop()
        self.client.close()

    def _run(self) -> None:
        """Create or load the collection (retrying while Milvus is away), then keep the
        item count that /model and /metrics show about a second fresh."""
        delay = 1.0
        while not self._closing.is_set():
            try:
                if not self.is_ready:
                    self._create()
                    self._others = self._list_others()
                    self._size = self._count(self.collection, "")
                    self._ready.set()
                    log.info("items: Milvus collection %s ready", self.collection)
                elif self._closing.wait(1.0):
                    return
                self._others = self._list_others()
                self._size = self._count(self.collection, "")
                if self._load_error is not None:
                    log.info("items: Milvus answers again")
                self._load_error, delay = None, 1.0
            except Exception as exc:  # the service stays up, says why, and tries again
                if self._load_error is None:  # once per outage
                    log.warning("items: Milvus is not reachable: %s", exc)
                self._load_error = f"Milvus is not reachable: {exc} (trying again)"
                if self._closing.wait(delay):
                    return
                delay = min(2 * delay, 30.0)

    def _create(self) -> None:
        if not self.client.has_collection(self.collection):
            schema = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
            schema.add_field("seq", DataType.INT64, is_primary=True)
            schema.add_field("id", DataType.VARCHAR, max_length=256)
            schema.add_field("model_id", DataType.VARCHAR, max_length=64)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            schema.add_field("label", DataType.VARCHAR, max_length=1024)
            schema.add_field("metadata", DataType.JSON)
            schema.add_field("source", DataType.VARCHAR, max_length=MAX_VARCHAR)
            schema.add_field("created", DataType.VARCHAR, max_length=40)
            schema.add_field("updated", DataType.VARCHAR, max_length=40)
            index_type, params, _ = _INDEX[self.kind]
            index = MilvusClient.prepare_index_params()
            index.add_index("vector", index_type=index_type, metric_type="COSINE", params=params)
            index.add_index("id", index_type=self._id_index)
            # a label filter reads the label's index instead of every row's label (the same
            # kind as id's). Metadata stays unindexed: an index on a JSON path needs Milvus
            # 2.5.11 or later, and the Milvus this project runs is 2.3
            index.add_index("label", index_type=self._id_index)
            self.client.create_collection(
                self.collection, schema=schema, index_params=index, consistency_level=CONSISTENCY
            )
        load_collection(self.client, self.collection)

    def _collections(self) -> list[str]:
        """Every model's item collection, the current one first (the others as the watcher
        last listed them: a new model's collection appears within a second)."""
        return [self.collection, *self._others]

    def _list_others(self) -> list[str]:
        others = [
            c
            for c in self.client.list_collections()
            if c.startswith(f"{self.prefix}_items_") and c != self.collection
        ]
        for name in set(others) - set(self._others):  # released after a Milvus restart
            load_collection(self.client, name)
        return others

    def _query(
        self, collection: str, where: str, *, limit: int | None = None, fields: list[str] = _FIELDS
    ) -> list[dict[str, Any]]:
        kw: dict[str, Any] = {} if limit is None else {"limit": limit}
        rows: list[dict[str, Any]] = self.client.query(
            collection, filter=where, output_fields=fields, consistency_level=CONSISTENCY, **kw
        )
        return rows

    def _count(self, collection: str, where: str) -> int:
        rows = self._query(collection, where, fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def stats(self) -> IndexStats:
        with milvus_errors("item counts"):
            counts = self._counts()
        return IndexStats(
            model_id=self.model_id,
            ready=self.is_ready,
            index_kind="flat" if self.kind == "flat" else "ivf" if self.kind == "ivf" else "hnsw",
            index_setting=self.kind,  # type: ignore[arg-type]
            index_device="milvus",
            index_size=counts.current,
            index=None,  # the index lives in Milvus; its state is Milvus's to report
            items_current_model=counts.current,
            items_other_models=counts.other,
            items_other_models_reembeddable=counts.other_reembeddable,
            load_error=self._load_error,
        )

    def _counts(self) -> ModelCounts:
        if not self.is_ready:
            return ModelCounts(0, 0, 0)
        current, *others = self._collections()
        return ModelCounts(
            current=self._count(current, ""),
            other=sum(self._count(c, "") for c in others),
            other_reembeddable=sum(self._count(c, 'source != ""') for c in others),
        )

    # -- items -------------------------------------------------------------------------

    async def check_new_ids(self, ids: list[str]) -> None:
        self._require_ready()
        await asyncio.to_thread(self._check_new, ids)

    def _check_new(self, ids: list[str]) -> None:
        with milvus_errors("checking ids"):
            existing = [
                row["id"]
                for c in self._collections()
                for row in self._query(c, f"id in {quote(ids)}", fields=["id"])
            ]
        if existing:
            raise ConflictError(
                f"{len(existing)} of these ids exist already, e.g. {existing[0]!r}",
                details={"ids": existing[:20], "count": len(existing)},
            )

    async def add(self, items: list[NewItem]) -> list[StoredItem]:
        self._require_ready()
        check_new_items(items, self.dim)
        rows = [self._row(item, _now()) for item in items]
        return await asyncio.to_thread(self._insert, rows)

    def _row(self, item: NewItem, now: str, created: str | None = None) -> dict[str, Any]:
        source = json.dumps(item.source, separators=(",", ":")) if item.source else ""
        if len(source.encode()) > MAX_VARCHAR:
            raise PayloadTooLargeError(
                f"item {item.id!r}: its input is {len(source.encode()):,} bytes as JSON; the "
                f"milvus store keeps inputs up to {MAX_VARCHAR:,} (send store_input=false)"
            )
        return {
            "id": item.id,
            "model_id": self.model_id,
            "vector": np.asarray(item.embedding, np.float32).tolist(),
            "label": item.label or "",
            "metadata": item.metadata or {},
            "source": source,
            "created": created or now,
            "updated": now,
        }

    def _insert(self, rows: list[dict[str, Any]]) -> list[StoredItem]:
        # The ids were checked before embedding (check_new_ids); checking again here would
        # not make it atomic (Milvus has no unique constraint) and would cost another read
        with milvus_errors("storing items"):
            seqs = self.client.insert(self.collection, rows)["ids"]
        return [_row_to_item({**r, "seq": s}) for r, s in zip(rows, seqs, strict=True)]

    async def get(self, item_id: str) -> StoredItem:
        item = await asyncio.to_thread(self._get, item_id)
        if item is None:
            raise NotFoundError(f"no item with id {item_id!r}")
        return item

    def _get(self, item_id: str, fields: list[str] = _FIELDS) -> StoredItem | None:
        self._require_ready()
        with milvus_errors("reading an item"):
            for c in self._collections():  # the current model's first
                rows = self._query(c, f"id == {quote(item_id)}", fields=fields)
                if rows:
                    return _row_to_item(rows[0])
        return None

    async def page(self, **query: Unpack[PageQuery]) -> list[StoredItem]:
        self._require_ready()
        return await asyncio.to_thread(self._page, query)

    def _page(self, query: PageQuery) -> list[StoredItem]:
        limit, after, offset = query["limit"], query.get("after_seq", 0), query.get("offset", 0)
        clauses, nulls = _filter_clauses(query.get("label"), query.get("metadata"), lite=self._lite)
        with milvus_errors("listing items"):
            # each collection's first offset + limit matches hold the answer's
            rows = [
                r
                for c in self._collections()
                for r in self._scan(c, clauses, nulls, after=after, want=offset + limit)
            ]
        rows.sort(key=lambda r: int(r["seq"]))
        return [_row_to_item(r) for r in rows[offset : offset + limit]]

    def _scan(
        self,
        collection: str,
        clauses: list[str],
        nulls: list[str],
        *,
        after: int,
        want: int | None,
        fields: list[str] = _FIELDS,
    ) -> list[dict[str, Any]]:
        """Up to `want` (None: all) rows after seq `after` that match, in seq order: read in
        windows (Milvus caps one query's rows), the null fields checked here."""
        out: list[dict[str, Any]] = []
        while want is None or len(out) < want:
            ask = QUERY_WINDOW
            if want is not None:  # with nulls, some candidates fail: read a few more at once
                ask = min(max(want - len(out), 1_000 if nulls else 0), QUERY_WINDOW)
            where = " and ".join([f"seq > {after}", *clauses])
            window = self._query(collection, where, limit=ask, fields=fields)
            out += [r for r in window if _holds_nulls(r, nulls)]
            if len(window) < ask:
                break
            after = max(int(r["seq"]) for r in window)
        out.sort(key=lambda r: int(r["seq"]))
        return out if want is None else out[:want]

    async def count(self, **where: Unpack[ItemFilter]) -> int:
        self._require_ready()
        return await asyncio.to_thread(self._count_all, where)

    def _count_all(self, where: ItemFilter) -> int:
        clauses, nulls = _filter_clauses(where.get("label"), where.get("metadata"), lite=self._lite)
        with milvus_errors("counting items"):
            if nulls:  # Milvus cannot count them: the candidates are read and checked here
                fields = ["seq", "metadata"]
                return sum(
                    len(self._scan(c, clauses, nulls, after=0, want=None, fields=fields))
                    for c in self._collections()
                )
            return sum(self._count(c, " and ".join(clauses)) for c in self._collections())

    async def delete(self, item_id: str) -> None:
        self._require_ready()
        await asyncio.to_thread(self._delete, item_id)

    def _delete(self, item_id: str) -> None:
        with milvus_errors("deleting an item"):
            for c in self._collections():
                rows = self._query(c, f"id == {quote(item_id)}", fields=["seq"])
                if rows:  # by primary key: a delete by expression costs a Strong read
                    seqs = [int(r["seq"]) for r in rows]
                    self.client.delete(c, ids=seqs)
                    # pymilvus does not advance this process's Session timestamp on a delete
                    # (it does on an insert): one Strong read (~0.2 s) makes the next reads
                    # here see the item gone
                    self.client.query(
                        c,
                        filter=f"seq in {seqs}",
                        output_fields=["seq"],
                        consistency_level="Strong",
                    )
                    return
        raise NotFoundError(f"no item with id {item_id!r}")

    async def reembed(self, embed_sources: EmbedSources, *, batch: int = 256) -> ReembedResult:
        """Move every item of another model that has a stored input into the current
        model's collection, embedded again; batch by batch, each batch written before the
        old copies are deleted (a copy left by a crash is deleted by the next run)."""
        self._require_ready()
        done, failed = 0, list[ReembedFailure]()
        others = (await asyncio.to_thread(self._collections))[1:]
        for collection in others:
            after = 0
            while True:
                where = f'seq > {after} and source != ""'
                rows = await asyncio.to_thread(self._query, collection, where, limit=batch)
                if not rows:
                    break
                after = max(int(r["seq"]) for r in rows)
                todo = [_row_to_item(r) for r in rows]
                ok, vectors, errors = await embed_each(todo, embed_sources)
                failed += errors
                if ok:
                    await asyncio.to_thread(self._move, collection, ok, vectors)
                    done += len(ok)
        counts = await asyncio.to_thread(self._counts)
        return ReembedResult(reembedded=done, failed=failed, items_other_models=counts.other)

    def _move(self, old: str, items: list[StoredItem], vectors: np.ndarray) -> None:
        now = _now()
        with milvus_errors("re-embedding items"):
            done = {
                r["id"]
                for r in self._query(
                    self.collection, f"id in {quote([i.id for i in items])}", fields=["id"]
                )
            }
            rows = [
                self._row(NewItem(i.id, v, i.label, i.metadata, i.source), now, created=i.created)
                for i, v in zip(items, vectors, strict=True)
                if i.id not in done
            ]
            if rows:
                self.client.insert(self.collection, rows)
            seqs = [i.seq for i in items]
            self.client.delete(old, ids=seqs)
            # as in _delete: a Strong read, so that this process's next reads (the counts of
            # other models' items) see the moved items gone from the old collection
            self.client.query(
                old, filter=f"seq in {seqs}", output_fields=["seq"], consistency_level="Strong"
            )

    # -- neighbours --------------------------------------------------------------------

    async def neighbours(
        self, queries: list[np.ndarray | str], options: SearchOptions
    ) -> list[list[Neighbour]]:
        self._require_ready()
        return await asyncio.to_thread(self._neighbours, queries, options)

    def _neighbours(
        self, queries: list[np.ndarray | str], options: SearchOptions
    ) -> list[list[Neighbour]]:
        with milvus_errors("searching items"):
            vectors, own = resolve_queries(
                queries,
                dim=self.dim,
                model_id=self.model_id,
                get=lambda item_id: self._get(item_id, fields=_HIT_FIELDS),
            )
            where = self._filter(options)
            if where is None:  # nothing matches
                return [[] for _ in queries]
            fetch = options.fetch
            _, _, search_params = _INDEX[self.kind]
            params = {**search_params, "ef": max(fetch, 128)} if "ef" in search_params else {}
            found = self.client.search(
                self.collection,
                data=vectors.tolist(),
                filter=where,
                limit=fetch,
                output_fields=_HIT_FIELDS,
                search_params={"metric_type": "COSINE", "params": params},
                consistency_level=CONSISTENCY,
            )
        return [
            rank(
                # the row's own `seq`, not the hit's key: a hit is keyed by its primary key's
                # name on Milvus Lite, where its "id" is then the item's (the entity's) id
                (Neighbour(_row_to_item(h["entity"]), float(h["distance"])) for h in hits),
                own_seq,
                options,
            )
            for hits, own_seq in zip(found, own, strict=True)
        ]

    def _filter(self, options: SearchOptions) -> str | None:
        """The filter expression of the options; None when no item can match."""
        clauses, nulls = _filter_clauses(options.label, options.metadata, lite=self._lite)
        if nulls:  # Milvus cannot compare with null: the matching seqs are found here, all
            fields = ["seq", "metadata"]
            rows = self._scan(self.collection, clauses, nulls, after=0, want=None, fields=fields)
            seqs = [int(r["seq"]) for r in rows]
            return f"seq in {seqs}" if seqs else None
        return " and ".join(clauses)

    # -- corpus, for the clustering report ---------------------------------------------

    async def corpus(self, limit: int) -> VectorRows:
        self._require_ready()
        return await asyncio.to_thread(self._corpus, limit)

    def _corpus(self, limit: int) -> VectorRows:
        rows: list[dict[str, Any]] = []
        with milvus_errors("reading the stored vectors"):
            while len(rows) < limit:  # in windows: Milvus caps one query's rows
                after = int(rows[-1]["seq"]) if rows else 0
                window = self._query(
                    self.collection,
                    f"seq > {after}",
                    limit=min(limit - len(rows), QUERY_WINDOW),
                    fields=["seq", "id", "label", "vector"],
                )
                rows += window
                if not window:
                    break
        if not rows:
            return no_vector_rows()
        return VectorRows(
            seqs=np.array([int(r["seq"]) for r in rows], np.int64),
            ids=[r["id"] for r in rows],
            labels=[r["label"] or None for r in rows],
            vectors=np.array([r["vector"] for r in rows], np.float32),
        )
