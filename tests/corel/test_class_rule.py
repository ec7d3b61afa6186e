"""The class rule objects: what a FAISS flat index over their vectors returns is their score."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from corel.class_rule import RULES, l2_normalise, rule_for

K, D = 7, 16


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (
        rng.normal(size=(40, D)).astype(np.float32) * 3,
        rng.normal(size=(K, D)).astype(np.float32),
        rng.normal(size=K).astype(np.float32),
    )


@pytest.mark.parametrize("name", list(RULES))
def test_a_faiss_index_over_the_rules_vectors_gives_the_rules_scores(name, data) -> None:
    h, w, bias = data
    rule = rule_for(name)
    vectors = rule.index_vectors(w, bias)
    index = (
        faiss.IndexFlatL2(vectors.shape[1])
        if rule.metric == "l2"
        else faiss.IndexFlatIP(vectors.shape[1])
    )
    index.add(vectors)

    raw, ids = index.search(rule.query_vectors(h), K)

    expected = rule.scores(h, w, bias)
    assert np.array_equal(ids[:, 0], expected.argmax(1))
    np.testing.assert_allclose(
        rule.from_index(raw), np.take_along_axis(expected, ids, 1), rtol=1e-4, atol=1e-3
    )


def test_the_three_rules_by_hand() -> None:
    h = np.array([[3.0, 4.0]], np.float32)
    w = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    bias = np.array([0.5, -1.0], np.float32)

    np.testing.assert_allclose(rule_for("cosine").scores(h, w), [[0.6, 0.8]], rtol=1e-6)
    np.testing.assert_allclose(rule_for("euclidean").scores(h, w), [[-20.0, -13.0]])
    np.testing.assert_allclose(rule_for("dot").scores(h, w, bias), [[3.5, 7.0]])
    np.testing.assert_allclose(rule_for("dot").scores(h, w), [[3.0, 8.0]])  # no bias: zero


@pytest.mark.parametrize("name", list(RULES))
def test_an_imprinted_class_wins_for_its_own_examples(name, data) -> None:
    _, w, bias = data
    rng = np.random.default_rng(1)
    examples = rng.normal(size=D).astype(np.float32) * 20 + rng.normal(size=(5, D)).astype(
        np.float32
    )
    rule = rule_for(name)

    vector, b = rule.imprint(examples, w, bias)

    scores = rule.scores(examples, np.vstack([w, vector]), np.append(bias, b))
    assert (scores.argmax(1) == K).all()


def test_cosine_imprint_is_the_normalised_mean_direction(data) -> None:
    _, w, _ = data
    examples = np.random.default_rng(2).normal(size=(4, D)).astype(np.float32)

    vector, bias = rule_for("cosine").imprint(examples, w)

    np.testing.assert_allclose(vector, l2_normalise(l2_normalise(examples).mean(0)), atol=1e-6)
    assert bias == 0.0


def test_an_unknown_rule_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown class rule 'manhattan'"):
        rule_for("manhattan")
