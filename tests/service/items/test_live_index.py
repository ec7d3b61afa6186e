"""The live item index: exact answers over main + delta, background merges and rebuilds that
lose no write made while they run, `auto` switching kinds, and catching up after a restart.

The "store" here is a dict of seq -> vector, read the way the real store is (in chunks, up
to a watermark); tests/service/items/test_embedded.py runs the same over real SQLite.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from corel.class_rule import l2_normalise
from service.items import exact_search, live_index, merge_worker
from service.items import index as index_module
from service.items.index import ItemIndex
from service.items.live_index import LiveIndex

DIM = 16


class Store:
    """Committed vectors by seq; `gate` (when set) holds a reader after it has read the rows
    and before it hands them over, so writes can land in between."""

    def __init__(self) -> None:
        self.rows: dict[int, np.ndarray] = {}
        self.gate: threading.Event | None = None
        self.reading = threading.Event()

    def put(self, seqs: np.ndarray, vectors: np.ndarray) -> None:
        self.rows.update(zip(seqs.tolist(), vectors, strict=True))

    def read(self, up_to: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        seqs = np.array(sorted(s for s in self.rows if s <= up_to), np.int64)
        rows = [self.rows[s] for s in seqs]
        self.reading.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        if len(seqs):
            yield seqs, np.stack(rows)

    def fetch(self, seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seqs = np.array([s for s in seqs if s in self.rows], np.int64)
        return seqs, np.stack([self.rows[s] for s in seqs]) if len(seqs) else np.zeros((0, DIM))


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def open_index(tmp_path: Path, store: Store, **kw: object) -> LiveIndex:
    index = LiveIndex(
        DIM,
        snapshot_path=tmp_path / "items.index",
        model_id="m",
        read_store=store.read,
        **{"setting": "flat", **kw},
    )  # type: ignore[arg-type]
    index.open(np.array(sorted(store.rows), np.int64), store.fetch)
    return index


def write(index: LiveIndex, store: Store, seqs: np.ndarray, vecs: np.ndarray) -> None:
    store.put(seqs, vecs)  # commit, then index: what EmbeddedItems does under its lock
    index.add(seqs, vecs)


def exact_top(store: Store, query: np.ndarray, k: int) -> list[int]:
    seqs = np.array(sorted(store.rows))
    scores = l2_normalise(np.stack([store.rows[s] for s in seqs])) @ l2_normalise(query)
    return seqs[np.argsort(-scores, kind="stable")[:k]].tolist()


def test_search_over_main_and_delta_is_exact_for_the_flat_kind(tmp_path: Path) -> None:
    store = Store()
    index = open_index(tmp_path, store)
    write(index, store, np.arange(1, 301), vectors(300))
    index.flush()  # 1..300 in main
    write(index, store, np.arange(301, 351), vectors(50, seed=1))  # in the delta
    query = vectors(1, seed=2)

    _, found = index.search(query, 10)

    assert found[0].tolist() == exact_top(store, query[0], 10)
    assert index.status().delta == 50
    index.close()


def test_deletes_hide_items_in_main_and_in_the_delta(tmp_path: Path) -> None:
    store = Store()
    index = open_index(tmp_path, store)
    data = vectors(100)
    write(index, store, np.arange(1, 81), data[:80])
    index.flush()
    write(index, store, np.arange(81, 101), data[80:])

    index.remove(np.array([5, 90]))  # one in main, one in the delta

    _, found = index.search(data[[4, 89]], 100)
    assert 5 not in found and 90 not in found
    assert index.size == 98
    status = index.status()
    assert (status.main, status.delta, status.removed) == (79, 19, 1)
    index.close()


def test_a_view_a_search_holds_does_not_change_under_later_writes(tmp_path: Path) -> None:
    store = Store()
    index = open_index(tmp_path, store)
    data = vectors(3_000)
    write(index, store, np.arange(1, 1_001), data[:1_000])
    held = index.view  # what a search in flight reads
    before = held.delta_vectors.copy()

    write(index, store, np.arange(1_001, 3_001), data[1_000:])  # appends past it, then grows
    index.remove(np.array([10, 2_000]))
    write(index, store, np.array([3_001]), vectors(1, seed=5))

    assert held.delta_seqs.tolist() == list(range(1, 1_001))
    np.testing.assert_array_equal(held.delta_vectors, before)
    assert index.status().delta == 2_999
    _, found = index.search(data[[0, 1_500, 2_999]], 1)
    assert found[:, 0].tolist() == [1, 1_501, 3_000]
    index.close()


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_a_stored_item_is_found_by_its_own_vector_whatever_the_kind(
    tmp_path: Path, kind: str
) -> None:
    store = Store()
    index = open_index(tmp_path, store, setting=kind)
    data = vectors(2_000)
    write(index, store, np.arange(1, 2_001), data)
    index.flush()

    scores, found = index.search(data[:200], 1)

    assert index.status().kind == kind
    assert (found[:, 0] == np.arange(1, 201)).all()
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    index.close()


class Gate:
    """Holds the background job inside its `after`-th ItemIndex.add (0: the first) until
    `release`, so that writes and searches can land while it runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, after: int = 0) -> None:
        self.inside, self.open, self.calls = threading.Event(), threading.Event(), 0
        add = ItemIndex.add

        def gated(index: ItemIndex, seqs: np.ndarray, vecs: np.ndarray) -> None:
            self.calls += 1
            if self.calls == after + 1:
                self.inside.set()
                assert self.open.wait(10)
            add(index, seqs, vecs)

        monkeypatch.setattr(ItemIndex, "add", gated)

    def release(self) -> None:
        self.open.set()


