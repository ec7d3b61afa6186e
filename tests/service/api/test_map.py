"""GET /map: the stored items and class vectors in 2-D, cached until items or classes change."""

import numpy as np

from tests.service.conftest import as_input


def _store(client, images, labels, names, start=0) -> None:
    items = [
        {"id": f"fm-{start + n}", "input": as_input(im), "label": names[int(label)]}
        for n, (im, label) in enumerate(zip(images, labels, strict=True))
    ]
    assert client.post("/items", json={"items": items}).status_code == 201


def test_pca_map_is_the_first_two_principal_axes_of_the_normalised_embeddings(
    client, fashion_sample, default_bundle
) -> None:
    images, labels = fashion_sample
    names = client.get("/model").json()["manifest"]["labels"]
    _store(client, images, labels, names)

    body = client.get("/map", params={"method": "pca"}).json()

    assert body["method"] == "pca" and body["n_items"] == 300 and body["truncated"] is False
    assert [p["id"] for p in body["points"]][:2] == ["fm-0", "fm-1"]
    assert [c["name"] for c in body["classes"]] == names
    xy = np.array([[p["x"], p["y"]] for p in body["points"]])
    # by hand: centre the unit vectors, take the two leading right singular vectors
    stored = client.get("/items", params={"limit": 1000, "include_vectors": True}).json()
    v = np.array([item["vector"] for item in stored["items"]])
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    mean = v.mean(0)
    axes = np.linalg.svd(v - mean, full_matrices=False)[2][:2]
    expected = (v - mean) @ axes.T
    signs = np.sign((xy * expected).sum(0))  # an axis' direction is arbitrary
    np.testing.assert_allclose(xy, expected * signs, atol=1e-4)
    # the class vectors (the bundle's) on the same axes
    vectors = np.load(default_bundle / "class_vectors.npy")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    centres = np.array([[k["x"], k["y"]] for k in body["classes"]])
    np.testing.assert_allclose(centres, (vectors - mean) @ axes.T * signs, atol=1e-4)
    # what the map is for: items of one class sit together, nearer than items of others
    point_labels = np.array([p["label"] for p in body["points"]])
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    same = point_labels[:, None] == point_labels[None]
    assert d[same].mean() < 0.6 * d[~same].mean()


def test_map_is_cached_until_the_items_or_classes_change(client, fashion_sample) -> None:
    images, labels = fashion_sample
    names = client.get("/model").json()["manifest"]["labels"]
    _store(client, images[:50], labels[:50], names)

    first = client.get("/map").json()
    again = client.get("/map").json()
    assert (first["cached"], again["cached"]) == (False, True)
    assert again["points"] == first["points"]

    assert client.delete("/items/fm-3").status_code == 204
    after_delete = client.get("/map").json()
    assert after_delete["cached"] is False and after_delete["n_items"] == 49

    client.post("/classes", json={"name": "Ring", "inputs": [as_input(images[60])]})
    after_class = client.get("/map").json()
    assert after_class["cached"] is False and after_class["classes"][-1]["name"] == "Ring"


def test_tsne_map_and_limit(client, fashion_sample) -> None:
    images, labels = fashion_sample
    names = client.get("/model").json()["manifest"]["labels"]
    _store(client, images[::3], labels[::3], names)  # 100 items

    body = client.get("/map", params={"method": "tsne", "limit": 60}).json()

    assert body["method"] == "tsne" and body["n_items"] == 60 and body["truncated"] is True
    assert len(body["classes"]) == 10
    assert all(np.isfinite([p["x"], p["y"]]).all() for p in body["points"] + body["classes"])


def test_map_with_no_items_still_shows_the_classes(client) -> None:
    body = client.get("/map").json()
    assert body["n_items"] == 0 and body["points"] == [] and len(body["classes"]) == 10


def test_map_refuses_bad_parameters_in_the_error_shape(client) -> None:
    too_many = client.get("/map", params={"method": "tsne", "limit": 20_000})
    assert too_many.status_code == 422
    assert too_many.json()["error"]["details"] == {"max_limit": 10_000}
    unknown = client.get("/map", params={"method": "umap"})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "validation_failed"
