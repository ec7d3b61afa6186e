"""The filter index answers filters as the SQL of the store does, from memory.

Each test builds the index from a real SQLite store (ItemStore.iter_indexed, as the
embedded store loads it) and compares with the store's own SQL where the rule is shared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.items.filter_index import FilterIndex
from service.items.sqlite_store import ItemStore
from service.items.types import IndexedItem, MetadataValue, ModelCounts, NewItem


def _item(n: int, label: str | None, metadata: dict, source: dict | None = None) -> NewItem:
    return NewItem(f"it-{n}", np.full(4, n + 1, np.float32), label, metadata, source)


@pytest.fixture
def store(tmp_path: Path) -> ItemStore:
    store = ItemStore(tmp_path / "items.sqlite3")
    store.insert(
        [
            _item(0, "Shirt", {"colour": "white", "size": 1, "sale": True}),
            _item(1, "Shirt", {"colour": "black", "size": 1.0, "sale": False}),
            _item(2, "Sneaker", {"colour": "white", "size": "1", "note": None}),
            _item(3, None, {"colour": {"r": 1}, "size": 2}, source={"data": [0]}),
        ],
        "model-a",
    )
    store.insert([_item(4, "Shirt", {"colour": "white", "sale": 1})], "model-b")
    return store


def _loaded(store: ItemStore) -> FilterIndex:
    index = FilterIndex()
    for chunk in store.iter_indexed(chunk=2):  # several chunks
        index.add(chunk)
    return index


FILTERS: list[tuple[str | None, dict[str, MetadataValue] | None]] = [
    (None, None),
    ("Shirt", None),
    ("Shirt", {"colour": "white"}),
    (None, {"size": 1}),  # 1 and 1.0, not "1"
    (None, {"size": "1"}),
    (None, {"sale": True}),  # true, not 1
    (None, {"sale": 1}),
    (None, {"note": None}),  # a null field, not a missing one
    (None, {"colour": "white", "size": 1}),
    ("Pullover", None),
    (None, {"missing": "x"}),
]


@pytest.mark.parametrize(("label", "metadata"), FILTERS)
def test_a_filter_matches_what_the_sql_filter_matches(
    store: ItemStore, label: str | None, metadata: dict[str, MetadataValue] | None
) -> None:
    index = _loaded(store)

    sql = [item.seq for item in store.page(limit=100, label=label, metadata=metadata)]
    assert index.matching(label, metadata).tolist() == sql
    assert index.count(label, metadata) == store.count(label=label, metadata=metadata)


def test_json_types_are_kept_apart(store: ItemStore) -> None:
    index = _loaded(store)

    assert index.matching(metadata={"size": 1}).tolist() == [1, 2]
    assert index.matching(metadata={"sale": True}).tolist() == [1]
    assert index.matching(metadata={"sale": 1}).tolist() == [5]
    assert index.matching(metadata={"colour": "white"}).tolist() == [1, 3, 5]  # not {"r": 1}


def test_counts_by_model_are_the_stores(store: ItemStore) -> None:
    index = _loaded(store)

    assert index.count_by_model("model-a") == store.count_by_model("model-a")
    assert index.count_by_model("model-b") == ModelCounts(current=1, other=4, other_reembeddable=1)


def test_a_removed_item_leaves_every_posting(store: ItemStore) -> None:
    index = _loaded(store)
    reader = index.matching("Shirt")  # taken before the write

    gone = store.delete("it-0")
    assert gone is not None
    index.remove(gone)

    assert index.matching("Shirt").tolist() == [2, 5]
    assert index.matching(metadata={"sale": True}).size == 0
    assert reader.tolist() == [1, 2, 5]  # a reader's array is never changed under it
    assert index.count() == 4


def test_appends_keep_postings_sorted_past_their_first_buffer() -> None:
    index = FilterIndex()
    index.add(IndexedItem(seq, "m", f"c{seq % 3}", {}, False) for seq in range(1, 1_001))
    before = index.matching("c1")

    index.add([IndexedItem(1_001, "m", "c1", {}, False)])

    seqs = index.matching("c1")
    assert seqs.tolist() == [*range(1, 1_001, 3), 1_001]
    assert len(before) == len(seqs) - 1  # the earlier reader still sees its own length
