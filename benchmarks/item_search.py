"""Item search at a million items on one machine: the index kinds in process, then the server.

In one run on one machine:

1. Data: N items (default 1,000,000) embedded by the bundle's encoder with onnxruntime from
   real Fashion-MNIST images: the 69,000 images left after holding out 1,000 test images,
   then seeded variants of them (shifts of up to 2 px, horizontal flips, Gaussian pixel
   noise) until there are N. Queries: one variant of each held-out test image, so neither
   a query nor its source image is indexed. The embeddings are cached (float32 .npy) under
   benchmarks/.cache/item_search/, so a rerun skips this step; items are made in seeded
   chunks, so a smaller N is a prefix of a larger one's cache.
2. In process, per index kind: flat (exact), hnsw, ivf (k-means coarse centroids, as the
   service builds them) and ivf-classes (an IVF index whose coarse centroids are the
   model's 10 class vectors, no training): build time, memory per item (snapshot bytes and
   anonymous RSS growth), recall@10 against exact search, queries/s one query at a time
   and 1,000 at once, and the same with an `allowed` filter of 10 % (a label, drawn at
   random per query) and of 1 % (a metadata-like bucket, random per query). efSearch and
   nprobe are swept to show the recall/speed trade-off.
3. Through the real server (`python -m service`) on a data directory built offline with the
   service's own classes (ItemStore.insert, then a LiveIndex flushed to write the HNSW
   snapshot): time from process start to /readyz 200 (also after `kill -9` during writes),
   recall@10 of GET /neighbors against exact search, GET /neighbors latency at concurrency
   1 and 8 with Debian's `wrk` (a C load generator: it leaves the cores to the server),
   filtered by a label (10 %) and by a metadata bucket (1 %, POST /neighbors), and
   POST /items latency with no background job, during a merge and during a rebuild.
4. Bulk import: `corel-import` of Fashion-MNIST train images into a fresh server, next to
   raw onnxruntime on the same images, measured in the same run.

Prints markdown tables, the targets as measured ratios with PASS/MISS, and the command that
reproduces them; the full run writes benchmarks/results/item_search.md, .json and .png.
Progress goes to stderr with the elapsed time and the load average.

    python benchmarks/item_search.py                         # N = 1,000,000: 1-2 h on 2 cores
    python benchmarks/item_search.py --items 20000 --quick   # smoke test, not saved
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import gc
import gzip
import inspect
import json
import os
import platform
import re
import resource
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import faiss
import httpx
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable as a plain script from any folder

from corel.bundle import ENCODER_FILE, load_bundle  # noqa: E402
from corel.class_rule import l2_normalise  # noqa: E402
from harness.server import LocalServer, launch  # noqa: E402
from service.inference.runtime import session_options  # noqa: E402
from service.items.index import (  # noqa: E402
    BUILD_CHUNK,
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    ItemIndex,
)
from service.items.live_index import (  # noqa: E402
    EXACT_FILTER_MIN,
    EXACT_FILTER_SHARE,
    LiveIndex,
)
from service.items.merge_worker import DELTA_SHARE, MIN_DELTA  # noqa: E402
from service.items.sqlite_store import ItemStore  # noqa: E402
from service.items.types import IndexKind, NewItem  # noqa: E402
from service.settings import Settings  # noqa: E402

DEFAULT_BUNDLE = ROOT / "models" / "fashion-mnist-cosine"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "item_search.md"
CACHE = ROOT / "benchmarks" / ".cache" / "item_search"  # --cache changes it
FASHION_DIR = Path(os.environ.get("COREL_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))

K = 10
QUERIES = 1_000  # held-out test images: neither they nor their variants are indexed
CHUNK = 10_000  # items made per seeded step, so a smaller N is a prefix of a larger one
MAX_SHIFT, NOISE_SIGMA = 2, 6.0  # pixels; grey levels (0..255)
BUCKETS = 100  # values of the metadata field `bucket`: a 1 % filter
TIE_EPS = 1e-5  # a hit scoring within this of the exact k-th best counts (float ties)
HNSW_EF, QUICK_HNSW_EF = (32, 64, 128, 256, 512), (64, 128)
IVF_NPROBE, QUICK_IVF_NPROBE = (4, 8, 16, 32, 64, 128), (8, 32)
CLASS_NPROBE, QUICK_CLASS_NPROBE = (1, 2, 3, 5), (1, 3)
_DEFAULTS = inspect.signature(ItemIndex.__init__).parameters
SERVICE_EF, SERVICE_NPROBE = _DEFAULTS["ef_search"].default, _DEFAULTS["nprobe"].default
AUTO_THRESHOLD = Settings.model_fields["index_auto_threshold"].default
SNAPSHOT_MODEL = "item-search-benchmark"  # the model id in in-process snapshots
BUDGET, QUICK_BUDGET = 5.0, 0.3  # seconds of one-by-one queries per measurement
POST_BATCH = 8  # items per POST /items in the write-latency cells
WRITE_IMAGES = 64  # those items cycle through this many test images
SERVER_QUERIES, QUICK_SERVER_QUERIES = 300, 40  # stored ids whose neighbours are checked
IMPORT_ROWS, QUICK_IMPORT_ROWS = 60_000, 5_000  # Fashion-MNIST train images imported
SERVER_ENV = {"COREL_PROVIDER": "cpu", "COREL_LOG_LEVEL": "warning", "COREL_API_KEY": ""}

TARGET_RECALL, TARGET_SPEEDUP = 0.99, 100.0
TARGET_P99_MS, TARGET_IMPORT_SHARE = 10.0, 0.8
TARGET_WRITE_SLOWDOWN, TARGET_READY_S = 2.0, 30.0

CORES = os.cpu_count() or 1
OMP_NOTE = (
    "FAISS parallelises a search with OpenMP even for one query; on a busy machine each "
    "call then waits for a second thread to be scheduled, so one-by-one searches here run "
    "on one OpenMP thread (the table 'OpenMP threads for one query' shows the difference)"
)

_T0 = time.perf_counter()
_RUN_MARK = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def say(message: str) -> None:
    """A progress line on stderr: elapsed seconds and the 1-minute load average."""
    elapsed = time.perf_counter() - _T0
    print(f"[{elapsed:7.1f} s | load {load1():5.2f}] {message}", file=sys.stderr, flush=True)


def load1() -> float:
    return os.getloadavg()[0]


def every(seconds: float, what: str) -> Callable[[int, int], None]:
    """A `progress(done, total)` that says where it is at most every `seconds`."""
    last = [time.perf_counter()]

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        if done >= total or now - last[0] >= seconds:
            last[0] = now
            say(f"{what}: {done:,} of {total:,}")

    return report


# -- data -------------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip): two zero bytes, a type byte (0x08 = uint8), the number of
    dimensions, their sizes as big-endian uint32, then the values."""
    raw = gzip.decompress(path.read_bytes())
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise SystemExit(f"{path}: not an IDX file of uint8 values")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(folder: Path) -> tuple[np.ndarray, np.ndarray]:
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
        spec = load_bundle(bundle).manifest.input
        self.scale, self.offset = spec.scale, spec.offset
        self.session = ort.InferenceSession(
            str(bundle / ENCODER_FILE),
            options or ort.SessionOptions(),
            providers=["CPUExecutionProvider"],
        )
        self.name = self.session.get_inputs()[0].name
        self.items, self.seconds = 0, 0.0

    def __call__(self, pixels: np.ndarray, batch: int = 256) -> np.ndarray:  # (n, D)
        x = (pixels.astype(np.float32) * self.scale + self.offset)[:, None]  # (n, 1, 28, 28)
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


def dataset(n: int, seed: int, bundle: Path) -> Data:
    manifest = load_bundle(bundle).manifest
    model_id = manifest.files[ENCODER_FILE]
    folder = CACHE / f"data-{model_id[:12]}-seed{seed}"
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
    images, labels = fashion_mnist(FASHION_DIR)
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
        "date": _RUN_MARK,
        "load": load1(),
        "session": f"onnxruntime CPU, {os.cpu_count()} threads without spinning, batch 256",
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    say(f"data: {n:,} items embedded in {wall:.0f} s ({encoder.rate:,.0f} items/s in onnxruntime)")
    return meta


