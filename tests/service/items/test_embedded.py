"""EmbeddedItems in-process: real SQLite and FAISS files, restarts by closing and reopening.

Model identities are plain strings here ("model-a", "model-b"); the HTTP tests use real
bundles. Vectors are random, so neighbours can be checked against numpy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from corel.class_rule import l2_normalise
from service.items import live_index
from service.items.embedded import EmbeddedItems
from service.items.sqlite_store import ItemStore
from service.items.types import NewItem, SearchOptions

DIM = 12


def _open(tmp_path: Path, model_id: str = "model-a", kind: str = "flat") -> EmbeddedItems:
    service = EmbeddedItems(
        ItemStore(tmp_path / "items.sqlite3"),
        index_path=tmp_path / "items.index",
        model_id=model_id,
        dim=DIM,
        kind=kind,
    )
    service.start()
    assert service.wait_ready(10)
    return service


@pytest.fixture
def service(tmp_path: Path) -> Iterator[EmbeddedItems]:
    s = _open(tmp_path)
    yield s
    s.close()


def _items(n: int, seed: int = 0, **kw: Any) -> list[NewItem]:
    vectors = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return [NewItem(f"it-{seed}-{i}", vectors[i], **kw) for i in range(n)]


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_add_then_reopen_keeps_items_and_index(tmp_path: Path) -> None:
    first = _open(tmp_path)
    _run(first.add(_items(20)))
    first.close()

    again = _open(tmp_path)

    assert again.index_size == 20
    assert _run(again.get("it-0-3")).embedding.shape == (DIM,)
    again.close()


def test_open_catches_up_writes_the_snapshot_missed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = _open(tmp_path)
    _run(first.add(_items(10)))
    first._index.flush()  # a snapshot with these 10 (the background thread does it at scale)
    first.close()
    store = ItemStore(tmp_path / "items.sqlite3")  # as if the server died after committing:
    store.insert(_items(5, seed=1), "model-a")  # rows the snapshot never saw
    store.delete("it-0-0")
    store.close()

    with caplog.at_level(logging.INFO, logger="service"):
        again = _open(tmp_path)

    assert again.index_size == 14
    assert "caught up with the store: +5, -1" in caplog.text
    hits = _run(again.neighbours(["it-1-0"], SearchOptions(k=20)))[0]
    assert {h.item.id for h in hits} == {f"it-0-{i}" for i in range(1, 10)} | {
        f"it-1-{i}" for i in range(1, 5)
    }
    again.close()


def test_open_rebuilds_when_snapshot_corrupt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = _open(tmp_path)
    _run(first.add(_items(10)))
    first._index.flush()
    first.close()
    (tmp_path / "items.index").write_bytes(b"not a snapshot")

    with caplog.at_level(logging.WARNING, logger="service"):
        again = _open(tmp_path)

    assert again.index_size == 10
    assert "not an item index snapshot; the store's vectors start in the delta" in caplog.text
    again.close()


def test_open_with_other_model_indexes_none_and_counts_them(tmp_path: Path) -> None:
    first = _open(tmp_path, "model-a")
    _run(first.add(_items(6)))
    first.close()

    other = _open(tmp_path, "model-b")

    assert other.index_size == 0
    stats = other.stats()
    assert stats.items_other_models == 6
    assert stats.items_current_model == 0
    with pytest.raises(Exception, match="another model") as info:
        _run(other.neighbours(["it-0-0"], SearchOptions(k=3)))
    assert getattr(info.value, "status_code", None) == 409
    other.close()


def test_reembed_moves_items_with_inputs_to_current_model(tmp_path: Path) -> None:
    first = _open(tmp_path, "model-a")
    with_input = [
        NewItem(f"in-{i}", np.ones(DIM, np.float32), source={"data": [i]}) for i in range(4)
    ]
    _run(first.add([*with_input, *_items(2)]))
    first.close()
    other = _open(tmp_path, "model-b")

    async def embed(sources: list[dict[str, Any]]) -> np.ndarray:
        # Stands in for the encoder (the HTTP tests use the real one); input 3 is "bad".
        if any(s["data"] == [3] for s in sources):
            raise ValueError("input 3 does not fit this model")
        return np.array([np.eye(DIM)[s["data"][0]] for s in sources], np.float32)

    result = _run(other.reembed(embed))

    assert result.reembedded == 3
    assert [f.id for f in result.failed] == ["in-3"]
    assert result.items_other_models == 3  # in-3 and the two without input
    assert other.index_size == 3
    hits = _run(other.neighbours([np.eye(DIM)[1].astype(np.float32)], SearchOptions(k=1)))[0]
    assert (hits[0].item.id, hits[0].score) == ("in-1", pytest.approx(1.0))
    other.close()


def test_neighbours_rank_offset_and_min_score(service: EmbeddedItems) -> None:
    items = _items(30)
    _run(service.add(items))
    query = items[0].embedding
    expected = np.argsort(
        -(l2_normalise(np.stack([i.embedding for i in items])) @ l2_normalise(query))
    )

    (hits,) = _run(service.neighbours(["it-0-0"], SearchOptions(k=5, offset=2)))
    (scored,) = _run(service.neighbours([query], SearchOptions(k=30, min_score=0.2)))

    assert [h.item.id for h in hits] == [f"it-0-{i}" for i in expected[3:8]]  # [0] is itself
    assert scored[0].item.id == "it-0-0"
    assert all(h.score >= 0.2 for h in scored)
    assert len(scored) < 30


@pytest.mark.parametrize("exact_limit", [0, 10_000])
def test_neighbours_filter_same_by_index_and_exact(
    service: EmbeddedItems, monkeypatch: pytest.MonkeyPatch, exact_limit: int
) -> None:
    items = _items(40, label=None)
    items = [
        NewItem(i.id, i.embedding, "odd" if n % 2 else "even", {"n": n, "third": n % 3 == 0})
        for n, i in enumerate(items)
    ]
    _run(service.add(items))
    monkeypatch.setattr(live_index, "EXACT_FILTER_MIN", exact_limit)
    service._index.flush()  # in main, where the two paths differ

    (hits,) = _run(
        service.neighbours(
            [items[0].embedding], SearchOptions(k=40, label="odd", metadata={"third": True})
        )
    )

    assert [h.item.metadata["n"] for h in hits] == sorted(
        [n for n in range(40) if n % 2 and n % 3 == 0],
        key=lambda n: -float(l2_normalise(items[n].embedding) @ l2_normalise(items[0].embedding)),
    )


def test_delete_then_neighbours_never_returns_it(service: EmbeddedItems) -> None:
    items = _items(10)
    _run(service.add(items))

    _run(service.delete("it-0-1"))

    (hits,) = _run(service.neighbours([items[1].embedding], SearchOptions(k=10)))
    assert "it-0-1" not in {h.item.id for h in hits}
    assert len(hits) == 9
    with pytest.raises(Exception, match="no item") as info:
        _run(service.delete("it-0-1"))
    assert getattr(info.value, "status_code", None) == 404


def test_hnsw_many_deletes_compact_the_index(tmp_path: Path) -> None:
    service = _open(tmp_path, kind="hnsw")
    _run(service.add(_items(20)))
    service._index.flush()

    for i in range(8):
        _run(service.delete(f"it-0-{i}"))
    service._index.flush()  # HNSW cannot remove: the 8 become tombstones in the new main

    assert service.index_size == 12
    status = service._index.status()
    assert (status.main, status.removed) == (12, 0)
    assert service._index.status().job is None
    service._index.flush()  # tombstones over 25 %: rebuilt from the store, without them
    assert service._index._view.main.ntotal == 12
    service.close()


def test_calls_before_ready_answer_503(tmp_path: Path) -> None:
    service = EmbeddedItems(
        ItemStore(tmp_path / "items.sqlite3"),
        index_path=tmp_path / "x.index",
        model_id="m",
        dim=DIM,
    )  # not started: the index is "still loading"

    with pytest.raises(Exception, match="loading") as info:
        _run(service.neighbours([np.ones(DIM, np.float32)], SearchOptions(k=1)))

    assert getattr(info.value, "status_code", None) == 503
    assert not service.is_ready
    service.store.close()


def test_add_wrong_dimension_is_422(service: EmbeddedItems) -> None:
    with pytest.raises(Exception, match="shape") as info:
        _run(service.add([NewItem("bad", np.ones(DIM + 1, np.float32))]))
    assert getattr(info.value, "status_code", None) == 422


def test_loading_that_fails_is_tried_again_and_readiness_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _open(tmp_path)
    _run(first.add(_items(5)))
    first.close()
    service = EmbeddedItems(
        ItemStore(tmp_path / "items.sqlite3"),
        index_path=tmp_path / "items.index",
        model_id="model-a",
        dim=DIM,
    )
    seqs, failures = service.store.seqs, []

    def flaky(model_id: str, **kw: Any) -> np.ndarray:
        if len(failures) < 2:  # the store is unreadable for a moment
            failures.append(1)
            raise OSError("disk I/O error")
        return seqs(model_id, **kw)

    monkeypatch.setattr(service.store, "seqs", flaky)
    service.start()

    assert not service.wait_ready(0.5)
    assert "disk I/O error" in (service.stats().load_error or "")
    assert service.wait_ready(10)  # tried again after 1 s, then 2 s
    assert service.index_size == 5 and service.stats().load_error is None
    service.close()
