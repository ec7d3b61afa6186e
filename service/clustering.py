"""How clusterable a set of embeddings is (torch-free; shared by training and service).

The protocol of Kenyon-Dean et al. (COREL): K-Means and a Gaussian mixture with K = the
number of classes, each scored against the true labels by accuracy after Hungarian
matching, adjusted Rand index and V-measure; and the silhouette coefficient with cosine
distance, computed against the K-Means predictions (the paper's "K-Means density") with
the silhouette against the true labels beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score, v_measure_score
from sklearn.mixture import GaussianMixture

from service.class_rule import class_scores, l2_normalise

__all__ = [
    "choose_k",
    "class_report",
    "cluster_accuracy",
    "evaluate_latent_space",
    "kmeans",
    "label_agreement",
    "silhouette",
]

# Silhouette is O(N^2); above this many points it is estimated on a seeded sample.
SILHOUETTE_SAMPLE = 10_000


def cluster_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Accuracy after the best one-to-one matching of clusters to classes (Hungarian)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        return 0.0
    _, t = np.unique(y_true, return_inverse=True)
    _, p = np.unique(y_pred, return_inverse=True)
    contingency = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(contingency, (p, t), 1)
    rows, cols = linear_sum_assignment(-contingency)
    return float(contingency[rows, cols].sum() / len(y_true))


def label_agreement(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": cluster_accuracy(y_true, y_pred),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
        "v_measure": float(v_measure_score(y_true, y_pred)),
    }


def silhouette(x: np.ndarray, assignments: np.ndarray, seed: int = 0) -> float:
    """Cosine silhouette; 0.0 when it is undefined (one cluster, or one point per cluster)."""
    n_clusters = len(np.unique(assignments))
    if n_clusters < 2 or n_clusters >= len(x):
        return 0.0
    sample = SILHOUETTE_SAMPLE if len(x) > SILHOUETTE_SAMPLE else None
    score = silhouette_score(x, assignments, metric="cosine", sample_size=sample, random_state=seed)
    return float(score)


def kmeans(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)


def gaussian_mixture(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    # Diagonal covariances: full ones on 128-D, tightly clustered embeddings are often
    # singular and the fit then says more about regularisation than about the space.
    gmm = GaussianMixture(n_components=k, covariance_type="diag", reg_covar=1e-4, random_state=seed)
    return gmm.fit_predict(x)


def evaluate_latent_space(
    embeddings: np.ndarray,  # (N, D)
    labels: np.ndarray,  # (N,) true classes
    *,
    normalise: bool = True,
    seed: int = 0,
    with_gmm: bool = True,
) -> dict[str, Any]:
    """K-Means and GMM agreement with the labels, and the cosine silhouettes.

    `normalise=True` clusters the L2-normalised embeddings (cosine geometry, our headline);
    False clusters them raw. Both are worth reporting: the choice changes the ranking.
    """
    x = l2_normalise(embeddings) if normalise else np.asarray(embeddings, np.float32)
    labels = np.asarray(labels)
    k = len(np.unique(labels))
    km = kmeans(x, k, seed)
    result: dict[str, Any] = {
        "geometry": "l2-normalised" if normalise else "raw",
        "n": len(x),
        "k": k,
        "kmeans": label_agreement(labels, km),
        "silhouette_kmeans": silhouette(x, km, seed),
        "silhouette_labels": silhouette(x, labels, seed),
    }
    if with_gmm:
        result["gmm"] = label_agreement(labels, gaussian_mixture(x, k, seed))
    return result


def choose_k(
    x: np.ndarray, candidates: range, seed: int = 0
) -> tuple[int, np.ndarray, dict[int, float]]:
    """K-Means for each candidate K; the K with the best cosine silhouette wins.

    Returns (best K, its assignments, {K: silhouette}). Ties go to the smaller K.
    """
    scores: dict[int, float] = {}
    best: tuple[int, np.ndarray] | None = None
    for k in candidates:
        assignments = kmeans(x, k, seed)
        scores[k] = silhouette(x, assignments, seed)
        if best is None or scores[k] > scores[best[0]]:
            best = (k, assignments)
    if best is None:
        raise ValueError("no candidate K to try")
    return best[0], best[1], scores


def class_report(
    embeddings: np.ndarray,  # (N, D) raw
    labels: list[str],  # (N,) class names of the items
    class_vectors: np.ndarray,  # (K, D)
    class_names: list[str],  # (K,)
    rule: str,
    class_bias: np.ndarray | None = None,
    max_examples: int = 10,
) -> dict[str, Any]:
    """How well labelled items sit around their classes, class by class.

    Per class: cohesion (mean cosine of its items to their own centroid), the nearest
    other class (by cosine between centroids), and the items that the class rule scores
    closer to another class vector than to their own (only for labels that have one).
    """
    x = l2_normalise(embeddings)
    names = sorted(set(labels))
    y = np.array([names.index(label) for label in labels])
    centroids = l2_normalise(np.stack([x[y == c].mean(0) for c in range(len(names))]))
    between = centroids @ centroids.T  # (C, C)
    np.fill_diagonal(between, -np.inf)
    scores = class_scores(embeddings, class_vectors, rule, class_bias)  # (N, K)
    best = scores.argmax(1)
    column = {name: j for j, name in enumerate(class_names)}
    classes = []
    for c, name in enumerate(names):
        members = np.flatnonzero(y == c)
        entry: dict[str, Any] = {
            "label": name,
            "n": len(members),
            "cohesion": float((x[members] @ centroids[c]).mean()),
            "nearest_class": names[int(between[c].argmax())] if len(names) > 1 else None,
            "nearest_class_similarity": float(between[c].max()) if len(names) > 1 else None,
            "has_class_vector": name in column,
        }
        if name in column:
            own = scores[members, column[name]]
            wrong = members[best[members] != column[name]]
            entry["misplaced"] = len(wrong)
            entry["misplaced_examples"] = [
                {
                    "index": int(i),
                    "closest_class": class_names[best[i]],
                    "closest_score": float(scores[i, best[i]]),
                    "own_score": float(own[np.flatnonzero(members == i)[0]]),
                }
                for i in wrong[:max_examples]
            ]
        classes.append(entry)
    return {"n": len(x), "classes": classes}
