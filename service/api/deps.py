"""Dependencies as `Annotated` aliases: what a route needs, taken from the app's state.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool,
a thread hop per dependency per request that costs more than the lookup itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.bundle import Bundle
from service.class_index import ClassIndex
from service.embedder import RequestEmbedder
from service.errors import PayloadTooLargeError
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_bundle(request: Request) -> Bundle:
    return request.app.state.bundle


async def get_embedder(request: Request) -> RequestEmbedder:
    """`embed_inputs(inputs) -> (N, D)` raw embeddings: preprocessing, then the batcher."""
    return RequestEmbedder(request.app.state.embedder, request)


async def get_class_index(request: Request) -> ClassIndex:
    return request.app.state.class_index


SettingsDep = Annotated[Settings, Depends(get_settings)]
BundleDep = Annotated[Bundle, Depends(get_bundle)]
EmbedderDep = Annotated[RequestEmbedder, Depends(get_embedder)]
ClassIndexDep = Annotated[ClassIndex, Depends(get_class_index)]


def check_input_count(count: int, settings: Settings) -> None:
    if count > settings.max_inputs_per_request:
        raise PayloadTooLargeError(
            f"{count} inputs in one request; the limit is {settings.max_inputs_per_request}",
            details={"max_inputs_per_request": settings.max_inputs_per_request})
