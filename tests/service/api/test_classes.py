"""Classes: listed from the bundle, imprinted from a few examples, removed, persisted."""

import numpy as np

from tests.service.conftest import as_input


def test_list_classes_comes_from_the_bundle(client) -> None:
    body = client.get("/classes").json()
    assert body["rule"] == "cosine"
    assert [c["name"] for c in body["classes"]][:2] == ["T-shirt/top", "Trouser"]
    assert all(c["source"] == "bundle" and c["threshold"] is not None for c in body["classes"])


def test_imprinted_class_is_then_predicted(client, fashion_sample) -> None:
    images, labels = fashion_sample
    bags = images[labels == 8]
    assert client.delete("/classes/Bag").status_code == 204
    # Without a Bag class, bags land elsewhere; imprint one from five examples.
    response = client.post(
        "/classes", json={"name": "handbag", "inputs": [as_input(im) for im in bags[:5]]}
    )
    assert response.status_code == 201
    assert response.json()["source"] == "imprinted" and response.json()["examples"] == 5
    results = client.post("/classify", json={"inputs": [as_input(im) for im in bags[5:]]}).json()[
        "results"
    ]
    share = np.mean([r["label"] == "handbag" for r in results])
    assert share > 0.8


def test_duplicate_class_is_409(client, fashion_sample) -> None:
    body = {"name": "Trouser", "inputs": [as_input(fashion_sample[0][0])]}
    response = client.post("/classes", json=body)
    assert response.status_code == 409 and response.json()["error"]["code"] == "conflict"


def test_class_changes_survive_a_restart(make_client, fashion_sample) -> None:
    images, labels = fashion_sample
    first = make_client()
    first.delete("/classes/Sandal")
    first.post(
        "/classes",
        json={"name": "sandal-ish", "inputs": [as_input(im) for im in images[labels == 5][:3]]},
    )
    first.__exit__(None, None, None)
    names = [c["name"] for c in make_client().get("/classes").json()["classes"]]
    assert "Sandal" not in names and names[-1] == "sandal-ish"
