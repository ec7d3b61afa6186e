"""The /items routes over HTTP, in-process, on the default Fashion-MNIST bundle."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import STORES, as_input, other_model_bundle, tensor_input

# these run on both stores (tests/service/conftest.py); a bad item
# or too many is refused before any
on_every_store = pytest.mark.parametrize("store", STORES, indirect=True)


def _ready(client: TestClient) -> TestClient:
    assert client.app.state.corel.items.wait_ready(30)  # type: ignore[attr-defined]
    return client


@pytest.fixture
def http(make_client: Callable[..., TestClient]) -> TestClient:
    return _ready(make_client())


def _inputs(images: np.ndarray) -> list[dict[str, Any]]:
    return [as_input(image) for image in images]


@on_every_store
def test_create_items_returns_201_with_given_and_generated_ids(
    http: TestClient, fashion_sample: tuple[np.ndarray, np.ndarray]
) -> None:
    images, _ = fashion_sample
    body = {"items": [{"id": "a", "input": as_input(images[0]), "label": "T-shirt/top",
                       "metadata": {"colour": "red"}},
                      {"input": as_input(images[1]), "store_input": False}]}  # fmt: skip

    response = http.post("/items", json=body)

    assert response.status_code == 201
    created = response.json()["items"]
    assert created[0]["id"] == "a"
    assert created[0]["label"] == "T-shirt/top"
    assert created[0]["metadata"] == {"colour": "red"}
    assert (created[0]["has_input"], created[1]["has_input"]) == (True, False)
    assert len(created[1]["id"]) == 32  # a uuid
    assert created[0]["current_model"] is True
    assert "vector" not in created[0]


@on_every_store
def test_create_items_from_vector_then_get_it_back(http: TestClient) -> None:
    vector = np.random.default_rng(0).normal(size=128).round(4).tolist()

    response = http.post("/items", json={"items": [{"id": "v", "vector": vector}]})
    got = http.get("/items/v", params={"include_vector": True})

    assert response.status_code == 201
    assert got.status_code == 200
    assert got.json()["vector"] == pytest.approx(vector, abs=1e-6)


@on_every_store
def test_create_items_duplicate_id_is_409_and_stores_nothing(http: TestClient) -> None:
    vector = [1.0] * 128
    assert http.post("/items", json={"items": [{"id": "x", "vector": vector}]}).status_code == 201

    response = http.post("/items", json={"items": [{"id": "y", "vector": vector},
                                                   {"id": "x", "vector": vector}]})  # fmt: skip

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert response.json()["error"]["details"] == {"ids": ["x"], "count": 1}
    assert http.get("/items/y").status_code == 404


@pytest.mark.parametrize(
    ("item", "status"),
    [
        ({"id": "w", "vector": [1.0] * 3}, 422),  # wrong dimension
        ({"id": "n", "vector": [0.0] * 128}, 422),  # no direction
        ({"id": "b", "vector": [1.0] * 128, "input": {"data": [[0]]}}, 422),  # both
        ({"id": "s/lash", "vector": [1.0] * 128}, 422),  # would leave the path
        ({"id": "i", "input": {"data": [[1, 2], [3, 4]]}}, 422),  # wrong image shape
        ({"id": "e", "input": {"image": "not base64!"}}, 422),
    ],
)
def test_create_items_bad_item_is_rejected(http: TestClient, item: dict, status: int) -> None:
    response = http.post("/items", json={"items": [item]})

    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_create_items_too_many_is_413(make_client: Callable[..., TestClient]) -> None:
    client = _ready(make_client(max_inputs_per_request=2))

    response = client.post("/items", json={"items": [{"vector": [1.0] * 128}] * 3})

    assert response.status_code == 413


@on_every_store
def test_get_item_unknown_is_404(http: TestClient) -> None:
    response = http.get("/items/nope")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no item with id 'nope'"


@on_every_store
def test_list_items_pages_by_cursor_and_filters_by_label(http: TestClient) -> None:
    items = [{"id": f"i{n}", "vector": [1.0 + n] + [1.0] * 127, "label": "ab"[n % 2]}
             for n in range(7)]  # fmt: skip
    http.post("/items", json={"items": items})

    first = http.get("/items", params={"limit": 2, "label": "a"})
    second = http.get("/items", params={"limit": 2, "label": "a",
                                        "cursor": first.json()["next_cursor"]})  # fmt: skip
    by_offset = http.get("/items", params={"limit": 3, "offset": 5})

    assert first.status_code == 200
    assert [i["id"] for i in first.json()["items"]] == ["i0", "i2"]
    assert first.json()["total"] == 4
    assert [i["id"] for i in second.json()["items"]] == ["i4", "i6"]
    assert [i["id"] for i in by_offset.json()["items"]] == ["i5", "i6"]
    assert by_offset.json()["next_cursor"] is None
    assert first.json()["index"]["index_size"] == 7
    assert http.get("/items", params={"cursor": "x"}).status_code == 422
    assert http.get("/items", params={"limit": 0}).status_code == 422


@pytest.mark.parametrize("params", [{"offset": 10**20}, {"offset": 10**20, "cursor": "55"}])
def test_list_items_offset_out_of_range_is_422_not_500(
    http: TestClient, params: dict[str, Any]
) -> None:
    response = http.get("/items", params=params)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["details"][0]["loc"] == ["query", "offset"]


def test_metadata_numbers_beyond_2_to_the_53_are_422_not_500_nor_rounded(
    http: TestClient,
) -> None:
    # beyond 2**53 a float64 (JavaScript's number, or the body parser's reading of an
    # integer past 64 bits) no longer holds every integer
    vector = [1.0] + [0.0] * 127
    too_big = {"a": [1, {"b": 2**53 + 1}]}
    exact = {"a": 2**53, "b": -(2**53), "c": 0.5}

    refused = http.post("/items", json={"items": [{"vector": vector, "metadata": too_big}]})
    kept = http.post("/items", json={"items": [{"id": "x", "vector": vector, "metadata": exact}]})
    listed = http.get("/items", params={"metadata": json.dumps({"a": 10**20})})
    searched = http.post(
        "/neighbors", json={"queries": [{"id": "x"}], "filter": {"metadata": {"a": -(10**30)}}}
    )

    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["loc"] == ["body", "items", 0, "metadata"]
    assert kept.status_code == 201 and http.get("/items/x").json()["metadata"] == exact
    assert listed.status_code == 422
    assert listed.json()["error"]["details"][0]["loc"] == ["query", "metadata"]
    assert searched.status_code == 422
    filtered = http.get("/items", params={"metadata": json.dumps({"a": 2**53})})
    assert _ids(filtered) == ["x"]


def _store(http: TestClient, metadata: list[dict[str, Any]], labels: str = "ab") -> None:
    """Items m0, m1, ... with these metadata, labelled a, b, a, ... (raw vectors)."""
    items = [{"id": f"m{n}", "vector": [1.0 + n] + [1.0] * 127, "label": labels[n % len(labels)],
              "metadata": m} for n, m in enumerate(metadata)]  # fmt: skip
    assert http.post("/items", json={"items": items}).status_code == 201


def _ids(answer: Any) -> list[str]:
    return [item["id"] for item in answer.json()["items"]]


@on_every_store
def test_list_items_filters_by_metadata_with_json_types_kept_apart(http: TestClient) -> None:
    _store(http, [{"v": 1}, {"v": 1.0}, {"v": True}, {"v": "1"}, {"v": None}, {}, {"w": 1}])

    def listed(metadata: str) -> Any:
        return http.get("/items", params={"metadata": metadata})

    ones, true, text, null = listed('{"v": 1}'), listed('{"v": true}'), listed('{"v": "1"}'), \
        listed('{"v": null}')  # fmt: skip
    both = listed('{"v": 1, "w": 1}')
    nothing = listed('{"v": 2}')

    assert ones.status_code == 200
    assert (_ids(ones), ones.json()["total"]) == (["m0", "m1"], 2)
    assert (_ids(true), true.json()["total"]) == (["m2"], 1)
    assert (_ids(text), text.json()["total"]) == (["m3"], 1)
    assert (_ids(null), null.json()["total"]) == (["m4"], 1)  # not m5: missing is not null
    assert (_ids(both), both.json()["total"]) == ([], 0)
    assert nothing.json() | {"index": None} == {"items": [], "total": 0, "next_cursor": None,
                                                "index": None}  # fmt: skip
    assert nothing.json()["index"]["index_size"] == 7  # the index state is the whole store's
    assert listed("{}").json()["total"] == 7  # an empty filter is no filter


def _all_pages(http: TestClient, params: dict[str, Any], between: Callable[[], None]) -> list:
    """Every page's ids and totals, following next_cursor; `between` runs after page 1."""
    pages, cursor = [], None
    while True:
        answer = http.get("/items", params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200
        pages.append((_ids(answer), answer.json()["total"]))
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            return pages
        if len(pages) == 1:
            between()


@on_every_store
@pytest.mark.parametrize("wanted", ['{"colour": "red"}', '{"colour": null}'])
def test_list_items_pages_through_a_metadata_filter_by_cursor(
    http: TestClient, wanted: str
) -> None:
    colours = ["red", None, "blue", "red", None, "red", "blue", None, "red", None]
    _store(http, [{"colour": c, "n": n} for n, c in enumerate(colours)])
    colour = json.loads(wanted)["colour"]
    matching = [f"m{n}" for n, c in enumerate(colours) if c == colour]  # 4 of each

    def write_meanwhile() -> None:  # one match deleted before it is listed, one added at the end
        assert http.delete(f"/items/{matching[2]}").status_code == 204
        new = {"id": "late", "vector": [2.0] * 128, "metadata": {"colour": colour}}
        assert http.post("/items", json={"items": [new]}).status_code == 201

    pages = _all_pages(http, {"limit": 2, "metadata": wanted}, write_meanwhile)

    assert pages == [
        (matching[:2], 4),
        ([matching[3], "late"], 4),  # in insertion order, none skipped or repeated
        ([], 4),
    ]


@on_every_store
def test_list_items_filters_by_label_and_metadata_together(http: TestClient) -> None:
    _store(http, [{"colour": "red" if n % 3 == 0 else "blue"} for n in range(10)])
    params = {"label": "a", "metadata": '{"colour": "red"}'}  # n even and n % 3 == 0

    first = http.get("/items", params={**params, "limit": 1})
    rest = http.get("/items", params={**params, "cursor": first.json()["next_cursor"]})
    by_offset = http.get("/items", params={**params, "offset": 1})

    assert (_ids(first), first.json()["total"]) == (["m0"], 2)
    assert (_ids(rest), rest.json()["total"], rest.json()["next_cursor"]) == (["m6"], 2, None)
    assert _ids(by_offset) == ["m6"]
    assert all(i["label"] == "a" and i["metadata"]["colour"] == "red"
               for i in first.json()["items"] + rest.json()["items"])  # fmt: skip


@pytest.mark.parametrize(  # refused before any store is asked
    ("metadata", "message"),
    [
        ('{"colour": ["red"]}', "query.metadata.colour.str: Input should be a valid string"),
        ('{"colour": {"a": 1}}', "query.metadata.colour.str: Input should be a valid string"),
        ('["colour", "red"]', "query.metadata: Input should be an object"),
        ("colour=red", "query.metadata: Invalid JSON: expected value at line 1 column 1"),
        # SQLite's JSON paths end at a NUL: such a key is refused, not a 503
        (
            '{"a\\u0000": 1}',
            "query.metadata.a\x00.[key]: String should match pattern '^[^\\x00]*$'",
        ),
    ],
)
def test_list_items_bad_metadata_filter_is_422(
    http: TestClient, metadata: str, message: str
) -> None:
    response = http.get("/items", params={"metadata": metadata})

    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("validation_failed", message)
    assert error["details"][0]["loc"][:2] == ["query", "metadata"]


def test_list_items_metadata_filter_is_json_in_the_openapi_schema(http: TestClient) -> None:
    operation = http.get("/openapi.json").json()["paths"]["/items"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}

    content = parameters["metadata"]["content"]["application/json"]

    assert content["schema"]["type"] == "object"
    assert content["schema"]["additionalProperties"]["anyOf"][0] == {"type": "string"}
    assert content["example"] == {"colour": "white"}
    assert "schema" not in parameters["metadata"]  # not a bare string


@on_every_store
def test_delete_item_then_it_is_gone(http: TestClient) -> None:
    http.post("/items", json={"items": [{"id": "d", "vector": [1.0] * 128}]})

    response = http.delete("/items/d")

    assert response.status_code == 204
    assert http.get("/items/d").status_code == 404
    assert http.delete("/items/d").status_code == 404
    assert http.get("/items").json()["index"]["index_size"] == 0


@on_every_store
def test_reembed_after_model_change(
    make_client: Callable[..., TestClient],
    tmp_path: Path,
    fashion_sample: tuple[np.ndarray, np.ndarray],
) -> None:
    images, _ = fashion_sample
    old = _ready(make_client())
    items = [
        {"id": "in0", "input": as_input(images[0])},
        {"id": "in1", "input": as_input(images[1])},
        {"id": "in2", "input": tensor_input(images[2])},
    ]  # kept as bytes, too
    old.post("/items", json={"items": [*items, {"id": "vec", "vector": [1.0] * 128}]})
    before = old.get("/items/in0", params={"include_vector": True}).json()
    old.__exit__(None, None, None)
    new_bundle = other_model_bundle(tmp_path / "bundles" / "v2")

    new = _ready(make_client(bundle_path=new_bundle))
    stale = new.get("/items").json()
    blocked = new.get("/neighbors", params={"id": "in0"})
    response = new.post("/items/reembed")
    after = new.get("/items/in0", params={"include_vector": True}).json()
    neighbours = new.get("/neighbors", params={"id": "in0", "k": 5})

    assert stale["index"]["items_other_models"] == 4
    assert stale["index"]["items_other_models_reembeddable"] == 3
    assert stale["index"]["index_size"] == 0
    assert [i["current_model"] for i in stale["items"]] == [False] * 4
    assert blocked.status_code == 409
    assert response.status_code == 200
    assert response.json() == {"reembedded": 3, "failed": [], "items_other_models": 1}
    assert after["current_model"] is True
    assert after["model_id"] != before["model_id"]
    assert after["created"] == before["created"]
    assert after["vector"] == pytest.approx(before["vector"], abs=1e-4)  # same network
    assert neighbours.status_code == 200
    assert {n["id"] for n in neighbours.json()["neighbors"]} == {"in1", "in2"}
