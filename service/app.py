"""The app factory. The lifespan loads the bundle, starts the encoder and the batcher, warms
up, and opens the class index and the item store; `/readyz` says ready only after that."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
from fastapi import APIRouter, Depends, FastAPI
from threadpoolctl import threadpool_limits

from corel.bundle import Bundle, load_bundle
from service import metrics
from service.api.auth import require_api_key
from service.api.deps import AppState
from service.api.errors import install_error_handlers
from service.api.middleware import Admission, RequestBody, RequestMetrics
from service.api.openapi import with_limits
from service.api.routes import classes, clustering, embed, items, maps, neighbors, system
from service.api.routes.docs import mount_docs
from service.api.schemas.errors import errors
from service.classes.index import ClassIndex
from service.datadir.lock import DataDirLock
from service.errors import ServiceError
from service.inference.batcher import MicroBatcher
from service.inference.embedder import Embedder
from service.inference.inputs import Input
from service.inference.runtime import EncoderRuntime
from service.settings import Settings
from service.stores import stores_for
from service.web import mount_web

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: AppState = app.state.corel
    settings = state.settings
    state.ready = False
    stores = stores_for(settings)
    if state.bundle is None:  # `python -m service` loads it before binding the port
        state.bundle = load_bundle(settings.bundle_path)  # BundleError names the problem
    bundle = state.bundle
    # `python -m service` takes it before binding the port too; the milvus store needs none
    own_lock = state.data_lock is None and stores.holds_data_dir
    if own_lock:
        state.data_lock = DataDirLock(settings.data_dir)
        state.data_lock.acquire()  # DataDirInUseError: another server holds the directory
    # BLAS on one thread while serving: its threads would spin on the cores onnxruntime and
    # the event loop need, for small matrices (measured: the open set's input guard of 32
    # images 1.1 ms with two threads, 0.14 ms with one). A limit set once: threadpoolctl's
    # context manager costs ~0.7 ms a call, more than the work it would wrap.
    blas = threadpool_limits(limits=1, user_api="blas")
    state.runtime = runtime = EncoderRuntime(
        bundle.encoder_path, provider=settings.provider, threads=settings.threads
    )
    spec = bundle.manifest.input
    tokenizer = bundle.tokenizer() if spec.kind == "text" else None
    dim = bundle.manifest.embedding_dim

    def run_full(batch: np.ndarray) -> np.ndarray:
        """The embeddings, the encoder's features and, with the bundle's open set, its two
        input scores for the whole batch, in the inference thread (UnknownPolicy)."""
        out = runtime.run(batch)
        classes = state.class_index
        if classes is None or not classes.has_open_set:
            return out
        model_input = None if spec.kind == "text" else batch  # token ids have no guard
        return np.hstack([out, classes.input_scores(out[:, dim:], model_input)])

    batcher = MicroBatcher(
        lambda batch: runtime.run(batch, features=False),
        run_full=run_full,
        batching=settings.batching,
        max_batch_size=settings.max_batch_size,
        max_wait_ms=settings.max_wait_ms,
        queue_size=settings.queue_size,
        queue_timeout_ms=settings.queue_timeout_ms,
        arrivals=state.arrivals,
        pad_id=spec.pad_id if tokenizer is not None else None,
    )
    await batcher.start()
    state.batcher = batcher
    try:
        state.embedder = Embedder(
            spec,
            batcher,
            max_image_pixels=settings.max_image_pixels,
            embedding_dim=dim,
            tokenizer=tokenizer,
            features_dim=bundle.open_set.bank.shape[1] if bundle.open_set is not None else None,
        )
        state.class_index = ClassIndex(bundle, stores.open_classes())
        state.class_index.watch()  # a shared store: follow other replicas' changes
        metrics.INDEX_SIZE.labels(index="classes").set(len(state.class_index))
        state.items = stores.open_items(bundle)
        await asyncio.to_thread(runtime.warm_up, spec, settings.max_batch_size)
        await carry_over_classes(state.class_index, state.embedder)
        if state.freeze_heap:
            # Everything loaded so far (modules, the model, pydantic/FastAPI internals) lives
            # as long as the process: take it out of the garbage collector's view. Otherwise
            # every full collection walks it all: measured here, ~100 ms pauses of the whole
            # server about once a second under load, the p99 at concurrency 32 going from
            # ~50 to ~140 ms.
            gc.collect()  # garbage first: what is frozen is never freed
            gc.freeze()
        state.ready = True  # /readyz also waits for the item index (items.is_ready)
        log.info(
            "ready: %s on %s (batching %s)",
            bundle.manifest.name,
            runtime.provider,
            "on" if settings.batching else "off",
        )
        yield
    finally:
        state.ready = False
        blas.restore_original_limits()
        if state.freeze_heap:
            gc.unfreeze()  # the process may go on
        state.batcher = None
        await batcher.stop()
        if state.items is not None:
            state.items.close()
        if state.class_index is not None:
            state.class_index.close()
        if own_lock and state.data_lock is not None:
            state.data_lock.release()
            state.data_lock = None


async def carry_over_classes(classes: ClassIndex, embedder: Embedder) -> None:
    """On a new model's first start, imprint the earlier model's imprinted classes again from
    their stored example inputs (a class vector of another model means nothing here)."""
    for record in classes.classes_to_carry_over():
        if not record.inputs:
            log.warning(
                "class %r cannot be carried over to this model: it was imprinted "
                "without stored examples; imprint it again",
                record.name,
            )
            continue
        try:
            inputs = [Input.model_validate(i) for i in record.inputs]
            encoded = await embedder.encode(embedder.prepare(inputs).arrays)
        except (ValueError, ServiceError) as exc:
            log.warning("class %r cannot be carried over to this model: %s", record.name, exc)
            continue
        await asyncio.to_thread(
            classes.add, record.name, encoded.vectors, None, record.inputs, encoded.features
        )
        log.info(
            "class %r re-imprinted for this model from its %d stored examples",
            record.name,
            len(inputs),
        )


def create_app(
    *,
    settings: Settings | None = None,
    bundle: Bundle | None = None,
    data_lock: DataDirLock | None = None,
    freeze_heap: bool = True,
) -> FastAPI:
    """The app; `bundle`, when given, is the one at `settings.bundle_path`, loaded (and so
    verified) already; `data_lock`, when given, is already held for `settings.data_dir`.

    `freeze_heap`: once loaded, move the process's heap out of the garbage collector's view
    (right for a process that serves one app). Tests that run hundreds of apps in one
    process turn it off: its full collection at each start walks all of their heap (measured,
    0.2-0.5 s per app in the test suite)."""
    app = FastAPI(
        title="corel-embed",
        summary="Cosine-COREL embeddings: embed, classify by class vector, search, cluster",
        version="0.1.0",
        lifespan=lifespan,
        # served from local files by routes/docs.py, behind the key when the settings say so
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # FastAPI's native OpenTelemetry, off: the service's metrics are Prometheus's
        # (service/metrics.py), and with it on FastAPI asks OpenTelemetry for its global
        # providers on every request (about 3 % of the event loop's time under load)
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    state = AppState(
        settings=settings or Settings(), bundle=bundle, data_lock=data_lock, freeze_heap=freeze_heap
    )
    app.state.corel = state  # typed access for routes: service.api.deps
    install_error_handlers(app)
    app.add_middleware(
        RequestBody,
        max_bytes=state.settings.max_body_bytes,
        timeout=state.settings.body_timeout_s,
    )
    app.add_middleware(Admission, batcher=lambda: state.batcher)
    app.add_middleware(RequestMetrics, arrivals=state.arrivals)
    # Without a key there is nothing to check: no dependency, no per-request cost
    protected = [Depends(require_api_key)] if state.settings.api_key else []
    unauthorized = errors(401) if state.settings.api_key else {}
    # the inference routes first: FastAPI tries routes in order, and these take the load
    app.include_router(embed.router, dependencies=protected, responses=unauthorized)
    app.include_router(system.router)
    docs_router = APIRouter()
    mount_docs(app, docs_router)
    app.include_router(
        docs_router, dependencies=protected if state.settings.docs_require_key else []
    )
    for router in (
        system.model_router,
        classes.router,
        items.router,
        neighbors.router,
        clustering.router,
        maps.router,
    ):
        app.include_router(router, dependencies=protected, responses=unauthorized)
    mount_web(app)  # the page for people at /: no data in it, so no key (service/web)
    app.openapi = with_limits(app, state)  # type: ignore[method-assign]
    return app
