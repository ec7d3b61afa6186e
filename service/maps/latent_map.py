"""The latent map: a 2-D projection of the stored items and the class vectors (GET /map).

Vectors are L2-normalised first (cosine is the geometry Cosine-COREL trains for), so the
map shows directions, as classification and search see them. PCA fits the items (or the
class vectors when fewer than two items are stored) and projects the class vectors with
the same axes. t-SNE has no such transform: the class vectors are embedded together with
the items, so they sit among the items nearest them. t-SNE costs seconds per thousand
points (docs/benchmarks.md), hence its lower item limit and the cache.

A map is cached under what it was made from: the method, the model, the seqs of the items
(a seq is never reused, and re-embedding an item gives it a new one) and the class names
and vectors. Adding, deleting or re-embedding an item or changing a class makes a new key,
so a stale map is never served; the few newest maps are kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import numpy as np
from threadpoolctl import threadpool_limits

from corel.class_rule import l2_normalise
from service.classes.class_set import ClassSet
from service.errors import ValidationFailedError
from service.items.types import VectorRows

__all__ = ["MAX_ITEMS", "LatentMap", "MapCache", "Method", "project"]

Method = Literal["pca", "tsne"]
MAX_ITEMS: dict[Method, int] = {"pca": 50_000, "tsne": 10_000}
TSNE_MIN_POINTS = 5  # below this t-SNE's perplexity has no meaning
CACHED_MAPS = 8


@dataclass(frozen=True)
class LatentMap:
    method: Method
    ids: list[str]
    labels: list[str | None]
    points: np.ndarray  # (n, 2) float32, the items
    class_names: list[str]
    class_points: np.ndarray  # (K, 2) float32, the class vectors
    seconds: float  # time the projection took when it was made


def project(method: Method, rows: VectorRows, classes: ClassSet) -> LatentMap:
    """The map of these items and classes (blocking: seconds for t-SNE)."""
    started = time.perf_counter()
    items = l2_normalise(rows.vectors) if len(rows.ids) else np.zeros((0, 0), np.float32)
    centres = l2_normalise(classes.vectors)
    # One BLAS/OpenMP thread (this thread only): the map must not take the cores from the
    # requests being served, and on busy cores OpenMP's spinning threads made it far
    # slower, not faster: measured, t-SNE of 300 points 37 s with 2 threads, 2.4 s with 1
    # (2 cores at load 6).
    with threadpool_limits(limits=1):
        xy, class_xy = _pca(items, centres) if method == "pca" else _tsne(items, centres)
    return LatentMap(
        method=method,
        ids=rows.ids,
        labels=rows.labels,
        points=xy.astype(np.float32),
        class_names=classes.names,
        class_points=class_xy.astype(np.float32),
        seconds=time.perf_counter() - started,
    )


def _pca(items: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.decomposition import PCA  # here: a 1 s import that most servers never need

    fit_on = items if len(items) >= 2 else centres
    pca = PCA(n_components=2, random_state=0).fit(fit_on)
    xy = pca.transform(items) if len(items) else np.zeros((0, 2))
    return xy, pca.transform(centres)


def _tsne(items: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.manifold import TSNE

    together = np.concatenate([items, centres]) if len(items) else centres
    if len(together) < TSNE_MIN_POINTS:
        raise ValidationFailedError(
            f"t-SNE needs at least {TSNE_MIN_POINTS} points (items and classes); "
            f"there are {len(together)}: use method=pca"
        )
    # the usual perplexity of 30, lowered for small sets (it must stay below n)
    perplexity = min(30.0, (len(together) - 1) / 3)
    xy = TSNE(2, perplexity=perplexity, init="pca", random_state=0).fit_transform(together)
    return xy[: len(items)], xy[len(items) :]


def map_key(method: Method, model_id: str, rows: VectorRows, classes: ClassSet) -> str:
    digest = hashlib.sha256(f"{method}\0{model_id}\0".encode())
    digest.update(np.ascontiguousarray(rows.seqs, np.int64).tobytes())
    for record in classes.records:
        digest.update(record.name.encode() + b"\0")
        digest.update(np.ascontiguousarray(record.vector, np.float32).tobytes())
    return digest.hexdigest()


class MapCache:
    """The newest maps by what they were made from. A map asked for while it is being
    computed is waited for, not computed twice; other maps (a cached PCA while a t-SNE
    runs) do not wait for it. A computation outlives a client that stops waiting: its map
    is cached for the next one."""

    def __init__(self, size: int = CACHED_MAPS) -> None:
        self._maps: OrderedDict[str, LatentMap] = OrderedDict()
        self._running: dict[str, asyncio.Task[LatentMap]] = {}
        self._size = size

    async def get(
        self, method: Method, model_id: str, rows: VectorRows, classes: ClassSet
    ) -> tuple[LatentMap, bool]:
        """(the map, whether it came from the cache)."""
        key = map_key(method, model_id, rows, classes)
        if key in self._maps:
            self._maps.move_to_end(key)
            return self._maps[key], True
        task = self._running.get(key)
        if task is None:
            task = asyncio.create_task(asyncio.to_thread(project, method, rows, classes))
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task), False

    def _finished(self, key: str, task: asyncio.Task[LatentMap]) -> None:
        del self._running[key]
        if task.cancelled() or task.exception() is not None:
            return  # the waiters get the error; nothing is cached
        self._maps[key] = task.result()
        while len(self._maps) > self._size:
            self._maps.popitem(last=False)
