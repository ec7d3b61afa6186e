"""When a prediction is `unknown`, and why (docs/open-world.md).

The reasons, in the order they are tried:

- outside_data: the input itself is unlike the training inputs (the input guard);
- far_from_classes: its features are far from every training item, or (without an open
  set, or for an imprinted class) its score is below its class's threshold;
- between_classes: it is near training items, but its score to the best class is below
  that class's threshold: it sits between class directions.

`UnknownPolicy` holds the bundle's open set and the thresholds its calibration set; the
class index asks it for the checks of a batch and then for each prediction's reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np

from corel.bundle import Calibration
from corel.class_rule import l2_normalise
from corel.open_set import OpenSet
from service.classes.class_set import ClassRecord, ClassSet
from service.classes.faiss_index import bank_index

__all__ = ["OpenSetChecks", "UnknownPolicy", "UnknownReason"]

UnknownReason = Literal["outside_data", "far_from_classes", "between_classes"]


@dataclass(frozen=True)
class OpenSetChecks:
    """What the bundle's open set says of each input, beside its class scores."""

    outside: np.ndarray  # (N,) bool: the input guard refuses the input
    knn: np.ndarray  # (N,) similarity to the nearest training items' features
    imprinted: np.ndarray  # (N,) index into the class set of the imprinted class the gate
    # gives the input to, or -1


class UnknownPolicy:
    def __init__(self, open_set: OpenSet | None, calibration: Calibration) -> None:
        self.open_set = open_set
        self._knn_thresholds = calibration.knn_thresholds
        self._guard_threshold = calibration.guard_threshold
        self._bank = None if open_set is None else bank_index(open_set.unit_bank)

    def input_scores(self, features: np.ndarray, model_input: np.ndarray | None) -> np.ndarray:
        """(N, 2): each input's kNN similarity and input-guard score (NaN without a model
        input: token ids have no guard). They depend on the bundle alone, so the inference
        thread computes them for a whole micro-batch at once (one FAISS search, one PCA
        projection) rather than the event loop for each request."""
        # One FAISS thread: the batch is small, and its threads would spin on the cores that
        # onnxruntime and the event loop need (the server runs BLAS on one thread: app.py)
        faiss.omp_set_num_threads(1)
        guard = np.full(len(features), np.nan, np.float32)
        if model_input is not None and self.open_set is not None:
            guard = self.open_set.guard.scores(model_input)
        return np.stack([self._knn(features), guard], axis=1)

    def check(
        self,
        classes: ClassSet,
        features: np.ndarray | None,
        model_input: np.ndarray | None = None,
        scores: np.ndarray | None = None,
    ) -> OpenSetChecks | None:
        """The open set's view of a batch (None for bundles without one, or no features),
        from its `input_scores` (computed here from `model_input` unless given). Without a
        model input (token ids: text models) the input guard does not apply."""
        if self.open_set is None or features is None:
            return None
        if scores is None:
            scores = self.input_scores(features, model_input)
        imprinted = [
            i
            for i, r in enumerate(classes.records)
            if r.prototype is not None and r.bar is not None
        ]
        width = self.open_set.bank.shape[1]
        prototypes = [classes.records[i].prototype for i in imprinted]
        bars = [classes.records[i].bar for i in imprinted]
        gate = self.open_set.gate(
            features,
            np.array(prototypes, np.float32).reshape(len(imprinted), width),
            np.array(bars, np.float32),
        )
        knn, guard = scores[:, 0], scores[:, 1]
        outside = np.zeros(len(features), bool)
        if self._guard_threshold is not None:
            outside = np.nan_to_num(guard, nan=np.inf) < self._guard_threshold
        return OpenSetChecks(
            outside=outside,
            knn=knn,
            imprinted=np.array([imprinted[g] if g >= 0 else -1 for g in gate], np.int64),
        )

    def _knn(self, features: np.ndarray) -> np.ndarray:
        assert self.open_set is not None and self._bank is not None
        k = self.open_set.knn_k
        similarities, _ = self._bank.search(l2_normalise(features), k)
        return np.asarray(similarities[:, k - 1], np.float32)

    def reason(
        self,
        best: ClassRecord,
        score: float,
        limit: float | None,
        checks: OpenSetChecks | None,
        row: int,
    ) -> UnknownReason | None:
        """Why the prediction of input `row` of the batch, `best` at `score`, is unknown,
        or None when it is not; `limit` is the score threshold it is held to."""
        if checks is None:  # no open set: the score alone
            return "far_from_classes" if limit is not None and score < limit else None
        if checks.outside[row]:
            return "outside_data"
        # the kNN thresholds, and a low score read as between classes: the bundle's classes
        bundle_class = best.source == "bundle"
        knn_limit = self._knn_thresholds.get(best.name)
        if bundle_class and knn_limit is not None and checks.knn[row] < knn_limit:
            return "far_from_classes"
        if limit is not None and score < limit:
            return "between_classes" if bundle_class else "far_from_classes"
        return None
