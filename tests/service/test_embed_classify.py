"""POST /embed and POST /classify on real Fashion-MNIST test images."""

import numpy as np
import pytest

from tests.service.conftest import as_input, png_base64


def test_embed_returns_unit_vectors_by_default(client, fashion_sample) -> None:
    images, _ = fashion_sample
    response = client.post("/embed", json={"inputs": [as_input(im) for im in images[:4]]})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "fashion-mnist-cosine" and body["dim"] == 128
    vectors = np.array(body["embeddings"])
    assert vectors.shape == (4, 128)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_embed_raw_is_the_last_hidden_layer(client, fashion_sample) -> None:
    images, _ = fashion_sample
    inputs = [as_input(images[0])]
    raw = np.array(client.post("/embed", json={"inputs": inputs, "normalize": False})
                   .json()["embeddings"][0])
    unit = np.array(client.post("/embed", json={"inputs": inputs}).json()["embeddings"][0])
    assert not np.isclose(np.linalg.norm(raw), 1.0)
    assert np.allclose(raw / np.linalg.norm(raw), unit, atol=1e-4)


def test_embed_png_and_pixel_array_agree(client, fashion_sample) -> None:
    image = fashion_sample[0][5]
    as_array = client.post("/embed", json={"inputs": [as_input(image)]}).json()
    as_png = client.post("/embed", json={"inputs": [{"image": png_base64(image)}]}).json()
    assert np.allclose(as_array["embeddings"], as_png["embeddings"], atol=1e-5)


def test_embed_accepts_channel_first_arrays(client, fashion_sample) -> None:
    image = fashion_sample[0][0]
    response = client.post("/embed", json={"inputs": [{"data": image.astype(int).tolist()}]})
    assert response.status_code == 200


def test_classify_real_images_far_above_chance(client, fashion_sample) -> None:
    images, labels = fashion_sample
    names = client.get("/classes").json()["classes"]
    response = client.post("/classify", json={"inputs": [as_input(im) for im in images], "k": 3})
    assert response.status_code == 200
    results = response.json()["results"]
    predicted = [names.index(next(c for c in names if c["name"] == r["label"])) for r in results]
    accuracy = float(np.mean(np.array(predicted) == labels))
    assert accuracy > 0.85  # chance is 0.10
    first = results[0]
    assert len(first["top"]) == 3 and first["top"][0]["label"] == first["label"]
    assert first["margin"] == pytest.approx(first["top"][0]["score"] - first["top"][1]["score"])
    assert isinstance(first["unknown"], bool) and first["threshold"] is not None


def test_classify_flags_unknown_below_a_request_threshold(client, fashion_sample) -> None:
    inputs = [as_input(fashion_sample[0][0])]
    strict = client.post("/classify", json={"inputs": inputs, "threshold": 1.01}).json()
    lenient = client.post("/classify", json={"inputs": inputs, "threshold": -1.0}).json()
    assert strict["results"][0]["unknown"] is True
    assert lenient["results"][0]["unknown"] is False


def test_classify_blank_image_is_unknown_by_calibrated_threshold(client) -> None:
    blank = {"data": [[0] * 28 for _ in range(28)]}
    result = client.post("/classify", json={"inputs": [blank]}).json()["results"][0]
    assert result["unknown"] is True