# -- exact search and recall ------------------------------------------------------------------


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


@dataclass
class Filter:
    """A query set's filter: which items each query may find, and the exact answer."""

    name: str
    share: float  # mean share of the items a query may find
    groups: list[tuple[np.ndarray, np.ndarray | None]]  # (query numbers, allowed seqs)
    allowed: list[np.ndarray | None]  # per query: allowed seqs (None: all)
    field: np.ndarray | None  # (N,) each item's value of the filtered field
    wanted: np.ndarray | None  # (Q,) the value each query asks for
    kth: np.ndarray  # (Q,) the exact k-th best admissible score


def make_filters(data: Data, unit: np.ndarray, unit_q: np.ndarray) -> list[Filter]:
    n, q = len(unit), len(unit_q)
    scores, _ = exact_topk(unit, unit_q, K)
    filters = [Filter("none", 1.0, [(np.arange(q), None)], [None] * q, None, None, scores[:, -1])]
    for name, values, wanted in (
        ("label (10 %)", data.labels, data.query_label),
        ("bucket (1 %)", data.buckets, data.query_bucket),
    ):
        groups: list[tuple[np.ndarray, np.ndarray | None]] = []
        allowed: list[np.ndarray | None] = [None] * q
        kth = np.zeros(q, np.float32)
        shares = []
        for value in np.unique(wanted):
            queries = np.flatnonzero(wanted == value)
            rows = np.flatnonzero(values == value)
            seqs = rows + 1
            groups.append((queries, seqs))
            for query in queries:
                allowed[query] = seqs
            kth[queries] = exact_topk(unit[rows], unit_q[queries], K)[0][:, -1]
            shares += [len(rows) / n] * len(queries)
        filters.append(Filter(name, float(np.mean(shares)), groups, allowed, values, wanted, kth))
    return filters


def recall_at_k(
    found: np.ndarray, unit: np.ndarray, unit_q: np.ndarray, filt: Filter
) -> float:  # found: (Q, K) seqs, -1 = none
    """Share of the exact top-k found: a returned item counts when it is admissible and
    scores at least the exact k-th best (less TIE_EPS), each item once."""
    hits = 0
    for q in range(len(found)):
        seqs = np.unique(found[q][found[q] >= 1])
        rows = seqs - 1
        if filt.field is not None and filt.wanted is not None:
            rows = rows[filt.field[rows] == filt.wanted[q]]
        sims = unit[rows] @ unit_q[q]
        hits += min(K, int((sims >= filt.kth[q] - TIE_EPS).sum()))
    return hits / (len(found) * K)


# -- index kinds in process -------------------------------------------------------------------


