"""How clusterable a set of embeddings is (torch-free; shared by training and service).

The protocol of Kenyon-Dean et al. (COREL): K-Means and a Gaussian mixture with K = the
number of classes, each scored against the true labels by accuracy after Hungarian
matching, adjusted Rand index and V-measure; and the silhouette coefficient with cosine
distance, computed against the K-Means predictions (the paper's "K-Means density") with
the silhouette against the true labels beside it.

SciPy and scikit-learn are imported in the functions that use them: importing them takes
about 1.3 s, which every server start paid for routes that most requests never call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from corel.class_rule import ClassRule, l2_normalise

__all__ = [
    "Agreement",
    "ClassQuality",
    "ClassReport",
    "LatentSpaceScores",
    "MisplacedItem",
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
    if len(y_true) == 0:
        return 0.0
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics.cluster import contingency_matrix

    contingency = contingency_matrix(y_true, y_pred)  # (classes, clusters)
    rows, cols = linear_sum_assignment(-contingency)
    return float(contingency[rows, cols].sum() / len(y_true))


@dataclass(frozen=True)
class Agreement:
    """How well a clustering agrees with the true labels."""

    accuracy: float  # after Hungarian matching of clusters to classes
    ari: float
    v_measure: float


def label_agreement(y_true: np.ndarray, y_pred: np.ndarray) -> Agreement:
    from sklearn.metrics import adjusted_rand_score, v_measure_score

    return Agreement(
        accuracy=cluster_accuracy(y_true, y_pred),
        ari=float(adjusted_rand_score(y_true, y_pred)),
        v_measure=float(v_measure_score(y_true, y_pred)),
    )


def silhouette(x: np.ndarray, assignments: np.ndarray, seed: int = 0) -> float:
    """Cosine silhouette; 0.0 when it is undefined (one cluster, or one point per cluster)."""
    n_clusters = len(np.unique(assignments))
    if n_clusters < 2 or n_clusters >= len(x):
        return 0.0
    from sklearn.metrics import silhouette_score

    sample = SILHOUETTE_SAMPLE if len(x) > SILHOUETTE_SAMPLE else None
    score = silhouette_score(x, assignments, metric="cosine", sample_size=sample, random_state=seed)
    return float(score)


def kmeans(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    from sklearn.cluster import KMeans

    return np.asarray(KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x))


def gaussian_mixture(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    from sklearn.mixture import GaussianMixture

    # Diagonal covariances: full ones on 128-D, tightly clustered embeddings are often
    # singular and the fit then says more about regularisation than about the space.
    gmm = GaussianMixture(n_components=k, covariance_type="diag", reg_covar=1e-4, random_state=seed)
    return np.asarray(gmm.fit_predict(x))


@dataclass(frozen=True)
class LatentSpaceScores:
    geometry: str  # "l2-normalised" or "raw": what was clustered
    n: int
    k: int  # number of classes in the labels, used as K
    kmeans: Agreement
    silhouette_kmeans: float  # cosine silhouette of the K-Means clusters (the paper's)
    silhouette_labels: float  # cosine silhouette of the true classes
    gmm: Agreement | None = None


def evaluate_latent_space(
    embeddings: np.ndarray,  # (N, D)
    labels: np.ndarray,  # (N,) true classes
    *,
    normalise: bool = True,
    seed: int = 0,
    with_gmm: bool = True,
) -> LatentSpaceScores:
    """K-Means and GMM agreement with the labels, and the cosine silhouettes.

    `normalise=True` clusters the L2-normalised embeddings (cosine geometry, our headline);
    False clusters them raw. Both are worth reporting: the choice changes the ranking.
    """
    x = l2_normalise(embeddings) if normalise else np.asarray(embeddings, np.float32)
    labels = np.asarray(labels)
    k = len(np.unique(labels))
    km = kmeans(x, k, seed)
    return LatentSpaceScores(
        geometry="l2-normalised" if normalise else "raw",
        n=len(x),
        k=k,
        kmeans=label_agreement(labels, km),
        silhouette_kmeans=silhouette(x, km, seed),
        silhouette_labels=silhouette(x, labels, seed),
        gmm=label_agreement(labels, gaussian_mixture(x, k, seed)) if with_gmm else None,
    )


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


@dataclass(frozen=True)
class MisplacedItem:
    index: int  # position in the embeddings given
    closest_class: str  # the class whose vector scores highest
    closest_score: float
    own_score: float  # score against its own class vector


@dataclass(frozen=True)
class ClassQuality:
    label: str
    n: int
    cohesion: float  # mean cosine of its items to their own centroid
    nearest_class: str | None  # by cosine between class centroids
    nearest_class_similarity: float | None
    has_class_vector: bool  # False: a label the class vectors do not know
    misplaced: int | None = None  # items nearer another class vector (None: no own vector)
    misplaced_examples: list[MisplacedItem] = field(default_factory=list)


@dataclass(frozen=True)
class ClassReport:
    n: int
    classes: list[ClassQuality]


def class_report(
    embeddings: np.ndarray,  # (N, D) raw
    labels: list[str],  # (N,) class names of the items
    class_vectors: np.ndarray,  # (K, D)
    class_names: list[str],  # (K,)
    rule: ClassRule,
    class_bias: np.ndarray | None = None,
    max_examples: int = 10,
) -> ClassReport:
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
    scores = rule.scores(embeddings, class_vectors, class_bias)  # (N, K)
    best = scores.argmax(1)
    column = {name: j for j, name in enumerate(class_names)}
    classes = []
    for c, name in enumerate(names):
        members = np.flatnonzero(y == c)
        misplaced, examples = None, []
        if name in column:
            own = scores[members, column[name]]
            wrong = np.flatnonzero(best[members] != column[name])  # positions in members
            misplaced = len(wrong)
            examples = [
                MisplacedItem(
                    int(members[w]),
                    class_names[best[members[w]]],
                    float(scores[members[w], best[members[w]]]),
                    float(own[w]),
                )
                for w in wrong[:max_examples]
            ]
        classes.append(
            ClassQuality(
                label=name,
                n=len(members),
                cohesion=float((x[members] @ centroids[c]).mean()),
                nearest_class=names[int(between[c].argmax())] if len(names) > 1 else None,
                nearest_class_similarity=float(between[c].max()) if len(names) > 1 else None,
                has_class_vector=name in column,
                misplaced=misplaced,
                misplaced_examples=examples,
            )
        )
    return ClassReport(n=len(x), classes=classes)
