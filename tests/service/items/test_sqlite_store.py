"""The SQLite item store on its own: real SQLite files in a temporary folder."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from service.errors import ConflictError
from service.items.sqlite_store import ItemStore
from service.items.types import IndexedItem, ModelCounts, NewItem

DIM = 8


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ItemStore]:
    s = ItemStore(tmp_path / "items.sqlite3")
    yield s
    s.close()


def _item(n: int, **kw: object) -> NewItem:
    vector = np.full(DIM, n + 1, np.float32)
    return NewItem(id=f"item-{n}", embedding=vector, **kw)  # type: ignore[arg-type]


def test_open_sets_wal_and_full_sync(store: ItemStore) -> None:
    conn = store._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_insert_then_get_round_trips_every_field(store: ItemStore) -> None:
    source = {"data": [[1, 2], [3, 4]]}
    (stored,) = store.insert([_item(0, label="cat", metadata={"a": 1}, source=source)], "m1")

    got = store.get("item-0")

    assert got is not None
    assert got.seq == stored.seq
    assert got.model_id == "m1"
    assert got.embedding.dtype == np.float32
    assert (got.embedding == 1.0).all()
    assert (got.label, got.metadata, got.source) == ("cat", {"a": 1}, source)
    assert got.created == got.updated


def test_insert_duplicate_id_raises_conflict_and_writes_nothing(store: ItemStore) -> None:
    store.insert([_item(0)], "m1")

    with pytest.raises(ConflictError) as info:
        store.insert([_item(1), _item(0)], "m1")

    assert info.value.details == {"ids": ["item-0"], "count": 1}
    assert store.get("item-1") is None  # all or nothing
    assert store.count() == 1


def test_sqlite_error_becomes_service_error(store: ItemStore) -> None:
    store.close()
    with pytest.raises(Exception) as info:
        store.get("x")
    assert not isinstance(info.value, sqlite3.Error)
    assert getattr(info.value, "status_code", 503) == 503


def test_delete_returns_what_indexed_the_item_then_none(store: ItemStore) -> None:
    (stored,) = store.insert([_item(0)], "m1")

    gone = store.delete("item-0")
    assert gone == IndexedItem(stored.seq, "m1", stored.label, stored.metadata, has_source=False)
    assert store.delete("item-0") is None


def test_seqs_are_never_reused(store: ItemStore) -> None:
    first = store.insert([_item(0), _item(1)], "m1")
    store.delete("item-1")

    (again,) = store.insert([_item(1)], "m1")

    assert again.seq > max(s.seq for s in first)


def test_page_by_cursor_and_label(store: ItemStore) -> None:
    store.insert([_item(n, label="even" if n % 2 == 0 else "odd") for n in range(7)], "m1")

    first = store.page(limit=2, label="even")
    rest = store.page(limit=10, after_seq=first[-1].seq, label="even")
    skipped = store.page(limit=2, offset=5)

    assert [i.id for i in first] == ["item-0", "item-2"]
    assert [i.id for i in rest] == ["item-4", "item-6"]
    assert [i.id for i in skipped] == ["item-5", "item-6"]
    assert store.count(label="odd") == 3


def test_seqs_filter_on_metadata_keeps_json_types_apart(store: ItemStore) -> None:
    metas = [{"k": 1}, {"k": True}, {"k": "1"}, {"k": 1.0}, {"k": None}, {}]
    stored = store.insert([_item(n, metadata=m) for n, m in enumerate(metas)], "m1")
    seq = [s.seq for s in stored]

    assert list(store.seqs("m1", metadata={"k": 1})) == [seq[0], seq[3]]
    assert list(store.seqs("m1", metadata={"k": True})) == [seq[1]]
    assert list(store.seqs("m1", metadata={"k": "1"})) == [seq[2]]
    assert list(store.seqs("m1", metadata={"k": None})) == [seq[4]]
    assert list(store.seqs("m2")) == []


def test_vectors_by_seqs_in_order(store: ItemStore) -> None:
    stored = store.insert([_item(n) for n in range(5)], "m1")
    store.insert([NewItem(id="other", embedding=np.ones(DIM, np.float32))], "m2")

    rows = store.vectors("m1", seqs=[stored[3].seq, stored[1].seq, 10_000])

    assert list(rows.seqs) == [stored[1].seq, stored[3].seq]
    assert rows.vectors.shape == (2, DIM)
    assert rows.vectors[:, 0].tolist() == [2.0, 4.0]
    assert store.vectors("m1").vectors.shape == (5, DIM)
    assert store.vectors("m3").vectors.shape == (0, 0)


def test_replace_embeddings_moves_item_to_new_model_and_seq(store: ItemStore) -> None:
    (old,) = store.insert([_item(0, label="a", source={"data": [1]})], "old-model")
    assert store.count_by_model("new-model") == ModelCounts(
        current=0,
        other=1,
        other_reembeddable=1,
    )
    todo = store.reembed_candidates("new-model", after_seq=0, limit=10)

    (new,) = store.replace_embeddings(todo, np.zeros((1, DIM), np.float32), "new-model")

    assert new.seq > old.seq
    assert (new.id, new.label, new.created) == (old.id, old.label, old.created)
    assert new.model_id == "new-model"
    assert store.count_by_model("new-model").other == 0


def test_concurrent_inserts_from_threads_all_commit(store: ItemStore) -> None:
    def worker(t: int) -> None:
        for n in range(20):
            store.insert([NewItem(id=f"t{t}-{n}", embedding=np.ones(DIM, np.float32))], "m1")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert store.count() == 80


def test_reopen_keeps_committed_items(tmp_path: Path) -> None:
    store = ItemStore(tmp_path / "items.sqlite3")
    store.insert([_item(0)], "m1")
    store.close()

    reopened = ItemStore(tmp_path / "items.sqlite3")

    assert reopened.get("item-0") is not None
    reopened.close()
