"""Inputs in, embeddings out: preprocessing per the manifest, then the micro-batcher."""

from __future__ import annotations

import numpy as np

from service.api.schemas import Input
from service.batcher import MicroBatcher
from service.bundle import InputSpec
from service.preprocess import to_model_input


class Embedder:
    def __init__(self, spec: InputSpec, batcher: MicroBatcher, *, max_image_pixels: int) -> None:
        self.spec, self.batcher, self.max_image_pixels = spec, batcher, max_image_pixels

    def prepare(self, inputs: list[Input]) -> list[np.ndarray]:
        return [to_model_input(item, self.spec, max_pixels=self.max_image_pixels, position=n)
                for n, item in enumerate(inputs)]

    async def embed_arrays(self, arrays: list[np.ndarray]) -> np.ndarray:  # -> (N, D) raw
        return await self.batcher.embed(np.stack(arrays))

    async def embed_inputs(self, inputs: list[Input]) -> np.ndarray:  # -> (N, D) raw
        return await self.embed_arrays(self.prepare(inputs))
