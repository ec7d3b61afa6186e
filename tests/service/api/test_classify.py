"""POST /classify on real Fashion-MNIST test images: accuracy, top-k, margin, unknown."""

import numpy as np
import pytest

from tests.service.conftest import as_input


def test_classify_real_images_far_above_chance(client, fashion_sample) -> None:
    images, labels = fashion_sample  # 300 test images, 30 per class
    names = [c["name"] for c in client.get("/classes").json()["classes"]]
    response = client.post("/classify", json={"inputs": [as_input(im) for im in images], "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "fashion-mnist-cosine" and body["rule"] == "cosine"
    predicted = np.array([names.index(r["label"]) for r in body["results"]])
    assert float(np.mean(predicted == labels)) > 0.85  # chance is 0.10


def test_classify_returns_top_k_with_margin_and_threshold(client, fashion_sample) -> None:
    body = client.post("/classify", json={"inputs": [as_input(fashion_sample[0][0])], "k": 4})
    assert body.status_code == 200
    result = body.json()["results"][0]
    assert len(result["top"]) == 4 and result["top"][0]["label"] == result["label"]
    scores = [t["score"] for t in result["top"]]
    assert scores == sorted(scores, reverse=True) and result["score"] == scores[0]
    assert result["margin"] == pytest.approx(scores[0] - scores[1])
    assert isinstance(result["unknown"], bool) and result["threshold"] is not None


def test_classify_k_above_the_class_count_returns_every_class(client, fashion_sample) -> None:
    body = client.post("/classify", json={"inputs": [as_input(fashion_sample[0][0])], "k": 50})
    assert body.status_code == 200
    assert len(body.json()["results"][0]["top"]) == 10


def test_classify_request_threshold_overrides_the_calibrated_one(client, fashion_sample) -> None:
    inputs = [as_input(fashion_sample[0][0])]
    strict = client.post("/classify", json={"inputs": inputs, "threshold": 1.01}).json()
    lenient = client.post("/classify", json={"inputs": inputs, "threshold": -1.0}).json()
    assert strict["results"][0]["unknown"] is True and strict["results"][0]["threshold"] == 1.01
    assert lenient["results"][0]["unknown"] is False


def test_classify_global_threshold_setting_applies(make_client, fashion_sample) -> None:
    client = make_client(unknown_threshold=1.01)
    result = client.post("/classify", json={"inputs": [as_input(fashion_sample[0][0])]}).json()[
        "results"
    ][0]
    assert result["unknown"] is True and result["threshold"] == 1.01


def test_classify_blank_image_is_unknown_by_calibrated_threshold(client) -> None:
    blank = {"data": [[0] * 28 for _ in range(28)]}
    result = client.post("/classify", json={"inputs": [blank]}).json()["results"][0]
    assert result["unknown"] is True


def test_classify_says_why_inputs_outside_the_data_are_unknown(client, fashion_sample) -> None:
    rng = np.random.default_rng(0)
    far = [
        {"data": rng.integers(0, 256, (28, 28)).tolist()},  # uniform noise
        {"data": [[255] * 28 for _ in range(28)]},  # all white
        as_input(255 - fashion_sample[0][0]),  # an inverted item
    ]
    results = client.post("/classify", json={"inputs": far}).json()["results"]
    assert [(r["unknown"], r["reason"]) for r in results] == [(True, "outside_data")] * 3


def test_classify_accepts_most_real_items_and_gives_a_reason_for_each_unknown(
    client, fashion_sample
) -> None:
    images, _ = fashion_sample
    results = client.post("/classify", json={"inputs": [as_input(im) for im in images]}).json()
    reasons = [r["reason"] for r in results["results"] if r["unknown"]]
    assert len(reasons) <= 0.15 * len(images)  # calibrated to accept about 93% of them
    assert set(reasons) <= {"outside_data", "far_from_classes", "between_classes"}
    assert all(r["reason"] is None for r in results["results"] if not r["unknown"])
