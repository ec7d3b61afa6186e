"""The item index as the service uses it: searchable at every moment, changed in O(batch).

What searches see is a `View`, which is never changed once published: a main FAISS index
(`ItemIndex`), the `delta` of vectors added since it was built (searched exactly), and the
`removed` seqs that are still in main. A write publishes a new view with a bigger delta or
a bigger removed set; a search reads the current view once and merges main's top-k
(without the removed) with the exact top-k of the delta.

A background thread folds that work into a new main, off the request path:
- merge: the delta or removed set grew past max(4,096, 5 % of main): clone main, add the
  delta, remove the removed;
- rebuild: main's tombstones passed 25 % (HNSW cannot remove), or the wanted kind changed
  (`auto`: exact below `auto_threshold` live vectors, HNSW above): build from the store;
then it writes a snapshot (atomically) and publishes the new main. A job covers the seqs up
to its watermark W, the highest seq when it started; writes made while it runs are not
lost: at publish the delta keeps its seqs above W, and the removed set takes the seqs up
to W deleted meanwhile. A crash at any point loses nothing: SQLite is the truth, and the
next start catches the snapshot up with it (missing vectors into the delta).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from corel.class_rule import l2_normalise
from service import metrics
from service.items.index import ItemIndex, SnapshotError
from service.items.types import IndexKind, IndexSetting, IndexStatus, JobStatus

__all__ = ["LiveIndex"]

log = logging.getLogger(__name__)

MIN_DELTA = 4_096  # the delta and removed set may grow to max(this, DELTA_SHARE * main)
DELTA_SHARE = 0.05
COMPACT_AT = 0.25  # tombstone share of main above which it is rebuilt from the store
# Filters allowing at most max(this many, this share of main) are answered exactly
EXACT_FILTER_MIN, EXACT_FILTER_SHARE = 4_096, 0.05
OVER_FETCH = 2  # wider filters on approximate indexes: fetch k / share times this, filter
BACKGROUND_NICE = 10  # merges and rebuilds yield the CPU to request threads

# (seqs, raw vectors) of the current model's stored items with seq <= watermark, in chunks
StoreReader = Callable[[int], Iterator[tuple[np.ndarray, np.ndarray]]]


class JobCancelled(Exception):
    """The index is closing: a running build stops between chunks."""


@dataclass(frozen=True)
class View:
    main: ItemIndex
    main_ids: np.ndarray  # (m,) int64, sorted: the live seqs main holds (before `removed`)
    delta_seqs: np.ndarray  # (n,) int64, ascending
    delta_vectors: np.ndarray  # (n, D) float32, unit
    removed: np.ndarray  # (r,) int64, sorted: seqs in main that were deleted

    @property
    def size(self) -> int:
        return self.main.size - len(self.removed) + len(self.delta_seqs)


@dataclass
class _Job:
    watermark: int
    deleted: list[int] = field(default_factory=list)  # seqs deleted while it runs


class LiveIndex:
    def __init__(
        self,
        dim: int,
        *,
        setting: IndexSetting,
        snapshot_path: Path,
        model_id: str,
        read_store: StoreReader,
        auto_threshold: int = 50_000,
    ) -> None:
        self.dim, self.setting, self.auto_threshold = dim, setting, auto_threshold
        self._snapshot_path, self._model_id, self._read_store = snapshot_path, model_id, read_store
        self._lock = threading.Lock()  # guards _view, _max_seq and _job's deleted list
        self._job_lock = threading.Lock()  # one merge or rebuild at a time
        self._failed_job: Literal["merge", "rebuild"] | None = None  # for the error message
        empty = ItemIndex(dim, kind=self._first_kind())
        self._view = View(empty, _no_seqs(), _no_seqs(), np.zeros((0, dim), np.float32), _no_seqs())
        self._max_seq = 0
        self._job: _Job | None = None
        self._job_status: JobStatus | None = None
        self._last_snapshot: float | None = None
        self._last_error: str | None = None
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._worker: threading.Thread | None = None

    def _first_kind(self) -> IndexKind:
        return "flat" if self.setting == "auto" else self.setting

    # -- start and stop ------------------------------------------------------------------

    def open(
        self,
        store_seqs: np.ndarray,
        fetch: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    ) -> None:
        """Load the snapshot and catch it up with the store's seqs (`fetch(seqs)` gives the
        raw vectors of those still stored), then start the background thread."""
        main = self._load_snapshot()
        live = np.sort(main.ids())
        missing = np.setdiff1d(store_seqs, live)
        stale = np.setdiff1d(live, store_seqs)
        seqs, vectors = fetch(missing) if len(missing) else (_no_seqs(), np.zeros((0, self.dim)))
        order = np.argsort(seqs)
        self._view = View(
            main,
            live,
            seqs[order].astype(np.int64),
            l2_normalise(vectors[order]).reshape(-1, self.dim),
            stale,
        )
        self._max_seq = int(store_seqs.max()) if len(store_seqs) else 0
        if len(missing) or len(stale):
            log.info("item index: caught up with the store: +%d, -%d", len(missing), len(stale))
        self._publish_metrics()
        self._worker = threading.Thread(target=self._maintain, name="item-index", daemon=True)
        self._worker.start()

    def _load_snapshot(self) -> ItemIndex:
        if not self._snapshot_path.exists():
            log.info("item index: no snapshot yet; the store's vectors start in the delta")
            return ItemIndex(self.dim, kind=self._first_kind())
        try:
            main = ItemIndex.load(self._snapshot_path, model_id=self._model_id, dim=self.dim)
        except SnapshotError as exc:  # corrupt, or made for another model: only a cache
            log.warning("item index: %s; the store's vectors start in the delta", exc)
            return ItemIndex(self.dim, kind=self._first_kind())
        log.info("item index: snapshot loaded, %s with %d vectors", main.kind, main.ntotal)
        self._last_snapshot = self._snapshot_path.stat().st_mtime
        return main

    def close(self) -> None:
        """Stop the background thread; a running build is abandoned (the last snapshot and
        the store stay consistent, the next start catches up)."""
        self._closing.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join()

    def flush(self) -> None:
        """Fold the delta and removed set into a new main index and snapshot it, now: what
        the background thread does on its own once they grow (benchmarks and tests)."""
        self._run_next(otherwise=("merge", self._view.main.kind))

    # -- reading -------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._view.size

    @property
    def device(self) -> Literal["cpu", "gpu"]:
        return self._view.main.device

    @property
    def kind(self) -> IndexKind:
        return self._view.main.kind

    def status(self) -> IndexStatus:
        view = self._view
        return IndexStatus(
            kind=view.main.kind,
            wanted=self._wanted_kind(view),
            size=view.size,
            main=view.main.size - len(view.removed),
            delta=len(view.delta_seqs),
            removed=len(view.removed),
            job=self._job_status,
            last_snapshot=self._last_snapshot,
            last_error=self._last_error,
        )

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:  # scores (Q, k) float32, seqs (Q, k) int64, -1 = none
        """Top-k by cosine over main and delta, among `allowed` seqs when given.

        A filter that allows few of main's vectors is answered exactly, from main's own
        copies of the allowed vectors: cheaper than a full scan, and an approximate index
        walked under a selective filter misses hits. A wider one on an approximate index
        over-fetches unfiltered hits and keeps the allowed ones (a query left short of k
        is answered exactly); on the exact index a selector restricts the scan.
        """
        view = self._view  # one read: a consistent main, delta and removed set
        if allowed is not None and len(allowed) <= self._exact_limit(view):
            return _exact_among(queries, view, k, allowed)
        if allowed is not None and view.main.kind != "flat":
            scores, seqs = _over_fetch(queries, view, k, allowed)
        else:
            scores, seqs = view.main.search(queries, k, allowed, excluded=view.removed)
        if len(view.delta_seqs):
            d_scores, d_seqs = _exact(queries, view, k, allowed)
            scores, seqs = np.hstack([scores, d_scores]), np.hstack([seqs, d_seqs])
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return (
            np.take_along_axis(scores, order, 1).astype(np.float32),
            np.take_along_axis(seqs, order, 1),
        )

    @staticmethod
    def _exact_limit(view: View) -> int:
        if view.main.kind == "flat":  # exact either way: a scan of N or a gather of a few
            return len(view.main_ids) // 4
        return max(EXACT_FILTER_MIN, int(EXACT_FILTER_SHARE * len(view.main_ids)))

    # -- writing (the caller serialises writes, in the store's commit order) -------------

    def add(self, seqs: np.ndarray, vectors: np.ndarray) -> None:
        if len(seqs) == 0:
            return
        unit = l2_normalise(vectors).reshape(-1, self.dim)
        with self._lock:
            view = self._view
            self._view = replace(
                view,
                delta_seqs=np.concatenate([view.delta_seqs, np.asarray(seqs, np.int64)]),
                delta_vectors=np.vstack([view.delta_vectors, unit]),
            )
            self._max_seq = max(self._max_seq, int(np.max(seqs)))
        self._changed()

    def remove(self, seqs: np.ndarray) -> None:
        seqs = np.asarray(seqs, np.int64)
        if len(seqs) == 0:
            return
        with self._lock:
            view = self._view
            in_delta = np.isin(view.delta_seqs, seqs)
            from_main = seqs[~np.isin(seqs, view.delta_seqs)]
            self._view = replace(
                view,
                delta_seqs=view.delta_seqs[~in_delta],
                delta_vectors=view.delta_vectors[~in_delta],
                removed=np.union1d(view.removed, from_main),
            )
            if self._job is not None:
                self._job.deleted.extend(int(s) for s in seqs)
        self._changed()

    def _changed(self) -> None:
        self._publish_metrics()
        self._wake.set()

    def _publish_metrics(self) -> None:
        view = self._view
        metrics.INDEX_SIZE.labels(index="items").set(view.size)
        metrics.INDEX_DELTA.set(len(view.delta_seqs))

    # -- the background thread -------------------------------------------------------------

    def _wanted_kind(self, view: View) -> IndexKind:
        if self.setting != "auto":
            return self.setting
        size = view.size
        if view.main.kind == "flat":
            return "hnsw" if size >= self.auto_threshold else "flat"
        # back to exact only well below the threshold, so a size near it does not flap
        return "flat" if size < self.auto_threshold // 2 else "hnsw"

    def _next_job(self) -> tuple[Literal["merge", "rebuild"], IndexKind] | None:
        view = self._view
        main = view.main
        wanted = self._wanted_kind(view)
        if main.kind != wanted:
            return "rebuild", wanted
        tombstones = main.ntotal - main.size  # only HNSW (and GPU) indexes keep them
        if tombstones + len(view.removed) > COMPACT_AT * max(main.ntotal, 1) and tombstones:
            return "rebuild", wanted
        if main.outgrown():
            return "rebuild", wanted
        limit = max(MIN_DELTA, int(DELTA_SHARE * main.size))
        if len(view.delta_seqs) >= limit or len(view.removed) >= limit:
            return "merge", main.kind
        return None

    def _maintain(self) -> None:
        # OpenMP's thread count is per calling thread: this limits the background builds
        # only, leaving a core to the event loop and the searches it runs
        faiss.omp_set_num_threads(max(1, (os.cpu_count() or 2) - 1))
        try:  # and the scheduler serves requests first (a Linux thread has its own nice)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
        except (AttributeError, OSError):
            log.info("item index: cannot lower the background thread's priority here")
        while not self._closing.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if self._closing.is_set():
                return
            try:
                self._run_next()
                self._last_error = None
            except JobCancelled:
                return
            except Exception as exc:  # keep serving the old view; try again later
                name = self._failed_job or "job"
                self._last_error = f"{name} of the item index failed: {exc}"
                log.exception("item index: %s failed", name)
                metrics.INDEX_JOBS.labels(job=name, outcome="failed").inc()
                self._closing.wait(10)

    def _run_next(
        self, otherwise: tuple[Literal["merge", "rebuild"], IndexKind] | None = None
    ) -> Literal["merge", "rebuild"] | None:
        """Run the job the index needs now (or `otherwise`), deciding it under the job lock:
        a job decided before waiting for another would run again what that one just did."""
        with self._job_lock:
            chosen = self._next_job() or otherwise
            if chosen is None:
                return None
            self._failed_job = chosen[0]
            try:
                self._run_locked(*chosen)
            finally:
                with self._lock:
                    self._job = None
                self._job_status = None
            self._failed_job = None
            return chosen[0]

    def _run_locked(self, job: Literal["merge", "rebuild"], kind: IndexKind) -> None:
        started = time.perf_counter()
        with self._lock:
            view = self._view
            self._job = current = _Job(watermark=self._max_seq)
        self._progress(job, kind, 0, view.size)
        if job == "merge":
            main = view.main.clone()
            main.add(view.delta_seqs, view.delta_vectors)
            main.remove(view.removed)
            self._progress(job, kind, view.size, view.size)
        else:
            seqs, vectors = self._read_all(current.watermark)
            main = ItemIndex.build(
                self.dim,
                kind,
                seqs,
                vectors,
                progress=lambda done, total: self._progress(job, kind, done, total),
            )
        main.save(self._snapshot_path, model_id=self._model_id, watermark=current.watermark)
        self._last_snapshot = time.time()
        in_main = np.sort(main.ids())  # O(n), outside the lock
        with self._lock:
            now = self._view
            keep = now.delta_seqs > current.watermark
            deleted = np.unique(np.asarray(current.deleted, np.int64))
            deleted = deleted[(deleted <= current.watermark) & _contains(in_main, deleted)]
            self._view = View(main, in_main, now.delta_seqs[keep], now.delta_vectors[keep], deleted)
        self._publish_metrics()
        seconds = time.perf_counter() - started
        metrics.INDEX_JOBS.labels(job=job, outcome="done").inc()
        metrics.INDEX_JOB_SECONDS.labels(job=job).observe(seconds)
        log.info(
            "item index: %s done: %s with %d vectors, snapshot written (%.1fs)",
            job,
            kind,
            main.size,
            seconds,
        )

    def _read_all(self, watermark: int) -> tuple[np.ndarray, np.ndarray]:
        seq_chunks, vector_chunks = [], []
        for seqs, vectors in self._read_store(watermark):
            if self._closing.is_set():
                raise JobCancelled
            seq_chunks.append(seqs)
            vector_chunks.append(vectors)
        if not seq_chunks:
            return _no_seqs(), np.zeros((0, self.dim), np.float32)
        return np.concatenate(seq_chunks), np.vstack(vector_chunks)

    def _progress(
        self, job: Literal["merge", "rebuild"], kind: IndexKind, done: int, total: int
    ) -> None:
        if self._closing.is_set():
            raise JobCancelled
        status = self._job_status
        started = status.started if status is not None else time.time()
        self._job_status = JobStatus(job, kind, done, total, started)
        metrics.INDEX_JOB_PROGRESS.set(done / total if total else 1.0)
        if total >= 100_000:
            log.info("item index: %s to %s, %d of %d vectors", job, kind, done, total)


def _no_seqs() -> np.ndarray:
    return np.zeros(0, np.int64)


def _contains(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    if len(sorted_values) == 0:
        return np.zeros(len(values), bool)
    at = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return np.asarray(sorted_values[at] == values)


def _exact_among(
    queries: np.ndarray, view: View, k: int, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # (Q, k) scores and seqs, -1 = none
    """Exact top-k over the allowed seqs, gathered from main and the delta."""
    allowed = np.unique(np.asarray(allowed, np.int64))
    # a seq committed to the store a moment ago may not be in this view yet: left out
    in_main = allowed[_contains(view.main_ids, allowed) & ~_contains(view.removed, allowed)]
    keep = np.isin(view.delta_seqs, allowed)
    seqs = np.concatenate([in_main, view.delta_seqs[keep]])
    vectors = np.vstack(
        [
            view.main.vectors(in_main).reshape(-1, view.delta_vectors.shape[1]),
            view.delta_vectors[keep],
        ]
    )
    scores, found = _top(queries, seqs, vectors, k)
    return _pad_to(scores, found, k)


def _over_fetch(
    queries: np.ndarray, view: View, k: int, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # (Q, k) scores and seqs of main, -1 = none
    """Main's top k among `allowed` from an unfiltered search of k / share * OVER_FETCH hits;
    the queries that find fewer than k allowed hits that way are answered exactly."""
    allowed = np.unique(np.asarray(allowed, np.int64))
    share = len(allowed) / max(len(view.main_ids), 1)
    fetch = min(len(view.main_ids), int(np.ceil(OVER_FETCH * k / share)))
    scores, seqs = view.main.search(queries, fetch, excluded=view.removed)
    keep = _contains(allowed, seqs) & (seqs >= 0)
    out_s = np.full((len(queries), k), -np.inf, np.float32)
    out_i = np.full((len(queries), k), -1, np.int64)
    short = []
    for row in range(len(queries)):
        hits = np.flatnonzero(keep[row])[:k]
        out_s[row, : len(hits)], out_i[row, : len(hits)] = scores[row, hits], seqs[row, hits]
        if len(hits) < k and fetch < len(view.main_ids):
            short.append(row)
    if short:
        main_only = replace(view, delta_seqs=_no_seqs(), delta_vectors=view.delta_vectors[:0])
        out_s[short], out_i[short] = _exact_among(queries[short], main_only, k, allowed)
    return out_s, out_i


def _exact(
    queries: np.ndarray, view: View, k: int, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:  # (Q, <=k) scores and seqs over the delta
    seqs, vectors = view.delta_seqs, view.delta_vectors
    if allowed is not None:
        keep = np.isin(seqs, allowed)
        seqs, vectors = seqs[keep], vectors[keep]
    return _top(queries, seqs, vectors, k)


def _top(
    queries: np.ndarray, seqs: np.ndarray, vectors: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:  # (Q, <=k), unsorted
    if len(seqs) == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    scores = l2_normalise(queries) @ vectors.T  # (Q, n)
    top = min(k, len(seqs))
    part = np.argpartition(-scores, top - 1, axis=1)[:, :top]
    return np.take_along_axis(scores, part, 1), seqs[part]


def _pad_to(scores: np.ndarray, seqs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, axis=1, kind="stable")
    scores, seqs = np.take_along_axis(scores, order, 1), np.take_along_axis(seqs, order, 1)
    missing = k - scores.shape[1]
    if missing > 0:
        scores = np.pad(scores, ((0, 0), (0, missing)), constant_values=-np.inf)
        seqs = np.pad(seqs, ((0, 0), (0, missing)), constant_values=-1)
    return scores.astype(np.float32), seqs.astype(np.int64)