def test_writes_made_while_a_rebuild_runs_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store()
    index = open_index(tmp_path, store, setting="hnsw")
    data = vectors(400)
    write(index, store, np.arange(1, 301), data[:300])
    gate = Gate(monkeypatch)  # the rebuild waits inside its first add
    rebuild = threading.Thread(target=index.flush, args=(("rebuild", "hnsw"),))
    rebuild.start()
    assert gate.inside.wait(10)

    write(index, store, np.arange(301, 401), data[300:])  # after its watermark
    index.remove(np.array([7, 350]))  # one it covers, one it does not
    del store.rows[7], store.rows[350]
    gate.release()
    rebuild.join(10)

    status = index.status()
    assert (status.main, status.delta, status.removed) == (299, 99, 1)
    assert index.size == 398
    _, found = index.search(data[[6, 349, 399]], 5)
    assert 7 not in found and 350 not in found
    assert found[2, 0] == 400  # written during the rebuild, found
    index.close()


def wait_for(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, "the background job did not finish"
        time.sleep(0.01)


@pytest.fixture
def small_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs in chunks of 100 vectors, each publishable at once if it spares 50 exact scores."""
    monkeypatch.setattr(merge_worker, "BUILD_CHUNK", 100)
    monkeypatch.setattr(merge_worker, "PUBLISH_EVERY", 0.0)
    monkeypatch.setattr(merge_worker, "PUBLISH_MIN_SAVING", 50)


@pytest.mark.usefixtures("small_steps")
def test_the_switch_to_hnsw_after_a_bulk_load_publishes_what_it_has_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store()
    index = open_index(tmp_path, store, setting="auto", auto_threshold=500)
    data = vectors(700)
    write(index, store, np.arange(1, 201), data[:200])
    index.flush()  # an exact main of 200
    gate = Gate(monkeypatch, after=2)  # inside its third chunk: two steps published
    write(index, store, np.arange(201, 601), data[200:600])  # 600 wants hnsw: it starts
    assert gate.inside.wait(10)

    status = index.status()
    assert (status.kind, status.main, status.delta, status.size) == ("hnsw", 200, 400, 600)
    write(index, store, np.arange(601, 701), data[600:])  # after its watermark
    index.remove(np.array([3, 450]))  # in what it has published, in what it has not
    del store.rows[3], store.rows[450]
    own = np.array([1, 150, 300, 599, 650, 700])
    assert (index.search(data[own - 1], 1)[1][:, 0] == own).all()
    assert not set(index.search(data[[2, 449]], 10)[1].ravel()) & {3, 450}
    gate.release()

    wait_for(lambda: index.status().job is None and index.status().main == 598)
    status = index.status()
    assert (status.kind, status.delta, status.removed) == ("hnsw", 100, 2)
    assert (index.search(data[own - 1], 1)[1][:, 0] == own).all()
    index.close()


@pytest.mark.usefixtures("small_steps")
def test_a_rebuild_of_a_main_that_serves_keeps_it_until_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store()
    index = open_index(tmp_path, store, setting="hnsw")
    data = vectors(450)
    write(index, store, np.arange(1, 401), data[:400])
    index.flush()
    write(index, store, np.arange(401, 451), data[400:])
    gate = Gate(monkeypatch, after=2)
    flush = threading.Thread(target=index.flush, args=(("rebuild", "hnsw"),))
    flush.start()
    assert gate.inside.wait(10)

    status = index.status()  # a step would put 350 vectors back in the delta
    assert (status.main, status.delta, status.job is not None) == (400, 50, True)
    gate.release()
    flush.join(10)

    status = index.status()
    assert (status.main, status.delta, status.job) == (450, 0, None)
    index.close()


def test_a_rebuild_of_an_ivf_main_reads_the_store(tmp_path: Path) -> None:
    store = Store()
    index = open_index(tmp_path, store, setting="ivf")
    data = vectors(2_000)
    write(index, store, np.arange(1, 2_001), data)
    index.flush()
    assert not store.reading.is_set()  # a merge: from the delta

    index.flush(("rebuild", "ivf"))  # IVF keeps its vectors in lists, not one array

    assert store.reading.is_set()
    assert index.status().main == 2_000
    assert (index.search(data[:50], 1)[1][:, 0] == np.arange(1, 51)).all()
    index.close()


def test_auto_serves_exact_then_switches_to_hnsw_in_the_background(tmp_path: Path) -> None:
    store = Store()
    index = open_index(tmp_path, store, setting="auto", auto_threshold=1_000)
    data = vectors(1_500)
    write(index, store, np.arange(1, 901), data[:900])
    index.flush()
    assert index.status().kind == "flat"

    write(index, store, np.arange(901, 1_501), data[900:])
    assert index.status().wanted == "hnsw"
    index.flush()  # what the background thread would do next

    status = index.status()
    assert (status.kind, status.size, status.delta) == ("hnsw", 1_500, 0)
    assert index.search(data[1_499:], 1)[1][0, 0] == 1_500
    index.close()


def test_a_restart_loads_the_snapshot_and_catches_up_with_the_store(tmp_path: Path) -> None:
    store = Store()
    first = open_index(tmp_path, store)
    data = vectors(60)
    write(first, store, np.arange(1, 51), data[:50])
    first.flush()  # the snapshot holds 1..50
    first.close()
    store.put(np.arange(51, 61), data[50:])  # committed after it, then a crash
    del store.rows[3]

    again = open_index(tmp_path, store)

    status = again.status()
    assert (status.main, status.delta, status.removed) == (49, 10, 1)
    assert status.last_snapshot is not None
    assert again.search(data[59:], 1)[1][0, 0] == 60
    again.close()


def test_the_background_thread_merges_a_delta_past_its_limit(tmp_path: Path) -> None:
    store = Store()
    index = open_index(tmp_path, store)
    write(index, store, np.arange(1, 5_001), vectors(5_000))  # over the 4,096 minimum

    for _ in range(100):  # it wakes on the write; give it up to 10 s
        if index.status().delta == 0:
            break
        threading.Event().wait(0.1)

    status = index.status()
    assert (status.main, status.delta) == (5_000, 0)
    assert (tmp_path / "items.index").exists()
    index.close()


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
@pytest.mark.parametrize("share", [0.01, 0.3, 0.6])  # 0.6: exact by scoring all of main
def test_a_filtered_search_finds_the_top_k_among_the_allowed(
    tmp_path: Path, kind: str, share: float
) -> None:
    every = 3_000 // round(share * 3_000)
    allowed = np.arange(1, 3_001)[np.arange(3_000) % 5 < 3] if share == 0.6 else None
    recall = filtered_recall(
        tmp_path, kind, allowed=np.arange(1, 3_001, every) if allowed is None else allowed
    )

    # narrow filters and the flat kind are exact; HNSW and IVF under a wide one nearly so
    assert recall == 1.0 if share < 0.05 or kind == "flat" else recall >= 0.9


def test_a_filter_is_answered_exactly_before_and_after_a_copy_of_its_rows_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "GATHER_KEEP_MIN", 50)  # kept in the background
    monkeypatch.setattr(exact_search, "GATHER_CHUNK", 64)  # meanwhile, gathered in chunks
    allowed = np.arange(1, 3_001, 5)  # 600 of 3,000: exact, and below a third of main
    cold = filtered_recall(tmp_path / "cold", "hnsw", allowed)
    warm = filtered_recall(tmp_path / "warm", "hnsw", allowed, twice=True)
    assert cold == warm == 1.0


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_a_wide_filter_on_an_approximate_index_over_fetches_and_keeps_its_recall(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_index, "EXACT_FILTER_MIN", 0)  # 25 % is "wide" at this size
    assert filtered_recall(tmp_path, kind, allowed=np.arange(1, 3_001, 4)) >= 0.95


def filtered_recall(tmp_path: Path, kind: str, allowed: np.ndarray, twice: bool = False) -> float:
    """recall@10 of 20 queries filtered to `allowed` over 3,000 items, against numpy; also
    checks that nothing outside `allowed` is returned. `twice`: the answers of a second
    search, once the first has had its rows kept."""
    store = Store()
    index = open_index(tmp_path, store, setting=kind)
    data = vectors(3_000)
    write(index, store, np.arange(1, 3_001), data)
    index.flush()
    queries = vectors(20, seed=9)

    _, found = index.search(queries, 10, allowed)
    if twice:
        index.view.main.wait_for_gathers()
        _, found = index.search(queries, 10, allowed)
    index.close()

    allowed_store = Store()
    allowed_store.put(allowed, data[allowed - 1])
    truth = [exact_top(allowed_store, q, 10) for q in queries]
    assert set(found.ravel()) <= set(allowed.tolist())
    return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))
