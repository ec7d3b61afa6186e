"""The map cache: one computation per map however many ask at once, and a slow t-SNE
never holds up another map."""

import asyncio

import numpy as np

from service.classes.class_set import ClassRecord, ClassSet
from service.items.types import VectorRows
from service.maps.latent_map import MapCache


def _rows(n: int, dim: int = 16) -> VectorRows:
    vectors = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    return VectorRows(np.arange(1, n + 1), [f"i{k}" for k in range(n)], ["a"] * n, vectors)


def _classes(dim: int = 16) -> ClassSet:
    vectors = np.eye(dim, dtype=np.float32)[:3]
    return ClassSet(
        tuple(ClassRecord(f"c{k}", v, 0.0, "bundle", None, None) for k, v in enumerate(vectors))
    )


def test_the_same_map_asked_for_twice_at_once_is_computed_once() -> None:
    async def run() -> None:
        cache = MapCache()
        rows, classes = _rows(200), _classes()
        (first, cached_1), (second, cached_2) = await asyncio.gather(
            cache.get("tsne", "m", rows, classes), cache.get("tsne", "m", rows, classes)
        )
        assert first is second and (cached_1, cached_2) == (False, False)
        third, cached_3 = await cache.get("tsne", "m", rows, classes)
        assert third is first and cached_3

    asyncio.run(run())


def test_a_pca_map_answers_while_a_tsne_map_is_being_computed() -> None:
    async def run() -> None:
        cache = MapCache()
        classes = _classes()
        tsne = asyncio.create_task(cache.get("tsne", "m", _rows(600), classes))
        await asyncio.sleep(0.05)  # the t-SNE has started in its thread
        pca, _ = await cache.get("pca", "m", _rows(600), classes)
        assert pca.points.shape == (600, 2) and not tsne.done()
        latent_map, _ = await tsne
        assert latent_map.method == "tsne" and latent_map.class_points.shape == (3, 2)

    asyncio.run(run())


def test_another_item_set_is_another_map() -> None:
    async def run() -> None:
        cache = MapCache()
        classes = _classes()
        await cache.get("pca", "m", _rows(50), classes)
        _, cached = await cache.get("pca", "m", _rows(49), classes)
        assert not cached
        _, cached = await cache.get("pca", "other-model", _rows(49), classes)
        assert not cached

    asyncio.run(run())
