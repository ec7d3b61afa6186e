"""The micro-batcher on the real encoder: coalescing, the bounded queue, drops, shutdown.

`Recorder` wraps the real onnxruntime run to record each batch size; `delay` makes the
run slow (a real sleep in the inference thread) so that jobs pile up behind it.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from service import metrics
from service.errors import ServiceUnavailableError, TooManyRequestsError
from service.inference.arrivals import Arrivals
from service.inference.batcher import MicroBatcher
from service.inference.runtime import EncoderRuntime
from tests.conftest import DEFAULT_BUNDLE

# a run's row: the embedding (128) and the default bundle's `features` output (540)
ROW_WIDTH = 128 + 540


class Recorder:
    def __init__(self, runtime: EncoderRuntime, delay: float = 0.0) -> None:
        self.runtime, self.delay, self.batches = runtime, delay, []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(len(batch))
        time.sleep(self.delay)
        return self.runtime.run(batch)


@pytest.fixture(scope="module")
def runtime() -> EncoderRuntime:
    return EncoderRuntime(DEFAULT_BUNDLE / "encoder.onnx", provider="cpu")


@pytest.fixture(scope="module")
def images(fashion_sample) -> np.ndarray:
    return (fashion_sample[0][:16] / 255.0).astype(np.float32)  # (16, 1, 28, 28)


def dropped(reason: str) -> float:
    return metrics.DROPPED.labels(reason=reason)._value.get()


async def started(batcher: MicroBatcher) -> MicroBatcher:
    await batcher.start()
    return batcher


def test_embed_coalesces_concurrent_requests_into_one_run(runtime, images) -> None:
    recorder = Recorder(runtime)

    async def scenario() -> list[np.ndarray]:
        batcher = await started(MicroBatcher(recorder, max_wait_ms=50))
        out = await asyncio.gather(*(batcher.embed(images[i : i + 1]) for i in range(16)))
        await batcher.stop()
        return out

    out = asyncio.run(scenario())
    assert recorder.batches == [16]
    assert np.allclose(np.concatenate(out), runtime.run(images), atol=1e-5)


def test_a_batch_runs_full_only_when_one_of_its_jobs_asks(runtime, images) -> None:
    plain, full = Recorder(runtime), Recorder(runtime)
    plain_run = lambda batch: plain(batch)[:, :128]  # noqa: E731 (the embedding alone)

    async def scenario() -> tuple[list[np.ndarray], list[np.ndarray]]:
        batcher = await started(MicroBatcher(plain_run, run_full=full, max_wait_ms=50))
        alone = await asyncio.gather(*(batcher.embed(images[i : i + 1]) for i in range(4)))
        mixed = await asyncio.gather(
            batcher.embed(images[:1]), batcher.embed(images[1:2], full=True)
        )
        await batcher.stop()
        return alone, mixed

    alone, mixed = asyncio.run(scenario())
    assert plain.batches == [4] and full.batches == [2]  # /embed jobs alone skip the rest
    assert [a.shape[1] for a in alone] == [128] * 4
    assert [m.shape[1] for m in mixed] == [ROW_WIDTH] * 2  # a plain job beside a full one
    assert np.allclose(mixed[0][:, :128], alone[0], atol=1e-5)


@pytest.mark.parametrize("on_their_way, waits", [(0, False), (1, True)])
def test_embed_waits_for_company_only_while_other_requests_are_on_their_way(
    runtime, images, on_their_way, waits
) -> None:
    async def scenario() -> float:
        arrivals = Arrivals()
        for _ in range(on_their_way):  # each a request whose body is in, its work not queued
            await asyncio.create_task(_arrive(arrivals))
        batcher = await started(MicroBatcher(runtime.run, max_wait_ms=400, arrivals=arrivals))
        begun = time.perf_counter()
        await batcher.embed(images[:1])
        took = time.perf_counter() - begun
        await batcher.stop()
        return took

    took = asyncio.run(scenario())
    assert (took >= 0.4) == waits, took


def test_the_wait_for_company_ends_when_the_requests_on_their_way_have_queued(
    runtime, images
) -> None:
    async def scenario() -> tuple[float, list[int]]:
        arrivals = Arrivals()
        recorder = Recorder(runtime)
        batcher = await started(MicroBatcher(recorder, max_wait_ms=2000, arrivals=arrivals))

        async def request(n: int, delay: float) -> np.ndarray:
            arrivals.begin()
            arrivals.arrived()
            await asyncio.sleep(delay)  # parsing, preprocessing
            return await batcher.embed(images[n : n + 1])

        begun = time.perf_counter()
        await asyncio.gather(request(0, 0.0), request(1, 0.05), request(2, 0.1))
        took = time.perf_counter() - begun
        await batcher.stop()
        return took, recorder.batches

    took, batches = asyncio.run(scenario())
    assert batches == [3]  # the first waited for the two on their way...
    assert took < 1.0, took  # ...and not for the whole max_wait of 2 s


async def _arrive(arrivals: Arrivals) -> None:
    """A request (its own task, so its own context) whose body has arrived."""
    arrivals.begin()
    arrivals.arrived()


def test_embed_without_batching_runs_each_request_alone(runtime, images) -> None:
    recorder = Recorder(runtime)

    async def scenario() -> None:
        batcher = await started(MicroBatcher(recorder, batching=False))
        await asyncio.gather(*(batcher.embed(images[i : i + 1]) for i in range(4)))
        await batcher.stop()

    asyncio.run(scenario())
    assert recorder.batches == [1, 1, 1, 1]


@pytest.mark.parametrize("batching", [True, False])
def test_embed_full_queue_is_429(runtime, images, batching) -> None:
    recorder = Recorder(runtime, delay=0.3)

    async def scenario() -> None:
        batcher = await started(
            MicroBatcher(recorder, batching=batching, max_batch_size=2, max_wait_ms=0, queue_size=2)
        )
        first = asyncio.ensure_future(batcher.embed(images[:2]))  # fills the queue
        await asyncio.sleep(0)
        with pytest.raises(TooManyRequestsError, match="queue is full") as caught:
            await batcher.embed(images[2:3])
        assert caught.value.headers == {"Retry-After": "1"}
        await first
        await batcher.embed(images[2:3])  # room again once the first job is done
        await batcher.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("batching", [True, False])
def test_no_run_is_larger_than_max_batch_size(runtime, images, batching) -> None:
    recorder = Recorder(runtime)

    async def scenario() -> np.ndarray:
        batcher = await started(
            MicroBatcher(recorder, batching=batching, max_batch_size=4, max_wait_ms=20)
        )
        out = await asyncio.gather(batcher.embed(images[:10]), batcher.embed(images[10:13]))
        await batcher.stop()
        return np.concatenate(out)

    out = asyncio.run(scenario())

    assert max(recorder.batches) <= 4 and sum(recorder.batches) == 13
    np.testing.assert_allclose(out, runtime.run(images[:13]), rtol=1e-4, atol=1e-5)


def test_a_large_request_gets_in_whenever_the_queue_has_room(runtime, images) -> None:
    # Small requests keep the queue nearly full; one that needs more room than is left is
    # still taken (admission by queue state), so it is not starved behind them.
    recorder = Recorder(runtime, delay=0.05)

    async def scenario() -> None:
        batcher = await started(MicroBatcher(recorder, max_batch_size=4, queue_size=4))
        small = [asyncio.ensure_future(batcher.embed(images[i : i + 1])) for i in range(3)]
        await asyncio.sleep(0)
        large = await batcher.embed(images[:12])  # 3 waiting + 12 > 4, but 3 < 4: taken
        await asyncio.gather(*small)
        assert large.shape == (12, ROW_WIDTH)
        await batcher.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("batching", [True, False])
def test_embed_waiting_too_long_is_dropped_with_503(runtime, images, batching) -> None:
    recorder = Recorder(runtime, delay=0.3)
    before = dropped("timeout")

    async def scenario() -> None:
        batcher = await started(
            MicroBatcher(recorder, batching=batching, max_wait_ms=0, queue_timeout_ms=50)
        )
        busy = asyncio.ensure_future(batcher.embed(images[:1]))
        await asyncio.sleep(0.05)  # the first job is running (0.3 s)
        with pytest.raises(ServiceUnavailableError, match="overloaded"):
            await batcher.embed(images[1:2])
        await busy
        await batcher.stop()

    asyncio.run(scenario())
    assert recorder.batches == [1]  # the late job was never computed
    assert dropped("timeout") == before + 1


def test_embed_cancelled_by_its_client_is_not_computed(runtime, images) -> None:
    recorder = Recorder(runtime, delay=0.3)
    before = dropped("cancelled")

    async def scenario() -> None:
        batcher = await started(MicroBatcher(recorder, max_wait_ms=0))
        busy = asyncio.ensure_future(batcher.embed(images[:1]))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(batcher.embed(images[1:3]))
        await asyncio.sleep(0.01)
        gone.cancel()  # what the route does when the client disconnects
        await busy
        await asyncio.sleep(0.05)  # let the worker drain the cancelled job
        await batcher.stop()

    asyncio.run(scenario())
    assert recorder.batches == [1]
    assert dropped("cancelled") == before + 1


def test_stop_fails_running_and_queued_jobs_with_503(runtime, images) -> None:
    recorder = Recorder(runtime, delay=0.3)

    async def scenario() -> None:
        batcher = await started(MicroBatcher(recorder, max_wait_ms=0))
        running = asyncio.ensure_future(batcher.embed(images[:1]))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(batcher.embed(images[1:2]))
        await asyncio.sleep(0.01)
        await batcher.stop()
        for job in (running, queued):
            with pytest.raises(ServiceUnavailableError, match="shutting down"):
                await job
        with pytest.raises(ServiceUnavailableError, match="shutting down"):
            await batcher.embed(images[:1])  # after stop: refused, not left hanging

    asyncio.run(scenario())


def test_embed_failing_run_fails_its_jobs_and_the_worker_survives(runtime, images) -> None:
    async def scenario() -> None:
        batcher = await started(MicroBatcher(runtime.run, max_wait_ms=0))
        with pytest.raises(Exception, match=r"(?i)invalid|dimension|rank"):
            await batcher.embed(np.zeros((1, 3, 5, 5), np.float32))  # wrong shape for the model
        out = await batcher.embed(images[:1])
        assert out.shape == (1, ROW_WIDTH)
        await batcher.stop()

    asyncio.run(scenario())
