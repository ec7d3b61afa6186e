"""Open-set scores: how far an input is from what the model was trained on (numpy only).

Higher is always "more like the training data", so one rule flags an input: its score falls
below a threshold calibrated on held-out items of the known classes.

- `knn_similarity`: the k-th largest cosine similarity to a bank of training items' features
  (Sun et al. 2022, "Out-of-distribution detection with deep nearest neighbors");
- `InputGuard`: how well a PCA of the training inputs reconstructs the input (minus the
  squared error per pixel), which catches inputs far outside the data (noise, blank or
  inverted images) before the encoder, whose output on them is arbitrary;
- `quantile_threshold` / `leave_one_out_threshold`: thresholds that accept a stated share
  of a class's own items, from held-out items or, for a class imprinted from a few
  examples, from each example scored against the class made of the others;
- `OpenSet`: all of it as a bundle ships it, with the gate that lets a class imprinted from
  a few examples take inputs from the known classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from corel.class_rule import ClassRule, l2_normalise

__all__ = [
    "InputGuard",
    "OpenSet",
    "advantage",
    "centred",
    "imprint_prototype",
    "knn_similarity",
    "leave_one_out_threshold",
    "quantile_threshold",
]

CHUNK = 2048  # query rows per matrix product: bounds memory at CHUNK x bank size


def knn_similarity(
    queries: np.ndarray, bank: np.ndarray, k: int, *, unit_bank: bool = False
) -> np.ndarray:
    """(N,) the k-th largest cosine between each query (N, F) and the bank (M, F).

    Both are L2-normalised here (the bank not if `unit_bank` says it is already); with
    k > M the M-th is used."""
    bank_t = np.ascontiguousarray((bank if unit_bank else l2_normalise(bank)).T)  # (F, M)
    k = max(1, min(k, bank_t.shape[1]))
    out = np.empty(len(queries), np.float32)
    for start in range(0, len(queries), CHUNK):
        sims = l2_normalise(queries[start : start + CHUNK]) @ bank_t  # (n, M)
        if k == 1:
            out[start : start + CHUNK] = sims.max(1)
        else:
            out[start : start + CHUNK] = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
    return out


@dataclass(frozen=True)
class InputGuard:
    """How typical a model input is of the training inputs, from the input alone.

    Score: minus the mean squared residual of a PCA of training inputs (flattened), which
    noise, inverted or blank-but-white images do not fit. A blank black image does fit (it
    is the mean minus itself along the first axis), so an input whose mean value lies
    outside the range of the training items' means scores below any residual can:
    -1 - the distance to that range (model inputs in [0, 1] keep residuals under 1)."""

    mean: np.ndarray  # (P,)
    components: np.ndarray  # (C, P), orthonormal rows
    level_range: tuple[float, float]  # lowest and highest mean value of a training input

    @classmethod
    def fit(cls, x: np.ndarray, n_components: int = 64, seed: int = 0) -> InputGuard:
        flat = np.asarray(x, np.float32).reshape(len(x), -1)
        mean = flat.mean(0)
        rng = np.random.default_rng(seed)
        sample = flat[rng.choice(len(flat), size=min(len(flat), 10_000), replace=False)]
        # the right singular vectors of the centred sample are the principal axes
        _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
        levels = flat.mean(1)
        level_range = (float(levels.min()), float(levels.max()))
        return cls(mean.astype(np.float32), vt[:n_components].astype(np.float32), level_range)

    def scores(self, x: np.ndarray) -> np.ndarray:  # (N,)
        flat = np.asarray(x, np.float32).reshape(len(x), -1)
        centred = flat - self.mean
        residual = centred - (centred @ self.components.T) @ self.components
        score = -(residual**2).mean(1)
        low, high = self.level_range
        level = flat.mean(1)
        outside = np.maximum(low - level, level - high)
        return np.asarray(np.where(outside > 0, -1.0 - outside, score), np.float32)


def quantile_threshold(own_scores: np.ndarray, accept: float) -> float:
    """The score above which `accept` (e.g. 0.95) of these own-class items lie."""
    return float(np.quantile(np.asarray(own_scores, np.float64), 1.0 - accept))


def leave_one_out_threshold(
    rule: ClassRule,
    examples: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray | None,
    accept: float,
) -> float | None:
    """The threshold of a class imprinted from example embeddings (n, D) beside the class
    vectors w (K, D): each example scored against the class imprinted from the others, and
    the score that `accept` of them reach; None with one example (nothing to hold out)."""
    if len(examples) < 2:
        return None
    held_out = []
    for i in range(len(examples)):
        others = np.delete(examples, i, axis=0)
        vector, b = rule.imprint(others, w, bias)
        score = rule.scores(examples[i : i + 1], vector[None], np.array([b], np.float32))
        held_out.append(float(score[0, 0]))
    return quantile_threshold(np.array(held_out), accept)


def centred(features: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Features minus the training mean, L2-normalised ("CL2N"): cosines between centred
    features separate classes that the raw, all-positive activations crowd together."""
    return l2_normalise(np.asarray(features, np.float32) - centre)


