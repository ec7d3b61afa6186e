"""The embedded store's filter index: which stored items have a label or a metadata value.

An inverted index in memory, kept beside SQLite (the truth) the way the FAISS index is:
built from the store when the item index loads, then changed with every write under the
same lock. For each label, each top-level metadata field with a scalar value (string,
number, boolean, null) and each model, it holds the sorted seqs of the items that have it,
so a filter resolves to its allowed seqs by intersecting a few arrays (no SQL, no JSON
parsed per row) and a count is a length. Measured at 1M items, resolving a filter in SQLite
(json_extract over every row) took 0.6 to 2 s; here it is a dictionary lookup.

Values are keyed with their JSON type, as the SQL filters and the API define equality:
`true` is not `1`, `1` is `1.0`, `null` is a field that is null (a missing field is not).
Metadata values that are objects or arrays are not indexed: no filter value equals them.

Seqs only grow (SQLite AUTOINCREMENT; a re-embedded item gets a new one), so an insert
appends to each of its postings. A reader takes a posting's array once and is never torn by
a writer: appends write past the reader's end, and a removal publishes a new array.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from service.items.types import IndexedItem, MetadataValue, ModelCounts

__all__ = ["FilterIndex"]

# (field kind, name, JSON type, value): ("label", "", "text", "Sneaker"),
# ("metadata", "colour", "text", "white"), ("model", "", "", "<sha256>"), and
# ("source", "", "", "<sha256>") for the items of that model with a stored input
Key = tuple[str, str, str, Any]


class _Posting:
    """Ascending seqs: extended in place (new seqs are the largest), copied on removal."""

    __slots__ = ("_buffer", "seqs")

    def __init__(self) -> None:
        self._buffer = np.empty(8, np.int64)
        self.seqs = self._buffer[:0]

    def extend(self, seqs: list[int]) -> None:
        n, more = len(self.seqs), len(seqs)
        if n + more > len(self._buffer):  # a new buffer: readers keep the old one
            self._buffer = np.concatenate([self.seqs, np.empty(max(n, more, 8), np.int64)])
        self._buffer[n : n + more] = seqs
        self.seqs = self._buffer[: n + more]

    def remove(self, seq: int) -> None:
        at = int(np.searchsorted(self.seqs, seq))
        if at < len(self.seqs) and self.seqs[at] == seq:
            self._buffer = np.delete(self.seqs, at)
            self.seqs = self._buffer


def _json_type(value: Any) -> str | None:
    """The JSON type a filter compares by, or None for values no filter can equal."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return None


def _keys(item: IndexedItem) -> list[Key]:
    keys: list[Key] = [("model", "", "", item.model_id)]
    if item.has_source:
        keys.append(("source", "", "", item.model_id))
    if item.label is not None:
        keys.append(("label", "", "text", item.label))
    for name, value in item.metadata.items():
        kind = _json_type(value)
        if kind is not None:
            keys.append(("metadata", name, kind, value))
    return keys


def _filter_keys(label: str | None, metadata: Mapping[str, MetadataValue] | None) -> list[Key]:
    keys: list[Key] = [] if label is None else [("label", "", "text", label)]
    for name, value in (metadata or {}).items():
        keys.append(("metadata", name, _json_type(value) or "", value))
    return keys


class FilterIndex:
    """Postings of every stored item (of every model). Writers are serialised by the
    caller (EmbeddedItems' lock); readers need no lock."""

    def __init__(self) -> None:
        self._postings: dict[Key, _Posting] = {}
        self._all = _Posting()
        self._models: set[str] = set()  # every model an item was indexed of (a handful)

    def add(self, items: Iterable[IndexedItem]) -> None:
        """Index items in ascending seq order, each seq above every one indexed before."""
        # grouped by posting first, then one extend each: per item and posting, an append
        # to a numpy buffer cost 1 us, 15 ms of a 1,024-item batch
        grouped: dict[Key, list[int]] = {}
        seqs: list[int] = []
        for item in items:
            seqs.append(item.seq)
            self._models.add(item.model_id)
            for key in _keys(item):
                grouped.setdefault(key, []).append(item.seq)
        self._all.extend(seqs)
        for key, key_seqs in grouped.items():
            posting = self._postings.get(key)
            if posting is None:
                posting = self._postings[key] = _Posting()
            posting.extend(key_seqs)

    def remove(self, item: IndexedItem) -> None:
        self._all.remove(item.seq)
        for key in _keys(item):
            posting = self._postings.get(key)
            if posting is not None:
                posting.remove(item.seq)
                if not len(posting.seqs):
                    del self._postings[key]  # values come and go: no empty postings kept

    # -- reading ------------------------------------------------------------------------

    def matching(
        self, label: str | None = None, metadata: Mapping[str, MetadataValue] | None = None
    ) -> np.ndarray:  # (n,) int64, ascending
        """Seqs of the items (of every model) with this label and these metadata values;
        every item when neither is given."""
        keys = _filter_keys(label, metadata)
        if not keys:
            return self._all.seqs
        postings = [self._postings.get(key) for key in keys]
        if any(p is None for p in postings):
            return np.zeros(0, np.int64)
        arrays = sorted((p.seqs for p in postings if p is not None), key=len)
        seqs = arrays[0]
        for other in arrays[1:]:  # the shortest first: each step only shrinks it
            seqs = np.intersect1d(seqs, other, assume_unique=True)
        return seqs

    def count(
        self, label: str | None = None, metadata: Mapping[str, MetadataValue] | None = None
    ) -> int:
        return len(self.matching(label, metadata))

    def count_by_model(self, model_id: str) -> ModelCounts:
        """As ItemStore.count_by_model, without scanning the table."""
        current = self._size(("model", "", "", model_id))
        other = len(self._all.seqs) - current
        # per model, not over every posting: one per distinct metadata value can be millions
        with_source = sum(self._size(("source", "", "", m)) for m in list(self._models))
        reembeddable = with_source - self._size(("source", "", "", model_id))
        return ModelCounts(current=current, other=other, other_reembeddable=reembeddable)

    def _size(self, key: Key) -> int:
        posting = self._postings.get(key)
        return 0 if posting is None else len(posting.seqs)
