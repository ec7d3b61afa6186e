"""GET /healthz, /readyz, /model and /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service import metrics
from service.errors import ServiceUnavailableError

router = APIRouter(tags=["system"])  # open: health checks and scrapers carry no key
model_router = APIRouter(tags=["system"])  # behind the API key like everything else


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (says nothing about the model)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> dict[str, Any]:
    """200 once the model is loaded and warmed up and the indexes are ready, else 503."""
    state = request.app.state
    if not getattr(state, "ready", False):
        raise ServiceUnavailableError("the model is loading")
    items = getattr(state, "items", None)
    if items is not None and not items.is_ready:
        raise ServiceUnavailableError("the item index is catching up with the store")
    return {"status": "ready", "model": state.bundle.manifest.name,
            "provider": state.runtime.provider}


def model_info(request: Request) -> dict[str, Any]:
    state = request.app.state
    settings, items = state.settings, getattr(state, "items", None)
    return {
        "manifest": state.bundle.manifest.model_dump(),
        "provider": state.runtime.provider,
        "indexes": {"classes": len(state.class_index),
                    "items": items.index_size if items is not None else 0},
        "batching": {"enabled": settings.batching, "max_batch_size": settings.max_batch_size,
                     "max_wait_ms": settings.max_wait_ms},
    }


@model_router.get("/model")
async def model(request: Request) -> dict[str, Any]:
    """The bundle's manifest, the execution provider in use and the index sizes."""
    return model_info(request)


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    items = getattr(request.app.state, "items", None)
    if items is not None:
        metrics.INDEX_SIZE.labels(index="items").set(items.index_size)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