def advantage(features: np.ndarray, prototype: np.ndarray, known_means: np.ndarray) -> np.ndarray:
    """(N,) cosine to a new class's prototype minus the best cosine to a known class's mean,
    all on centred features (N, F), prototype (F,), known_means (K, F), each normalised."""
    return np.asarray(features @ prototype - (features @ known_means.T).max(1), np.float32)


def imprint_prototype(
    examples: np.ndarray, known_means: np.ndarray, bank: np.ndarray, capture: float
) -> tuple[np.ndarray, float]:
    """A new class on centred features: (prototype (F,), the advantage above which an input
    goes to it), from its examples (n, F), the known classes' means (K, F) and a bank of
    known-class training items (M, F), all centred.

    The bar is the `1 - capture` quantile of the bank items' advantage, so that at most
    `capture` of the known classes' items would be taken by the new class, and never below 0
    (the new class must beat every known one)."""
    prototype = l2_normalise(examples.mean(0))
    bar = float(np.quantile(advantage(bank, prototype, known_means), 1.0 - capture))
    return prototype, max(bar, 0.0)


@dataclass(frozen=True)
class OpenSet:
    """What a bundle knows of its training data beyond the class vectors (bundle format 2):
    the encoder's second output `features` of some training items, and the input guard.

    - `knn(features)`: the kNN similarity to the training items (far from every class when
      it is low);
    - `guard.scores(model_input)`: outside the data when it is low;
    - `imprint` / `gate`: a class imprinted from a few examples is a prototype of their
      centred features, which takes an input from the known classes only when it beats all
      of them by its bar.
    """

    centre: np.ndarray  # (F,) mean feature of the bank
    bank: np.ndarray  # (M, F) features of training items
    bank_labels: np.ndarray  # (M,) their classes (indices into the bundle's labels)
    guard: InputGuard
    knn_k: int

    @cached_property
    def centred_bank(self) -> np.ndarray:
        return centred(self.bank, self.centre)

    @cached_property
    def known_means(self) -> np.ndarray:  # (K, F) centred, normalised class means
        bank, labels = self.centred_bank, self.bank_labels
        return l2_normalise(np.stack([bank[labels == k].mean(0) for k in np.unique(labels)]))

    @cached_property
    def unit_bank(self) -> np.ndarray:  # normalised once, not on every request
        return l2_normalise(self.bank)

    def knn(self, features: np.ndarray) -> np.ndarray:
        """The kNN similarity in numpy (the service searches `unit_bank` with FAISS)."""
        return knn_similarity(features, self.unit_bank, self.knn_k, unit_bank=True)

    def imprint(self, example_features: np.ndarray, capture: float) -> tuple[np.ndarray, float]:
        examples = centred(example_features, self.centre)
        return imprint_prototype(examples, self.known_means, self.centred_bank, capture)

    def gate(self, features: np.ndarray, prototypes: np.ndarray, bars: np.ndarray) -> np.ndarray:
        """(N,) the index of the imprinted class each input goes to, or -1: none beats the
        known classes by its bar. prototypes (P, F), bars (P,)."""
        if len(prototypes) == 0:
            return np.full(len(features), -1)
        q = centred(features, self.centre)
        best_known = (q @ self.known_means.T).max(1, keepdims=True)
        lead = q @ np.asarray(prototypes, np.float32).T - best_known - np.asarray(bars)[None]
        return np.where(lead.max(1) > 0, lead.argmax(1), -1)

    def arrays(self) -> dict[str, np.ndarray]:
        """Its arrays as the bundle's open_set.npz stores them (the bank as float16)."""
        return {
            "centre": self.centre,
            "bank": self.bank.astype(np.float16),
            "bank_labels": self.bank_labels.astype(np.int32),
            "guard_mean": self.guard.mean,
            "guard_components": self.guard.components,
            "guard_level_range": np.asarray(self.guard.level_range, np.float32),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], knn_k: int) -> OpenSet:
        low, high = (float(v) for v in arrays["guard_level_range"])
        guard = InputGuard(
            arrays["guard_mean"].astype(np.float32),
            arrays["guard_components"].astype(np.float32),
            (low, high),
        )
        return cls(
            arrays["centre"].astype(np.float32),
            arrays["bank"].astype(np.float32),
            arrays["bank_labels"].astype(np.int64),
            guard,
            knn_k,
        )
