"""The class index: FAISS over the class vectors, answering "which class is this nearest to".

The index holds the class rule's `index_vectors` and is searched with its `query_vectors`,
so its scores are exactly `rule.scores` (corel/class_rule.py). Classes can be added by
imprinting (`rule.imprint` of a few example embeddings) and removed; every change is
saved (store.py) before it is served. With a shared store (milvus) `watch` follows the
changes other replicas make.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from corel.bundle import ENCODER_FILE, Bundle
from corel.class_rule import ClassRule, rule_for
from service.classes.class_set import ClassRecord, ClassSet
from service.classes.store import ClassStore, FileClassStore
from service.errors import ConflictError, NotFoundError

__all__ = ["ClassIndex", "ClassScore", "Prediction"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassScore:
    label: str
    score: float


@dataclass(frozen=True)
class Prediction:
    label: str  # the best class, even when `unknown`
    score: float  # its score under the class rule
    margin: float  # best score minus the second best (0.0 with one class)
    unknown: bool  # best score below the threshold
    threshold: float | None
    top: list[ClassScore]


def build_faiss_index(classes: ClassSet, rule: ClassRule) -> faiss.Index:
    vectors = rule.index_vectors(classes.vectors, classes.bias)
    dim = vectors.shape[1]
    index: faiss.Index = faiss.IndexFlatL2(dim) if rule.metric == "l2" else faiss.IndexFlatIP(dim)
    index.add(vectors)
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
    def __init__(self, bundle: Bundle, store: ClassStore | Path) -> None:
        self.rule = rule_for(bundle.manifest.class_rule)
        self.model_id = bundle.manifest.files[ENCODER_FILE]
        self.store = FileClassStore(store) if isinstance(store, Path) else store
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._bundle_classes = ClassSet.from_bundle(bundle)
        # An imprinted class's default threshold: the typical calibrated one of the model's
        # own classes (all of them: removing some must not move it)
        known = [r.threshold for r in self._bundle_classes.records if r.threshold is not None]
        self._typical_threshold = float(np.median(known)) if known else None
        self._version, saved = self.store.load(self.model_id)
        self.new_model = saved is None
        self._set(saved or self._bundle_classes)

    # -- following a shared store ----------------------------------------------------------

    def watch(self, interval: float = 0.5) -> None:
        """With a shared store: poll its version in a thread, and load a newer set."""
        if not self.store.shared:
            return
        self._watcher = threading.Thread(
            target=self._watch, args=(interval,), name="class-watch", daemon=True
        )
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        self.store.close()

    def _watch(self, interval: float) -> None:
        failing = False
        while not self._stop.wait(interval):
            try:
                if self.store.version(self.model_id) > self._version:
                    with self._lock:
                        self._refresh()
            except Exception as exc:  # Milvus away: keep serving the set we have
                if not failing:  # once per outage, not twice a second
                    log.warning("classes: cannot read the shared class store: %s", exc)
                failing = True
                continue
            if failing:
                log.info("classes: the shared class store answers again")
            failing = False

    def _refresh(self) -> None:
        """Load the newest saved set if it is newer than ours (the lock is held)."""
        if not self.store.shared:
            return  # ours is the newest: no other process writes the file
        version, saved = self.store.load(self.model_id)
        if saved is not None and version > self._version:
            self._version = version
            self._set(saved)
            log.info("classes: loaded version %d (%d classes)", version, len(saved))

    # -- reading ---------------------------------------------------------------------------

    @property
    def classes(self) -> ClassSet:
        return self._current[0]

    def __len__(self) -> int:
        return len(self.classes)

    def search(self, embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, ClassSet]:
        """Top-k (scores (N, k), class indices (N, k)) under the rule; higher is better."""
        classes, index = self._current  # one read: never a new index with old names
        k = min(k, len(classes))
        raw, ids = index.search(self.rule.query_vectors(embeddings), k)
        return self.rule.from_index(raw), ids, classes

    def classify(
        self, embeddings: np.ndarray, k: int, threshold: float | None = None
    ) -> list[Prediction]:
        """The top-k classes of each embedding; `threshold` overrides the classes' own."""
        scores, ids, classes = self.search(embeddings, max(k, 2))
        predictions = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            best = classes.records[int(row_ids[0])]
            limit = threshold if threshold is not None else best.threshold
            score = float(row_scores[0])
            predictions.append(
                Prediction(
                    label=best.name,
                    score=score,
                    margin=score - float(row_scores[1]) if len(row_scores) > 1 else 0.0,
                    unknown=limit is not None and score < limit,
                    threshold=limit,
                    top=[
                        ClassScore(classes.records[int(i)].name, float(s))
                        for s, i in zip(row_scores[:k], row_ids[:k], strict=True)
                    ],
                )
            )
        return predictions

    # -- changing --------------------------------------------------------------------------

    def add(
        self,
        name: str,
        embeddings: np.ndarray,
        threshold: float | None = None,
        inputs: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Imprint a class from example embeddings (N, D) under the class rule; `inputs`
        (the examples as sent) are kept so that a new model can imprint it again."""
        with self._lock:
            self._refresh()  # a change applies to the newest set any replica saved
            old = self.classes
            if name in old.names:
                raise ConflictError(f"class {name!r} exists; delete it first to re-imprint")
            vector, bias = self.rule.imprint(embeddings, old.vectors, old.bias)
            record = ClassRecord(
                name,
                vector.astype(np.float32),
                bias,
                "imprinted",
                len(embeddings),
                self._typical_threshold if threshold is None else threshold,
                tuple(inputs),
            )
            self._change(old.with_record(record))

    def remove(self, name: str, *, force: bool = False) -> None:
        """Remove a class; one that comes with the model only with `force` (and `restore`
        brings it back)."""
        with self._lock:
            self._refresh()
            old = self.classes
            record = next((r for r in old.records if r.name == name), None)
            if record is None:
                raise NotFoundError(f"no class named {name!r}")
            if record.source == "bundle" and not force:
                raise ConflictError(
                    f"class {name!r} comes with the model: remove it with force=true "
                    "(POST /classes/restore brings it back)"
                )
            if len(old) == 1:
                raise ConflictError("cannot remove the last class")
            self._change(old.without(name))

    def restore(self, names: Sequence[str] | None = None) -> list[str]:
        """Bring back removed classes of the model (all, or those named); their names."""
        with self._lock:
            self._refresh()
            old = self.classes
            missing = [r for r in self._bundle_classes.records if r.name not in old.names]
            if names is not None:
                unknown = set(names) - {r.name for r in self._bundle_classes.records}
                if unknown:
                    raise NotFoundError(f"the model has no class named {sorted(unknown)[0]!r}")
                missing = [r for r in missing if r.name in names]
            new = old
            for record in missing:
                new = new.with_record(record)
            if missing:
                self._change(new)
            return [r.name for r in missing]

    def classes_to_carry_over(self) -> list[ClassRecord]:
        """Imprinted classes of an earlier model that this model does not have yet: on its
        first start, the lifespan imprints them again from their example inputs."""
        if not self.new_model:
            return []
        for earlier in self.store.earlier_sets(except_model=self.model_id):
            return [
                r
                for r in earlier.records
                if r.source == "imprinted" and r.name not in self.classes.names
            ]
        return []

    def _change(self, classes: ClassSet) -> None:
        self._version = self.store.save(self.model_id, classes)  # saved before served
        self._set(classes)

    def _set(self, classes: ClassSet) -> None:
        # add/remove run in a worker thread while the event loop searches: one assignment
        # swaps the set and its index together, so a reader sees the old pair or the new one
        self._current = (classes, build_faiss_index(classes, self.rule))
