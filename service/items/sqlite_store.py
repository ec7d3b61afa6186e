"""The embedded store's items in SQLite, their source of truth (the FAISS index is a cache).

Durability: WAL journal with `synchronous=FULL`, so a write that `insert` or `delete` has
returned from is on disk and survives `kill -9` or a power cut as far as SQLite and the
file system allow. One connection, guarded by a lock: every method is short and blocking,
and async callers run it in a worker thread (`EmbeddedItems` does).

Each row has a `seq`, an integer key that is never reused (AUTOINCREMENT). It is the id the
vector has in FAISS, so the index can be checked against the store by set difference.
An item whose vector changes (re-embedding) gets a new `seq`; rows are otherwise immutable.

sqlite3 errors become service errors here: a duplicate id is a 409, a full disk a 507 (the
transaction is rolled back, so nothing of the request is stored), anything else a 503.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from service.errors import ConflictError, InsufficientStorageError, ServiceUnavailableError
from service.items.types import (
    IndexedItem,
    MetadataValue,
    ModelCounts,
    NewItem,
    StoredItem,
    VectorRows,
    no_vector_rows,
)

__all__ = ["ItemStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,
    model_id   TEXT    NOT NULL,
    dim        INTEGER NOT NULL,
    embedding  BLOB    NOT NULL,  -- float32 little-endian, raw (not normalised)
    label      TEXT,
    metadata   TEXT    NOT NULL DEFAULT '{}',
    source     TEXT,              -- the Input as JSON, so the item can be re-embedded
    created    TEXT    NOT NULL,
    updated    TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS items_model_seq ON items (model_id, seq);
CREATE INDEX IF NOT EXISTS items_label_seq ON items (label, seq);
"""
_COLUMNS = "seq, id, model_id, dim, embedding, label, metadata, source, created, updated"
_INDEXED = "seq, model_id, label, metadata, source IS NOT NULL"  # what filter_index.py keeps


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _row_to_item(row: sqlite3.Row) -> StoredItem:
    return StoredItem(
        seq=row["seq"],
        id=row["id"],
        model_id=row["model_id"],
        embedding=np.frombuffer(row["embedding"], dtype="<f4").copy(),
        label=row["label"],
        metadata=json.loads(row["metadata"]),
        source=json.loads(row["source"]) if row["source"] is not None else None,
        created=row["created"],
        updated=row["updated"],
    )


def _json(value: Any) -> str:
    # orjson: json.dumps of the stored inputs and metadata was a fifth of an insert's time.
    # Compact, and NaN never reaches it (the API refuses non-finite metadata numbers)
    return orjson.dumps(value).decode()


def _indexed(row: Sequence[Any]) -> IndexedItem:
    return IndexedItem(int(row[0]), row[1], row[2], json.loads(row[3]), bool(row[4]))


def _insert(
    conn: sqlite3.Connection,
    item: NewItem | StoredItem,
    model_id: str,
    vector: np.ndarray,
    created: str,
    updated: str,
) -> sqlite3.Row:
    row: sqlite3.Row = conn.execute(
        "INSERT INTO items (id, model_id, dim, embedding, label, metadata, source, created,"
        f" updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
        (
            item.id, model_id, int(vector.shape[0]), np.asarray(vector, dtype="<f4").tobytes(),
            item.label, _json(item.metadata or {}),
            None if item.source is None else _json(item.source), created, updated,
        ),
    ).fetchone()  # fmt: skip
    return row


def _chunks(values: Sequence[Any] | np.ndarray, size: int = 500) -> Iterator[tuple[list[Any], str]]:
    """Values in chunks with their `?,?,...` marks: SQLite caps bound parameters."""
    for start in range(0, len(values), size):
        chunk = [v.item() if isinstance(v, np.generic) else v for v in values[start : start + size]]
        yield chunk, ",".join("?" * len(chunk))


def _refuse_existing(existing: list[str]) -> None:
    if existing:
        raise ConflictError(
            f"{len(existing)} item id(s) already exist",
            details={"ids": existing[:20], "count": len(existing)},
        )


def _metadata_clause(key: str, value: MetadataValue) -> tuple[str, list[Any]]:
    """SQL for `metadata[key] == value` with JSON types kept apart (true is not 1)."""
    path = '$."' + key.replace('"', "") + '"'
    if value is None:
        return "json_type(metadata, ?) = 'null'", [path]
    if isinstance(value, bool):
        return "json_type(metadata, ?) = ?", [path, "true" if value else "false"]
    if isinstance(value, int | float):
        sql = "json_type(metadata, ?) IN ('integer', 'real') AND json_extract(metadata, ?) = ?"
        return sql, [path, path, value]
    return "json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) = ?", [path, path, value]


