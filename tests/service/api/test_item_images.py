"""GET /items/{id}/input.png and GET /model/figures/{name}: pictures for people and pages."""

import io

import numpy as np
from PIL import Image

from tests.service.conftest import as_input, png_base64, tensor_input


def _png(response) -> np.ndarray:
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


def test_stored_input_comes_back_as_the_same_pixels_whatever_form_it_was_sent_in(
    client, fashion_sample
) -> None:
    images, _ = fashion_sample
    sent = {
        "as-data": as_input(images[0]),
        "as-png": {"image": png_base64(images[1])},
        "as-tensor": tensor_input(images[2]),
    }
    items = [{"id": name, "input": source} for name, source in sent.items()]
    assert client.post("/items", json={"items": items}).status_code == 201

    for n, name in enumerate(sent):
        pixels = _png(client.get(f"/items/{name}/input.png"))
        assert pixels.shape == (28, 28)
        np.testing.assert_array_equal(pixels, images[n].squeeze().astype(np.uint8))


def test_item_without_stored_input_or_unknown_item_is_404(client, fashion_sample) -> None:
    item = {"id": "no-input", "input": as_input(fashion_sample[0][0]), "store_input": False}
    client.post("/items", json={"items": [item]})
    for path in ("/items/no-input/input.png", "/items/nope/input.png"):
        response = client.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_model_figures_are_the_pngs_the_manifest_lists(client) -> None:
    curves = _png(client.get("/model/figures/training_curves.png"))
    assert curves.ndim == 3 and curves.shape[0] > 100
    for name in ("manifest.json", "encoder.onnx", "nothing.png"):
        response = client.get(f"/model/figures/{name}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
