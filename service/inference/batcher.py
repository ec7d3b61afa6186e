"""Micro-batching: concurrent requests are coalesced into one onnxruntime run.

Each request puts its items on a bounded queue as jobs of at most `max_batch_size` items
(a future each). One worker takes the first job, waits for company while other requests
are still on their way to the queue (arrivals.py), at most `max_wait_ms`, adds whole jobs
while the batch stays within `max_batch_size`, runs the model in a thread and resolves the
futures. A job whose client went away (its future was cancelled) or that
waited longer than `queue_timeout_ms` is dropped, not computed. With batching off, each
job runs on its own through the same single inference thread.

Admission is by queue state, not by request size: a request is taken whenever fewer than
`queue_size` items wait (so the queue may overshoot by one request), else 429. Refusing a
request whose items do not fit would starve large requests behind a stream of small ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from corel.text import trim_padding
from service import metrics
from service.errors import ServiceUnavailableError, TooManyRequestsError
from service.inference.arrivals import Arrivals


@dataclass
class _Job:
    items: np.ndarray  # (n, ...) model-ready
    future: asyncio.Future[np.ndarray]
    full: bool = False  # wants `run_full`'s columns (features and open-set scores)
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
        arrivals: Arrivals | None = None,
        pad_id: int | None = None,
        run_full: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self._run, self.batching, self._arrivals = run, batching, arrivals
        # what a batch with a `full` job runs instead: its rows are `run`'s and more columns
        # (the encoder's features, the open set's scores), which only /classify and
        # POST /classes read; a batch of /embed jobs alone skips them
        self._run_full = run_full or run
        # text models: token id rows of several lengths, a batch padded to its longest
        self.pad_id = pad_id
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000
        self.queue_size, self.queue_timeout = queue_size, queue_timeout_ms / 1000
        self._pending: deque[_Job] = deque()
        self._has_work = asyncio.Event()
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
        while self._pending:
            self._fail([self._pending.popleft()], self._closing_error())
        self._executor.shutdown(wait=True)

    @property
    def full(self) -> bool:
        """No request would be taken now (the app refuses one before reading its body)."""
        return self._queued_items >= self.queue_size

    def refusal(self) -> TooManyRequestsError:
        return TooManyRequestsError(
            f"the inference queue is full ({self._queued_items} items waiting); retry later",
            headers={"Retry-After": "1"},
        )

    async def embed(self, items: np.ndarray, *, full: bool = False) -> np.ndarray:
        """(n, ...) -> (n, D), or `run_full`'s (n, D + ...) with `full`; a batch that holds
        full and plain jobs runs full, and the plain ones get the extra columns too."""
        if self._closed:
            raise self._closing_error()
        if self.full:
            raise self.refusal()
        if self._arrivals is not None:
            self._arrivals.queued()
        chunks = [
            self._join([items[i : i + self.max_batch_size]])
            for i in range(0, len(items), self.max_batch_size)
        ]
        self._queued_items += len(items)
        metrics.QUEUE_SIZE.set(self._queued_items)
        if not self.batching:  # pass-through: the executor's queue is the queue
            try:
                enqueued = time.monotonic()
                outs = [await self._infer(c, full, enqueued=enqueued) for c in chunks]
            finally:
                self._queued_items -= len(items)
                metrics.QUEUE_SIZE.set(self._queued_items)
            return np.concatenate(outs)
        loop = asyncio.get_running_loop()
        jobs = [_Job(chunk, loop.create_future(), full) for chunk in chunks]
        self._pending.extend(jobs)
        self._has_work.set()
        try:  # cancelled with the request when the client goes away
            outs = await asyncio.gather(*(job.future for job in jobs))
        except BaseException:
            for job in jobs:
                job.future.cancel()  # the worker drops what it has not run
            raise
        return np.concatenate(outs)

    def _join(self, parts: list[np.ndarray]) -> np.ndarray:
        """One batch of these parts; token ids padded to the batch's longest input, not to
        the model's max_length (a run costs about its length)."""
        if self.pad_id is None:
            return parts[0] if len(parts) == 1 else np.concatenate(parts)
        width = max(part.shape[1] for part in parts)
        padded = [
            np.pad(part, ((0, 0), (0, width - part.shape[1])), constant_values=self.pad_id)
            for part in parts
        ]
        return trim_padding(np.concatenate(padded), self.pad_id)

    async def _infer(
        self, batch: np.ndarray, full: bool, *, enqueued: float | None = None
    ) -> np.ndarray:
        """Run in the inference thread; cancelling the caller before it starts skips it."""

        def run() -> np.ndarray:
            if enqueued is not None:  # pass-through: the wait happened in the executor queue
                waited = time.monotonic() - enqueued
                metrics.QUEUE_WAIT_SECONDS.observe(waited)
                if waited > self.queue_timeout:
                    metrics.DROPPED.labels(reason="timeout").inc()
                    raise self._timeout_error(waited)
            started = time.perf_counter()
            out = (self._run_full if full else self._run)(batch)
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
            while not self._pending:
                self._has_work.clear()
                await self._has_work.wait()
            jobs = [self._pending.popleft()]
            try:
                await self._run_batch(jobs)
            except asyncio.CancelledError:  # stop(): nobody may wait forever on these
                self._fail(jobs, self._closing_error())
                raise

    async def _run_batch(self, jobs: list[_Job]) -> None:
        """Fill `jobs` (it holds the first) up to a batch, run it, resolve the futures."""
        if self.max_wait and self._company_expected(jobs[0]):
            await self._wait_for_company()
        count = len(jobs[0].items)
        while self._pending and count + len(self._pending[0].items) <= self.max_batch_size:
            job = self._pending.popleft()
            jobs.append(job)
            count += len(job.items)
        self._queued_items -= count
        metrics.QUEUE_SIZE.set(self._queued_items)
        live = self._drop_stale(jobs)
        if not live:
            return
        try:
            full = any(job.full for job in live)
            out = await self._infer(self._join([job.items for job in live]), full)
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
        no request is on its way to the queue (a lone client would otherwise pay max_wait
        on every call for nothing). Without `arrivals` (the batcher alone), always."""
        waiting = sum(len(job.items) for job in self._pending)
        if waiting + len(first.items) >= self.max_batch_size:
            return False
        return self._arrivals is None or self._arrivals() > 0

    async def _wait_for_company(self) -> None:
        """Until the requests on their way have queued their work, at most max_wait."""
        if self._arrivals is None:
            await asyncio.sleep(self.max_wait)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_wait):
                await self._arrivals.settled()

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