def rss_anon() -> int:
    """Anonymous resident bytes of this process (heap and anonymous maps, not file pages)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class BuildRow:
    kind: str
    structure: str
    build_s: float
    snapshot_bytes: int
    rss_bytes: int
    save_s: float
    load_s: float
    imbalance: float | None  # IVF: FAISS's imbalance factor of the list sizes (1 = even)
    load: float

    def cells(self, n: int) -> list[str]:
        return [
            self.kind,
            self.structure,
            f"{self.build_s:,.1f}",
            f"{self.snapshot_bytes / 2**20:,.0f}",
            f"{self.snapshot_bytes / n:,.0f}",
            f"{self.rss_bytes / n:,.0f}",
            f"{self.save_s:.1f}",
            f"{self.load_s:.1f}",
            "-" if self.imbalance is None else f"{self.imbalance:.2f}",
            f"{self.load:.2f}",
        ]


BUILD_COLUMNS = [
    "kind",
    "structure",
    "build s",
    "snapshot MiB",
    "snapshot bytes/item",
    "RSS growth bytes/item",
    "snapshot write s",
    "snapshot load s",
    "IVF list imbalance",
    "load",
]


@dataclass
class SearchRow:
    kind: str
    setting: str
    parameter: int | None
    per_filter: dict[str, dict[str, float]]  # filter -> recall, single q/s, batch q/s, agree
    speedup: float = 0.0  # single-query q/s over flat's (no filter)
    load: float = 0.0

    def cells(self) -> list[str]:
        out = [self.kind, self.setting]
        for name in ("none", "label (10 %)", "bucket (1 %)"):
            m = self.per_filter[name]
            out += [f"{m['recall']:.4f}", f"{m['single']:,.0f}", f"{m['batch']:,.0f}"]
            if name == "none":
                out.append(f"{self.speedup:,.1f}x")
        return [*out, f"{self.load:.2f}"]


SEARCH_COLUMNS = [
    "kind",
    "setting",
    "recall@10",
    "q/s 1 by 1",
    "q/s 1,000 at once",
    "x flat (1 by 1)",
    "recall@10 label 10 %",
    "q/s 1 by 1",
    "q/s batched",
    "recall@10 bucket 1 %",
    "q/s 1 by 1",
    "q/s batched",
    "load",
]


def build_index(kind: str, data: Data, class_vectors: np.ndarray) -> tuple[ItemIndex, str]:
    n, dim = data.vectors.shape
    seqs = np.arange(1, n + 1, dtype=np.int64)
    report = every(30, f"build {kind}")
    if kind != "ivf-classes":
        index = ItemIndex.build(
            dim,
            kind,  # type: ignore[arg-type]
            seqs,
            data.vectors,
            progress=report,
            use_gpu=False,
        )
        if kind == "hnsw":
            return index, f"HNSW M {HNSW_M}, efConstruction {HNSW_EF_CONSTRUCTION}"
        if kind == "ivf":
            return index, f"{index._index.nlist:,} lists, k-means"
        return index, "exact"
    centroids = np.ascontiguousarray(l2_normalise(class_vectors), np.float32)
    quantizer = faiss.IndexFlatIP(dim)
    quantizer.add(centroids)
    raw = faiss.IndexIVFFlat(quantizer, dim, len(centroids), faiss.METRIC_INNER_PRODUCT)
    raw.is_trained = True  # the class vectors are the centroids: nothing to learn
    raw.set_direct_map_type(faiss.DirectMap.Hashtable)  # as the service's IVF (removals)
    index = ItemIndex(dim, kind="ivf", raw=raw, use_gpu=False)
    for start in range(0, n, BUILD_CHUNK):
        index.add(seqs[start : start + BUILD_CHUNK], data.vectors[start : start + BUILD_CHUNK])
        report(min(n, start + BUILD_CHUNK), n)
    return index, f"{len(centroids)} lists, the class vectors"


def measure_build(
    kind: str, data: Data, class_vectors: np.ndarray, path: Path
) -> tuple[ItemIndex, BuildRow]:
    """Build, then write the snapshot to `path` and read it back, timing each."""
    gc.collect()
    before = rss_anon()
    started = time.perf_counter()
    index, structure = build_index(kind, data, class_vectors)
    build_s = time.perf_counter() - started
    gc.collect()
    grown = rss_anon() - before
    t = time.perf_counter()
    index.save(path, model_id=SNAPSHOT_MODEL, watermark=len(data.vectors))
    save_s = time.perf_counter() - t
    size = path.stat().st_size
    t = time.perf_counter()
    loaded = ItemIndex.load(path, model_id=SNAPSHOT_MODEL, dim=index.dim, use_gpu=False)
    load_s = time.perf_counter() - t
    del loaded
    imbalance = float(index._index.invlists.imbalance_factor()) if index.kind == "ivf" else None
    row = BuildRow(kind, structure, build_s, size, grown, save_s, load_s, imbalance, load1())
    say(
        f"built {kind} in {build_s:.1f} s: {size / len(data.vectors):,.0f} bytes/item snapshot,"
        f" {grown / len(data.vectors):,.0f} bytes/item RSS"
    )
    return index, row


def measure_search(
    index: ItemIndex | LiveIndex,
    data: Data,
    unit: np.ndarray,
    unit_q: np.ndarray,
    filt: Filter,
    budget: float,
    least: int,
    single_threads: int = 1,
) -> dict[str, float]:
    """recall@K of all queries at once (one call per filter value), and q/s at once and
    one by one (each call builds its own selector, as the service does), the latter until
    `budget` seconds are spent (at least `least` queries). Batched calls use every core;
    one-by-one calls `single_threads` OpenMP threads (see OMP_NOTE)."""
    found = np.full((len(unit_q), K), -1, np.int64)
    started = time.perf_counter()
    for queries, allowed in filt.groups:
        _, seqs = index.search(data.queries[queries], K, allowed=allowed)
        found[queries] = seqs
    batch_s = time.perf_counter() - started
    recall = recall_at_k(found, unit, unit_q, filt)
    order = np.random.default_rng(0).permutation(len(unit_q))
    spent, done, agree = 0.0, 0, 0
    faiss.omp_set_num_threads(single_threads)
    for q in order:
        t = time.perf_counter()
        _, seqs = index.search(data.queries[q : q + 1], K, allowed=filt.allowed[q])
        spent += time.perf_counter() - t
        done += 1
        agree += set(seqs[0].tolist()) == set(found[q].tolist())
        if done >= least and spent >= budget:
            break
    faiss.omp_set_num_threads(CORES)
    return {
        "recall": recall,
        "single": done / spent,
        "batch": len(unit_q) / batch_s,
        "agree": agree / done,  # one-by-one answers equal to the batched ones
        "single_queries": done,
    }


def in_process(
    data: Data, class_vectors: np.ndarray, quick: bool
) -> tuple[list[BuildRow], list[SearchRow], dict[str, float], list[dict[str, Any]]]:
    unit = l2_normalise(data.vectors)
    unit_q = l2_normalise(data.queries)
    say("exact answers (numpy brute force) for every query and filter")
    filters = make_filters(data, unit, unit_q)
    shares = {f.name: f.share for f in filters}
    budget, least = (QUICK_BUDGET, 5) if quick else (BUDGET, 20)
    sweeps: dict[str, tuple[str, tuple[int, ...]]] = {
        "flat": ("", (0,)),
        "hnsw": ("efSearch", QUICK_HNSW_EF if quick else HNSW_EF),
        "ivf": ("nprobe", QUICK_IVF_NPROBE if quick else IVF_NPROBE),
        "ivf-classes": ("nprobe", QUICK_CLASS_NPROBE if quick else CLASS_NPROBE),
    }
    builds, rows = [], []
    omp_rows: list[dict[str, Any]] = []
    flat_single = 0.0
    snapshots = Path(tempfile.mkdtemp(dir=CACHE, prefix="snapshots-"))
    for kind, (knob, values) in sweeps.items():
        say(f"build {kind} over {len(unit):,} vectors")
        snapshot = snapshots / f"{kind}.index"
        index, build = measure_build(kind, data, class_vectors, snapshot)
        builds.append(build)
        for value in values:
            if knob == "efSearch":
                index.ef_search = value
            elif knob == "nprobe":
                index.nprobe = value
            per_filter = {
                f.name: measure_search(index, data, unit, unit_q, f, budget, least) for f in filters
            }
            row = SearchRow(
                kind, f"{knob} {value}" if knob else "exact", value if knob else None, per_filter
            )
            if kind == "flat":
                flat_single = per_filter["none"]["single"]
            row.speedup = per_filter["none"]["single"] / flat_single if flat_single else 0.0
            row.load = load1()
            rows.append(row)
            say("  " + " | ".join(row.cells()))
            if (knob, value) in (("", 0), ("efSearch", SERVICE_EF), ("nprobe", SERVICE_NPROBE)):
                none = filters[0]
                many = measure_search(index, data, unit, unit_q, none, budget, least, CORES)
                omp_rows.append(
                    {
                        "kind": kind,
                        "setting": row.setting,
                        "threads": CORES,
                        "qps_all_threads": many["single"],
                        "qps_one_thread": per_filter["none"]["single"],
                        "load": load1(),
                    }
                )
                say(
                    f"  {kind} {row.setting} one by one on {CORES} OpenMP threads: "
                    f"{many['single']:,.0f} q/s"
                )
        del index
        gc.collect()
        if kind in ("hnsw", "ivf"):  # as the service searches: a LiveIndex on the snapshot
            live = live_index(kind, snapshot, len(unit), unit.shape[1])  # type: ignore[arg-type]
            per_filter = {
                f.name: measure_search(live, data, unit, unit_q, f, budget, least) for f in filters
            }
            live.close()
            del live
            default = SERVICE_EF if kind == "hnsw" else SERVICE_NPROBE
            row = SearchRow(f"{kind} (LiveIndex)", f"{knob} {default}", default, per_filter)
            row.speedup = per_filter["none"]["single"] / flat_single if flat_single else 0.0
            row.load = load1()
            rows.append(row)
            say("  " + " | ".join(row.cells()))
        snapshot.unlink()
    shutil.rmtree(snapshots, ignore_errors=True)
    return builds, rows, shares, omp_rows


def live_index(kind: IndexKind, snapshot: Path, n: int, dim: int) -> LiveIndex:
    """The service's search path over a built index: a LiveIndex opened on its snapshot
    (service defaults for efSearch and nprobe), in step with a store holding seqs 1..n."""
    live = LiveIndex(
        dim,
        setting=kind,
        snapshot_path=snapshot,
        model_id=SNAPSHOT_MODEL,
        read_store=lambda _: iter(()),
        auto_threshold=AUTO_THRESHOLD,
    )
    live.open(np.arange(1, n + 1, dtype=np.int64), lambda seqs: (seqs, np.zeros((0, dim))))
    return live


def equal_recall(rows: list[SearchRow]) -> list[dict[str, Any]]:
    """Each ivf-classes setting beside the fastest k-means IVF setting (one by one, no
    filter) that reaches at least its recall (or, if none does, the most accurate one)."""
    kmeans = [r for r in rows if r.kind == "ivf"]
    out = []
    for c in (r for r in rows if r.kind == "ivf-classes"):
        recall = c.per_filter["none"]["recall"]
        enough = [r for r in kmeans if r.per_filter["none"]["recall"] >= recall]
        if enough:
            best = max(enough, key=lambda r: r.per_filter["none"]["single"])
        else:
            best = max(kmeans, key=lambda r: r.per_filter["none"]["recall"])
        qps_c, qps_k = c.per_filter["none"]["single"], best.per_filter["none"]["single"]
        winner = "k-means" if enough and qps_k >= qps_c else "classes"
        out.append(
            {
                "classes": c.setting,
                "classes_recall": recall,
                "classes_qps": qps_c,
                "kmeans": best.setting,
                "kmeans_recall": best.per_filter["none"]["recall"],
                "kmeans_qps": qps_k,
                "winner": winner,
            }
        )
    return out


# -- the server: data directory, wrk, measurements --------------------------------------------


def pristine_data_dir(data: Data, bundle: Path, seed: int) -> tuple[Path, dict[str, Any]]:
    """A data directory holding the N items and an HNSW snapshot, built with the service's
    own classes; cached (copied before each use, since the server changes it)."""
    manifest = load_bundle(bundle).manifest
    model_id = manifest.files[ENCODER_FILE]
    n, dim = data.vectors.shape
    folder = CACHE / f"server-{model_id[:12]}-seed{seed}-n{n}"
    done = folder / "built.json"
    if done.exists():
        say(f"server data: cached in {folder}")
        return folder, {**json.loads(done.read_text()), "cached": True}
    shutil.rmtree(folder, ignore_errors=True)
    store = ItemStore(folder / "items.sqlite3")
    report = every(20, "server data: ItemStore.insert")
    started = time.perf_counter()
    for start in range(0, n, CHUNK):
        store.insert(
            [
                NewItem(
                    f"fm-{i}",
                    data.vectors[i],
                    data.label_names[data.labels[i]],
                    {"bucket": int(data.buckets[i])},
                )
                for i in range(start, min(n, start + CHUNK))
            ],
            model_id,
        )
        report(min(n, start + CHUNK), n)
    insert_s = time.perf_counter() - started
    # `auto` with the threshold at N: the flush is then a rebuild from the store to HNSW,
    # which reports its progress (a merge into an empty HNSW index would not).
    live = LiveIndex(
        dim,
        setting="auto",
        snapshot_path=folder / "items.index",
        model_id=model_id,
        read_store=lambda up_to: store.iter_vectors(model_id, up_to_seq=up_to),
        auto_threshold=min(AUTO_THRESHOLD, n),
    )

    def fetch(seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = store.vectors(model_id, seqs=seqs)
        return rows.seqs, rows.vectors.reshape(len(rows.seqs), dim)

    t = time.perf_counter()
    live.open(store.seqs(model_id), fetch)
    open_s = time.perf_counter() - t
    t = time.perf_counter()
    live.flush()
    flush_s = time.perf_counter() - t
    kind = live.kind
    live.close()
    store.close()
    built = {
        "items": n,
        "insert_s": round(insert_s, 1),
        "insert_items_per_s": round(n / insert_s),
        "open_s": round(open_s, 1),
        "flush_s": round(flush_s, 1),
        "kind": kind,
        "sqlite_bytes": (folder / "items.sqlite3").stat().st_size,
        "snapshot_bytes": (folder / "items.index").stat().st_size,
        "date": _RUN_MARK,
        "load": load1(),
    }
    done.write_text(json.dumps(built, indent=1))
    say(
        f"server data: insert {insert_s:.0f} s, open {open_s:.0f} s, flush ({kind}) {flush_s:.0f} s"
    )
    return folder, {**built, "cached": False}


def start_server(
    bundle: Path, data_dir: Path, kind: str, log: Path, extra: dict[str, str] | None = None
) -> tuple[LocalServer, float]:
    """`python -m service` on the data directory; seconds from process start to /readyz 200."""
    started = time.perf_counter()
    env = {**SERVER_ENV, "COREL_INDEX_KIND": kind, **(extra or {})}
    try:
        server = launch(bundle=bundle, data_dir=data_dir, log=log, env=env, timeout=1800)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from exc
    ready = time.perf_counter() - started
    say(f"server ({kind}) ready in {ready:.1f} s")
    return server, ready


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (Linux /proc): a
    server started with workers, or Milvus's launcher with etcd and Milvus under it."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, ValueError, IndexError):
        return total
    return total + sum(tree_cpu(int(c)) for c in children)


def children_cpu() -> float:
    """User + system CPU seconds of this process's finished children (wrk, corel-import)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def lua(text: str) -> str:
    return "[==[" + text + "]==]"


