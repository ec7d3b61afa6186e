"""Neighbours over HTTP, in-process, on the default bundle with real Fashion-MNIST items."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import STORES, as_input

# every test here runs on both stores (tests/service/conftest.py)
pytestmark = pytest.mark.parametrize("store", STORES, indirect=True)

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # fmt: skip


@pytest.fixture(scope="module")
def sample(fashion_test: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """8 images per class, and 10 more of each class to query with."""
    images, labels = fashion_test
    picked = np.concatenate([np.flatnonzero(labels == k)[:18] for k in range(10)])
    return images[picked], labels[picked]


@pytest.fixture
def http(
    make_client: Callable[..., TestClient], sample: tuple[np.ndarray, np.ndarray]
) -> TestClient:
    client = make_client()
    assert client.app.state.corel.items.wait_ready(30)  # type: ignore[attr-defined]
    images, labels = sample
    stored = [n for n in range(len(images)) if n % 18 < 8]
    items = [{"id": f"f{n}", "input": as_input(images[n]), "label": LABELS[labels[n]],
              "metadata": {"parity": "even" if n % 2 == 0 else "odd", "n": n}}
             for n in stored]  # fmt: skip
    assert client.post("/items", json={"items": items}).status_code == 201
    return client


def _ids(result: dict[str, Any]) -> list[str]:
    return [n["id"] for n in result["neighbors"]]


def test_get_neighbors_by_id_finds_its_class(http: TestClient) -> None:
    response = http.get("/neighbors", params={"id": "f0", "k": 5})

    assert response.status_code == 200
    hits = response.json()["neighbors"]
    assert "f0" not in _ids(response.json())  # never its own neighbour
    assert len(hits) == 5
    assert [h["label"] for h in hits].count("T-shirt/top") >= 4
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert "vector" not in hits[0]


def test_post_neighbors_new_inputs_mostly_same_class(
    http: TestClient, sample: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = sample
    queries = [n for n in range(len(images)) if n % 18 >= 8]  # not stored

    response = http.post("/neighbors", json={
        "queries": [{"input": as_input(images[n])} for n in queries], "k": 1})  # fmt: skip

    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 100
    right = sum(r["neighbors"][0]["label"] == LABELS[labels[n]]
                for r, n in zip(results, queries, strict=True))  # fmt: skip
    assert right >= 70  # 1-NN over 80 items; chance is 10


def test_post_neighbors_mixed_queries_in_one_call(http: TestClient) -> None:
    stored = http.get("/items/f1", params={"include_vector": True}).json()

    response = http.post("/neighbors", json={
        "queries": [{"id": "f1"}, {"vector": stored["vector"]}], "k": 2,
        "include_vectors": True})  # fmt: skip

    assert response.status_code == 200
    by_id, by_vector = response.json()["results"]
    assert _ids(by_vector)[0] == "f1"  # a raw vector is not a stored item: it finds f1
    assert by_vector["neighbors"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert _ids(by_id) == _ids(by_vector)[1:] + _ids(by_id)[1:]
    assert len(by_id["neighbors"][0]["vector"]) == 128


def test_post_neighbors_filter_on_label_and_metadata(http: TestClient) -> None:
    response = http.post("/neighbors", json={
        "queries": [{"id": "f0"}], "k": 50,
        "filter": {"label": "Bag", "metadata": {"parity": "odd"}}})  # fmt: skip

    assert response.status_code == 200
    hits = response.json()["results"][0]["neighbors"]
    assert len(hits) == 4  # 8 bags stored, half of them odd
    assert all(h["label"] == "Bag" and h["metadata"]["parity"] == "odd" for h in hits)


def test_post_neighbors_offset_and_min_score(http: TestClient) -> None:
    body = {"queries": [{"id": "f0"}], "k": 6}
    full = _ids(http.post("/neighbors", json=body).json()["results"][0])

    page = http.post("/neighbors", json={**body, "k": 3, "offset": 3})
    strict = http.post("/neighbors", json={**body, "k": 79, "min_score": 0.9})

    assert page.status_code == 200
    assert _ids(page.json()["results"][0]) == full[3:6]
    scores = [h["score"] for h in strict.json()["results"][0]["neighbors"]]
    assert scores and min(scores) >= 0.9 and len(scores) < 79


def test_get_neighbors_with_label_filter(http: TestClient) -> None:
    response = http.get("/neighbors", params={"id": "f0", "k": 3, "label": "Trouser"})

    assert response.status_code == 200
    assert {h["label"] for h in response.json()["neighbors"]} == {"Trouser"}


@pytest.mark.parametrize(
    ("request_kw", "status"),
    [
        ({"params": {"id": "missing"}}, 404),
        ({"params": {"id": "f0", "k": 101}}, 422),  # above max_k (100)
        ({"params": {"id": "f0", "k": 0}}, 422),
        ({"params": {}}, 422),
    ],
)
def test_get_neighbors_errors(http: TestClient, request_kw: dict, status: int) -> None:
    response = http.get("/neighbors", **request_kw)

    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"queries": [{"vector": [1.0] * 127}]}, 422),  # dimension mismatch
        ({"queries": [{"vector": [float("nan")] + [1.0] * 127}]}, 422),
        ({"queries": [{"id": "f0", "vector": [1.0] * 128}]}, 422),  # two kinds at once
        ({"queries": []}, 422),
        ({"queries": [{"id": "nope"}]}, 404),
        ({"queries": [{"id": "f0"}], "k": 1000}, 422),
        ({"queries": [{"id": "f0"}], "min_score": 2}, 422),
        ({"queries": [{"id": "f0"}], "filter": {"metadata": {"a": [1]}}}, 422),
    ],
)
def test_post_neighbors_errors(http: TestClient, body: dict, status: int) -> None:
    # json.dumps writes NaN as the bare literal NaN, which the server refuses as invalid JSON
    content = json.dumps(body)
    response = http.post(
        "/neighbors", content=content, headers={"content-type": "application/json"}
    )

    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message", "details"}
