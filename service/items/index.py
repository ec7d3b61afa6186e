"""The item index: FAISS over the stored items' L2-normalised vectors (a rebuildable cache).

`IndexIDMap2` over `IndexFlatIP` (exact; the default) or `IndexHNSWFlat` with inner product
(approximate, for large corpora). Inner product on unit vectors is cosine similarity.
FAISS ids are the store's seqs, so the index can be compared with SQLite by set difference.
On GPU (faiss-gpu and a device present) the flat index lives on the device; HNSW has no
FAISS GPU form and stays on the CPU.

Removal: the CPU flat index removes vectors; HNSW and GPU indexes cannot, so removed ids
become tombstones that searches skip, and `tombstone_ratio` tells the owner when a
rebuild would pay. Filtering: on CPU, FAISS's IDSelector restricts the search; GPU indexes
ignore selectors (faiss issue #3924), so there the search over-fetches and filters after.

Snapshots are one file: a JSON header (model, kind, dim, last seq, checksum) and the
serialised index, written to a temporary file, fsynced and renamed into place.
Not thread-safe by itself: the owner serialises calls (`ItemService` holds a lock).
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from corel.class_rule import l2_normalise
from corel.files import atomic_write

__all__ = ["IndexKind", "ItemIndex", "SnapshotError"]

log = logging.getLogger(__name__)

IndexKind = Literal["flat", "hnsw"]
SNAPSHOT_FORMAT = 1
_MAGIC = b"COREL-IDX"


class SnapshotError(Exception):
    """A snapshot is missing, truncated, corrupt, or of another model/kind/dimension."""


def gpu_available() -> bool:
    return bool(hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0)


class ItemIndex:
    def __init__(
        self,
        dim: int,
        *,
        kind: IndexKind = "flat",
        use_gpu: bool | None = None,  # None: when available
        hnsw_m: int = 32,
        ef_search: int = 128,
    ) -> None:
        self.dim, self.kind, self.ef_search = dim, kind, ef_search
        self.on_gpu = (gpu_available() if use_gpu is None else use_gpu) and kind == "flat"
        self._gpu_resources: Any = None
        self._hnsw_m = hnsw_m
        self._tombstones: set[int] = set()
        self._index = self._place(self._new_cpu_index())

    def _new_cpu_index(self) -> Any:
        inner: Any
        if self.kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, self._hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 80
        else:
            inner = faiss.IndexFlatIP(self.dim)
        return faiss.IndexIDMap2(inner)

    def _place(self, cpu_index: Any) -> Any:
        if not self.on_gpu:
            return cpu_index
        if self._gpu_resources is None:
            self._gpu_resources = faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(self._gpu_resources, 0, cpu_index)

    @property
    def device(self) -> str:
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

    def ids(self) -> np.ndarray:  # (size,) int64, live ids
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        if self._tombstones:
            ids = ids[~np.isin(ids, np.fromiter(self._tombstones, np.int64))]
        return ids

    # -- changes -----------------------------------------------------------------------

    def add(self, seqs: np.ndarray, vectors: np.ndarray) -> None:
        """Add raw vectors (normalised here) under their seqs."""
        if len(seqs) == 0:
            return
        vectors = np.ascontiguousarray(l2_normalise(vectors), dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {vectors.shape[1]}, index has {self.dim}")
        self._index.add_with_ids(vectors, np.ascontiguousarray(seqs, dtype=np.int64))

    def remove(self, seqs: Iterable[int]) -> None:
        seqs = np.fromiter(seqs, dtype=np.int64)
        if len(seqs) == 0:
            return
        if self.kind == "flat" and not self.on_gpu:
            self._index.remove_ids(faiss.IDSelectorBatch(seqs))
        else:
            self._tombstones.update(int(s) for s in seqs)

    def catch_up(
        self,
        target: np.ndarray,
        fetch: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
        batch: int = 5_000,
    ) -> tuple[int, int]:
        """Make the live ids equal `target` (the store's seqs). `fetch(seqs)` gives those
        still stored as (seqs, raw vectors). Returns (added, removed); progress is logged."""
        live = self.ids()
        stale, missing = np.setdiff1d(live, target), np.setdiff1d(target, live)
        self.remove(stale.tolist())
        for start in range(0, len(missing), batch):
            chunk = missing[start : start + batch]
            self.add(*fetch(chunk))
            done = min(start + batch, len(missing))
            log.info("item index: catching up, %d of %d vectors added", done, len(missing))
        if len(stale) or len(missing):
            log.info("item index: caught up with the store: +%d, -%d", len(missing), len(stale))
        return len(missing), len(stale)

    # -- search ------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:  # scores (Q, k) float32, seqs (Q, k) int64, -1 = none
        """Top-k by cosine among live vectors (and among `allowed` seqs when given)."""
        queries = np.ascontiguousarray(l2_normalise(queries), dtype=np.float32)
        q = len(queries)
        if self.size == 0 or k <= 0 or (allowed is not None and len(allowed) == 0):
            return np.full((q, max(k, 0)), -np.inf, np.float32), np.full((q, max(k, 0)), -1)
        if self.on_gpu:
            return self._search_post_filter(queries, k, allowed)
        return self._search_with_selector(queries, k, allowed)

    def _search_with_selector(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        refs: list[Any] = []  # FAISS holds raw pointers: keep the selectors alive
        sel: Any = None
        if allowed is not None:
            sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, np.int64))
            refs.append(sel)
        if self._tombstones:
            dead = faiss.IDSelectorBatch(np.fromiter(self._tombstones, np.int64))
            alive = faiss.IDSelectorNot(dead)
            refs += [dead, alive]
            sel = alive if sel is None else faiss.IDSelectorAnd(sel, alive)
        scores, seqs = self._index.search(queries, min(k, self.ntotal), params=self._params(sel, k))
        return _pad(scores, seqs, k)

    def _params(self, sel: Any, k: int) -> Any:
        # faiss's bundled type stubs lag its SWIG classes, hence the Any.
        api: Any = faiss
        if self.kind == "hnsw":  # efSearch below k would cap the number of hits at efSearch
            return api.SearchParametersHNSW(sel=sel, efSearch=max(self.ef_search, k))
        return api.SearchParameters(sel=sel)

    def _search_post_filter(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        # Ask for more until every query has k admissible hits or the index is exhausted.
        fetch = min(self.ntotal, k + len(self._tombstones))
        dead = np.fromiter(self._tombstones, np.int64)
        while True:
            scores, seqs = self._index.search(queries, fetch, params=self._params(None, fetch))
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

    def save(self, path: Path, *, model_id: str, last_seq: int) -> None:
        """Write a snapshot atomically: readers see the old file or the new one, never half."""
        # Tombstoned vectors are saved too (HNSW cannot drop them); the catch-up after
        # loading finds them missing from the store and tombstones them again.
        cpu = faiss.index_gpu_to_cpu(self._index) if self.on_gpu else self._index
        payload = faiss.serialize_index(cpu).tobytes()
        header = json.dumps(
            {
                "format": SNAPSHOT_FORMAT,
                "model_id": model_id,
                "kind": self.kind,
                "dim": self.dim,
                "last_seq": last_seq,
                "ntotal": int(cpu.ntotal),
                "sha256": hashlib.sha256(payload).hexdigest(),
            }
        ).encode()
        atomic_write(path, _MAGIC + struct.pack("<I", len(header)) + header + payload)

    @classmethod
    def load(
        cls, path: Path, *, model_id: str, kind: IndexKind, dim: int, **options: Any
    ) -> tuple[ItemIndex, int]:
        """(index, last seq it contains) from a snapshot, or SnapshotError saying why not."""
        header, payload = _read_snapshot(path)
        for key, want in (("model_id", model_id), ("kind", kind), ("dim", dim)):
            if header.get(key) != want:
                raise SnapshotError(f"{path}: made for {key}={header.get(key)!r}, now {want!r}")
        try:
            cpu = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        except RuntimeError as exc:
            raise SnapshotError(f"{path}: FAISS cannot read it: {exc}") from exc
        index = cls(dim, kind=kind, **options)
        index._index = index._place(cpu)
        return index, int(header["last_seq"])


def _read_snapshot(path: Path) -> tuple[dict[str, Any], bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read it ({exc.strerror})") from exc
    if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 4:
        raise SnapshotError(f"{path}: not an item index snapshot")
    (size,) = struct.unpack("<I", data[len(_MAGIC) : len(_MAGIC) + 4])
    start = len(_MAGIC) + 4
    try:
        header = json.loads(data[start : start + size])
    except ValueError as exc:
        raise SnapshotError(f"{path}: unreadable header ({exc})") from exc
    payload = data[start + size :]
    if header.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"{path}: snapshot format {header.get('format')!r} is not supported")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise SnapshotError(f"{path}: checksum mismatch (truncated or corrupted)")
    return header, payload


def _pad(scores: np.ndarray, seqs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.where(seqs >= 0, scores, -np.inf).astype(np.float32)
    if scores.shape[1] < k:
        extra = k - scores.shape[1]
        scores = np.pad(scores, ((0, 0), (0, extra)), constant_values=-np.inf)
        seqs = np.pad(seqs, ((0, 0), (0, extra)), constant_values=-1)
    return scores, seqs.astype(np.int64)
