"""The class index against the class rule's own scores under every rule, and its persistence.

Bundles for the `euclidean` and `dot` rules are the default bundle's manifest with random
class vectors (and bias): the index only reads the manifest and the arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from corel.bundle import Bundle, load_bundle
from corel.class_rule import l2_normalise, rule_for
from service.classes.index import ClassIndex
from service.errors import ConflictError, NotFoundError
from tests.conftest import DEFAULT_BUNDLE

K, D = 10, 128


@pytest.fixture(scope="module")
def default() -> Bundle:
    return load_bundle(DEFAULT_BUNDLE, check_onnx=False)


def with_rule(bundle: Bundle, rule: str, *, model_id: str = "m" * 64) -> Bundle:
    rng = np.random.default_rng(1)
    manifest = bundle.manifest.model_copy(
        update={"class_rule": rule, "files": {**bundle.manifest.files, "encoder.onnx": model_id}}
    )
    bias = rng.normal(size=K).astype(np.float32) if rule == "dot" else None
    return Bundle(bundle.path, manifest, rng.normal(size=(K, D)).astype(np.float32), bias)


@pytest.mark.parametrize("rule", ["cosine", "euclidean", "dot"])
def test_search_scores_match_the_class_rule(default, tmp_path, rule) -> None:
    bundle = default if rule == "cosine" else with_rule(default, rule)
    index = ClassIndex(bundle, tmp_path)
    h = np.random.default_rng(2).normal(size=(50, D)).astype(np.float32) * 3
    scores, ids, _ = index.search(h, K)
    expected = rule_for(rule).scores(h, bundle.class_vectors, bundle.class_bias)
    assert np.array_equal(ids[:, 0], expected.argmax(1))
    assert np.allclose(scores, np.take_along_axis(expected, ids, 1), rtol=1e-4, atol=1e-3)


def test_classify_flags_unknown_by_the_class_threshold_or_an_override(default, tmp_path) -> None:
    index = ClassIndex(default, tmp_path)
    direction = l2_normalise(default.class_vectors[3])[None]
    best = index.classify(direction, k=2)[0]
    assert best.label == default.manifest.labels[3] and best.unknown is False
    assert best.threshold == default.manifest.calibration["thresholds"][best.label]
    assert best.margin == pytest.approx(best.top[0].score - best.top[1].score)
    assert index.classify(direction, k=2, threshold=1.01)[0].unknown is True


def test_add_imprints_the_normalised_mean_and_persists(default, tmp_path) -> None:
    index = ClassIndex(default, tmp_path)
    examples = np.random.default_rng(3).normal(size=(4, D)).astype(np.float32)
    index.add("new", examples)
    assert index.classes.names[-1] == "new" and len(index) == K + 1
    expected = l2_normalise(l2_normalise(examples).mean(0))
    assert np.allclose(index.classes.vectors[-1], expected, atol=1e-6)
    assert index.classify(expected[None], k=1)[0].label == "new"
    index.remove(default.manifest.labels[0], force=True)

    again = ClassIndex(default, tmp_path)  # a restart
    assert again.classes.names == index.classes.names
    assert np.allclose(again.classes.vectors, index.classes.vectors)


def test_saved_classes_belong_to_their_bundle(default, tmp_path: Path) -> None:
    ClassIndex(default, tmp_path).remove(default.manifest.labels[0], force=True)
    other = with_rule(default, "cosine", model_id="0" * 64)  # another encoder
    assert ClassIndex(other, tmp_path).classes.names == default.manifest.labels
    assert len(ClassIndex(default, tmp_path)) == K - 1


def test_add_an_existing_name_is_a_conflict_and_remove_an_unknown_one_not_found(
    default, tmp_path
) -> None:
    index = ClassIndex(default, tmp_path)
    with pytest.raises(ConflictError):
        index.add(default.manifest.labels[0], np.ones((1, D), np.float32))
    with pytest.raises(NotFoundError):
        index.remove("nope")


@pytest.mark.parametrize("rule", ["euclidean", "dot"])
def test_imprinted_class_wins_for_its_examples_under_every_rule(default, tmp_path, rule) -> None:
    index = ClassIndex(with_rule(default, rule), tmp_path)
    centre = np.random.default_rng(4).normal(size=D).astype(np.float32) * 20
    examples = centre + np.random.default_rng(5).normal(size=(5, D)).astype(np.float32)
    index.add("imprinted", examples)
    labels = [p.label for p in index.classify(examples, k=1)]
    assert labels == ["imprinted"] * 5


def test_an_imprinted_class_keeps_its_feature_prototype_across_a_restart(default, tmp_path) -> None:
    assert default.open_set is not None
    rng = np.random.default_rng(3)
    features = np.abs(rng.normal(size=(5, default.open_set.bank.shape[1]))).astype(np.float32)
    ClassIndex(default, tmp_path).add(
        "new", rng.normal(size=(5, D)).astype(np.float32), None, (), features
    )

    record = ClassIndex(default, tmp_path).classes.records[-1]
    prototype, bar = default.open_set.imprint(features, capture=0.005)
    assert record.name == "new" and record.bar == pytest.approx(bar)
    assert record.prototype is not None and np.allclose(record.prototype, prototype, atol=1e-6)


def test_a_bundle_without_an_open_set_flags_by_scores_alone(default, tmp_path) -> None:
    bundle = Bundle(default.path, default.manifest, default.class_vectors, None, open_set=None)
    index = ClassIndex(bundle, tmp_path)
    h = l2_normalise(default.class_vectors[:1])
    blank = np.zeros((1, 1, 28, 28), np.float32)  # the input guard would refuse it
    features = np.zeros((1, 540), np.float32)
    (kept,) = index.classify(h, 3, features=features, model_input=blank)
    (low,) = index.classify(h, 3, 1.01, features=features, model_input=blank)
    assert not kept.unknown and kept.reason is None
    assert low.unknown and low.reason == "far_from_classes"


def test_input_scores_computed_for_a_batch_decide_as_the_inputs_themselves(
    default, tmp_path, fashion_sample
) -> None:
    # the service computes them in the inference thread for a whole micro-batch
    from service.inference.runtime import EncoderRuntime

    index = ClassIndex(default, tmp_path)
    images = (fashion_sample[0][:8] / 255.0).astype(np.float32)
    inputs = np.concatenate([images, np.ones((1, 1, 28, 28), np.float32)])  # white: outside
    out = EncoderRuntime(default.encoder_path, provider="cpu").run(inputs)
    h, features = out[:, :D], out[:, D:]

    scores = index.input_scores(features, inputs)
    by_inputs = index.classify(h, 3, features=features, model_input=inputs)
    by_scores = index.classify(h, 3, features=features, input_scores=scores)

    assert scores.shape == (9, 2)
    assert [p.label for p in by_scores] == [p.label for p in by_inputs]
    assert [p.reason for p in by_scores] == [p.reason for p in by_inputs]
    assert by_scores[-1].reason == "outside_data"
