"""Classes: listed from the bundle, imprinted from a few examples, removed (the model's own
only with force, and restored), persisted, and carried over to a new model."""

import logging
import re

import numpy as np
import pytest
from sklearn.datasets import load_digits

from benchmarks.open_world import resize_digits
from corel.bundle import load_bundle
from tests.service.conftest import STORES, as_input, other_model_bundle

# every test here runs on both stores (tests/service/conftest.py)
pytestmark = pytest.mark.parametrize("store", STORES, indirect=True)


def test_list_classes_comes_from_the_bundle(client) -> None:
    body = client.get("/classes").json()
    assert body["rule"] == "cosine"
    assert [c["name"] for c in body["classes"]][:2] == ["T-shirt/top", "Trouser"]
    assert all(c["source"] == "bundle" and c["threshold"] is not None for c in body["classes"])


def test_imprinted_class_is_then_predicted(client, fashion_sample) -> None:
    images, labels = fashion_sample
    bags = images[labels == 8]
    assert client.delete("/classes/Bag", params={"force": True}).status_code == 204
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
    first.delete("/classes/Sandal", params={"force": True})
    first.post(
        "/classes",
        json={"name": "sandal-ish", "inputs": [as_input(im) for im in images[labels == 5][:3]]},
    )
    first.__exit__(None, None, None)
    names = [c["name"] for c in make_client().get("/classes").json()["classes"]]
    assert "Sandal" not in names and names[-1] == "sandal-ish"


def test_a_class_of_the_model_is_removed_only_with_force_and_can_be_restored(client) -> None:
    refused = client.delete("/classes/Coat")
    assert refused.status_code == 409 and "force=true" in refused.json()["error"]["message"]

    assert client.delete("/classes/Coat", params={"force": True}).status_code == 204
    assert client.delete("/classes/Bag", params={"force": True}).status_code == 204
    restored = client.post("/classes/restore", json={"names": ["Coat"]})

    assert restored.status_code == 200 and restored.json() == {"restored": ["Coat"]}
    assert client.post("/classes/restore", json={}).json() == {"restored": ["Bag"]}
    assert len(client.get("/classes").json()["classes"]) == 10


@pytest.mark.parametrize("path", ["/classes/T-shirt/top", "/classes/T-shirt%2Ftop"])
def test_a_name_with_a_slash_can_be_removed(client, path) -> None:
    assert client.delete(path, params={"force": True}).status_code == 204
    assert "T-shirt/top" not in [c["name"] for c in client.get("/classes").json()["classes"]]


def test_an_imprinted_name_with_a_slash_round_trips(client, fashion_sample) -> None:
    body = {"name": "a/b", "inputs": [as_input(fashion_sample[0][0])]}
    assert client.post("/classes", json=body).status_code == 201
    assert client.delete("/classes/a%2Fb").status_code == 204  # imprinted: no force needed


@pytest.mark.parametrize("name", ["   ", " padded", "padded\u3000", "\xa0nbsp", "tab\tname"])
def test_a_blank_or_padded_name_is_422(client, fashion_sample, name) -> None:
    body = {"name": name, "inputs": [as_input(fashion_sample[0][0])]}
    assert client.post("/classes", json=body).status_code == 422


def test_the_schema_states_the_class_name_rule_the_service_applies(client) -> None:
    # the schema's pattern and the validator agree (a fuzzer found them apart once)
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ClassCreate"]
    pattern = re.compile(schema["properties"]["name"]["pattern"])
    for name in ["Boot", "Tee/long", "a b", " padded", "padded\u3000", "restore"]:
        body = {"name": name, "inputs": [as_input(np.zeros((28, 28)))]}
        accepted = client.post("/classes", json=body).status_code == 201
        assert accepted == bool(pattern.search(name)), name


def test_an_imprinted_class_is_calibrated_on_its_own_examples_leave_one_out(
    client, fashion_sample, default_bundle
) -> None:
    images, labels = fashion_sample
    bags = [as_input(im) for im in images[labels == 8][:6]]
    created = client.post("/classes", json={"name": "handbag", "inputs": bags}).json()

    # each example scored against the class imprinted from the other five, at the acceptance
    # the bundle's own classes were calibrated to
    raw = client.post("/embed", json={"inputs": bags}).json()["embeddings"]
    x = np.array(raw)
    held_out = [x[i] @ unit(np.delete(x, i, 0).mean(0)) for i in range(len(x))]
    accept = load_bundle(default_bundle).manifest.calibration["per_check_accept"]
    assert created["threshold"] == pytest.approx(np.quantile(held_out, 1 - accept), abs=1e-4)
    # one example: nothing to hold out, so no threshold (the open-set checks still apply)
    single = client.post("/classes", json={"name": "one bag", "inputs": bags[:1]}).json()
    assert single["threshold"] is None


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_a_new_kind_of_thing_is_learned_from_five_examples(client) -> None:
    """Digits are nothing like clothes: five examples of a zero make a class that takes
    other zeros, while clothes keep their classes (the gate on the encoder's features)."""
    digits = load_digits()
    images = resize_digits(digits.images)
    zeros = [as_input(im) for im in images[digits.target == 0][:25]]
    assert client.post("/classes", json={"name": "zero", "inputs": zeros[:5]}).status_code == 201

    results = client.post("/classify", json={"inputs": zeros[5:]}).json()["results"]
    assert np.mean([r["label"] == "zero" for r in results]) >= 0.8
    assert all(r["top"][0]["label"] == r["label"] for r in results)


def test_imprinted_classes_are_carried_over_to_a_new_model(
    make_client, fashion_sample, tmp_path, caplog
) -> None:
    images, labels = fashion_sample
    first = make_client()
    bags = [as_input(im) for im in images[labels == 8][:5]]
    assert first.post("/classes", json={"name": "handbag", "inputs": bags}).status_code == 201
    first.__exit__(None, None, None)

    with caplog.at_level(logging.INFO, logger="service"):
        second = make_client(bundle_path=other_model_bundle(tmp_path / "v2"))

    handbag = next(c for c in second.get("/classes").json()["classes"] if c["name"] == "handbag")
    assert handbag["source"] == "imprinted" and handbag["examples"] == 5
    assert "class 'handbag' re-imprinted for this model from its 5 stored examples" in caplog.text
