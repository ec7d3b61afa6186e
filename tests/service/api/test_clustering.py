"""Clustering endpoints over HTTP on real Fashion-MNIST test images."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.corel.test_clustering import three_blobs
from tests.service.conftest import STORES, as_input

# the report reads the stored items: it runs on both stores (tests/service/conftest.py);
# scoring and clustering a batch never touch a store
on_every_store = pytest.mark.parametrize("store", STORES, indirect=True)

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # fmt: skip


@pytest.fixture
def http(make_client: Callable[..., TestClient]) -> TestClient:
    client = make_client()
    assert client.app.state.corel.items.wait_ready(30)  # type: ignore[attr-defined]
    return client


# -- POST /clustering/score ----------------------------------------------------------------


def test_score_fashion_batch_well_above_chance(
    http: TestClient, fashion_sample: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = fashion_sample  # 300 images, 30 per class

    response = http.post("/clustering/score", json={
        "inputs": [as_input(i) for i in images], "labels": labels.tolist()})  # fmt: skip

    assert response.status_code == 200
    body = response.json()
    assert (body["n"], body["k"], body["geometry"]) == (300, 10, "l2-normalised")
    assert body["kmeans"]["accuracy"] > 0.6  # chance is about 0.1
    assert body["kmeans"]["ari"] > 0.4
    assert body["gmm"]["accuracy"] > 0.6
    assert body["silhouette_kmeans"] > 0.3


def test_score_raw_vectors_without_gmm(http: TestClient) -> None:
    x, y, _ = three_blobs()
    vectors = np.zeros((len(x), 128))
    vectors[:, :6] = x

    response = http.post("/clustering/score", json={
        "vectors": vectors.tolist(), "labels": y.tolist(), "gmm": False,
        "normalize": False})  # fmt: skip

    assert response.status_code == 200
    assert response.json()["kmeans"]["accuracy"] == 1.0
    assert response.json()["geometry"] == "raw"
    assert "gmm" not in response.json()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"vectors": [[1.0] * 128] * 3, "labels": [0, 1]}, 422),  # labels do not match
        ({"vectors": [[1.0] * 128] * 3, "labels": [0, 0, 0]}, 422),  # one class
        ({"vectors": [[1.0] * 5] * 3, "labels": [0, 1, 0]}, 422),  # dimension
        ({"labels": [0, 1]}, 422),  # nothing to score
        ({"vectors": [[1.0] * 128] * 3, "inputs": [], "labels": [0, 1, 0]}, 422),
    ],
)
def test_score_errors(http: TestClient, body: dict, status: int) -> None:
    response = http.post("/clustering/score", json=body)

    assert response.status_code == status
    assert response.json()["error"]["code"] == "validation_failed"


def test_score_too_many_inputs_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_inputs_per_request=4)

    response = client.post("/clustering/score", json={
        "vectors": [[1.0] * 128] * 5, "labels": [0, 1, 0, 1, 0]})  # fmt: skip

    assert response.status_code == 413


# -- POST /clustering/cluster --------------------------------------------------------------


def test_cluster_given_k_on_fashion(
    http: TestClient, fashion_sample: tuple[np.ndarray, np.ndarray]
) -> None:
    images, _ = fashion_sample

    response = http.post("/clustering/cluster", json={
        "inputs": [as_input(i) for i in images], "k": 10})  # fmt: skip

    assert response.status_code == 200
    body = response.json()
    assert body["k"] == 10
    assert len(body["assignments"]) == 300
    assert sum(body["sizes"]) == 300
    assert body["silhouette"] > 0.3
    assert "silhouette_by_k" not in body


def test_cluster_chooses_k_by_silhouette(http: TestClient) -> None:
    x, _, _ = three_blobs(20)
    vectors = np.zeros((len(x), 128))
    vectors[:, :6] = x

    response = http.post("/clustering/cluster", json={
        "vectors": vectors.tolist(), "k_min": 2, "k_max": 5})  # fmt: skip

    assert response.status_code == 200
    body = response.json()
    assert body["k"] == 3
    assert set(body["silhouette_by_k"]) == {"2", "3", "4", "5"}
    assert body["silhouette"] == max(body["silhouette_by_k"].values())


@pytest.mark.parametrize(
    "body",
    [
        {"vectors": [[1.0] * 128] * 4, "k": 4},  # as many clusters as points
        {"vectors": [[1.0] * 128] * 60, "k_min": 6, "k_max": 3},
        {"vectors": [[1.0] * 128] * 60, "k_min": 2, "k_max": 40},  # too many K to try
        {"vectors": [[1.0] * 128] * 60, "k": 1},
    ],
)
def test_cluster_errors(http: TestClient, body: dict) -> None:
    response = http.post("/clustering/cluster", json=body)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"


# -- GET /clustering/report ----------------------------------------------------------------


@on_every_store
def test_report_on_stored_items(
    http: TestClient, fashion_sample: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = fashion_sample
    keep = np.concatenate([np.flatnonzero(labels == k)[:10] for k in range(10)])
    items = [{"id": f"f{n}", "input": as_input(images[n]), "label": LABELS[labels[n]]}
             for n in keep]  # fmt: skip
    sneaker = int(np.flatnonzero(labels == 7)[20])
    items.append({"id": "wrong", "input": as_input(images[sneaker]), "label": "Bag"})
    items.append({"id": "unlabelled", "vector": [1.0] * 128})
    assert http.post("/items", json={"items": items}).status_code == 201

    response = http.get("/clustering/report")

    assert response.status_code == 200
    body = response.json()
    assert (body["n_items"], body["n_labelled"], body["truncated"]) == (102, 101, False)
    assert body["rule"] == "cosine"
    classes = {c["label"]: c for c in body["classes"]}
    assert set(classes) == set(LABELS)
    assert classes["Trouser"]["cohesion"] > 0.8
    assert classes["Sneaker"]["nearest_class"] in {"Sandal", "Ankle boot"}
    bag = classes["Bag"]
    assert bag["n"] == 11
    assert "wrong" in [e["id"] for e in bag["misplaced_examples"]]
    wrong = next(e for e in bag["misplaced_examples"] if e["id"] == "wrong")
    assert wrong["closest_class"] == "Sneaker"
    assert wrong["closest_score"] > wrong["own_score"]
    assert body["misplaced"] == sum(c["misplaced"] for c in body["classes"])


@on_every_store
def test_report_empty_store(http: TestClient) -> None:
    response = http.get("/clustering/report")

    assert response.status_code == 200
    assert response.json()["classes"] == []


@pytest.mark.parametrize("route", ["/clustering/score", "/clustering/cluster", "/embed"])
def test_the_old_spelling_normalise_is_refused_naming_the_new_one(
    http: TestClient, route: str
) -> None:
    response = http.post(
        route,
        json={"vectors": [[1.0] * 128] * 3, "labels": [0, 1, 1], "inputs": [], "normalise": False},
    )

    assert response.status_code == 422
    assert "`normalise` is spelled `normalize`" in response.json()["error"]["message"]
