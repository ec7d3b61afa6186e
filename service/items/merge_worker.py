"""The live item index's background thread: merges and rebuilds, off the request path.

- merge: the delta or removed set grew past max(4,096, 5 % of main): clone main, add the
  delta, remove the removed;
- rebuild: main's tombstones passed 25 % (HNSW cannot remove), or the wanted kind changed
  (`auto`: exact below `auto_threshold` live vectors, HNSW above): build a new main from
  every live vector, read from the view itself (main's storage and the delta; the store
  only where main keeps no flat array of its vectors: IVF, GPU);
then it writes a snapshot (atomically) and hands the new main to the index, which publishes
it (live_index.py). A job covers the seqs up to its watermark W, the highest seq when it
started; writes made while it runs are not lost: at publish the delta keeps its seqs above
W, and the removed set takes the seqs up to W deleted meanwhile.

A long job that replaces exact scoring (the switch from a flat main to HNSW after a bulk
load) publishes as it goes: every BUILD_CHUNK vectors, once PUBLISH_EVERY seconds have
passed, a copy of the main built so far is served with the job's vectors not yet in it put
in the delta. Searches thus get the best index there is at each moment, and the vectors
they score exactly shrink step by step instead of staying at everything the job covers
until it ends (see PUBLISH_EVERY for the measurement). A job on a main that serves well
already (a merge, a compaction) keeps the old main until it ends.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import faiss
import numpy as np

from corel.class_rule import l2_normalise
from service import metrics
from service.items.index import BUILD_CHUNK, ItemIndex
from service.items.types import IndexKind, IndexSetting, JobStatus
from service.items.view import View, contains, no_seqs

__all__ = ["Job", "JobName", "MergeWorker", "StoreReader"]

log = logging.getLogger(__name__)

JobName = Literal["merge", "rebuild"]
MIN_DELTA = 4_096  # the delta and removed set may grow to max(this, DELTA_SHARE * main)
DELTA_SHARE = 0.05
COMPACT_AT = 0.25  # tombstone share of main above which it is rebuilt
BACKGROUND_NICE = 10  # merges and rebuilds yield the CPU to request threads
# A job in progress publishes what it has built at most this often (after a chunk of
# BUILD_CHUNK vectors). Measured through the server right after a bulk load of 100k items
# (benchmarks/index_switch.py, 2 cores shared with other work, load 3-6): with one publish
# per job, the switch to HNSW left a flat main of 45k and a delta of 55k, all scored
# exactly, for the 27 s of its build, then an HNSW main of 50k beside a 50k delta for the
# 20 s of the merge after it: GET /neighbors at concurrency 1 p50 6.1 ms, p99 43.6 ms over
# 50 s. Publishing every chunk (and the delta scored by FAISS, live_index.py): p50 3.0 ms,
# p99 13.8 ms. A copy to publish is FAISS's clone, outside the GIL (15 ms at 50k HNSW
# vectors), against seconds per chunk of HNSW insertions.
PUBLISH_EVERY = 1.0
PUBLISH_MIN_SAVING = MIN_DELTA  # a step is published when it spares at least
# max(this, DELTA_SHARE * main) vectors their exact scoring

# (seqs, raw vectors) of the current model's stored items with seq <= watermark, in chunks
StoreReader = Callable[[int], Iterator[tuple[np.ndarray, np.ndarray]]]


class JobCancelled(Exception):
    """The index is closing: a running build stops between chunks."""


@dataclass
class Job:
    watermark: int
    deleted: list[int] = field(default_factory=list)  # seqs deleted while it runs


class Maintained(Protocol):
    """What the worker needs of the index it maintains (LiveIndex)."""

    dim: int

    @property
    def view(self) -> View: ...

    def begin_job(self) -> tuple[View, Job]:
        """The view now, and a job whose watermark is the highest seq written so far."""
        ...

    def publish_main(
        self, main: ItemIndex, job: Job, pending: tuple[np.ndarray, np.ndarray] | None = None
    ) -> None:
        """Serve `main`, keeping what was written after the job began; `pending`: the
        job's (seqs, unit vectors) not in `main` yet, searched in the delta meanwhile."""
        ...

    def end_job(self) -> None: ...


