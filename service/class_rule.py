"""Scores between embeddings and class vectors under a bundle's class rule (torch-free).

Higher is always better, so `argmax` predicts under every rule:
- `cosine`    (Cosine-COREL, Siamese): cos(h, w_j), in [-1, 1];
- `euclidean` (Gaussian-COREL):        -||h - w_j||^2;
- `dot`       (cross-entropy, center): h . w_j + b_j, the classifier's logit.
"""

from __future__ import annotations

import numpy as np

__all__ = ["class_scores", "l2_normalise"]


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def class_scores(
    embeddings: np.ndarray,  # (N, D)
    class_vectors: np.ndarray,  # (K, D)
    rule: str,
    class_bias: np.ndarray | None = None,  # (K,)
) -> np.ndarray:  # (N, K)
    h = np.asarray(embeddings, dtype=np.float32)
    w = np.asarray(class_vectors, dtype=np.float32)
    if rule == "cosine":
        return l2_normalise(h) @ l2_normalise(w).T
    if rule == "euclidean":
        sq = (h * h).sum(1, keepdims=True) - 2.0 * h @ w.T + (w * w).sum(1)[None, :]
        return -np.maximum(sq, 0.0)
    if rule == "dot":
        bias = np.zeros(len(w), np.float32) if class_bias is None else class_bias
        return h @ w.T + bias[None, :]
    raise ValueError(f"unknown class rule {rule!r} (expected cosine, euclidean or dot)")

