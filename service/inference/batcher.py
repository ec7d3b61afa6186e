"""Micro-batching: concurrent requests are coalesced into one onnxruntime run.

Each request puts a job (its items and a future) on a bounded queue. One worker takes the
first job, waits `max_wait_ms` for company (only while other requests are still on their
way: the app tells it how many are in flight), drains up to `max_batch_size` items, runs
the model in a thread and resolves the futures. A job whose client went away (its future
was cancelled) or that waited longer than `queue_timeout_ms` is dropped, not computed.
With batching off, each request runs on its own through the same single inference thread;
the same queue limit (429) and timeout (503) apply, counted over requests in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from service import metrics
from service.errors import ServiceUnavailableError, TooManyRequestsError


@dataclass
class _Job:
    items: np.ndarray  # (n, ...) model-ready
    future: asyncio.Future[np.ndarray]
    enqueued: float = field(default_factory=time.monotonic)


class MicroBatcher:
    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        *,
        batching: bool = True,
        max_batch_size: int = 128,
        max_wait_ms: float = 2.0,
        queue_size: int = 2048,
        queue_timeout_ms: float = 5000,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        self._run, self.batching, self._in_flight = run, batching, in_flight
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000
        self.queue_size, self.queue_timeout = queue_size, queue_timeout_ms / 1000
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._queued_items = 0
        # one inference thread: onnxruntime parallelises inside a run, not across runs
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        if self.batching:
            self._worker = asyncio.create_task(self._work(), name="micro-batcher")

    async def stop(self) -> None:
        """Refuse new work, fail what is queued or in the running batch with 503, then wait
        for the inference thread (uvicorn has already drained requests by now)."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while not self._queue.empty():
            self._fail([self._queue.get_nowait()], self._closing_error())
        self._executor.shutdown(wait=True)

    async def embed(self, items: np.ndarray) -> np.ndarray:  # (n, ...) -> (n, D)
        if self._closed:
            raise self._closing_error()
        if self._queued_items + len(items) > self.queue_size:
            raise TooManyRequestsError(
                f"the inference queue is full ({self._queued_items} items waiting); retry later",
                headers={"Retry-After": "1"},
            )
        self._queued_items += len(items)
        metrics.QUEUE_SIZE.set(self._queued_items)
        if not self.batching:  # pass-through: the executor's queue is the queue
            try:
                return await self._infer(items, enqueued=time.monotonic())
            finally:
                self._queued_items -= len(items)
                metrics.QUEUE_SIZE.set(self._queued_items)
        job = _Job(items, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(job)
        return await job.future  # cancelled with the request when the client goes away

    async def _infer(self, batch: np.ndarray, *, enqueued: float | None = None) -> np.ndarray:
        """Run in the inference thread; cancelling the caller before it starts skips it."""

        def run() -> np.ndarray:
            if enqueued is not None:  # pass-through: the wait happened in the executor queue
                waited = time.monotonic() - enqueued
                metrics.QUEUE_WAIT_SECONDS.observe(waited)
                if waited > self.queue_timeout:
                    metrics.DROPPED.labels(reason="timeout").inc()
                    raise self._timeout_error(waited)
            started = time.perf_counter()
            out = self._run(batch)
            metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
            metrics.BATCH_SIZE.observe(len(batch))
            return out

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    def _timeout_error(self, waited: float) -> ServiceUnavailableError:
        return ServiceUnavailableError(
            f"waited {waited * 1000:.0f} ms in the inference queue (limit "
            f"{self.queue_timeout * 1000:.0f} ms); the service is overloaded",
            headers={"Retry-After": "1"},
        )

    async def _work(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            try:
                await self._run_batch(jobs)
            except asyncio.CancelledError:  # stop(): nobody may wait forever on these
                self._fail(jobs, self._closing_error())
                raise

    async def _run_batch(self, jobs: list[_Job]) -> None:
        """Fill `jobs` (it holds the first) up to a batch, run it, resolve the futures."""
        if self.max_wait and self._company_expected(jobs[0]):
            await asyncio.sleep(self.max_wait)  # let concurrent requests join
        count = len(jobs[0].items)
        while not self._queue.empty() and count < self.max_batch_size:
            job = self._queue.get_nowait()
            jobs.append(job)
            count += len(job.items)
        self._queued_items -= count
        metrics.QUEUE_SIZE.set(self._queued_items)
        live = self._drop_stale(jobs)
        if not live:
            return
        try:
            out = await self._infer(np.concatenate([job.items for job in live]))
        except Exception as exc:  # resolve every waiter, keep the worker alive
            self._fail(live, exc)
            return
        start = 0
        for job in live:
            if not job.future.done():
                job.future.set_result(out[start : start + len(job.items)])
            start += len(job.items)

    def _company_expected(self, first: _Job) -> bool:
        """Is waiting for more work worth it? Not when the batch is full already, nor when
        every request in the server has already queued its items (a lone client would
        otherwise pay max_wait on every call for nothing)."""
        if self._queue.qsize() + len(first.items) >= self.max_batch_size:
            return False
        return self._in_flight is None or self._in_flight() > 1 + self._queue.qsize()

    @staticmethod
    def _fail(jobs: list[_Job], exc: BaseException) -> None:
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(exc)

    @staticmethod
    def _closing_error() -> ServiceUnavailableError:
        return ServiceUnavailableError("the service is shutting down")

    def _drop_stale(self, jobs: list[_Job]) -> list[_Job]:
        now, live = time.monotonic(), []
        for job in jobs:
            waited = now - job.enqueued
            metrics.QUEUE_WAIT_SECONDS.observe(waited)
            if job.future.done():  # cancelled: the client went away
                metrics.DROPPED.labels(reason="cancelled").inc()
            elif waited > self.queue_timeout:
                metrics.DROPPED.labels(reason="timeout").inc()
                job.future.set_exception(self._timeout_error(waited))
            else:
                live.append(job)
        return live
