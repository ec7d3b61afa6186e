"""N items embedded from real Fashion-MNIST images, their queries, and exact search.

The items are the 69,000 images left after holding out 1,000 test images, then seeded
variants of them (shifts of up to 2 px, horizontal flips, Gaussian pixel noise) until there
are N. Queries: one variant of each held-out image, so neither a query nor its source image
is indexed. The embeddings are cached (float32 .npy) in the cache folder, made in seeded
chunks, so a smaller N is a prefix of a larger one's cache.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from corel.bundle import ENCODER_FILE, load_bundle
from harness import FASHION_DIR, REPO
from harness.progress import load1, say
from training.data import read_idx

CACHE = REPO / "benchmarks" / ".cache" / "item_search"  # the default; --cache changes it
K = 10
QUERIES = 1_000  # held-out test images: neither they nor their variants are indexed
CHUNK = 10_000  # items made per seeded step, so a smaller N is a prefix of a larger one
MAX_SHIFT, NOISE_SIGMA = 2, 6.0  # pixels; grey levels (0..255)
BUCKETS = 100  # values of the metadata field `bucket`: a 1 % filter
TIE_EPS = 1e-5  # a hit scoring within this of the exact k-th best counts (float ties)


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def fashion_mnist(folder: Path = FASHION_DIR) -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 images (train, then test), (70000, 28, 28) uint8, and their labels."""
    images, labels = [], []
    for split in ("train", "t10k"):
        images.append(read_idx(folder / f"{split}-images-idx3-ubyte.gz"))
        labels.append(read_idx(folder / f"{split}-labels-idx1-ubyte.gz"))
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image shifted by up to MAX_SHIFT px each way, flipped left-right half the time,
    with Gaussian pixel noise; (n, 28, 28) uint8 in and out."""
    n = len(images)
    dx, dy = rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, (2, n))
    flip = rng.random(n) < 0.5
    noise = rng.normal(0.0, NOISE_SIGMA, images.shape)
    flipped = np.where(flip[:, None, None], images[:, :, ::-1], images)
    s = MAX_SHIFT
    padded = np.pad(flipped, ((0, 0), (s, s), (s, s)))
    shifted = np.empty_like(flipped)
    side = images.shape[1]
    for x in range(-s, s + 1):
        for y in range(-s, s + 1):
            pick = (dx == x) & (dy == y)  # out[r, c] = image[r - y, c - x]
            shifted[pick] = padded[pick, s - y : s - y + side, s - x : s - x + side]
    return np.clip(shifted + noise, 0, 255).round().astype(np.uint8)


class Encoder:
    """The bundle's encoder in one onnxruntime CPU session; counts the seconds in run()."""

    def __init__(self, bundle: Path, options: ort.SessionOptions | None = None) -> None:
        self.input = load_bundle(bundle).manifest.input
        self.session = ort.InferenceSession(
            str(bundle / ENCODER_FILE),
            options or ort.SessionOptions(),
            providers=["CPUExecutionProvider"],
        )
        self.name = self.session.get_inputs()[0].name
        self.items, self.seconds = 0, 0.0

    def __call__(self, pixels: np.ndarray, batch: int = 256) -> np.ndarray:  # (n, D)
        x = self.input.to_model(pixels.astype(np.float32))[:, None]  # (n, 1, 28, 28)
        out = []
        for start in range(0, len(x), batch):
            t = time.perf_counter()
            out.append(self.session.run(["embedding"], {self.name: x[start : start + batch]})[0])
            self.seconds += time.perf_counter() - t
        self.items += len(x)
        return np.concatenate(out).astype(np.float32)

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


@dataclass
class Data:
    vectors: np.ndarray  # (N, D) float32, raw embeddings; seq of item i = i + 1
    labels: np.ndarray  # (N,) class of each item (of the image it was made from)
    buckets: np.ndarray  # (N,) 0..BUCKETS-1, random
    queries: np.ndarray  # (Q, D) float32, raw
    query_label: np.ndarray  # (Q,) the class each query filters on (random, 10 %)
    query_bucket: np.ndarray  # (Q,) the bucket each query filters on (random, 1 %)
    label_names: list[str]
    embedding: dict[str, Any]  # how and how fast the embeddings were made