LUA_COMMON = """
local headers = {["Content-Type"] = "application/json"}
local n = 0
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
init = function(args)
  n = (tid or 0) * 7919
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %f %f %f %f %f %f %f\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def lua_cycle(requests: list[tuple[str, str, str | None]]) -> str:
    """A wrk script sending these (method, path, body) requests in turn."""
    rows = ",\n".join(
        f"{{{lua(m)}, {lua(p)}, {lua(b) if b is not None else 'nil'}}}" for m, p, b in requests
    )
    return (
        LUA_COMMON
        + f"local reqs = {{\n{rows}\n}}\n"
        + """request = function()
  n = n + 1
  local r = reqs[(n % #reqs) + 1]
  return wrk.format(r[1], r[2], headers, r[3])
end
"""
    )


def lua_writes(images_b64: list[str], prefix: str) -> str:
    """A wrk script posting POST_BATCH new items (tensor inputs) per request, unique ids."""
    rows = ",\n".join(lua(b) for b in images_b64)
    return (
        LUA_COMMON
        + f"local pixels = {{\n{rows}\n}}\nlocal prefix = {lua(prefix)}\nlocal B = {POST_BATCH}\n"
        + """request = function()
  n = n + 1
  local parts = {}
  for j = 1, B do
    local p = pixels[((n * B + j) % #pixels) + 1]
    parts[j] = '{"id":"' .. prefix .. tid .. '-' .. n .. '-' .. j ..
      '","input":{"tensor":{"b64":"' .. p .. '"}},"label":"written"}'
  end
  return wrk.format("POST", "/items", headers, '{"items":[' .. table.concat(parts, ",") .. ']}')
end
"""
    )


@dataclass
class WrkCell:
    what: str
    index: str
    connections: int
    requests: int = 0
    seconds: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    errors: int = 0
    server_cpu: float = float("nan")  # % of one core over the run
    client_cpu: float = float("nan")
    load: float = 0.0
    note: str = ""

    def cells(self) -> list[str]:
        rps = self.requests / self.seconds if self.seconds else 0.0
        return [
            self.what,
            self.index,
            str(self.connections),
            f"{self.requests:,}",
            f"{rps:,.0f}",
            f"{self.p50_ms:.1f}",
            f"{self.p99_ms:.1f}",
            f"{self.max_ms:.0f}",
            str(self.errors),
            f"{self.server_cpu:.0f}",
            f"{self.client_cpu:.0f}",
            f"{self.load:.2f}",
            self.note or "-",
        ]


WRK_COLUMNS = [
    "measurement",
    "index",
    "connections",
    "requests",
    "requests/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "errors",
    "server CPU %",
    "wrk CPU %",
    "load",
    "note",
]


def run_wrk(server: LocalServer, script: str, cell: WrkCell, seconds: int, work: Path) -> WrkCell:
    path = work / f"wrk-{time.monotonic_ns()}.lua"
    path.write_text(script)
    threads = min(2, cell.connections)
    command = ["wrk", "-t", str(threads), "-c", str(cell.connections), "-d", f"{seconds}s"]
    command += ["--timeout", "30s", "-s", str(path), server.url]
    server0, client0 = process_cpu(server.process.pid), children_cpu()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 300)
    wall = time.perf_counter() - started
    server1, client1 = process_cpu(server.process.pid), children_cpu()
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(
            f"wrk failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    requests, duration_us, p50, p99, worst, status, socket = map(float, line.split()[1:])
    cell.requests, cell.seconds = int(requests), duration_us / 1e6
    cell.p50_ms, cell.p99_ms, cell.max_ms = p50 / 1000, p99 / 1000, worst / 1000
    cell.errors = int(status + socket)
    cell.server_cpu = 100 * (server1 - server0) / wall
    cell.client_cpu = 100 * (client1 - client0) / wall
    cell.load = load1()
    path.unlink()
    say("  " + " | ".join(cell.cells()))
    return cell


def index_state(client: httpx.Client) -> dict[str, Any]:
    """GET /items?limit=1 → index → index: kind, sizes, the running job."""
    answer = client.get("/items", params={"limit": 1})
    answer.raise_for_status()
    state: dict[str, Any] = answer.json()["index"]["index"] or {}
    return state


def jobs_done(client: httpx.Client) -> float:
    """Background index jobs finished so far (Prometheus counter, all kinds of job)."""
    text = client.get("/metrics").text
    pattern = r'^corel_index_jobs_total\{[^}]*outcome="done"[^}]*\} ([0-9.e+]+)$'
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE))


class JobWatch:
    """Polls /metrics (cheap) while a measurement runs: when did the running job finish?"""

    def __init__(self, client: httpx.Client) -> None:
        self.client, self.before = client, jobs_done(client)
        self.finished: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.25):
            if self.finished is None and jobs_done(self.client) > self.before:
                self.finished = time.perf_counter()

    def __enter__(self) -> JobWatch:
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.ended = time.perf_counter()
        self._stop.set()
        self._thread.join()

    def coverage(self) -> float:
        """Share of the watched window during which the job was still running."""
        end = self.ended if self.finished is None else min(self.finished, self.ended)
        return max(0.0, end - self.started) / max(self.ended - self.started, 1e-9)


def wait_for_job(client: httpx.Client, timeout: float) -> dict[str, Any] | None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        job = index_state(client).get("job")
        if job:
            return dict(job)
        time.sleep(0.5)
    return None


def wait_until_idle(client: httpx.Client, before: float, timeout: float) -> float | None:
    """Wait until the jobs-done counter passes `before`; when it did (perf_counter)."""
    deadline = time.perf_counter() + timeout
    report = every(30, "waiting for the background job")
    while time.perf_counter() < deadline:
        if jobs_done(client) > before:
            return time.perf_counter()
        state = index_state(client)
        job = state.get("job")
        if job:
            report(int(job["done"]), int(job["total"]))
        elif jobs_done(client) > before:
            return time.perf_counter()
        time.sleep(2)
    return None


def post_vectors(client: httpx.Client, data: Data, count: int, prefix: str) -> float:
    """POST /items with `count` raw vectors (copies of stored ones under new ids), 1,024 per
    request; seconds taken."""
    started = time.perf_counter()
    n = len(data.vectors)
    for start in range(0, count, 1024):
        items = [
            {
                "id": f"{prefix}-{i}",
                "vector": data.vectors[i % n].tolist(),
                "label": data.label_names[data.labels[i % n]],
                "metadata": {"bucket": int(data.buckets[i % n])},
            }
            for i in range(start, min(count, start + 1024))
        ]
        answer = client.post("/items", json={"items": items}, timeout=300)
        if answer.status_code != 201:
            raise SystemExit(f"POST /items: {answer.status_code} {answer.text[:500]}")
    return time.perf_counter() - started


def server_recall(
    client: httpx.Client,
    data: Data,
    unit: np.ndarray,
    count: int,
    seed: int,
    budget: float,
    filters: tuple[str, ...] = ("none", "label (10 %)", "bucket (1 %)"),
) -> dict[str, float]:
    """recall@10 of the server's neighbours of up to `count` stored items per filter (none,
    label via GET, bucket via POST /neighbors; at least 10, else until `budget` seconds are
    spent) against exact search; mean ms per request. The stored items asked depend only
    on `seed` and `count`, so two servers holding the same items are asked the same."""
    rng = np.random.default_rng([seed, 77])
    rows = rng.choice(len(unit), count, replace=False)
    labels = rng.integers(0, 10, count)
    buckets = rng.integers(0, BUCKETS, count)
    out: dict[str, float] = {}
    for name in filters:
        hits, spent, asked = 0, 0.0, 0
        for row, label, bucket in zip(rows, labels, buckets, strict=True):
            if asked >= 10 and spent >= budget:
                break
            asked += 1
            item = f"fm-{row}"
            t = time.perf_counter()
            if name == "bucket (1 %)":
                body = {
                    "queries": [{"id": item}],
                    "k": K,
                    "filter": {"metadata": {"bucket": int(bucket)}},
                }
                answer = client.post("/neighbors", json=body)
                found = (
                    answer.json()["results"][0]["neighbors"] if answer.status_code == 200 else []
                )
            else:
                params: dict[str, Any] = {"id": item, "k": K}
                if name == "label (10 %)":
                    params["label"] = data.label_names[label]
                answer = client.get("/neighbors", params=params)
                found = answer.json()["neighbors"] if answer.status_code == 200 else []
            spent += time.perf_counter() - t
            if answer.status_code != 200:
                raise SystemExit(f"/neighbors: {answer.status_code} {answer.text[:300]}")
            allowed = np.ones(len(unit), bool)
            if name == "label (10 %)":
                allowed = data.labels == label
            elif name == "bucket (1 %)":
                allowed = data.buckets == bucket
            allowed[row] = False  # a stored item is not its own neighbour
            candidates = np.flatnonzero(allowed)
            kth = exact_topk(unit[candidates], unit[row : row + 1], K)[0][0, -1]
            got = np.array(
                sorted({int(h["id"][3:]) for h in found if h["id"].startswith("fm-")}), np.int64
            )
            got = got[allowed[got]] if len(got) else got
            sims = unit[got] @ unit[row] if len(got) else np.zeros(0)
            hits += min(K, int((sims >= kth - TIE_EPS).sum()))
        out[name] = hits / (asked * K)
        out[f"{name} ms"] = 1000 * spent / asked
        out[f"{name} queries"] = asked
    say(
        "server recall@10: "
        + ", ".join(f"{k} {v:.4f}" for k, v in out.items() if "%" in k or k == "none")
    )
    return out


def neighbour_scripts(data: Data, seed: int) -> dict[str, str]:
    rng = np.random.default_rng([seed, 78])
    rows = rng.choice(len(data.vectors), min(1000, len(data.vectors)), replace=False)
    labels = rng.integers(0, 10, len(rows))
    buckets = rng.integers(0, BUCKETS, len(rows))
    plain = [("GET", f"/neighbors?id=fm-{r}&k={K}", None) for r in rows]
    by_label = [
        ("GET", f"/neighbors?id=fm-{r}&k={K}&label={quote(data.label_names[c])}", None)
        for r, c in zip(rows, labels, strict=True)
    ]
    by_bucket = [
        (
            "POST",
            "/neighbors",
            json.dumps(
                {"queries": [{"id": f"fm-{r}"}], "k": K, "filter": {"metadata": {"bucket": int(b)}}}
            ),
        )
        for r, b in zip(rows, buckets, strict=True)
    ]
    return {"none": lua_cycle(plain), "label": lua_cycle(by_label), "bucket": lua_cycle(by_bucket)}


def write_images(count: int) -> list[str]:
    images, _ = fashion_mnist(FASHION_DIR)
    return [base64.b64encode(images[-1 - n].tobytes()).decode() for n in range(count)]


@dataclass
class ServerResults:
    build: dict[str, Any] = field(default_factory=dict)
    ready: list[dict[str, Any]] = field(default_factory=list)
    recall: dict[str, float] = field(default_factory=dict)
    cells: list[WrkCell] = field(default_factory=list)
    jobs: dict[str, Any] = field(default_factory=dict)
    kill: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def through_server(data: Data, bundle: Path, seed: int, quick: bool, work: Path) -> ServerResults:
    res = ServerResults()
    pristine, res.build = pristine_data_dir(data, bundle, seed)
    data_dir = work / "data"
    say("server data: copying the pristine data directory")
    shutil.copytree(pristine, data_dir, ignore=shutil.ignore_patterns("built.json"))
    unit = l2_normalise(data.vectors)
    seconds = 1 if quick else 10  # wrk runs
    scripts = neighbour_scripts(data, seed)
    images = write_images(WRITE_IMAGES)
    n = len(data.vectors)

    def ready_row(kind: str, when: str, secs: float, server: LocalServer) -> None:
        with server.client() as client:
            state = index_state(client)
        res.ready.append(
            {
                "setting": kind,
                "when": when,
                "seconds": secs,
                "index": state.get("kind"),
                "main": state.get("main"),
                "delta": state.get("delta"),
                "load": load1(),
            }
        )

    # -- HNSW: reads, writes with and without a merge, kill -9 during writes --------------
    server, secs = start_server(bundle, data_dir, "hnsw", work / "server-hnsw.log")
    try:
        ready_row("hnsw", "start on the offline-built data directory", secs, server)
        with server.client() as client:
            t = time.perf_counter()
            index_state(client)
            res.jobs["get_items_s"] = time.perf_counter() - t
            count = QUICK_SERVER_QUERIES if quick else SERVER_QUERIES
            res.recall = server_recall(client, data, unit, count, seed, 10 if quick else 120)
        for what, script, connections in (
            ("GET /neighbors", scripts["none"], 1),
            ("GET /neighbors", scripts["none"], 8),
            ("GET /neighbors label (10 %)", scripts["label"], 1),
            ("POST /neighbors bucket (1 %)", scripts["bucket"], 1),
        ):
            res.cells.append(
                run_wrk(server, script, WrkCell(what, "hnsw", connections), seconds, work)
            )
        with server.client() as client:
            state = index_state(client)
            if state.get("job"):
                wait_until_idle(client, jobs_done(client), 3600)
            with JobWatch(client) as watch:
                cell = WrkCell(f"POST /items ({POST_BATCH} images)", "hnsw", 1, note="no job")
                res.cells.append(run_wrk(server, lua_writes(images, "w0-"), cell, seconds, work))
            if watch.finished is not None or index_state(client).get("job"):
                cell.note = "a job ran (not a clean baseline)"
            state = index_state(client)
            limit = max(MIN_DELTA, int(DELTA_SHARE * state["main"]))
            need = max(0, limit - state["delta"]) + 64
            say(f"merge: adding {need:,} vectors to pass the merge limit ({limit:,})")
            res.jobs["merge_items"] = need
            res.jobs["merge_post_s"] = post_vectors(client, data, need, "merge")
            before = jobs_done(client)
            job = wait_for_job(client, 60)
            res.jobs["merge_job"] = job
            with JobWatch(client) as watch:
                cell = WrkCell(f"POST /items ({POST_BATCH} images)", "hnsw", 1)
                res.cells.append(run_wrk(server, lua_writes(images, "w1-"), cell, seconds, work))
            share = watch.coverage()
            cell.note = (
                f"during a merge of {need:,} into {state['main']:,} ({share:.0%} of the run)"
            )
            end = wait_until_idle(client, before, 3600)
            if job and end:
                res.jobs["merge_s"] = time.time() - job["started"] - (time.perf_counter() - end)
            say(f"merge done: {res.jobs.get('merge_s', float('nan')):.1f} s")
        # kill -9 while a client is writing, then time the restart
        acked: list[str] = []
        stop = threading.Event()

        def writer() -> None:
            with server.client() as client:
                batch = 0
                while not stop.is_set():
                    items = [
                        {
                            "id": f"k9-{batch}-{j}",
                            "vector": data.vectors[(batch * 8 + j) % n].tolist(),
                        }
                        for j in range(8)
                    ]
                    try:
                        answer = client.post("/items", json={"items": items})
                    except httpx.HTTPError:
                        return
                    if answer.status_code == 201:
                        acked.append(f"k9-{batch}-0")
                    batch += 1

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        time.sleep(1 if quick else 3)
        server.kill()
        stop.set()
        thread.join(30)
        say(f"kill -9 after {len(acked)} acknowledged writes of 8 items")
    finally:
        server.stop()
    server, secs = start_server(bundle, data_dir, "hnsw", work / "server-hnsw-after-kill.log")
    try:
        ready_row("hnsw", "restart after kill -9 during writes", secs, server)
        with server.client() as client:
            lost = [a for a in acked if client.get(f"/items/{a}").status_code != 200]
        res.kill = {"acknowledged_batches": len(acked), "lost": len(lost)}
        with server.client() as client:
            res.kill["total_items"] = client.get("/items", params={"limit": 1}).json()["total"]
    finally:
        server.stop()

    # -- auto: what a default server does at this size ---------------------------------------
    server, secs = start_server(bundle, data_dir, "auto", work / "server-auto.log")
    try:
        ready_row("auto", "restart (graceful stop before)", secs, server)
        kind = res.ready[-1]["index"]
        res.cells.append(
            run_wrk(
                server,
                scripts["none"],
                WrkCell("GET /neighbors", f"auto ({kind})", 1),
                seconds,
                work,
            )
        )
    finally:
        server.stop()

    # -- HNSW again, each search on one OpenMP thread (OMP_NOTE) -------------------------------
    one = "hnsw, OMP_NUM_THREADS=1"
    log = work / "server-hnsw-omp1.log"
    server, secs = start_server(bundle, data_dir, "hnsw", log, {"OMP_NUM_THREADS": "1"})
    try:
        ready_row(one, "restart (graceful stop before)", secs, server)
        for what, script, connections in (
            ("GET /neighbors", scripts["none"], 1),
            ("GET /neighbors", scripts["none"], 8),
            ("GET /neighbors label (10 %)", scripts["label"], 1),
        ):
            cell = WrkCell(what, one, connections)
            res.cells.append(run_wrk(server, script, cell, seconds, work))
    finally:
        server.stop()

    # -- a rebuild from the store: the kind changes to IVF ------------------------------------
    server, secs = start_server(bundle, data_dir, "ivf", work / "server-ivf.log")
    try:
        ready_row("ivf", "restart, then a rebuild from the store to IVF", secs, server)
        with server.client() as client:
            job = wait_for_job(client, 60)
            res.jobs["rebuild_job"] = job
            with JobWatch(client) as watch:
                cell = WrkCell(f"POST /items ({POST_BATCH} images)", "hnsw, rebuilding to ivf", 1)
                res.cells.append(run_wrk(server, lua_writes(images, "w2-"), cell, seconds, work))
            cell.note = (
                f"during a rebuild of {n:,} from the store ({watch.coverage():.0%} of the run)"
            )
            if job is None:
                cell.note = "no rebuild seen"
            res.jobs["rebuild_after_window"] = index_state(client).get("job")
    finally:
        server.stop()
    return res


# -- bulk import ------------------------------------------------------------------------------


def raw_rate(bundle: Path, pixels: np.ndarray) -> dict[str, float]:
    """onnxruntime items/s on these images at batch 1,024: default session options and the
    service's own (COREL_THREADS default, no spinning)."""
    out = {}
    for name, options in (("default", None), ("as served", session_options(0))):
        encoder = Encoder(bundle, options)
        encoder(pixels[:2048], batch=1024)  # warm-up
        encoder.items, encoder.seconds = 0, 0.0
        encoder(pixels, batch=1024)
        out[name] = encoder.rate
    return out


def bulk_import(
    bundle: Path, rows: int, work: Path, env: dict[str, str] | None = None, name: str = "import"
) -> dict[str, Any]:
    """corel-import of `rows` train images into a fresh server (its settings plus `env`,
    e.g. COREL_STORE=milvus), between two raw onnxruntime runs on the same images; `name`
    keeps the data directory, log and state file apart from another import's in `work`."""
    images, _ = fashion_mnist(FASHION_DIR)
    pixels = images[:rows]  # the train split comes first
    say(f"{name}: raw onnxruntime on {rows:,} train images")
    raw = [raw_rate(bundle, pixels)]
    data_dir = work / f"{name}-data"
    server, _ = start_server(bundle, data_dir, "auto", work / f"server-{name}.log", env)
    try:
        command = [sys.executable, "-m", "service.importer", "--fashion-mnist", str(FASHION_DIR)]
        command += ["--split", "train", "--url", server.url, "--quiet"]
        command += ["--state", str(work / f"{name}-state.json")]
        if rows < IMPORT_ROWS:
            command += ["--limit", str(rows)]
        say(f"{name}: {shlex.join(command[1:])}")
        server0, client0 = process_cpu(server.process.pid), children_cpu()
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=3600)
        wall = time.perf_counter() - started
        server1, client1 = process_cpu(server.process.pid), children_cpu()
        if done.returncode != 0:
            raise SystemExit(f"corel-import failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        with server.client() as client:
            stored = client.get("/items", params={"limit": 1}).json()["total"]
            state = index_state(client)
    finally:
        server.stop()
    raw.append(raw_rate(bundle, pixels))
    best_raw = max(max(r.values()) for r in raw)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    own = re.search(r", ([0-9.]+) s, [0-9,]+ items/s", summary)
    seconds = float(own.group(1)) if own else wall  # from its first batch to its last answer
    result = {
        "rows": rows,
        "stored": stored,
        "wall_s": wall,
        "seconds": seconds,
        "items_per_s": rows / seconds,
        "summary": summary,
        "raw": raw,
        "raw_best": best_raw,
        "share": rows / wall / best_raw,
        "server_cpu": 100 * (server1 - server0) / wall,
        "client_cpu": 100 * (client1 - client0) / wall,
        "index_after": {k: state.get(k) for k in ("kind", "main", "delta")},
        "load": load1(),
    }
    say(f"{name}: {result['items_per_s']:,.0f} items/s, raw onnxruntime {best_raw:,.0f} items/s")
    return result


# -- the report -------------------------------------------------------------------------------


def md_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**MISS**"


def targets(
    n: int,
    rows: list[SearchRow],
    server: ServerResults | None,
    imported: dict[str, Any] | None,
) -> list[str]:
    lines = ["| target | measured | target | verdict | note |", "|---|---|---|---|---|"]
    if rows:
        approx = [r for r in rows if r.kind != "flat"]
        good = [r for r in approx if r.per_filter["none"]["recall"] >= TARGET_RECALL]
        both = [r for r in good if r.speedup >= TARGET_SPEEDUP]
        if both:
            best = max(both, key=lambda r: r.speedup)
            note = "meeting both: " + ", ".join(f"{r.kind} {r.setting}" for r in both)
        elif good:
            best = max(good, key=lambda r: r.speedup)
            note = f"recall >= {TARGET_RECALL} only below {TARGET_SPEEDUP:g}x"
        else:
            best = max(approx, key=lambda r: r.per_filter["none"]["recall"])
            note = f"no approximate setting reaches recall {TARGET_RECALL}"
        lines.append(
            f"| approximate recall@10 at >= {TARGET_SPEEDUP:g}x flat's one-by-one q/s, "
            f"N={n:,} | {best.kind} {best.setting}: recall "
            f"{best.per_filter['none']['recall']:.4f} at {best.speedup:,.1f}x | recall >= "
            f"{TARGET_RECALL}, >= {TARGET_SPEEDUP:g}x | {verdict(bool(both))} | {note} |"
        )
        for name in ("label (10 %)", "bucket (1 %)"):
            service_kind = "hnsw (LiveIndex)" if n >= AUTO_THRESHOLD else "flat"
            service = next((r for r in rows if r.kind == service_kind), None)
            passing = [
                f"{r.kind} {r.setting}"
                for r in rows
                if r.per_filter[name]["recall"] >= TARGET_RECALL
            ]
            if service is not None:
                recall = service.per_filter[name]["recall"]
                lines.append(
                    f"| filtered recall@10, {name}, in process, as the service searches at N "
                    f"({service.kind} {service.setting}) | {recall:.4f} | >= "
                    f"{TARGET_RECALL} | {verdict(recall >= TARGET_RECALL)} | settings that "
                    f"pass: {', '.join(passing) or 'none'} |"
                )
    if server is not None:
        for name in ("label (10 %)", "bucket (1 %)"):
            recall = server.recall[name]
            lines.append(
                f"| filtered recall@10, {name}, through the server (GET/POST /neighbors, "
                f"hnsw) | {recall:.4f} | >= {TARGET_RECALL} | "
                f"{verdict(recall >= TARGET_RECALL)} | the service answers exactly when a "
                f"filter allows <= max({EXACT_FILTER_MIN:,}, {EXACT_FILTER_SHARE:.0%} of main) |"
            )
        for plain in (c for c in server.cells if c.what == "GET /neighbors" and c.connections == 1):
            lines.append(
                f"| GET /neighbors p99, concurrency 1, no filter, N={n:,}, {plain.index} | "
                f"{plain.p99_ms:.1f} ms | <= {TARGET_P99_MS:g} ms | "
                f"{verdict(plain.p99_ms <= TARGET_P99_MS)} | p50 {plain.p50_ms:.1f} ms |"
            )
        writes = [c for c in server.cells if c.what.startswith("POST /items")]
        base = writes[0]
        for during in writes[1:]:
            ratio = during.p99_ms / base.p99_ms if base.p99_ms else float("inf")
            lines.append(
                f"| POST /items p99, {during.note} / no job | {during.p99_ms:.1f} / "
                f"{base.p99_ms:.1f} ms = {ratio:.2f}x | <= {TARGET_WRITE_SLOWDOWN:g}x | "
                f"{verdict(ratio <= TARGET_WRITE_SLOWDOWN)} | |"
            )
        for ready in server.ready:
            if ready["setting"] in ("hnsw", "auto"):
                ok = ready["seconds"] <= TARGET_READY_S
                lines.append(
                    f"| process start to /readyz 200, {ready['setting']}: {ready['when']} | "
                    f"{ready['seconds']:.1f} s | <= {TARGET_READY_S:g} s | {verdict(ok)} | "
                    f"{ready['index']}, main {ready['main']:,}, delta {ready['delta']:,} |"
                )
    if imported is not None:
        share = imported["share"]
        lines.append(
            f"| corel-import items/s (process start to exit) / raw onnxruntime items/s, "
            f"{imported['rows']:,} images | "
            f"{imported['rows'] / imported['wall_s']:,.0f} / {imported['raw_best']:,.0f} = "
            f"{share:.2f} | >= "
            f"{TARGET_IMPORT_SHARE:g} | {verdict(share >= TARGET_IMPORT_SHARE)} | |"
        )
    return lines


def machine(load_before: str, load_after: str, note: str | None) -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    lines = [
        f"- Date: {_RUN_MARK}",
        f"- Machine: {os.cpu_count()} CPUs, {cpu}, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; Python "
        f"{platform.python_version()}, faiss {faiss.__version__}, onnxruntime {ort.__version__}",
        f"- `uptime` before: `{load_before}`",
        f"- `uptime` after: `{load_after}`",
        "- **Shared machine**: other work ran beside this benchmark (see the load column of "
        "every row, the 1-minute load average when the row was measured, on "
        f"{os.cpu_count()} CPUs). Absolute speeds are low and noisy; the ratios measured "
        "side by side are the figures to read.",
    ]
    if note:
        lines.append(f"- Note: {note}")
    return lines


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def plot(rows: list[SearchRow], path: Path, n: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
    for ax, name in zip(axes, ("none", "label (10 %)", "bucket (1 %)"), strict=True):
        for kind, marker in (("flat", "s"), ("hnsw", "o"), ("ivf", "^"), ("ivf-classes", "v")):
            mine = [r for r in rows if r.kind == kind]
            ax.plot(
                [r.per_filter[name]["single"] for r in mine],
                [r.per_filter[name]["recall"] for r in mine],
                marker=marker,
                label=kind,
            )
        ax.axhline(TARGET_RECALL, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("queries/s, one by one")
        ax.set_title(f"filter: {name}")
    axes[0].set_ylabel("recall@10")
    axes[0].legend()
    fig.suptitle(f"Fashion-MNIST embeddings, N = {n:,}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(
    args: argparse.Namespace,
    data: Data,
    builds: list[BuildRow],
    rows: list[SearchRow],
    shares: dict[str, float],
    omp_rows: list[dict[str, Any]],
    server: ServerResults | None,
    imported: dict[str, Any] | None,
    load_before: str,
    command: str,
) -> str:
    n = len(data.vectors)
    e = data.embedding
    lines = [
        f"# Item search at {n:,} items",
        "",
        "## Data",
        "",
        f"{n:,} items: the embeddings of {min(n, 69_000):,} Fashion-MNIST images (all but "
        f"{QUERIES:,} held-out test images), then seeded variants of them (shifts up to "
        f"{MAX_SHIFT} px, left-right flips, Gaussian pixel noise sigma {NOISE_SIGMA:g}). Queries: "
        f"one variant of each held-out image ({QUERIES:,}), not in the index. Embedding: "
        f"{e['onnxruntime_items_per_s']:,} items/s in onnxruntime ({e['session']}), "
        f"{e['items_per_s_with_augmentation']:,} items/s with the augmentation, "
        f"{e['seconds']:,} s for {e['items']:,} items on {e['date']} at load {e['load']:.2f}"
        + (" (cached from that run)" if e["cached"] else "")
        + ". Filters: `label` is a random class per query (mean share "
        f"{shares.get('label (10 %)', 0.1):.1%}, the hard case: mostly another class than "
        f"the query's own), `bucket` a random metadata bucket per query (share "
        f"{shares.get('bucket (1 %)', 0.01):.1%}).",
        "",
    ]
    if builds:
        lines += [
            "## Index kinds in process",
            "",
            *md_table(BUILD_COLUMNS, [b.cells(n) for b in builds]),
            "",
            *md_table(SEARCH_COLUMNS, [r.cells() for r in rows]),
            "",
            f"recall@10 against numpy brute force over the same unit vectors (a hit within "
            f"{TIE_EPS:g} of the k-th best score counts). Rows named by a kind search the "
            "FAISS index itself (`ItemIndex.search`, a filter as `allowed=`, which builds an "
            "IDSelectorBatch per call); `(LiveIndex)` rows search as the service does "
            "(`LiveIndex.search` on the same index's snapshot: a filter allowing at most "
            f"max({EXACT_FILTER_MIN:,}, {EXACT_FILTER_SHARE:.0%} of main) is answered exactly, "
            "a wider one on an approximate index over-fetches unfiltered hits). One by one: "
            "one call per query, until "
            f"{QUICK_BUDGET if args.quick else BUDGET:g} s are spent; batched: one call "
            "for all 1,000 queries, "
            "or one per filter value. Memory: snapshot bytes (what `items.index` holds) and "
            "the growth of this process's anonymous RSS over the build.",
            "",
            f"{OMP_NOTE}.",
            "",
            "| kind | setting | q/s 1 by 1, all OpenMP threads | q/s 1 by 1, one thread | load |",
            "|---|---|---|---|---|",
            *(
                f"| {o['kind']} | {o['setting']} | {o['qps_all_threads']:,.0f} "
                f"({o['threads']} threads) | {o['qps_one_thread']:,.0f} | {o['load']:.2f} |"
                for o in omp_rows
            ),
            "",
            "### ivf-classes (class vectors as coarse centroids) against k-means IVF",
            "",
            "| ivf-classes | recall@10 | q/s 1 by 1 | k-means IVF at >= that recall | recall@10 "
            "| q/s 1 by 1 | faster |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {c['classes']} | {c['classes_recall']:.4f} | {c['classes_qps']:,.0f} | "
                f"{c['kmeans']} | {c['kmeans_recall']:.4f} | {c['kmeans_qps']:,.0f} | "
                f"{c['winner']} |"
                for c in equal_recall(rows)
            ),
            "",
        ]
    if server is not None:
        b = server.build
        lines += [
            "## Through the server",
            "",
            "Data directory built offline with the service's classes "
            f"({'cached from ' + b['date'] if b.get('cached') else 'this run'}): "
            f"ItemStore.insert {b['insert_items_per_s']:,} items/s ({b['insert_s']:,} s), "
            f"LiveIndex open (catch-up of every item into the delta) {b['open_s']:,} s, "
            f"flush to {b['kind']} {b['flush_s']:,} s; SQLite {b['sqlite_bytes'] / 2**20:,.0f} "
            f"MiB, snapshot {b['snapshot_bytes'] / 2**20:,.0f} MiB.",
            "",
            "| setting | when | process start to /readyz 200 s | index then | main | delta "
            "| load |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {r['setting']} | {r['when']} | {r['seconds']:.1f} | {r['index']} | "
                f"{r['main']:,} | {r['delta']:,} | {r['load']:.2f} |"
                for r in server.ready
            ),
            "",
            f"kill -9 during writes: {server.kill.get('acknowledged_batches', 0)} batches "
            f"acknowledged (201) before the kill, {server.kill.get('lost', 0)} of them missing "
            "after the restart.",
            "",
            "| filter | stored items asked | server recall@10 | mean ms (httpx, one by one) |",
            "|---|---|---|---|",
            *(
                f"| {name} | {server.recall[name + ' queries']:.0f} | {server.recall[name]:.4f} "
                f"| {server.recall[name + ' ms']:.1f} |"
                for name in ("none", "label (10 %)", "bucket (1 %)")
            ),
            "",
            *md_table(WRK_COLUMNS, [c.cells() for c in server.cells]),
            "",
            "wrk cycles through 1,000 random stored ids (`k=10`); label filters are a random "
            "class, bucket filters a random metadata bucket (POST /neighbors, since GET takes "
            f"only a label). POST /items: {POST_BATCH} new items per request, each a tensor "
            "input (28x28 uint8, base64), so every request also runs the encoder. Server: "
            "one `python -m service` process, COREL_PROVIDER=cpu, COREL_LOG_LEVEL=warning. "
            f"A merge starts when the delta passes max({MIN_DELTA:,}, {DELTA_SHARE:.0%} of "
            "main); the rebuild is the start with COREL_INDEX_KIND=ivf on the HNSW snapshot. "
            f"GET /items (which reports the job) took {server.jobs.get('get_items_s', 0):.2f} s.",
            "",
        ]
        lines += [f"- {note}" for note in server.notes]
    if imported is not None:
        raw = imported["raw"]
        lines += [
            "## Bulk import",
            "",
            "| measurement | items | seconds | items/s | server CPU % | client CPU % | load |",
            "|---|---|---|---|---|---|---|",
            f"| corel-import (2 requests of 1,024 in flight) into a fresh server (auto) | "
            f"{imported['rows']:,} | {imported['seconds']:.1f} | {imported['items_per_s']:,.0f} | "
            f"{imported['server_cpu']:.0f} | {imported['client_cpu']:.0f} | "
            f"{imported['load']:.2f} |",
            *(
                f"| raw onnxruntime, batch 1,024, {name} session options ({when}) | "
                f"{imported['rows']:,} | {imported['rows'] / r[name]:.1f} | {r[name]:,.0f} | - | - "
                "| - |"
                for when, r in zip(("before", "after"), raw, strict=True)
                for name in r
            ),
            "",
            f"corel-import's own line: `{imported['summary']}` (its seconds are used; the "
            f"process took {imported['wall_s']:.1f} s from start to exit). The index after: "
            f"{imported['index_after']}. CPU % is of one core over the process's run.",
            "",
        ]
    lines += [
        "## Targets",
        "",
        *targets(n, rows, server, imported),
        "",
        *machine(load_before, uptime(), args.note),
        "",
        f"Reproduce: `{command}`",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    global CACHE
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000, help="N (default 1,000,000)")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: fewer settings, 0.3 s timings, 1 s wrk runs, a 5,000-image import; "
        "not saved unless --out is given",
    )
    parser.add_argument(
        "--import-rows",
        type=int,
        help=f"train images the bulk import sends (default {IMPORT_ROWS:,}, quick "
        f"{QUICK_IMPORT_ROWS:,}; at most {IMPORT_ROWS:,})",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["index", "server", "import"],
        help="leave out a part (repeatable)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"markdown file to write, with .json and .png beside it (default "
        f"{DEFAULT_OUT.relative_to(ROOT)}; quick mode writes none unless given)",
    )
    parser.add_argument(
        "--cache", type=Path, default=CACHE, help="embeddings and data directories (%(default)s)"
    )
    parser.add_argument("--note", help="a line for the results file, e.g. what else ran")
    args = parser.parse_args(argv)
    import_rows = args.import_rows or (QUICK_IMPORT_ROWS if args.quick else IMPORT_ROWS)
    if not 0 < import_rows <= IMPORT_ROWS:
        parser.error(f"--import-rows must lie in 1..{IMPORT_ROWS:,}")
    CACHE = args.cache.resolve()
    out = args.out or (None if args.quick else DEFAULT_OUT)
    command = shlex.join(
        ["python", "benchmarks/item_search.py", *(sys.argv[1:] if argv is None else argv)]
    )
    if shutil.which("wrk") is None and "server" not in args.skip:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    load_before = uptime()
    say(f"item search benchmark, N={args.items:,}: {command}")
    CACHE.mkdir(parents=True, exist_ok=True)
    data = dataset(args.items, args.seed, args.bundle)
    class_vectors = load_bundle(args.bundle).class_vectors
    builds: list[BuildRow] = []
    rows: list[SearchRow] = []
    shares: dict[str, float] = {}
    omp_rows: list[dict[str, Any]] = []
    if "index" not in args.skip:
        builds, rows, shares, omp_rows = in_process(data, class_vectors, args.quick)
    server = imported = None
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="run-") as tmp:
        work = Path(tmp)
        if "server" not in args.skip:
            server = through_server(data, args.bundle, args.seed, args.quick, work)
        if "import" not in args.skip:
            imported = bulk_import(args.bundle, import_rows, work)
    text = report(
        args, data, builds, rows, shares, omp_rows, server, imported, load_before, command
    )
    print(text, end="")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        raw = {
            "command": command,
            "items": len(data.vectors),
            "embedding": data.embedding,
            "builds": [asdict(b) for b in builds],
            "searches": [asdict(r) for r in rows],
            "filter_shares": shares,
            "openmp": omp_rows,
            "equal_recall": equal_recall(rows) if rows else [],
            "server": asdict(server) if server else None,
            "import": imported,
        }
        out.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str))
        if rows:
            plot(rows, out.with_suffix(".png"), len(data.vectors))
        say(f"wrote {out}, {out.with_suffix('.json').name}, {out.with_suffix('.png').name}")


if __name__ == "__main__":
    main()
