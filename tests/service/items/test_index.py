"""The FAISS item index on its own: real FAISS (CPU), exact answers checked by numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from corel.class_rule import l2_normalise
from service.items import index as index_module
from service.items.index import ItemIndex
from service.items.snapshot import SnapshotError
from service.items.types import IndexKind

DIM = 16


@pytest.fixture
def vectors() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(200, DIM)).astype(np.float32)


def _exact_top(vectors: np.ndarray, seqs: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    scores = l2_normalise(vectors) @ l2_normalise(query)
    return seqs[np.argsort(-scores)[:k]]


KINDS = ["flat", "hnsw", "ivf"]


@pytest.mark.parametrize("kind", KINDS)
def test_search_matches_exact_cosine(kind: IndexKind, vectors: np.ndarray) -> None:
    seqs = np.arange(1, 201)
    index = ItemIndex.build(DIM, kind, seqs, vectors * 7.0)  # raw scale must not matter
    index.nprobe = index._index.nlist if kind == "ivf" else 0  # every list: exact

    scores, found = index.search(vectors[:5], 10)

    assert found.shape == (5, 10)
    for row in range(5):
        assert list(found[row]) == list(_exact_top(vectors, seqs, vectors[row], 10))
    assert scores[:, 0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_remove_hides_vectors(kind: IndexKind, vectors: np.ndarray) -> None:
    index = ItemIndex.build(DIM, kind, np.arange(1, 201), vectors)

    index.remove(np.array([1, 2]))

    assert index.size == 198
    assert set(index.ids()) == set(range(3, 201))
    _, found = index.search(vectors[:2], 5)
    assert 1 not in found and 2 not in found


def test_remove_tombstones_when_backend_cannot_remove(vectors: np.ndarray) -> None:
    index = ItemIndex.build(DIM, "hnsw", np.arange(1, 201), vectors)

    index.remove(np.array([5]))

    assert index.ntotal == 200  # HNSW keeps the vector ...
    assert index.tombstone_ratio == pytest.approx(1 / 200)  # ... as a tombstone


@pytest.mark.parametrize("kind", KINDS)
def test_search_with_allowed_returns_only_allowed(kind: IndexKind, vectors: np.ndarray) -> None:
    index = ItemIndex.build(DIM, kind, np.arange(1, 201), vectors)
    index.nprobe = index._index.nlist if kind == "ivf" else 0
    allowed = np.array([10, 20, 30, 40])

    scores, found = index.search(vectors[:1], 6, allowed=allowed)

    assert set(found[0, :4]) == set(allowed)
    assert list(found[0, 4:]) == [-1, -1]
    assert np.isneginf(scores[0, 4:]).all()


def test_search_post_filter_matches_selector(vectors: np.ndarray) -> None:
    # The over-fetch path is what GPU indexes use (they ignore IDSelector); no GPU here,
    # so it is exercised directly on the CPU index, where the selector gives the truth.
    index = ItemIndex(DIM)
    index.add(np.arange(1, 201), vectors)
    index.remove(np.array([3]))
    allowed = np.arange(2, 201, 7)
    queries = l2_normalise(vectors[:4])
    excluded = np.array([9, 16])

    by_selector = index.search(queries, 5, allowed=allowed, excluded=excluded)[1]
    by_filter = index._search_post_filter(queries, 5, allowed, index._dead(excluded))[1]

    assert (by_selector == by_filter).all()


def test_search_empty_index_returns_no_hits() -> None:
    scores, found = ItemIndex(DIM).search(np.ones((2, DIM), np.float32), 3)

    assert (found == -1).all()
    assert np.isneginf(scores).all()


def test_add_wrong_dimension_raises() -> None:
    with pytest.raises(ValueError, match="dimension"):
        ItemIndex(DIM).add(np.array([1]), np.ones((1, DIM + 1), np.float32))


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind: IndexKind, vectors: np.ndarray, tmp_path: Path) -> None:
    index = ItemIndex.build(DIM, kind, np.arange(1, 201), vectors)
    path = tmp_path / "items.index"

    index.save(path, model_id="m1", watermark=200)
    loaded = ItemIndex.load(path, model_id="m1", dim=DIM)

    assert loaded.kind == kind
    assert loaded.size == 200
    assert (loaded.search(vectors[:3], 4)[1] == index.search(vectors[:3], 4)[1]).all()
    assert not path.with_name("items.index.tmp").exists()


def test_load_other_model_raises(vectors: np.ndarray, tmp_path: Path) -> None:
    index = ItemIndex(DIM)
    index.add(np.arange(1, 11), vectors[:10])
    index.save(tmp_path / "items.index", model_id="old-model", watermark=10)

    with pytest.raises(SnapshotError, match="model_id"):
        ItemIndex.load(tmp_path / "items.index", model_id="new-model", dim=DIM)


def test_load_corrupt_snapshot_raises(vectors: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "items.index"
    index = ItemIndex(DIM)
    index.add(np.arange(1, 11), vectors[:10])
    index.save(path, model_id="m", watermark=10)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(SnapshotError, match="checksum"):
        ItemIndex.load(path, model_id="m", dim=DIM)
    path.write_bytes(b"garbage")
    with pytest.raises(SnapshotError, match="not an item index"):
        ItemIndex.load(path, model_id="m", dim=DIM)
    with pytest.raises(SnapshotError, match="cannot read"):
        ItemIndex.load(tmp_path / "missing", model_id="m", dim=DIM)


@pytest.mark.parametrize("kind", KINDS)
def test_a_clone_changes_while_the_original_keeps_its_vectors(
    kind: IndexKind, vectors: np.ndarray
) -> None:
    index = ItemIndex.build(DIM, kind, np.arange(1, 101), vectors[:100])

    copy = index.clone()
    copy.add(np.arange(101, 201), vectors[100:])
    copy.remove(np.array([1]))

    assert (index.size, copy.size) == (100, 199)
    assert 1 in index.ids() and 1 not in copy.ids()


@pytest.mark.parametrize("kind", KINDS)
def test_vectors_gives_back_the_unit_vectors_stored(kind: IndexKind, vectors: np.ndarray) -> None:
    index = ItemIndex.build(DIM, kind, np.arange(1, 201), vectors * 3)

    np.testing.assert_allclose(
        index.vectors(np.array([5, 9])), l2_normalise(vectors[[4, 8]]), atol=1e-6
    )


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_storage_rows_and_gather_read_the_vectors_faiss_holds(kind: IndexKind) -> None:
    data = np.random.default_rng(3).normal(size=(300, 8)).astype(np.float32)
    index = ItemIndex.build(8, kind, np.arange(10, 310), data)
    index.remove(np.array([11]))  # a tombstone (HNSW) or a row gone (flat)

    rows = index.rows(np.array([10, 11, 309, 5_000]))

    assert rows[1] == rows[3] == -1  # removed, never stored
    storage = index.storage()
    assert storage is not None
    np.testing.assert_allclose(storage[rows[[0, 2]]], l2_normalise(data[[0, 299]]), atol=1e-6)


def test_a_large_gather_is_made_in_the_background_and_kept_until_the_index_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(index_module, "GATHER_KEEP_MIN", 10)
    data = np.random.default_rng(4).normal(size=(100, 8)).astype(np.float32)
    index = ItemIndex.build(8, "flat", np.arange(1, 101), data)
    rows = np.arange(0, 100, 2)

    assert index.gathered(rows) is None  # not kept yet: the caller scores in place
    index.wait_for_gathers()
    first = index.gathered(rows.copy())

    assert first is not None and index.gathered(rows) is first  # the same rows: kept
    np.testing.assert_allclose(first, l2_normalise(data[rows]), atol=1e-6)
    small = index.gathered(rows[:5])
    assert small is not None and small is not index.gathered(rows[:5])  # too few to keep
    index.add(np.array([101]), data[:1])
    assert index.gathered(rows) is None  # the rows may have moved: made again