def make_chunk(
    images: np.ndarray, labels: np.ndarray, pool: np.ndarray, chunk: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items chunk*CHUNK .. +CHUNK: pixels, labels, buckets. Item i comes from pool image
    i mod len(pool); the first pass over the pool is the images themselves, later passes
    are variants. A full chunk is always drawn, so a prefix does not depend on N."""
    i = np.arange(chunk * CHUNK, (chunk + 1) * CHUNK)
    base = pool[i % len(pool)]
    rng = np.random.default_rng([seed, chunk])
    pixels = augment(images[base], rng)
    first = i < len(pool)
    pixels[first] = images[base[first]]
    return pixels, labels[base], rng.integers(0, BUCKETS, CHUNK)


def dataset(n: int, seed: int, bundle: Path, cache: Path = CACHE) -> Data:
    """The first `n` items of seed `seed`, embedded by `bundle`; from `cache` when there."""
    manifest = load_bundle(bundle).manifest
    model_id = manifest.files[ENCODER_FILE]
    folder = cache / f"data-{model_id[:12]}-seed{seed}"
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    if meta is None or meta["items"] < n:
        meta = {**embed_all(n, seed, bundle, folder), "cached": False}
    else:
        say(f"data: {n:,} cached embeddings in {folder}")
        meta["cached"] = True
    vectors = np.array(np.load(folder / "vectors.npy", mmap_mode="r")[:n])  # in RAM
    return Data(
        vectors=vectors,
        labels=np.load(folder / "labels.npy")[:n],
        buckets=np.load(folder / "buckets.npy")[:n],
        queries=np.load(folder / "queries.npy"),
        query_label=np.load(folder / "query_label.npy"),
        query_bucket=np.load(folder / "query_bucket.npy"),
        label_names=list(manifest.labels),
        embedding=meta,
    )


def embed_all(n: int, seed: int, bundle: Path, folder: Path) -> dict[str, Any]:
    """Make and embed N items and the queries; write them to `folder`; how fast it went."""
    images, labels = fashion_mnist()
    held = np.arange(len(images) - QUERIES, len(images))  # the last test images
    pool = np.arange(len(images) - QUERIES)
    options = ort.SessionOptions()  # every core, no spinning: spinning threads on a busy
    options.intra_op_num_threads = os.cpu_count() or 1  # machine wait for each other
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    encoder = Encoder(bundle, options)
    folder.mkdir(parents=True, exist_ok=True)
    dim = load_bundle(bundle).manifest.embedding_dim
    partial = folder / "vectors.partial.npy"
    vectors = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(n, dim))
    item_labels, buckets = np.zeros(n, np.int64), np.zeros(n, np.int64)
    started, making = time.perf_counter(), 0.0
    chunks = (n + CHUNK - 1) // CHUNK
    for chunk in range(chunks):
        t = time.perf_counter()
        pixels, chunk_labels, chunk_buckets = make_chunk(images, labels, pool, chunk, seed)
        making += time.perf_counter() - t
        start, stop = chunk * CHUNK, min(n, (chunk + 1) * CHUNK)
        vectors[start:stop] = encoder(pixels[: stop - start])
        item_labels[start:stop] = chunk_labels[: stop - start]
        buckets[start:stop] = chunk_buckets[: stop - start]
        if chunk == chunks - 1 or chunk % 10 == 9:
            say(f"data: embedded {stop:,} of {n:,} ({encoder.rate:,.0f} items/s in onnxruntime)")
    vectors.flush()
    del vectors
    wall = time.perf_counter() - started
    rng = np.random.default_rng([seed, 1_000_000_007])
    queries = encoder(augment(images[held], rng))
    np.save(folder / "queries.npy", queries)
    np.save(folder / "query_label.npy", rng.integers(0, 10, QUERIES))
    np.save(folder / "query_bucket.npy", rng.integers(0, BUCKETS, QUERIES))
    np.save(folder / "labels.npy", item_labels)
    np.save(folder / "buckets.npy", buckets)
    partial.replace(folder / "vectors.npy")
    meta = {
        "items": n,
        "onnxruntime_items_per_s": round(encoder.rate),
        "items_per_s_with_augmentation": round(n / wall),
        "augment_s": round(making, 1),
        "seconds": round(wall, 1),
        "date": utc_now(),
        "load": load1(),
        "session": f"onnxruntime CPU, {os.cpu_count()} threads without spinning, batch 256",
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    say(f"data: {n:,} items embedded in {wall:.0f} s ({encoder.rate:,.0f} items/s in onnxruntime)")
    return meta


# -- exact search ----------------------------------------------------------------------------


def exact_topk(
    base: np.ndarray, queries: np.ndarray, k: int, chunk: int = 65_536
) -> tuple[np.ndarray, np.ndarray]:  # (Q, k) scores (descending) and row numbers in `base`
    """Brute force over unit vectors with numpy: the reference every index is checked against."""
    q = len(queries)
    best_s = np.zeros((q, 0), np.float32)
    best_i = np.zeros((q, 0), np.int64)
    for start in range(0, len(base), chunk):
        scores = queries @ base[start : start + chunk].T  # (Q, c)
        top = min(k, scores.shape[1])
        part = np.argpartition(-scores, top - 1, axis=1)[:, :top]
        cand_s = np.hstack([best_s, np.take_along_axis(scores, part, 1)])
        cand_i = np.hstack([best_i, part + start])
        keep = np.argpartition(-cand_s, min(k, cand_s.shape[1]) - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, keep, 1), np.take_along_axis(cand_i, keep, 1)
    order = np.argsort(-best_s, axis=1)
    return np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)
