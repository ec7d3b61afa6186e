"""One FAISS index over stored items' L2-normalised vectors, keyed by the store's seqs.

Three kinds behind one interface (inner product on unit vectors is cosine similarity):
- `flat`: `IndexIDMap2(IndexFlatIP)`, exact; on GPU when faiss-gpu and a device are there;
- `hnsw`: `IndexIDMap2(IndexHNSWFlat)`, approximate graph search (M 32, efConstruction 80);
- `ivf`:  `IndexIVFFlat`, approximate, k-means coarse centroids trained when it is built.

HNSW (and a GPU index) cannot remove vectors: removed seqs become tombstones that searches
skip, and `tombstone_ratio` tells the owner when a rebuild pays. Filtering: on the CPU a
FAISS IDSelector restricts the search; GPU indexes ignore selectors (faiss issue #3924), so
there the search over-fetches and filters after.

This class is not thread-safe for writes: `LiveIndex` (live_index.py) only ever changes an
index nobody else can see yet, and publishes it whole. Concurrent searches are safe.
`save` and `load` write and read a snapshot; its file format is snapshot.py's.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from corel.class_rule import l2_normalise
from service.items.snapshot import SnapshotError, read_index_snapshot, write_snapshot
from service.items.types import IndexKind

__all__ = ["ItemIndex"]

log = logging.getLogger(__name__)

HNSW_M, HNSW_EF_CONSTRUCTION = 32, 80
BUILD_CHUNK = 20_000  # vectors added per step of a build, for progress and cancellation
GATHER_KEEP_MIN = 20_000  # gathers of at least this many rows are kept (gathered())
# one thread makes the kept gathers of every index, off the request path
_GATHERS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="item-gather")

# faiss's bundled type stubs lag its SWIG classes, hence the Any for its objects.
_faiss: Any = faiss


def gpu_available() -> bool:
    return bool(hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0)


def ivf_lists(n: int) -> int:
    """Coarse centroids for n vectors: about 4 sqrt(n) (FAISS's guideline), at most 4,096,
    and at least 39 training vectors each (fewer and k-means warns and places them badly)."""
    return max(1, min(4096, int(4 * math.sqrt(n)), n // 39))


class ItemIndex:
    def __init__(
        self,
        dim: int,
        *,
        kind: IndexKind = "flat",
        use_gpu: bool | None = None,  # None: when available (flat only)
        ef_search: int = 128,
        nprobe: int = 32,
        raw: Any = None,  # an existing FAISS index of this kind (loading, cloning)
    ) -> None:
        self.dim, self.kind, self.ef_search, self.nprobe = dim, kind, ef_search, nprobe
        self.on_gpu = (gpu_available() if use_gpu is None else use_gpu) and kind == "flat"
        self._gpu_resources: Any = None
        self._tombstones: set[int] = set()
        self._rows: np.ndarray | None = None  # seq -> row of storage(), built when first asked
        self._row_seqs: np.ndarray | None = None  # row of storage() -> seq, likewise
        self._gathered: OrderedDict[bytes, np.ndarray] = OrderedDict()  # see gathered()
        self._gathering: set[bytes] = set()  # keys a background gather is making
        self._gathered_lock = threading.Lock()
        self._changes = 0  # adds and removes so far: a gather begun before one is stale
        if raw is None and kind == "ivf":  # an empty IVF index has nothing to train on yet
            raw = _new_ivf(dim, 1, np.zeros((0, dim), np.float32))
        self._index = self._place(raw if raw is not None else _new_cpu_index(kind, dim))

    @classmethod
    def build(
        cls,
        dim: int,
        kind: IndexKind,
        seqs: np.ndarray,
        vectors: np.ndarray,  # (n, dim) raw
        *,
        progress: Callable[[int, int], None] | None = None,
        **options: Any,
    ) -> ItemIndex:
        """A new index of `kind` holding these vectors; `progress(done, total)` as it goes."""
        index = cls.new(dim, kind, vectors, **options)
        total = len(seqs)
        for start in range(0, total, BUILD_CHUNK):
            index.add(seqs[start : start + BUILD_CHUNK], vectors[start : start + BUILD_CHUNK])
            if progress is not None:
                progress(min(start + BUILD_CHUNK, total), total)
        return index

    @classmethod
    def new(cls, dim: int, kind: IndexKind, vectors: np.ndarray, **options: Any) -> ItemIndex:
        """An empty index of `kind` made to hold these vectors: IVF's coarse centroids are
        trained on a sample of them; the other kinds learn nothing."""
        raw = None
        if kind == "ivf":
            nlist = ivf_lists(len(vectors))
            raw = _new_ivf(dim, nlist, _sample(l2_normalise(vectors), 64 * nlist))
        return cls(dim, kind=kind, raw=raw, **options)

    def _place(self, cpu_index: Any) -> Any:
        if not self.on_gpu:
            return cpu_index
        if self._gpu_resources is None:
            self._gpu_resources = faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(self._gpu_resources, 0, cpu_index)

    def _cpu(self) -> Any:
        return faiss.index_gpu_to_cpu(self._index) if self.on_gpu else self._index

    def clone(self) -> ItemIndex:
        """A copy that can be changed while this one keeps serving searches."""
        copy = ItemIndex(
            self.dim, kind=self.kind, raw=faiss.clone_index(self._cpu()), **self.options
        )
        copy._tombstones = set(self._tombstones)
        return copy

    # -- state -------------------------------------------------------------------------

    @property
    def options(self) -> dict[str, Any]:
        """The keyword options it was made with (`build` and `load` take them as well)."""
        return {"use_gpu": self.on_gpu, "ef_search": self.ef_search, "nprobe": self.nprobe}

    @property
    def device(self) -> Literal["cpu", "gpu"]:
        return "gpu" if self.on_gpu else "cpu"

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def size(self) -> int:
        """Live vectors: stored minus tombstones."""
        return self.ntotal - len(self._tombstones)

    @property
    def tombstone_ratio(self) -> float:
        return len(self._tombstones) / max(self.ntotal, 1)

    def outgrown(self) -> bool:
        """An IVF index trained for far fewer vectors than it holds (its lists grow long):
        a rebuild trains it again."""
        return self.kind == "ivf" and self._index.nlist < ivf_lists(self.size) // 2

    def ids(self) -> np.ndarray:  # (size,) int64, live seqs
        if self.kind == "ivf":
            lists = self._index.invlists
            chunks = [
                faiss.rev_swig_ptr(lists.get_ids(n), lists.list_size(n)).copy()
                for n in range(self._index.nlist)
                if lists.list_size(n)
            ]
            ids = np.concatenate(chunks) if chunks else np.zeros(0, np.int64)
        else:
            ids = faiss.vector_to_array(self._index.id_map)
        ids = ids.astype(np.int64)
        if self._tombstones:
            ids = ids[~np.isin(ids, np.fromiter(self._tombstones, np.int64))]
        return ids

    def vectors(self, seqs: np.ndarray) -> np.ndarray:  # (n, dim) unit vectors of live seqs
        storage = self.storage()
        if storage is not None:
            return np.take(storage, self.rows(seqs), axis=0)
        return np.asarray(self._index.reconstruct_batch(np.ascontiguousarray(seqs, np.int64)))

    def storage(self) -> np.ndarray | None:
        """The unit vectors as FAISS holds them, (ntotal, dim), a row per internal id, without
        a copy; None where they are not in one flat array (IVF lists, GPU memory).

        What exact search over a filter's seqs gathers from: np.take of 100k rows of a 1M
        index took 5 ms here, FAISS's reconstruct_batch (a hash lookup per seq) several
        times that.
        """
        if self.on_gpu or self.kind == "ivf" or self.ntotal == 0:
            return None
        inner: Any = faiss.downcast_index(self._index.index)
        if self.kind == "hnsw":
            inner = faiss.downcast_index(inner.storage)
        flat = faiss.rev_swig_ptr(inner.get_xb(), self.ntotal * self.dim)
        return np.asarray(flat).reshape(self.ntotal, self.dim)

    def gathered(self, rows: np.ndarray) -> np.ndarray | None:  # (n, dim): storage's rows
        """`np.take(storage(), rows)`, or None when the rows are many and no copy of them is
        kept yet: then one is made in the background (one thread for every index) for the
        next call with the same rows (a wide filter asked again), and the caller scores the
        rows in place. Kept copies are dropped least recently used past one copy of main.

        At 1M items, scoring the kept copy of a 10 % label's 100k rows takes about 4 ms.
        Gathering them took 16 ms in one process, but 100-180 ms as the first query of
        each label through the server here (np.take writing 51 MB of fresh memory): on the
        request path, that made a cold filter's p99 131 ms. A kept copy serves until main
        is replaced (a merge or rebuild) or the filter's rows change (a delete among them).
        """
        storage = self.storage()
        assert storage is not None
        if len(rows) < GATHER_KEEP_MIN:
            return np.take(storage, rows, axis=0)
        key = hashlib.blake2b(np.ascontiguousarray(rows).tobytes(), digest_size=16).digest()
        with self._gathered_lock:
            kept = self._gathered.get(key)
            if kept is not None:
                self._gathered.move_to_end(key)
                return kept
            if key not in self._gathering:
                self._gathering.add(key)
                _GATHERS.submit(self._keep_gathered, key, rows.copy(), self._changes)
        return None

    def _keep_gathered(self, key: bytes, rows: np.ndarray, changes: int) -> None:
        storage = self.storage()
        kept = None if storage is None or changes != self._changes else np.take(storage, rows, 0)
        with self._gathered_lock:
            self._gathering.discard(key)
            if kept is None or changes != self._changes:  # changed meanwhile: rows stale
                return
            self._gathered[key] = kept
            while sum(len(v) for v in self._gathered.values()) > self.ntotal:
                self._gathered.popitem(last=False)

    def wait_for_gathers(self) -> None:
        """Until the background gathers asked so far are kept (tests, benchmarks)."""
        _GATHERS.submit(lambda: None).result()

    def row_seqs(self) -> np.ndarray:  # (ntotal,) int64: each row's seq, tombstones too
        if self._row_seqs is None:
            self._row_seqs = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        return self._row_seqs

    def rows(self, seqs: np.ndarray) -> np.ndarray:  # (n,) int64, -1 where not live here
        """Each seq's row of `storage()`: a table from seq to row, made on first use (4 bytes
        per seq); only for an index nobody changes any more (a published main)."""
        if self._rows is None:
            stored = self.row_seqs()
            table = np.full(int(stored.max(initial=0)) + 1, -1, np.int32)
            table[stored] = np.arange(len(stored), dtype=np.int32)
            if self._tombstones:
                table[np.fromiter(self._tombstones, np.int64)] = -1
            self._rows = table
        seqs = np.asarray(seqs, np.int64)
        inside = (seqs >= 0) & (seqs < len(self._rows))
        out = np.full(len(seqs), -1, np.int64)
        out[inside] = self._rows[seqs[inside]]
        return out

    # -- changes -----------------------------------------------------------------------

    def add(self, seqs: np.ndarray, vectors: np.ndarray) -> None:
        """Add raw vectors (normalised here) under their seqs."""
        if len(seqs) == 0:
            return
        vectors = np.ascontiguousarray(l2_normalise(vectors), dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {vectors.shape[1]}, index has {self.dim}")
        self._index.add_with_ids(vectors, np.ascontiguousarray(seqs, dtype=np.int64))
        self._forget_rows()

    def _forget_rows(self) -> None:
        with self._gathered_lock:
            self._rows = self._row_seqs = None
            self._gathered.clear()
            self._changes += 1

    def remove(self, seqs: np.ndarray) -> None:
        seqs = np.ascontiguousarray(seqs, dtype=np.int64)
        if len(seqs) == 0:
            return
        self._forget_rows()
        if self.kind == "flat" and not self.on_gpu:
            self._index.remove_ids(faiss.IDSelectorBatch(seqs))
        elif self.kind == "ivf":  # its id hashtable removes only by an explicit array
            self._index.remove_ids(faiss.IDSelectorArray(seqs))
        else:
            self._tombstones.update(int(s) for s in seqs)

    # -- search ------------------------------------------------------------------------

    def search(
        self,
        queries: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        excluded: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:  # scores (Q, k) float32, seqs (Q, k) int64, -1 = none
        """Top-k by cosine among live vectors, among `allowed` seqs when given, never
        `excluded` ones."""
        queries = np.ascontiguousarray(l2_normalise(queries), dtype=np.float32)
        q = len(queries)
        if self.size == 0 or k <= 0 or (allowed is not None and len(allowed) == 0):
            return np.full((q, max(k, 0)), -np.inf, np.float32), np.full((q, max(k, 0)), -1)
        dead = self._dead(excluded)
        if self.on_gpu:
            return self._search_post_filter(queries, k, allowed, dead)
        return self._search_with_selector(queries, k, allowed, dead)

    def _dead(self, excluded: np.ndarray | None) -> np.ndarray:
        tombstones = np.fromiter(self._tombstones, np.int64, len(self._tombstones))
        if excluded is None or len(excluded) == 0:
            return tombstones
        return np.union1d(tombstones, excluded) if len(tombstones) else excluded

    def _search_with_selector(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None, dead: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        refs: list[Any] = []  # FAISS holds raw pointers: keep the selectors alive
        sel: Any = None
        if allowed is not None:
            sel = _bitmap_selector(allowed, dead, refs)
        elif len(dead):
            dead_sel = faiss.IDSelectorBatch(np.ascontiguousarray(dead, np.int64))
            sel = faiss.IDSelectorNot(dead_sel)
            refs.append(dead_sel)
        scores, seqs = self._index.search(queries, min(k, self.ntotal), params=self._params(sel, k))
        return _pad(scores, seqs, k)

    def _params(self, sel: Any, k: int) -> Any:
        if self.kind == "hnsw":  # efSearch below k would cap the number of hits at efSearch
            return _faiss.SearchParametersHNSW(sel=sel, efSearch=max(self.ef_search, k))
        if self.kind == "ivf":
            return _faiss.SearchParametersIVF(sel=sel, nprobe=self.nprobe)
        return _faiss.SearchParameters(sel=sel)

    def _search_post_filter(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None, dead: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        # Ask for more until every query has k admissible hits or the index is exhausted.
        fetch = min(self.ntotal, k + len(dead))
        while True:
            scores, seqs = self._index.search(queries, fetch)
            keep = (seqs >= 0) & ~np.isin(seqs, dead)
            if allowed is not None:
                keep &= np.isin(seqs, allowed)
            if fetch >= self.ntotal or (keep.sum(1) >= k).all():
                break
            fetch = min(self.ntotal, fetch * 4)
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        out_i = np.full((len(queries), k), -1, np.int64)
        for row in range(len(queries)):
            hits = np.flatnonzero(keep[row])[:k]
            out_s[row, : len(hits)], out_i[row, : len(hits)] = scores[row, hits], seqs[row, hits]
        return out_s, out_i

    # -- snapshots ---------------------------------------------------------------------

    def save(self, path: Path, *, model_id: str, watermark: int) -> None:
        """Write a snapshot atomically: readers see the old file or the new one, never half.

        `watermark`: the highest seq the index was brought up to date with. Tombstoned
        vectors are saved too; the catch-up after loading finds them gone from the store.
        """
        # FAISS's serialised buffer goes to the file as it is: `.tobytes()` copied it, and
        # the header's concatenation copied it again, each under the GIL, which stalled
        # every request (measured at 50k HNSW vectors, 37 MB: 20 and 17 ms; four times
        # that at 200k). Hashing and writing a buffer release the GIL.
        write_snapshot(
            path,
            faiss.serialize_index(self._cpu()).data,
            model_id=model_id,
            kind=self.kind,
            dim=self.dim,
            watermark=watermark,
            ntotal=self.ntotal,
        )

    @classmethod
    def load(cls, path: Path, *, model_id: str, dim: int, **options: Any) -> ItemIndex:
        """The index in a snapshot (of whichever kind it holds), or SnapshotError saying why
        it cannot be used."""
        kind, payload = read_index_snapshot(path, model_id=model_id, dim=dim)
        try:
            raw = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        except RuntimeError as exc:
            raise SnapshotError(f"{path}: FAISS cannot read it: {exc}") from exc
        return cls(dim, kind=kind, raw=raw, **options)


def _bitmap_selector(allowed: np.ndarray, dead: np.ndarray, refs: list[Any]) -> Any:
    """A FAISS selector of the allowed seqs that are not dead: one bit per seq up to the
    largest allowed, so a test is a shift and a mask. An IDSelectorBatch hashes every id
    instead: 133-165 ms to build for 100k of them at 1M items, against about 1 ms here."""
    allowed = np.asarray(allowed, np.int64)
    mask = np.zeros(int(allowed.max(initial=0)) + 1, bool)
    mask[allowed] = True
    mask[dead[dead < len(mask)]] = False
    bits = np.packbits(mask, bitorder="little")
    refs.append(bits)
    return faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))  # length in bytes


def _new_cpu_index(kind: IndexKind, dim: int) -> Any:
    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return faiss.IndexIDMap2(inner)
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def _new_ivf(dim: int, nlist: int, training: np.ndarray) -> Any:
    """An IVF index of `nlist` lists trained on unit `training` vectors (at least nlist of
    them). Stored ids are the seqs themselves, with a hash table from seq to list so that
    vectors can be removed and reconstructed."""
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    if nlist == 1:  # nothing to learn: one list that takes every vector
        index.quantizer.add(np.zeros((1, dim), np.float32))
        index.is_trained = True
    else:
        index.train(np.ascontiguousarray(training, np.float32))
    index.set_direct_map_type(_faiss.DirectMap.Hashtable)
    return index


def _sample(x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    if len(x) <= n:
        return x
    return x[np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))]


def _pad(scores: np.ndarray, seqs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.where(seqs >= 0, scores, -np.inf).astype(np.float32)
    if scores.shape[1] < k:
        extra = k - scores.shape[1]
        scores = np.pad(scores, ((0, 0), (0, extra)), constant_values=-np.inf)
        seqs = np.pad(seqs, ((0, 0), (0, extra)), constant_values=-1)
    return scores, seqs.astype(np.int64)
