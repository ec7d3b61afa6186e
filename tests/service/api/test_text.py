"""A text model served: strings in /embed, /classify, /neighbors, /items, /classes and the
clustering routes, truncation said or refused, and the wrong kind of input named.

The bundle is the shipped text model, models/wordnet-cosine (WordNet noun glosses in 26
lexicographer classes); the image model's tests are beside this file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import TEXT_BUNDLE
from tests.service.conftest import as_input

GLOSSES = {  # WordNet-style definitions of a few things, as a user would write them
    "artifact": "a seat for one person with a back and four legs",
    "animal": "a large wild cat with a mane that hunts in groups",
    "plant": "a tall tree with needles and cones that stays green all year",
    "person": "a woman who teaches children at a school",
    "food": "a sweet baked dessert made of flour, sugar, butter and eggs",
}


@pytest.fixture
def text(make_client: Callable[..., TestClient], tmp_path: Path) -> TestClient:
    client = make_client(bundle_path=TEXT_BUNDLE, data_dir=tmp_path / "text-data")
    assert client.app.state.corel.items.wait_ready(30)  # type: ignore[attr-defined]
    return client


def _embed(client: TestClient, texts: list[str], **options: object) -> np.ndarray:
    answer = client.post("/embed", json={"inputs": [{"text": t} for t in texts], **options})
    assert answer.status_code == 200, answer.text
    return np.array(answer.json()["embeddings"])


def test_a_text_embeds_the_same_alone_and_beside_a_longer_one(text: TestClient) -> None:
    short, long = GLOSSES["artifact"], " ".join(GLOSSES.values())

    alone = _embed(text, [short])
    padded = _embed(text, [short, long])  # the batch is padded to the longer text

    assert alone.shape == (1, 128)
    np.testing.assert_allclose(np.linalg.norm(alone, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(padded[0], alone[0], atol=1e-5)
    assert not np.allclose(padded[1], alone[0], atol=1e-2)


def test_a_text_longer_than_the_model_is_cut_and_the_answer_says_so(text: TestClient) -> None:
    max_length = text.get("/model").json()["manifest"]["input"]["max_length"]
    words = " ".join(["chair"] * (max_length + 10))
    body = {"inputs": [{"text": "a dog"}, {"text": words}]}

    cut = text.post("/embed", json=body)
    refused = text.post("/embed", json={**body, "truncate": False})
    whole = text.post("/embed", json={"inputs": [{"text": "a dog"}]})

    assert cut.status_code == 200 and cut.json()["truncated"] == [1]
    assert "truncated" not in whole.json()  # said only when it happened
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["details"] == {"inputs": [1], "max_length": max_length}
    assert "inputs[1].text" in error["message"]


@pytest.mark.parametrize(
    ("input_", "named"),
    [
        ({"data": [0.0] * 8}, "this model takes text"),
        ({"text": " \u3000\n"}, "is only whitespace"),  # Unicode's spaces, as the schema says
    ],
)
def test_a_text_model_names_what_it_takes(text: TestClient, input_: dict, named: str) -> None:
    answer = text.post("/embed", json={"inputs": [{"text": "a dog"}, input_]})

    assert answer.status_code == 422
    assert named in answer.json()["error"]["message"]
    assert "inputs[1]" in answer.json()["error"]["message"]


def test_an_image_model_refuses_text_naming_its_forms(client: TestClient) -> None:
    answer = client.post("/embed", json={"inputs": [{"text": "a white sneaker"}]})

    assert answer.status_code == 422
    message = answer.json()["error"]["message"]
    assert "takes images" in message and "`image`" in message


def test_the_schema_offers_only_the_forms_the_model_takes(
    text: TestClient, client: TestClient
) -> None:
    text_input = text.get("/openapi.json").json()["components"]["schemas"]["Input"]
    image_input = client.get("/openapi.json").json()["components"]["schemas"]["Input"]

    assert set(text_input["properties"]) == {"text"}
    assert all(set(example) == {"text"} for example in text_input["examples"])
    assert set(image_input["properties"]) == {"data", "image", "tensor"}


def test_glosses_are_classified_into_their_lexicographer_classes(text: TestClient) -> None:
    body = {"inputs": [{"text": t} for t in GLOSSES.values()], "k": 3}

    answer = text.post("/classify", json=body)

    assert answer.status_code == 200, answer.text
    top3 = [[c["label"] for c in r["top"]] for r in answer.json()["results"]]
    hits = sum(name in labels for name, labels in zip(GLOSSES, top3, strict=True))
    assert hits >= 4, top3  # a small model; each of these is a plain case of its class


def test_stored_texts_are_searched_by_text_and_kept_for_reembedding(text: TestClient) -> None:
    items = [{"id": name, "input": {"text": t}, "label": name} for name, t in GLOSSES.items()]
    created = text.post("/items", json={"items": items})
    query = {"queries": [{"input": {"text": "a wooden seat with four legs and a back"}}], "k": 2}

    found = text.post("/neighbors", json=query)
    stored = text.get("/items/artifact").json()

    assert created.status_code == 201, created.text
    assert found.status_code == 200, found.text
    assert found.json()["results"][0]["neighbors"][0]["id"] == "artifact"
    assert stored["text"] == GLOSSES["artifact"] and stored["has_input"]


def test_a_class_imprinted_from_a_few_sentences_is_then_predicted(text: TestClient) -> None:
    examples = [
        "a programming language with dynamic types and significant indentation",
        "a compiled programming language for systems with manual memory management",
        "a programming language that runs in web browsers",
    ]
    added = text.post(
        "/classes", json={"name": "programming language", "inputs": [{"text": t} for t in examples]}
    )
    answer = text.post(
        "/classify", json={"inputs": [{"text": "a programming language for statistics"}]}
    )

    assert added.status_code == 201, added.text
    assert added.json()["examples"] == 3
    assert answer.json()["results"][0]["label"] == "programming language"


def test_a_batch_of_texts_is_scored_and_clustered(text: TestClient) -> None:
    texts = [
        "a domestic dog kept as a pet",
        "a small wild dog of the plains",
        "a large dog bred for herding sheep",
        "a chair with arms and a padded seat",
        "a wooden table with four legs",
        "a cupboard with shelves for dishes",
    ]
    inputs = [{"text": t} for t in texts]

    score = text.post("/clustering/score", json={"inputs": inputs, "labels": [0, 0, 0, 1, 1, 1]})
    cluster = text.post("/clustering/cluster", json={"inputs": inputs, "k": 2})

    assert score.status_code == 200 and cluster.status_code == 200, (score.text, cluster.text)
    assert score.json()["kmeans"]["accuracy"] >= 5 / 6
    assert cluster.json()["sizes"] in ([3, 3], [2, 4], [4, 2])


def test_the_image_model_still_embeds_pictures(client: TestClient) -> None:
    answer = client.post("/embed", json={"inputs": [as_input(np.zeros((28, 28)))]})
    assert answer.status_code == 200 and "truncated" not in answer.json()


def test_a_text_the_tokenizer_keeps_nothing_of_embeds_as_an_unknown_word(text: TestClient) -> None:
    # combining accents alone: the tokenizer strips them, the schema allows them
    accents, unknown = _embed(text, ["\u0301\u0300"]), _embed(text, ["qqqzzzxxyy"])
    np.testing.assert_allclose(accents, unknown, atol=1e-5)
