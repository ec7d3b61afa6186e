"""The class index: FAISS over the class vectors, answering "which class is this nearest to".

The index holds the class rule's `index_vectors` and is searched with its `query_vectors`,
so its scores are exactly `rule.scores` (corel/class_rule.py; faiss_index.py). Classes can
be added by imprinting (`rule.imprint` of a few example embeddings) and removed; every
change is saved (store.py) before it is served. With a shared store (milvus) `watch`
follows the changes other replicas make (watcher.py). Whether a prediction is `unknown`,
and why, is unknown.py's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from corel.bundle import Bundle
from corel.class_rule import rule_for
from corel.open_set import leave_one_out_threshold
from service.classes.class_set import ClassRecord, ClassSet
from service.classes.faiss_index import build_faiss_index
from service.classes.store import ClassStore, FileClassStore
from service.classes.unknown import UnknownPolicy, UnknownReason
from service.classes.watcher import StoreWatcher
from service.errors import ConflictError, NotFoundError

__all__ = ["ClassIndex", "ClassScore", "Prediction"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """What `classify` answers for one input."""

    label: str  # the predicted class, even when `unknown`
    score: float  # its score under the class rule
    margin: float  # its score minus the best other class's (0.0 with one class)
    unknown: bool
    threshold: float | None
    top: list[ClassScore]
    reason: UnknownReason | None = None  # set when unknown


@dataclass(frozen=True)
class ClassScore:
    """One of a prediction's top classes, with its score under the class rule."""

    label: str
    score: float


class ClassIndex:
    def __init__(self, bundle: Bundle, store: ClassStore | Path) -> None:
        self.rule = rule_for(bundle.manifest.class_rule)
        self.model_id = bundle.model_id
        self.store = FileClassStore(store) if isinstance(store, Path) else store
        self._lock = threading.Lock()
        self._watcher: StoreWatcher | None = None
        self._bundle_classes = ClassSet.from_bundle(bundle)
        self.open_set = bundle.open_set
        calibration = bundle.calibration
        self._unknown = UnknownPolicy(bundle.open_set, calibration)
        # an imprinted class's threshold accepts what each check of the bundle's classes does
        self._accept = calibration.check_accept
        self._capture = calibration.imprint_capture
        self._version, saved = self.store.load(self.model_id)
        self.new_model = saved is None
        self._set(saved or self._bundle_classes)

    # -- following a shared store ----------------------------------------------------------

    def watch(self, interval: float = 0.5) -> None:
        """With a shared store: poll its version in a thread, and load a newer set."""
        if self.store.shared:
            self._watcher = StoreWatcher(self._follow, interval)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        self.store.close()

    def _follow(self) -> None:
        if self.store.version(self.model_id) > self._version:
            with self._lock:
                self._refresh()

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

    def input_scores(self, features: np.ndarray, model_input: np.ndarray | None) -> np.ndarray:
        """The open set's per-input scores that need no class state (UnknownPolicy)."""
        return self._unknown.input_scores(features, model_input)

    @property
    def has_open_set(self) -> bool:
        return self._unknown.open_set is not None

    def classify(
        self,
        embeddings: np.ndarray,
        k: int,
        threshold: float | None = None,
        *,
        features: np.ndarray | None = None,
        model_input: np.ndarray | None = None,
        input_scores: np.ndarray | None = None,
    ) -> list[Prediction]:
        """The top-k classes of each embedding; `threshold` overrides the classes' own.

        With the bundle's open set (`features`: the encoder's second output, `model_input`:
        what went into it, or its `input_scores` computed already), an input is also unknown
        when the input guard refuses it or its features are far from every training item,
        and a class imprinted from a few examples takes the inputs that the gate gives it
        (corel/open_set.py)."""
        scores, ids, classes = self.search(embeddings, max(k, 2))
        checks = self._unknown.check(classes, features, model_input, input_scores)
        predictions = []
        for n, (row_scores, row_ids) in enumerate(zip(scores, ids, strict=True)):
            ranked = [(int(i), float(s)) for s, i in zip(row_scores, row_ids, strict=True)]
            if checks is not None and checks.imprinted[n] >= 0:
                chosen = int(checks.imprinted[n])
                own = self.rule.scores(
                    embeddings[n : n + 1],
                    classes.records[chosen].vector[None],
                    np.array([classes.records[chosen].bias], np.float32),
                )
                ranked = [(chosen, float(own[0, 0]))] + [r for r in ranked if r[0] != chosen]
            best = classes.records[ranked[0][0]]
            limit = threshold if threshold is not None else best.threshold
            score = ranked[0][1]
            reason = self._unknown.reason(best, score, limit, checks, n)
            predictions.append(
                Prediction(
                    label=best.name,
                    score=score,
                    margin=score - max(s for _, s in ranked[1:]) if len(ranked) > 1 else 0.0,
                    unknown=reason is not None,
                    threshold=limit,
                    top=[ClassScore(classes.records[i].name, s) for i, s in ranked[:k]],
                    reason=reason,
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
        features: np.ndarray | None = None,
    ) -> None:
        """Imprint a class from example embeddings (N, D) under the class rule; `inputs`
        (the examples as sent) are kept so that a new model can imprint it again.

        Its threshold, unless given, comes from its own examples: each scored against the
        class imprinted from the others (leave-one-out), at the calibration's acceptance;
        none from a single example. With the bundle's open set and the examples' `features`,
        it also gets a prototype among the features and the gate's bar."""
        with self._lock:
            self._refresh()  # a change applies to the newest set any replica saved
            old = self.classes
            if name in old.names:
                raise ConflictError(f"class {name!r} exists; delete it first to re-imprint")
            vector, bias = self.rule.imprint(embeddings, old.vectors, old.bias)
            if threshold is None:
                threshold = leave_one_out_threshold(
                    self.rule, embeddings, old.vectors, old.bias, self._accept
                )
            record = ClassRecord(
                name,
                vector.astype(np.float32),
                bias,
                "imprinted",
                len(embeddings),
                threshold,
                tuple(inputs),
            )
            if self.open_set is not None and features is not None:
                prototype, bar = self.open_set.imprint(features, self._capture)
                record = replace(record, prototype=prototype, bar=bar)
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
