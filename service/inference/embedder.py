"""Inputs in, embeddings out: preprocessing per the manifest, then the micro-batcher.

`Embedder` is the app-wide object; routes get
a `RequestEmbedder` through `EmbedderDep`, which also cancels the work when the client
disconnects, so a queued job whose client is gone is dropped rather than computed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import numpy as np
from starlette.requests import Request

from corel.bundle import InputSpec
from service.errors import ValidationFailedError
from service.inference.batcher import MicroBatcher
from service.inference.inputs import Input
from service.inference.preprocess import to_model_input

__all__ = ["Embedder", "RequestEmbedder"]


class Embedder:
    def __init__(self, spec: InputSpec, batcher: MicroBatcher, *, max_image_pixels: int) -> None:
        self.spec, self.batcher, self.max_image_pixels = spec, batcher, max_image_pixels

    def prepare(self, inputs: list[Input]) -> list[np.ndarray]:
        return [
            to_model_input(item, self.spec, max_pixels=self.max_image_pixels, position=n)
            for n, item in enumerate(inputs)
        ]

    async def embed_arrays(self, arrays: list[np.ndarray]) -> np.ndarray:  # -> (N, D) raw
        h = await self.batcher.embed(np.stack(arrays))
        # Finite inputs far outside the trained range (pixels of 1e30) overflow float32 in the
        # encoder or in the squared norms that every class rule and the index compute.
        squared_norms = np.einsum("ij,ij->i", h, h)
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~np.isfinite(squared_norms))
        if bad.size:
            raise ValidationFailedError(
                f"inputs[{bad[0]}] gives an embedding out of float32 range: its values are far "
                "outside the range this model takes",
                details={"inputs": bad.tolist()},
            )
        return h

    async def embed_inputs(self, inputs: list[Input]) -> np.ndarray:  # -> (N, D) raw
        return await self.embed_arrays(self.prepare(inputs))


class RequestEmbedder:
    """The embedder seen from one request: the same calls, abandoned if the client leaves."""

    def __init__(self, embedder: Embedder, request: Request) -> None:
        self.embedder, self.request = embedder, request
        self.spec = embedder.spec

    def prepare(self, inputs: list[Input]) -> list[np.ndarray]:
        return self.embedder.prepare(inputs)

    async def embed_arrays(self, arrays: list[np.ndarray]) -> np.ndarray:
        return await self._unless_disconnected(self.embedder.embed_arrays(arrays))

    async def embed_inputs(self, inputs: list[Input]) -> np.ndarray:
        return await self.embed_arrays(self.prepare(inputs))

    async def _unless_disconnected(self, work: Awaitable[np.ndarray]) -> np.ndarray:
        task = asyncio.ensure_future(work)

        async def watch() -> None:
            # The body has been read, so the next ASGI message is the client's disconnect.
            while (await self.request.receive())["type"] != "http.disconnect":
                pass
            task.cancel()

        watcher = asyncio.create_task(watch())
        try:
            return await task
        finally:
            watcher.cancel()
