"""Open-set scores on small synthetic data: each does what its docstring promises."""

import numpy as np
import pytest

from corel.class_rule import l2_normalise, rule_for
from corel.open_set import (
    InputGuard,
    OpenSet,
    knn_similarity,
    leave_one_out_threshold,
    quantile_threshold,
)


def test_knn_similarity_is_the_kth_largest_cosine() -> None:
    bank = np.eye(4, dtype=np.float32)
    query = np.array([[3.0, 2.0, 1.0, 0.0]], np.float32)
    cosines = l2_normalise(query)[0]  # to e1..e4
    assert knn_similarity(query, bank, 1)[0] == pytest.approx(cosines[0])
    assert knn_similarity(query, bank, 3)[0] == pytest.approx(cosines[2])
    assert knn_similarity(query, bank, 99)[0] == pytest.approx(0.0)  # k above M: the M-th


def blobs(rng: np.random.Generator, n: int = 400) -> np.ndarray:
    """'Images' in [0, 1] of 64 pixels: a bright square at one of two places, some noise."""
    x = np.zeros((n, 1, 8, 8), np.float32)
    for i in range(n):
        r = 1 if i % 2 else 4
        x[i, 0, r : r + 3, r : r + 3] = 0.8 + 0.2 * rng.random()
    return np.clip(x + 0.02 * rng.standard_normal(x.shape), 0, 1).astype(np.float32)


def test_input_guard_ranks_data_above_noise_inverted_white_and_black() -> None:
    rng = np.random.default_rng(0)
    guard = InputGuard.fit(blobs(rng), n_components=8)
    held_out = guard.scores(blobs(rng, 100))
    threshold = quantile_threshold(held_out, 0.99)
    far = {
        "noise": rng.random((50, 1, 8, 8)).astype(np.float32),
        "inverted": 1 - blobs(rng, 50),
        "white": np.ones((1, 1, 8, 8), np.float32),
        "black": np.zeros((1, 1, 8, 8), np.float32),  # fits the PCA; its level does not
    }
    for name, x in far.items():
        assert (guard.scores(x) < threshold).all(), name
    assert guard.scores(far["black"])[0] < -1.0  # below any residual score


def test_quantile_threshold_accepts_the_stated_share() -> None:
    scores = np.arange(100, dtype=np.float64)
    threshold = quantile_threshold(scores, 0.95)
    assert (scores >= threshold).mean() == pytest.approx(0.95, abs=0.01)


def test_leave_one_out_threshold_scores_each_example_against_the_others() -> None:
    rule = rule_for("cosine")
    examples = np.array([[1.0, 0.1], [1.0, -0.1], [1.0, 0.3]], np.float32)
    w = np.eye(2, dtype=np.float32)
    held_out = [
        float(
            l2_normalise(examples[i])
            @ l2_normalise(l2_normalise(np.delete(examples, i, 0)).mean(0))
        )
        for i in range(3)
    ]
    assert leave_one_out_threshold(rule, examples, w, None, 1.0) == pytest.approx(min(held_out))
    assert leave_one_out_threshold(rule, examples[:1], w, None, 0.95) is None


def test_an_imprinted_class_takes_at_most_its_capture_of_the_known_items() -> None:
    rng = np.random.default_rng(0)
    directions = np.eye(3, 6, dtype=np.float32)
    bank = np.repeat(directions, 200, 0) + 0.6 * rng.standard_normal((600, 6)).astype(np.float32)
    no_guard = InputGuard(np.zeros(1, np.float32), np.zeros((0, 1), np.float32), (0.0, 1.0))
    open_set = OpenSet(bank.mean(0), bank, np.repeat(np.arange(3), 200), no_guard, knn_k=1)
    new_direction = np.array([0, 0, 0, 1, 0.3, 0], np.float32)
    examples = new_direction + 0.1 * rng.standard_normal((5, 6)).astype(np.float32)
    prototype, bar = open_set.imprint(examples, capture=0.01)
    assert bar >= 0.0
    new_items = new_direction + 0.1 * rng.standard_normal((50, 6)).astype(np.float32)
    assert (open_set.gate(new_items, prototype[None], np.array([bar])) == 0).mean() > 0.9
    assert (open_set.gate(bank, prototype[None], np.array([bar])) == 0).mean() <= 0.01
    no_class = open_set.gate(bank, np.zeros((0, 6), np.float32), np.zeros(0))
    assert (no_class == -1).all()
