"""The FAISS item index on its own: real FAISS (CPU), exact answers checked by numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from corel.class_rule import l2_normalise
from service.items.index import ItemIndex, SnapshotError

DIM = 16


@pytest.fixture
def vectors() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(200, DIM)).astype(np.float32)


def _exact_top(vectors: np.ndarray, seqs: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    scores = l2_normalise(vectors) @ l2_normalise(query)
    return seqs[np.argsort(-scores)[:k]]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_search_matches_exact_cosine(kind: str, vectors: np.ndarray) -> None:
    index = ItemIndex(DIM, kind=kind)  # type: ignore[arg-type]
    seqs = np.arange(1, 201)
    index.add(seqs, vectors * 7.0)  # raw scale must not matter: cosine

    scores, found = index.search(vectors[:5], 10)

    assert found.shape == (5, 10)
    for row in range(5):
        assert list(found[row]) == list(_exact_top(vectors, seqs, vectors[row], 10))
    assert scores[:, 0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_remove_hides_vectors(kind: str, vectors: np.ndarray) -> None:
    index = ItemIndex(DIM, kind=kind)  # type: ignore[arg-type]
    index.add(np.arange(1, 201), vectors)

    index.remove([1, 2])

    assert index.size == 198
    assert set(index.ids()) == set(range(3, 201))
    _, found = index.search(vectors[:2], 5)
    assert 1 not in found and 2 not in found


def test_remove_tombstones_when_backend_cannot_remove(vectors: np.ndarray) -> None:
    index = ItemIndex(DIM, kind="hnsw")
    index.add(np.arange(1, 201), vectors)

    index.remove([5])

    assert index.ntotal == 200  # HNSW keeps the vector ...
    assert index.tombstone_ratio == pytest.approx(1 / 200)  # ... as a tombstone


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_search_with_allowed_returns_only_allowed(kind: str, vectors: np.ndarray) -> None:
    index = ItemIndex(DIM, kind=kind)  # type: ignore[arg-type]
    seqs = np.arange(1, 201)
    index.add(seqs, vectors)
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
    index.remove([3])
    allowed = np.arange(2, 201, 7)
    queries = l2_normalise(vectors[:4])

    by_selector = index.search(queries, 5, allowed=allowed)[1]
    by_filter = index._search_post_filter(queries, 5, allowed)[1]

    assert (by_selector == by_filter).all()


def test_search_empty_index_returns_no_hits() -> None:
    scores, found = ItemIndex(DIM).search(np.ones((2, DIM), np.float32), 3)

    assert (found == -1).all()
    assert np.isneginf(scores).all()


def test_add_wrong_dimension_raises() -> None:
    with pytest.raises(ValueError, match="dimension"):
        ItemIndex(DIM).add(np.array([1]), np.ones((1, DIM + 1), np.float32))


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_save_load_round_trip(kind: str, vectors: np.ndarray, tmp_path: Path) -> None:
    index = ItemIndex(DIM, kind=kind)  # type: ignore[arg-type]
    index.add(np.arange(1, 201), vectors)
    path = tmp_path / "items.index"

    index.save(path, model_id="m1", last_seq=200)
    loaded, last_seq = ItemIndex.load(path, model_id="m1", kind=kind, dim=DIM)  # type: ignore[arg-type]

    assert last_seq == 200
    assert loaded.size == 200
    assert (loaded.search(vectors[:3], 4)[1] == index.search(vectors[:3], 4)[1]).all()
    assert not path.with_name("items.index.tmp").exists()


def test_load_other_model_raises(vectors: np.ndarray, tmp_path: Path) -> None:
    index = ItemIndex(DIM)
    index.add(np.arange(1, 11), vectors[:10])
    index.save(tmp_path / "items.index", model_id="old-model", last_seq=10)

    with pytest.raises(SnapshotError, match="model_id"):
        ItemIndex.load(tmp_path / "items.index", model_id="new-model", kind="flat", dim=DIM)


def test_load_corrupt_snapshot_raises(vectors: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "items.index"
    index = ItemIndex(DIM)
    index.add(np.arange(1, 11), vectors[:10])
    index.save(path, model_id="m", last_seq=10)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(SnapshotError, match="checksum"):
        ItemIndex.load(path, model_id="m", kind="flat", dim=DIM)
    path.write_bytes(b"garbage")
    with pytest.raises(SnapshotError, match="not an item index"):
        ItemIndex.load(path, model_id="m", kind="flat", dim=DIM)
    with pytest.raises(SnapshotError, match="cannot read"):
        ItemIndex.load(tmp_path / "missing", model_id="m", kind="flat", dim=DIM)


def test_catch_up_adds_missing_and_removes_stale(vectors: np.ndarray) -> None:
    index = ItemIndex(DIM)
    index.add(np.arange(1, 11), vectors[:10])
    target = np.array([*range(3, 11), 20, 21])  # 1, 2 deleted; 20, 21 new in the store

    added, removed = index.catch_up(target, lambda seqs: (seqs, vectors[seqs - 1]))

    assert (added, removed) == (2, 2)
    assert sorted(index.ids()) == sorted(target)
    assert index.search(vectors[19:20], 1)[1][0, 0] == 20
