"""The class index: FAISS over the class vectors, answering "which class is this nearest to".

Seeded from the bundle's class vectors under its class rule, so scores are exactly those
of `service.class_rule`:
- `cosine`:    inner product over L2-normalised vectors (IndexFlatIP) = cos(h, w);
- `euclidean`: IndexFlatL2, reported as -||h - w||^2;
- `dot`:       inner product of [h, 1] with [w, b] (IndexFlatIP) = h.w + b.
Classes can be added by imprinting (the class vector is the normalised mean embedding of
a few examples) and removed. The current set is saved atomically in the data directory,
keyed to the encoder's sha256, and reloaded at start; another bundle starts from its own.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from service.bundle import Bundle
from service.class_rule import l2_normalise
from service.errors import ConflictError, NotFoundError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassSet:
    names: list[str]
    vectors: np.ndarray  # (K, D)
    bias: np.ndarray | None  # (K,), dot rule only
    sources: list[str]  # "bundle" | "imprinted"
    examples: list[int | None]
    thresholds: list[float | None]


def build_faiss_index(classes: ClassSet, rule: str) -> faiss.Index:
    index: faiss.Index
    if rule == "cosine":
        index = faiss.IndexFlatIP(classes.vectors.shape[1])
        index.add(l2_normalise(classes.vectors))
    elif rule == "euclidean":
        index = faiss.IndexFlatL2(classes.vectors.shape[1])
        index.add(np.ascontiguousarray(classes.vectors, dtype=np.float32))
    else:
        bias = np.zeros(len(classes.names), np.float32) if classes.bias is None else classes.bias
        index = faiss.IndexFlatIP(classes.vectors.shape[1] + 1)
        index.add(np.hstack([classes.vectors, bias[:, None]]).astype(np.float32))
    if faiss.get_num_gpus() > 0 and hasattr(faiss, "StandardGpuResources"):
        index = faiss.index_cpu_to_gpu(_gpu_resources(), 0, index)
    return index


_GPU_RESOURCES: list[Any] = []


def _gpu_resources() -> Any:
    # One set of GPU scratch memory for the process, kept alive as long as any index using it
    if not _GPU_RESOURCES:
        _GPU_RESOURCES.append(faiss.StandardGpuResources())
    return _GPU_RESOURCES[0]


class ClassIndex:
    def __init__(self, bundle: Bundle, data_dir: Path) -> None:
        self.rule = bundle.manifest.class_rule
        self.model_id = bundle.manifest.files["encoder.onnx"]
        self._path = data_dir / f"classes-{self.model_id[:16]}.json"
        self._lock = threading.Lock()
        thresholds = bundle.manifest.calibration.get("thresholds", {})
        k = len(bundle.manifest.labels)
        self._bundle_classes = ClassSet(
            list(bundle.manifest.labels), bundle.class_vectors, bundle.class_bias,
            ["bundle"] * k, [None] * k, [thresholds.get(n) for n in bundle.manifest.labels])
        self._set(self._load() or self._bundle_classes)

    # -- reading ---------------------------------------------------------------------------

    @property
    def classes(self) -> ClassSet:
        return self._current[0]

    def __len__(self) -> int:
        return len(self.classes.names)

    def search(self, embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, ClassSet]:
        """Top-k (scores (N, k), class indices (N, k)) under the rule; higher is better."""
        classes, index = self._current  # one read: never a new index with old names
        k = min(k, len(classes.names))
        h = np.ascontiguousarray(embeddings, dtype=np.float32)
        if self.rule == "cosine":
            h = l2_normalise(h)
        elif self.rule == "dot":
            h = np.hstack([h, np.ones((len(h), 1), np.float32)])
        scores, ids = index.search(h, k)
        return (-scores if self.rule == "euclidean" else scores), ids, classes

    def classify(self, embeddings: np.ndarray, k: int,
                 threshold: float | None = None) -> list[dict[str, Any]]:
        scores, ids, classes = self.search(embeddings, max(k, 2))
        results = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            best = int(row_ids[0])
            limit = threshold if threshold is not None else classes.thresholds[best]
            second = float(row_scores[1]) if len(row_scores) > 1 else float("-inf")
            results.append({
                "label": classes.names[best],
                "score": float(row_scores[0]),
                "margin": float(row_scores[0] - second) if len(row_scores) > 1 else 0.0,
                "unknown": limit is not None and float(row_scores[0]) < limit,
                "threshold": limit,
                "top": [{"label": classes.names[int(i)], "score": float(s)}
                        for s, i in zip(row_scores[:k], row_ids[:k], strict=True)],
            })
        return results

    # -- changing --------------------------------------------------------------------------

    def add(self, name: str, embeddings: np.ndarray, threshold: float | None = None) -> None:
        """Imprint a class from example embeddings (N, D): the normalised mean direction."""
        with self._lock:
            old = self.classes
            if name in old.names:
                raise ConflictError(f"class {name!r} exists; delete it first to re-imprint")
            vector, bias = self._imprint(embeddings, old)
            if threshold is None:  # the typical calibrated threshold of the bundle's classes
                known = [t for t in old.thresholds if t is not None]
                threshold = float(np.median(known)) if known else None
            new = ClassSet(
                [*old.names, name], np.vstack([old.vectors, vector[None]]),
                None if old.bias is None else np.append(old.bias, bias).astype(np.float32),
                [*old.sources, "imprinted"], [*old.examples, len(embeddings)],
                [*old.thresholds, threshold])
            self._save(new)
            self._set(new)

    def remove(self, name: str) -> None:
        with self._lock:
            old = self.classes
            if name not in old.names:
                raise NotFoundError(f"no class named {name!r}")
            if len(old.names) == 1:
                raise ConflictError("cannot remove the last class")
            keep = [i for i, n in enumerate(old.names) if n != name]
            new = ClassSet([old.names[i] for i in keep], old.vectors[keep],
                           None if old.bias is None else old.bias[keep],
                           [old.sources[i] for i in keep], [old.examples[i] for i in keep],
                           [old.thresholds[i] for i in keep])
            self._save(new)
            self._set(new)

    def _imprint(self, embeddings: np.ndarray, old: ClassSet) -> tuple[np.ndarray, float]:
        direction = l2_normalise(l2_normalise(embeddings).mean(0))
        if self.rule == "euclidean":  # a Gaussian-COREL class vector is a centre, not a direction
            return embeddings.mean(0).astype(np.float32), 0.0
        if self.rule == "dot":  # a direction as long as the learned ones, at the mean bias
            scale = float(np.linalg.norm(old.vectors, axis=1).mean())
            bias = float(old.bias.mean()) if old.bias is not None else 0.0
            return (direction * scale).astype(np.float32), bias
        return direction.astype(np.float32), 0.0

    def _set(self, classes: ClassSet) -> None:
        # add/remove run in a worker thread while the event loop searches: one assignment
        # swaps the set and its index together, so a reader sees the old pair or the new one
        self._current = (classes, build_faiss_index(classes, self.rule))

    # -- persistence -----------------------------------------------------------------------

    def _save(self, classes: ClassSet) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        state = {"model_id": self.model_id, "names": classes.names, "sources": classes.sources,
                 "examples": classes.examples, "thresholds": classes.thresholds,
                 "vectors": classes.vectors.tolist(),
                 "bias": None if classes.bias is None else classes.bias.tolist()}
        tmp = self._path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self._path)  # atomic: a crash leaves the old set or the new one
        dir_fd = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _load(self) -> ClassSet | None:
        if not self._path.is_file():
            return None
        state = json.loads(self._path.read_text())
        if state.get("model_id") != self.model_id:
            return None
        log.info("loaded %d classes from %s", len(state["names"]), self._path)
        bias = state.get("bias")
        return ClassSet(state["names"], np.asarray(state["vectors"], np.float32),
                        None if bias is None else np.asarray(bias, np.float32),
                        state["sources"], state["examples"], state["thresholds"])
