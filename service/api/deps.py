"""Every dependency a route takes, as an `Annotated` alias, and the typed state behind them.

The lifespan (service/app.py) fills one `AppState`; routes never read `app.state` themselves.
The getters are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread
pool, a thread hop per dependency per request that costs more than the lookup itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from corel.bundle import Bundle
from service.classes.index import ClassIndex
from service.datadir.lock import DataDirLock
from service.errors import PayloadTooLargeError, ServiceUnavailableError
from service.inference.arrivals import Arrivals
from service.inference.batcher import MicroBatcher
from service.inference.embedder import Embedder, RequestEmbedder
from service.inference.runtime import EncoderRuntime
from service.items.backend import ItemBackend
from service.maps.latent_map import MapCache
from service.settings import Settings

__all__ = [
    "AppState",
    "BundleDep",
    "ClassIndexDep",
    "EmbedderDep",
    "Inference",
    "InferenceDep",
    "ItemsDep",
    "MapCacheDep",
    "SettingsDep",
    "StateDep",
    "check_input_count",
]


@dataclass
class AppState:
    """What the lifespan loads; `None` until it is loaded (the routes answer 503 meanwhile)."""

    settings: Settings
    ready: bool = False
    bundle: Bundle | None = None
    runtime: EncoderRuntime | None = None
    embedder: Embedder | None = None
    batcher: MicroBatcher | None = None
    class_index: ClassIndex | None = None
    items: ItemBackend | None = None
    data_lock: DataDirLock | None = None
    freeze_heap: bool = True  # create_app's: gc.freeze() once loaded
    arrivals: Arrivals = field(default_factory=Arrivals)  # what the batcher waits for
    maps: MapCache = field(default_factory=MapCache)  # GET /map's projections


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.corel
    return state


T = TypeVar("T")


def _loaded(value: T | None) -> T:
    if value is None:
        raise ServiceUnavailableError("the model is loading")
    return value


async def get_state(request: Request) -> AppState:
    return app_state(request)


async def get_settings(request: Request) -> Settings:
    return app_state(request).settings


async def get_bundle(request: Request) -> Bundle:
    return _loaded(app_state(request).bundle)


async def get_embedder(request: Request) -> RequestEmbedder:
    """`embed_inputs(inputs) -> (N, D)` raw embeddings: preprocessing, then the batcher."""
    return RequestEmbedder(_loaded(app_state(request).embedder), request)


@dataclass(frozen=True)
class Inference:
    """What POST /embed and POST /classify read, as one dependency: these routes take the
    load, and FastAPI solves every dependency of a route on each request (measured under
    cProfile: solving their four separate ones took about a sixth of the event loop's time
    per /classify)."""

    settings: Settings
    bundle: Bundle
    embedder: RequestEmbedder
    classes: ClassIndex


async def get_inference(request: Request) -> Inference:
    state = app_state(request)
    return Inference(
        state.settings,
        _loaded(state.bundle),
        RequestEmbedder(_loaded(state.embedder), request),
        _loaded(state.class_index),
    )


async def get_class_index(request: Request) -> ClassIndex:
    return _loaded(app_state(request).class_index)


async def get_items(request: Request) -> ItemBackend:
    return _loaded(app_state(request).items)


async def get_map_cache(request: Request) -> MapCache:
    return app_state(request).maps


StateDep = Annotated[AppState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
BundleDep = Annotated[Bundle, Depends(get_bundle)]
EmbedderDep = Annotated[RequestEmbedder, Depends(get_embedder)]
ClassIndexDep = Annotated[ClassIndex, Depends(get_class_index)]
InferenceDep = Annotated[Inference, Depends(get_inference)]
ItemsDep = Annotated[ItemBackend, Depends(get_items)]
MapCacheDep = Annotated[MapCache, Depends(get_map_cache)]


def check_input_count(count: int, settings: Settings) -> None:
    if count > settings.max_inputs_per_request:
        raise PayloadTooLargeError(
            f"{count} inputs in one request; the limit is {settings.max_inputs_per_request}",
            details={"max_inputs_per_request": settings.max_inputs_per_request},
        )
