"""Inputs in, embeddings out: preprocessing per the manifest, then the micro-batcher.

`Embedder` is the app-wide object; routes get
a `RequestEmbedder` through `EmbedderDep`, which also cancels the work when the client
disconnects, so a queued job whose client is gone is dropped rather than computed.
"""

from __future__ import annotations

import asyncio
import binascii
import math
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from starlette.requests import Request

from corel.bundle import InputSpec
from corel.text import TextTokenizer, pad_batch
from service.errors import ValidationFailedError
from service.inference.batcher import MicroBatcher
from service.inference.inputs import Input
from service.inference.preprocess import to_model_input, to_token_ids

__all__ = ["Embedded", "Embedder", "Encoded", "Prepared", "RequestEmbedder"]

T = TypeVar("T")


@dataclass(frozen=True)
class Prepared:
    arrays: list[np.ndarray]  # one model-ready array per input (a text's token ids, unpadded)
    truncated: list[int]  # positions of the texts cut to the model's max_length tokens


@dataclass(frozen=True)
class Encoded:
    """All the encoder and the open set say of a batch (what /classify and /classes read)."""

    vectors: np.ndarray  # (N, D) raw embeddings
    features: np.ndarray | None  # (N, F) the encoder's `features` output, None without one
    input_scores: np.ndarray | None  # (N, 2) the open set's (UnknownPolicy.input_scores)


@dataclass(frozen=True)
class Embedded:
    vectors: np.ndarray  # (N, D) raw embeddings
    truncated: list[int]  # as Prepared's: what the answer reports


class Embedder:
    def __init__(
        self,
        spec: InputSpec,
        batcher: MicroBatcher,
        *,
        max_image_pixels: int,
        embedding_dim: int | None = None,
        tokenizer: TextTokenizer | None = None,
        features_dim: int | None = None,
    ) -> None:
        self.spec, self.batcher, self.max_image_pixels = spec, batcher, max_image_pixels
        # a full run's columns beyond embedding_dim are the encoder's `features` output
        # (runtime.py), then, with the bundle's open set, its two input scores (app.py)
        self.embedding_dim, self.features_dim = embedding_dim, features_dim
        self.tokenizer = tokenizer  # text models only

    def prepare(self, inputs: list[Input], *, truncate: bool = True) -> Prepared:
        """Model-ready arrays, or a 422 naming the first input that is wrong; a text longer
        than the model's max_length tokens keeps its first tokens unless `truncate` is off."""
        if self.tokenizer is not None:
            ids = to_token_ids(inputs, self.spec, self.tokenizer, truncate=truncate)
            return Prepared(ids.rows, ids.truncated)
        fast = _tensors_at_once(inputs, self.spec)
        if fast is not None:
            return Prepared(fast, [])
        arrays = [
            to_model_input(item, self.spec, max_pixels=self.max_image_pixels, position=n)
            for n, item in enumerate(inputs)
        ]
        return Prepared(arrays, [])

    async def embed_arrays(self, arrays: list[np.ndarray]) -> np.ndarray:  # -> (N, D) raw
        return (await self._run(arrays, full=False)).vectors

    async def encode(self, arrays: list[np.ndarray]) -> Encoded:
        """The embeddings with the encoder's features and the open set's input scores."""
        return await self._run(arrays, full=True)

    async def _run(self, arrays: list[np.ndarray], *, full: bool) -> Encoded:
        batch = np.stack(arrays) if self.tokenizer is None else pad_batch(arrays, self.spec.pad_id)
        out = await self.batcher.embed(batch, full=full)
        d = self.embedding_dim or out.shape[1]
        f = d + (self.features_dim or 0)
        h = out[:, :d]
        features = out[:, d:f] if self.features_dim and out.shape[1] >= f else None
        scores = out[:, f : f + 2] if features is not None and out.shape[1] == f + 2 else None
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
        return Encoded(h, features, scores)

    async def embed_inputs(self, inputs: list[Input], *, truncate: bool = True) -> Embedded:
        prepared = self.prepare(inputs, truncate=truncate)
        return Embedded(await self.embed_arrays(prepared.arrays), prepared.truncated)


class RequestEmbedder:
    """The embedder seen from one request: the same calls, abandoned if the client leaves."""

    def __init__(self, embedder: Embedder, request: Request) -> None:
        self.embedder, self.request = embedder, request
        self.spec = embedder.spec

    def prepare(self, inputs: list[Input], *, truncate: bool = True) -> Prepared:
        return self.embedder.prepare(inputs, truncate=truncate)

    async def embed_arrays(self, arrays: list[np.ndarray]) -> np.ndarray:
        return await self._unless_disconnected(self.embedder.embed_arrays(arrays))

    async def encode(self, arrays: list[np.ndarray]) -> Encoded:
        return await self._unless_disconnected(self.embedder.encode(arrays))

    async def embed_inputs(self, inputs: list[Input], *, truncate: bool = True) -> Embedded:
        prepared = self.prepare(inputs, truncate=truncate)
        return Embedded(await self.embed_arrays(prepared.arrays), prepared.truncated)

    async def _unless_disconnected(self, work: Awaitable[T]) -> T:
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


def _tensors_at_once(inputs: list[Input], spec: InputSpec) -> list[np.ndarray] | None:
    """Tensors of the model's default shape and one dtype, decoded and checked as one array
    (bulk imports send these: measured, 12.9 s of a 60,000-item import one by one, 1.4 s at
    once); None when the batch is anything else or any input is wrong, so that the per-item
    path (preprocess.py) names it."""
    tensors = [i.tensor for i in inputs]
    first = tensors[0] if tensors else None
    if first is None or any(
        t is None or t.shape is not None or t.dtype != first.dtype for t in tensors
    ):
        return None
    dtype = np.dtype(first.dtype).newbyteorder("<")
    size = math.prod(spec.shape) * dtype.itemsize
    try:
        chunks = [binascii.a2b_base64(t.b64, strict_mode=True) for t in tensors if t is not None]
    except (binascii.Error, ValueError):
        return None
    if any(len(c) != size for c in chunks):
        return None
    raw = np.frombuffer(b"".join(chunks), dtype).reshape(len(inputs), *spec.shape)
    accepted = spec.accepted_range
    if not np.isfinite(raw).all() or (
        accepted is not None and (raw.min() < accepted[0] or raw.max() > accepted[1])
    ):
        return None
    return list(spec.to_model(raw.astype(np.float32)))  # scaled in float32, as one at a time
