"""The latent-space metrics on cases whose answer is known."""

import numpy as np
import pytest

from corel.class_rule import rule_for
from corel.clustering import (
    choose_k,
    class_report,
    cluster_accuracy,
    evaluate_latent_space,
    silhouette,
)


def test_cluster_accuracy_ignores_cluster_names() -> None:
    y_true = np.array([0, 0, 1, 1, 2, 2])
    assert cluster_accuracy(y_true, np.array([5, 5, 9, 9, 7, 7])) == 1.0


def test_cluster_accuracy_uses_the_best_one_to_one_matching() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 1])
    y_pred = np.array([1, 1, 0, 0, 0, 0])  # best matching: 1->0 (2 right), 0->1 (3 right)
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(5 / 6)


def test_orthogonal_tight_clusters_score_perfectly() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16) * 10  # four orthogonal directions
    labels = np.repeat(np.arange(4), 50)
    x = centres[labels] + rng.normal(scale=0.1, size=(200, 16))
    result = evaluate_latent_space(x, labels)
    assert result.kmeans.accuracy == 1.0
    assert result.gmm.accuracy == 1.0
    assert result.kmeans.ari == pytest.approx(1.0)
    assert result.kmeans.v_measure == pytest.approx(1.0)
    assert result.silhouette_kmeans > 0.95


def test_random_points_score_near_chance() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 16))
    labels = rng.integers(0, 4, 400)
    result = evaluate_latent_space(x, labels, with_gmm=False)
    assert result.kmeans.ari < 0.05
    assert result.silhouette_labels < 0.05


def test_normalising_changes_what_is_clustered() -> None:
    # Two classes on two rays, half of each near the origin: by angle they are two perfect
    # clusters; raw, K-Means lumps the short vectors of both classes together.
    rng = np.random.default_rng(2)
    norms = np.concatenate([rng.uniform(1, 2, 50), rng.uniform(50, 60, 50)])
    directions = np.array([[1.0, 0.1], [0.1, 1.0]])
    labels = np.tile(np.repeat([0, 1], 25), 2)
    x = directions[labels] * norms[:, None]
    by_angle = evaluate_latent_space(x, labels, normalise=True, with_gmm=False)
    raw = evaluate_latent_space(x, labels, normalise=False, with_gmm=False)
    assert by_angle.kmeans.accuracy == 1.0
    assert raw.kmeans.accuracy <= 0.76


def test_silhouette_is_zero_when_undefined() -> None:
    assert silhouette(np.ones((5, 3)), np.zeros(5, dtype=int)) == 0.0


def three_blobs(n: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = np.eye(3, 6) * 5
    y = np.repeat(np.arange(3), n)
    return centres[y] + rng.normal(scale=0.3, size=(3 * n, 6)), y, centres


def test_choose_k_findsthree_blobs() -> None:
    x, _, _ = three_blobs()

    k, assignments, scores = choose_k(x, range(2, 6))

    assert k == 3
    assert set(scores) == {2, 3, 4, 5}
    assert len(np.unique(assignments)) == 3


def test_class_report_flags_an_item_nearer_another_class() -> None:
    x, y, centres = three_blobs()
    labels = [str(c) for c in y]
    labels[0] = "1"  # a point of blob 0 labelled as class 1

    report = class_report(x, labels, centres, ["0", "1", "2"], rule_for("cosine"))

    by_label = {c.label: c for c in report.classes}
    assert by_label["0"].cohesion > 0.9
    assert by_label["1"].misplaced == 1
    assert by_label["1"].misplaced_examples[0].index == 0
    assert by_label["1"].misplaced_examples[0].closest_class == "0"
    assert by_label["0"].misplaced == 0
