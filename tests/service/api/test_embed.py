"""POST /embed on real Fashion-MNIST test images."""

import base64

import numpy as np

from tests.service.conftest import as_input, png_base64, tensor_input


def test_embed_returns_unit_vectors_by_default(client, fashion_sample) -> None:
    images, _ = fashion_sample
    response = client.post("/embed", json={"inputs": [as_input(im) for im in images[:4]]})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "fashion-mnist-cosine" and body["dim"] == 128
    assert body["normalized"] is True
    vectors = np.array(body["embeddings"])
    assert vectors.shape == (4, 128)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_embed_raw_is_the_last_hidden_layer(client, fashion_sample) -> None:
    inputs = [as_input(fashion_sample[0][0])]
    raw = client.post("/embed", json={"inputs": inputs, "normalize": False}).json()
    unit = client.post("/embed", json={"inputs": inputs}).json()
    assert raw["normalized"] is False
    h = np.array(raw["embeddings"][0])
    assert not np.isclose(np.linalg.norm(h), 1.0)
    assert np.allclose(h / np.linalg.norm(h), unit["embeddings"][0], atol=1e-4)


def test_embed_same_class_is_closer_than_other_classes(client, fashion_sample) -> None:
    images, labels = fashion_sample
    picked = np.concatenate([np.flatnonzero(labels == k)[:5] for k in range(10)])
    body = client.post("/embed", json={"inputs": [as_input(images[i]) for i in picked]}).json()
    x = np.array(body["embeddings"])
    similarity, same = x @ x.T, labels[picked][:, None] == labels[picked][None, :]
    assert similarity[same & ~np.eye(len(x), dtype=bool)].mean() > similarity[~same].mean() + 0.5


def test_embed_png_and_pixel_array_agree(client, fashion_sample) -> None:
    image = fashion_sample[0][5]
    as_array = client.post("/embed", json={"inputs": [as_input(image)]}).json()
    as_png = client.post("/embed", json={"inputs": [{"image": png_base64(image)}]}).json()
    assert np.allclose(as_array["embeddings"], as_png["embeddings"], atol=1e-5)


def test_embed_tensor_bytes_and_pixel_lists_agree(client, fashion_sample) -> None:
    image = fashion_sample[0][7]
    as_lists = client.post("/embed", json={"inputs": [as_input(image)]}).json()
    as_tensors = client.post(
        "/embed",
        json={
            "inputs": [
                tensor_input(image),  # shape defaults to the model's, (1, 28, 28)
                tensor_input(image, "float32", [28, 28]),
            ]
        },
    ).json()
    assert np.allclose(as_tensors["embeddings"], as_lists["embeddings"] * 2, atol=1e-5)


def test_embed_tensor_size_must_match_its_shape(client, fashion_sample) -> None:
    image = fashion_sample[0][0]
    response = client.post("/embed", json={"inputs": [tensor_input(image, shape=[28, 27])]})
    assert response.status_code == 422
    assert "784 bytes; shape [28, 27] of uint8 takes 756" in response.json()["error"]["message"]
    response = client.post("/embed", json={"inputs": [tensor_input(image, shape=[784])]})
    assert response.status_code == 422
    assert "has shape [784]" in response.json()["error"]["message"]


def test_embed_base64_output_is_the_exact_float32_vector(client, fashion_sample) -> None:
    inputs = [as_input(image) for image in fashion_sample[0][:3]]
    floats = client.post("/embed", json={"inputs": inputs}).json()
    packed = client.post("/embed", json={"inputs": inputs, "encoding_format": "base64"}).json()
    assert packed["encoding_format"] == "base64"
    vectors = np.stack([np.frombuffer(base64.b64decode(e), "<f4") for e in packed["embeddings"]])
    assert vectors.shape == (3, packed["dim"])
    assert np.allclose(vectors, floats["embeddings"], atol=1e-6)  # floats: 6 decimals


def test_embed_accepts_channel_first_arrays(client, fashion_sample) -> None:
    image = fashion_sample[0][0]  # (1, 28, 28)
    response = client.post("/embed", json={"inputs": [{"data": image.astype(int).tolist()}]})
    assert response.status_code == 200
    assert len(response.json()["embeddings"]) == 1


# -- preprocessing, by manifest -------------------------------------------------------------