class MergeWorker:
    def __init__(
        self,
        index: Maintained,
        *,
        setting: IndexSetting,
        auto_threshold: int,
        snapshot_path: Path,
        model_id: str,
        read_store: StoreReader,
    ) -> None:
        self._index, self.setting, self.auto_threshold = index, setting, auto_threshold
        self._snapshot_path, self._model_id, self._read_store = snapshot_path, model_id, read_store
        self._job_lock = threading.Lock()  # one merge or rebuild at a time
        self._failed_job: JobName | None = None  # for the error message
        self.job_status: JobStatus | None = None
        self.last_snapshot: float | None = None  # time.time() of the last snapshot written
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._maintain, name="item-index", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread; a running build is abandoned (the last snapshot and the store
        stay consistent, the next start catches up)."""
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def wake(self) -> None:
        """The index changed: see whether a job is due."""
        self._wake.set()

    def wanted_kind(self, view: View) -> IndexKind:
        if self.setting != "auto":
            return self.setting
        size = view.size
        if view.main.kind == "flat":
            return "hnsw" if size >= self.auto_threshold else "flat"
        # back to exact only well below the threshold, so a size near it does not flap
        return "flat" if size < self.auto_threshold // 2 else "hnsw"

    def _next_job(self) -> tuple[JobName, IndexKind] | None:
        view = self._index.view
        main = view.main
        wanted = self.wanted_kind(view)
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
                self.run_next()
                self.last_error = None
            except JobCancelled:
                return
            except Exception as exc:  # keep serving the old view; try again later
                name = self._failed_job or "job"
                self.last_error = f"{name} of the item index failed: {exc}"
                log.exception("item index: %s failed", name)
                metrics.INDEX_JOBS.labels(job=name, outcome="failed").inc()
                self._closing.wait(10)

    def run_next(self, otherwise: tuple[JobName, IndexKind] | None = None) -> JobName | None:
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
                self._index.end_job()
                self.job_status = None
            self._failed_job = None
            return chosen[0]

    def _run_locked(self, job: JobName, kind: IndexKind) -> None:
        started = time.perf_counter()
        view, current = self._index.begin_job()
        if job == "merge":
            main = view.main.clone()
            main.remove(view.removed)
            seqs, vectors = view.delta_seqs, view.delta_vectors
        else:
            seqs, vectors = self._live_vectors(view, current.watermark)
            main = ItemIndex.new(self._index.dim, kind, vectors)
        self._add(job, kind, main, seqs, vectors, current)
        main.save(self._snapshot_path, model_id=self._model_id, watermark=current.watermark)
        self.last_snapshot = time.time()
        self._index.publish_main(main, current)
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

    def _add(
        self,
        job: JobName,
        kind: IndexKind,
        main: ItemIndex,
        seqs: np.ndarray,
        vectors: np.ndarray,
        current: Job,
    ) -> None:
        """Add the job's vectors to `main` a chunk at a time, publishing a copy of it now
        and then (PUBLISH_EVERY) with the rest of them in the delta."""
        total = len(seqs)
        self._progress(job, kind, 0, total)
        published = time.perf_counter()
        for start in range(0, total, BUILD_CHUNK):
            stop = min(total, start + BUILD_CHUNK)
            main.add(seqs[start:stop], vectors[start:stop])
            self._progress(job, kind, stop, total)
            if stop == total or time.perf_counter() - published < PUBLISH_EVERY:
                continue
            if self._spares_exact_scoring(main, total - stop, current):
                self._index.publish_main(main.clone(), current, (seqs[stop:], vectors[stop:]))
            published = time.perf_counter()

    def _spares_exact_scoring(self, built: ItemIndex, pending: int, job: Job) -> bool:
        """Whether serving the main built so far, with the job's `pending` vectors in the
        delta, would score fewer vectors exactly than the view does now, by at least what a
        merge lets the delta hold. So after a bulk load (a flat main, a large delta) a
        switch to HNSW publishes step by step; a merge into a main that serves already, or
        a rebuild of one, does not: its first steps would put most vectors back in the
        delta, and each publish clones main (measured at 1M items: POST /items p99 2 s
        during a rebuild that published every 20k vectors, with ~1M in the delta)."""
        view = self._index.view
        newer = len(view.delta_seqs) - int(np.searchsorted(view.delta_seqs, job.watermark, "right"))
        exact_now = len(view.delta_seqs) + (view.main.size if view.main.kind == "flat" else 0)
        exact_then = pending + newer + (built.size if built.kind == "flat" else 0)
        return exact_now - exact_then >= max(PUBLISH_MIN_SAVING, DELTA_SHARE * built.size)

    def _live_vectors(self, view: View, watermark: int) -> tuple[np.ndarray, np.ndarray]:
        """(seqs ascending, unit vectors) of every live vector up to the watermark: what a
        rebuild starts from. Taken from the view when main keeps its vectors in one flat
        array (flat, HNSW): measured, 150k rows gathered in 27 ms, where SQLite gave 50k in
        85-173 ms, decoding each row in Python while holding the GIL for up to its 5 ms
        switch interval at a time, and copied them twice more."""
        main = view.main
        if main.ntotal and main.storage() is None:  # IVF lists, GPU memory
            return self._read_all(watermark)
        live = view.main_ids
        if len(view.removed):
            live = live[~contains(view.removed, live)]
        seqs = np.concatenate([live, view.delta_seqs])
        vectors = np.vstack([main.vectors(live).reshape(-1, self._index.dim), view.delta_vectors])
        if len(seqs) > 1 and not bool((seqs[1:] > seqs[:-1]).all()):
            order = np.argsort(seqs, kind="stable")
            seqs, vectors = seqs[order], vectors[order]
        return seqs, vectors

    def _read_all(self, watermark: int) -> tuple[np.ndarray, np.ndarray]:
        seq_chunks, vector_chunks = [], []
        for seqs, vectors in self._read_store(watermark):
            if self._closing.is_set():
                raise JobCancelled
            seq_chunks.append(seqs)
            vector_chunks.append(vectors)
        if not seq_chunks:
            return no_seqs(), np.zeros((0, self._index.dim), np.float32)
        return np.concatenate(seq_chunks), l2_normalise(np.vstack(vector_chunks))

    def _progress(self, job: JobName, kind: IndexKind, done: int, total: int) -> None:
        if self._closing.is_set():
            raise JobCancelled
        status = self.job_status
        started = status.started if status is not None else time.time()
        self.job_status = JobStatus(job, kind, done, total, started)
        metrics.INDEX_JOB_PROGRESS.set(done / total if total else 1.0)
        if total >= 100_000:
            log.info("item index: %s to %s, %d of %d vectors", job, kind, done, total)