def _where(
    clauses: list[str],
    params: list[Any],
    label: str | None,
    metadata: dict[str, MetadataValue] | None,
) -> tuple[str, list[Any]]:
    """A WHERE clause: `clauses` and, when given, the label and every metadata field.

    The metadata fields are read with json_type/json_extract row by row (no index), so a
    filtered listing or count scans the rows it passes: the cost docs/api.md states.
    """
    if label is not None:
        clauses, params = [*clauses, "label = ?"], [*params, label]
    for key, value in (metadata or {}).items():
        clause, args = _metadata_clause(key, value)
        clauses, params = [*clauses, clause], [*params, *args]
    return " AND ".join(clauses), params


class ItemStore:
    """Items in one SQLite file. Thread-safe; every method blocks briefly."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._errors():
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is
            # exactly what a method says it is.
            self._conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"item store: {exc}") from exc
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_FULL:
                raise ServiceUnavailableError(f"item store unavailable: {exc}") from exc
            raise InsufficientStorageError(
                f"the disk of the item store is full ({exc}): nothing of this request was "
                "stored; free space and retry"
            ) from exc
        except sqlite3.Error as exc:
            raise ServiceUnavailableError(f"item store unavailable: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # after a failed statement or COMMIT on a full disk, SQLite may have left the
                # transaction open: end it, or every later BEGIN fails
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock, self._errors():
            return self._conn.execute(sql, params).fetchall()

    # -- writes ------------------------------------------------------------------------

    def check_new(self, ids: list[str]) -> None:
        """409 if any of these ids is taken."""
        with self._lock, self._errors():
            _refuse_existing(self._existing_ids(self._conn, ids))

    def insert(self, items: Sequence[NewItem], model_id: str) -> list[StoredItem]:
        """Insert all items in one transaction, or none: a duplicate id is a 409."""
        now = _now()
        with self._transaction() as conn:
            _refuse_existing(self._existing_ids(conn, [item.id for item in items]))
            # executemany and no reading back: measured, reading each row back (and parsing
            # its JSON again) was a quarter of a bulk import's server time
            conn.executemany(
                "INSERT INTO items (id, model_id, dim, embedding, label, metadata, source,"
                " created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (item.id, model_id, int(item.embedding.shape[0]),
                     np.asarray(item.embedding, dtype="<f4").tobytes(), item.label,
                     _json(item.metadata or {}),
                     None if item.source is None else _json(item.source), now, now)
                    for item in items
                ],
            )  # fmt: skip
            last = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'items'").fetchone()[
                0
            ]
        first = last - len(items) + 1  # one writer, inside one transaction: consecutive seqs
        return [
            StoredItem(first + n, item.id, model_id, item.embedding, item.label,
                       item.metadata or {}, item.source, now, now)
            for n, item in enumerate(items)
        ]  # fmt: skip

    @staticmethod
    def _existing_ids(conn: sqlite3.Connection, ids: list[str]) -> list[str]:
        found: list[str] = []
        for chunk, marks in _chunks(ids):
            found += [
                r[0] for r in conn.execute(f"SELECT id FROM items WHERE id IN ({marks})", chunk)
            ]
        return found

    def delete(self, item_id: str) -> IndexedItem | None:
        """Delete one item; what indexed it, or None when there was no such item."""
        with self._transaction() as conn:
            row = conn.execute(
                f"DELETE FROM items WHERE id = ? RETURNING {_INDEXED}", (item_id,)
            ).fetchone()
        return None if row is None else _indexed(row)

    def replace_embeddings(
        self, items: Sequence[StoredItem], embeddings: np.ndarray, model_id: str
    ) -> list[StoredItem]:
        """Give items new vectors of `model_id`, each under a new seq, in one transaction.

        Delete-and-insert rather than UPDATE so a seq always names one vector: an index
        that holds the old seq sees it vanish and the new one appear.
        """
        now = _now()
        out = []
        with self._transaction() as conn:
            for item, vector in zip(items, embeddings, strict=True):
                conn.execute("DELETE FROM items WHERE seq = ?", (item.seq,))
                out.append(_insert(conn, item, model_id, vector, item.created, now))
        return [_row_to_item(row) for row in out]

    # -- reads -------------------------------------------------------------------------

    def get(self, item_id: str) -> StoredItem | None:
        rows = self._query(f"SELECT {_COLUMNS} FROM items WHERE id = ?", (item_id,))
        return _row_to_item(rows[0]) if rows else None

    def get_by_seqs(self, seqs: Sequence[int] | np.ndarray) -> dict[int, StoredItem]:
        out: dict[int, StoredItem] = {}
        for chunk, marks in _chunks(seqs):
            rows = self._query(f"SELECT {_COLUMNS} FROM items WHERE seq IN ({marks})", chunk)
            out.update((row["seq"], _row_to_item(row)) for row in rows)
        return out

    def page(
        self,
        *,
        limit: int,
        after_seq: int = 0,
        offset: int = 0,
        label: str | None = None,
        metadata: dict[str, MetadataValue] | None = None,
    ) -> list[StoredItem]:
        """Items in seq order: those after `after_seq` (cursor paging), skipping `offset`,
        optionally only those matching label and metadata (of every model)."""
        where, params = _where(["seq > ?"], [after_seq], label, metadata)
        rows = self._query(
            f"SELECT {_COLUMNS} FROM items WHERE {where} ORDER BY seq LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_row_to_item(row) for row in rows]

    def count(
        self, *, label: str | None = None, metadata: dict[str, MetadataValue] | None = None
    ) -> int:
        """Items matching label and metadata, of every model (all of them without a filter)."""
        where, params = _where(["1"], [], label, metadata)
        return int(self._query(f"SELECT count(*) FROM items WHERE {where}", params)[0][0])

    def count_by_model(self, model_id: str) -> ModelCounts:
        """Items of `model_id`, of other models, and of other models with a stored input."""
        row = self._query(
            "SELECT count(*) FILTER (WHERE model_id = ?), count(*) FILTER (WHERE model_id != ?),"
            " count(*) FILTER (WHERE model_id != ? AND source IS NOT NULL) FROM items",
            (model_id, model_id, model_id),
        )[0]
        return ModelCounts(current=int(row[0]), other=int(row[1]), other_reembeddable=int(row[2]))

    def seqs(
        self,
        model_id: str,
        *,
        label: str | None = None,
        metadata: dict[str, MetadataValue] | None = None,
    ) -> np.ndarray:  # (n,) int64
        """Seqs of `model_id`'s items, optionally only those matching label and metadata."""
        where, params = _where(["model_id = ?"], [model_id], label, metadata)
        rows = self._query(f"SELECT seq FROM items WHERE {where}", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vectors(
        self,
        model_id: str,
        *,
        seqs: Sequence[int] | np.ndarray | None = None,
        limit: int | None = None,
    ) -> VectorRows:
        """`model_id`'s vectors in seq order: all of them (up to `limit`), or exactly `seqs`."""
        sql = "SELECT seq, id, label, embedding FROM items WHERE model_id = ?"
        if seqs is None:
            rows = self._query(
                sql + " ORDER BY seq LIMIT ?", (model_id, -1 if limit is None else limit)
            )
        else:
            rows = []
            for chunk, marks in _chunks(seqs):
                rows += self._query(sql + f" AND seq IN ({marks})", [model_id, *chunk])
            rows.sort(key=lambda r: r[0])
        blobs = b"".join(r[3] for r in rows)
        if not rows:
            return no_vector_rows()
        return VectorRows(
            seqs=np.array([r[0] for r in rows], dtype=np.int64),
            ids=[r[1] for r in rows],
            labels=[r[2] for r in rows],
            vectors=np.frombuffer(blobs, dtype="<f4").astype(np.float32).reshape(len(rows), -1),
        )

    def iter_vectors(
        self, model_id: str, *, up_to_seq: int, chunk: int = 20_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(seqs, raw vectors) of `model_id`'s items with seq <= `up_to_seq`, in seq order and
        in chunks, read on a connection of its own so that writers never wait for it."""
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        try:
            after = 0
            while True:
                rows = conn.execute(
                    "SELECT seq, embedding FROM items WHERE model_id = ? AND seq > ?"
                    " AND seq <= ? ORDER BY seq LIMIT ?",
                    (model_id, after, up_to_seq, chunk),
                ).fetchall()
                if not rows:
                    return
                seqs = np.fromiter((r[0] for r in rows), np.int64, len(rows))
                blobs = b"".join(r[1] for r in rows)
                yield seqs, np.frombuffer(blobs, "<f4").astype(np.float32).reshape(len(rows), -1)
                after = int(seqs[-1])
        finally:
            conn.close()

    def iter_indexed(self, *, chunk: int = 20_000) -> Iterator[list[IndexedItem]]:
        """What the filter index keeps of every item, in seq order and in chunks, read on a
        connection of its own (as iter_vectors)."""
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        try:
            after = 0
            while True:
                rows = conn.execute(
                    f"SELECT {_INDEXED} FROM items WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after, chunk),
                ).fetchall()
                if not rows:
                    return
                yield [_indexed(row) for row in rows]
                after = int(rows[-1][0])
        finally:
            conn.close()

    def reembed_candidates(self, model_id: str, *, after_seq: int, limit: int) -> list[StoredItem]:
        """Items of other models that have a stored input, in seq order after `after_seq`."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM items WHERE model_id != ? AND source IS NOT NULL"
            " AND seq > ? ORDER BY seq LIMIT ?",
            (model_id, after_seq, limit),
        )
        return [_row_to_item(row) for row in rows]
