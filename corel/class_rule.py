"""How a class is predicted from an embedding: a bundle's class rule, as one object per rule.

Higher scores are always better, so `argmax` predicts under every rule:
- `cosine`    (Cosine-COREL, Siamese): cos(h, w_j), in [-1, 1];
- `euclidean` (Gaussian-COREL):        -||h - w_j||^2;
- `dot`       (cross-entropy, center): h . w_j + b_j, the classifier's logit.

Each rule also says how to get exactly those scores from a FAISS flat index (the vectors
to index, the query vectors, the metric, and how to turn FAISS's output back into scores),
and how to imprint a new class vector from a few example embeddings. The service's class
index, the clustering report and training's evaluation all go through these objects; the
torch losses are tested against them. numpy only: no torch, no FAISS.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np

__all__ = ["RULES", "ClassRule", "ClassRuleName", "l2_normalise", "rule_for"]

ClassRuleName = Literal["cosine", "euclidean", "dot"]


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return np.asarray(x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps))


def _no_bias(bias: np.ndarray | None, k: int) -> np.ndarray:
    return np.zeros(k, np.float32) if bias is None else np.asarray(bias, np.float32)


class ClassRule:
    """Scores between embeddings h (N, D) and class vectors w (K, D), bias b (K,) for `dot`."""

    name: ClassVar[ClassRuleName]
    # FAISS metric that, over `index_vectors` and `query_vectors`, ranks like `scores`
    metric: ClassVar[Literal["inner_product", "l2"]] = "inner_product"

    def scores(
        self, h: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None
    ) -> np.ndarray:  # (N, K)
        raise NotImplementedError

    def index_vectors(self, w: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
        return np.ascontiguousarray(w, dtype=np.float32)

    def query_vectors(self, h: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(h, dtype=np.float32)

    def from_index(self, raw: np.ndarray) -> np.ndarray:
        """FAISS's distances or similarities as this rule's scores."""
        return raw

    def imprint(
        self, examples: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None
    ) -> tuple[np.ndarray, float]:
        """A new class (vector (D,), bias) from example embeddings (n, D), beside w and bias:
        the normalised mean direction of the examples."""
        return _mean_direction(examples), 0.0

    def __repr__(self) -> str:
        return f"ClassRule({self.name!r})"


def _mean_direction(examples: np.ndarray) -> np.ndarray:
    return l2_normalise(l2_normalise(examples).mean(0))


class CosineRule(ClassRule):
    name = "cosine"

    def scores(self, h: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(l2_normalise(h) @ l2_normalise(w).T)

    def index_vectors(self, w: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
        return l2_normalise(w)

    def query_vectors(self, h: np.ndarray) -> np.ndarray:
        return l2_normalise(h)


class EuclideanRule(ClassRule):
    name = "euclidean"
    metric = "l2"

    def scores(self, h: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
        h, w = np.asarray(h, np.float32), np.asarray(w, np.float32)
        squared = (h * h).sum(1, keepdims=True) - 2.0 * h @ w.T + (w * w).sum(1)[None, :]
        return np.asarray(-np.maximum(squared, 0.0))

    def from_index(self, raw: np.ndarray) -> np.ndarray:
        return -raw  # FAISS's L2 index returns squared distances

    def imprint(
        self, examples: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None
    ) -> tuple[np.ndarray, float]:
        # a Gaussian-COREL class vector is a centre, not a direction
        return np.asarray(examples, np.float32).mean(0), 0.0


class DotRule(ClassRule):
    name = "dot"

    def scores(self, h: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
        h, w = np.asarray(h, np.float32), np.asarray(w, np.float32)
        return np.asarray(h @ w.T + _no_bias(bias, len(w))[None, :])

    # the inner product of [h, 1] with [w, b] is h.w + b
    def index_vectors(self, w: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
        w = np.asarray(w, np.float32)
        return np.ascontiguousarray(np.hstack([w, _no_bias(bias, len(w))[:, None]]))

    def query_vectors(self, h: np.ndarray) -> np.ndarray:
        h = np.asarray(h, np.float32)
        return np.ascontiguousarray(np.hstack([h, np.ones((len(h), 1), np.float32)]))

    def imprint(
        self, examples: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None
    ) -> tuple[np.ndarray, float]:
        # a direction as long as the learned ones, at the mean bias
        scale = float(np.linalg.norm(w, axis=1).mean())
        mean_bias = float(np.mean(bias)) if bias is not None else 0.0
        return (_mean_direction(examples) * scale).astype(np.float32), mean_bias


RULES: dict[str, ClassRule] = {
    rule.name: rule for rule in (CosineRule(), EuclideanRule(), DotRule())
}


def rule_for(name: str) -> ClassRule:
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"unknown class rule {name!r} (expected {', '.join(RULES)})") from None
