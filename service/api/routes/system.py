"""GET /healthz, /readyz, /model and /metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service import metrics
from service.api.deps import BundleDep, ClassIndexDep, SettingsDep, StateDep
from service.api.schemas.errors import errors
from service.api.schemas.system import Batching, Health, IndexSizes, ModelInfo, Ready
from service.errors import NotFoundError, ServiceUnavailableError

router = APIRouter(tags=["system"])  # open: health checks and scrapers carry no key
model_router = APIRouter(tags=["system"])  # behind the API key like everything else


@router.get("/healthz")
async def healthz() -> Health:
    """The process is alive (says nothing about the model)."""
    return Health()


@router.get("/readyz", responses=errors(503))
async def readyz(state: StateDep) -> Ready:
    """200 once the model is loaded and warmed up and the indexes are ready, else 503."""
    if not state.ready or state.bundle is None or state.runtime is None:
        raise ServiceUnavailableError("the model is loading")
    if state.items is not None and not state.items.is_ready:
        raise ServiceUnavailableError("the item index is catching up with the store")
    return Ready(model=state.bundle.manifest.name, provider=state.runtime.provider)


@model_router.get("/model", responses=errors(503))
async def model(
    state: StateDep, bundle: BundleDep, classes: ClassIndexDep, settings: SettingsDep
) -> ModelInfo:
    """The bundle's manifest, the execution provider in use and the index sizes."""
    provider = state.runtime.provider if state.runtime is not None else "loading"
    return ModelInfo(
        manifest=bundle.manifest.model_dump(),
        provider=provider,
        indexes=IndexSizes(
            classes=len(classes), items=state.items.index_size if state.items is not None else 0
        ),
        batching=Batching(
            enabled=settings.batching,
            max_batch_size=settings.max_batch_size,
            max_wait_ms=settings.max_wait_ms,
        ),
    )


@model_router.get(
    "/model/figures/{name}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "A PNG image"}, **errors(404)},
)
async def model_figure(name: str, bundle: BundleDep) -> Response:
    """A figure the bundle ships (`training_curves.png`, `projections.png`, ...): only the
    PNG files its manifest lists, so nothing else in the bundle's folder is reachable."""
    if not name.endswith(".png") or name not in bundle.manifest.files:
        raise NotFoundError(f"the bundle has no figure {name!r}")
    figure = await asyncio.to_thread((bundle.path / name).read_bytes)
    return Response(figure, media_type="image/png")


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(state: StateDep) -> Response:
    if state.items is not None:
        metrics.INDEX_SIZE.labels(index="items").set(state.items.index_size)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
