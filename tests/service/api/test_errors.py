"""Bad input gets its status and the one error shape, never a 500."""

import base64
import json
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import as_input, tensor_input


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


GOOD = {"data": [[0] * 28 for _ in range(28)]}


@pytest.mark.parametrize(
    "item, fragment",
    [
        ({"data": [[0] * 27 for _ in range(28)]}, "has shape [1, 28, 27]"),
        ({"data": [[0] * 28, [0] * 27]}, "rectangular array of numbers"),
        ({"data": [["a"] * 28 for _ in range(28)]}, "got strings"),
        ({"data": [["1"] * 28 for _ in range(28)]}, "got strings"),
        ({"data": [[True] * 28 for _ in range(28)]}, "got true/false values"),
        ({"data": [[10**30] * 28 for _ in range(28)]}, "takes raw values from 0 to 255"),
        ({"data": [[1e39] * 28 for _ in range(28)]}, "has values from 1e+39 to 1e+39"),
        ({"data": [[-1000] * 28 for _ in range(28)]}, "has values from -1000 to -1000"),
        (
            {
                "tensor": {
                    "b64": base64.b64encode(np.full(784, 300, "<f4").tobytes()).decode(),
                    "dtype": "float32",
                }
            },
            "takes raw values from 0 to 255",
        ),
        ({"data": [[10**400] * 28 for _ in range(28)]}, "not valid JSON"),
        ({"data": [[{"x": 1}] * 28 for _ in range(28)]}, "rectangular array of numbers"),
        ({"image": "not base64!"}, "not valid base64"),
        ({"image": "aGVsbG8="}, "not an image file"),
        ({"data": [[0] * 28], "image": "aGVsbG8="}, "exactly one of"),
        ({}, "exactly one of"),
        ({"tensor": {"b64": "not base64!"}}, "not valid base64"),
        ({"tensor": {"b64": "AAAA", "dtype": "int64"}}, "'uint8' or 'float32'"),
        ({"tensor": {"b64": "AAAA", "shape": [0, 3]}}, "size below 1"),
        ({"tensor": {"b64": "AAAA"}, "data": [[0] * 28]}, "exactly one of"),
        ({"data": []}, "has shape [0]"),  # once a 500: the range check of an empty array
        ({"data": None}, "exactly one of"),  # a null counts as absent
    ],
)
def test_embed_rejects_bad_inputs(client, item, fragment) -> None:
    error = assert_error(client.post("/embed", json={"inputs": [item]}), 422, "validation_failed")
    assert fragment in error["message"] or fragment in str(error["details"])


def test_embed_rejects_nan(client) -> None:
    # The literal NaN is not JSON (Python's json module writes and reads it anyway) ...
    data = [[0.0] * 28 for _ in range(28)]
    data[3][4] = math.nan
    response = client.post(
        "/embed",
        content=json.dumps({"inputs": [{"data": data}]}),
        headers={"content-type": "application/json"},
    )
    assert "not valid JSON" in assert_error(response, 422, "validation_failed")["message"]
    # ... but float32 bytes can carry one
    pixels = np.zeros((28, 28), "<f4")
    pixels[3, 4] = np.nan
    response = client.post("/embed", json={"inputs": [tensor_input(pixels, "float32")]})
    assert "NaN" in assert_error(response, 422, "validation_failed")["message"]


def test_embed_rejects_an_empty_list_and_malformed_json(client) -> None:
    assert_error(client.post("/embed", json={"inputs": []}), 422, "validation_failed")
    error = assert_error(
        client.post("/embed", content=b"{nope", headers={"content-type": "application/json"}),
        422,
        "validation_failed",
    )
    assert error["message"].startswith("the body is not valid JSON at character 1: ")


def test_too_many_inputs_is_413(make_client) -> None:
    client = make_client(max_inputs_per_request=2)
    error = assert_error(
        client.post("/embed", json={"inputs": [GOOD] * 3}), 413, "payload_too_large"
    )
    assert error["details"] == {"max_inputs_per_request": 2}


def test_body_over_the_limit_is_413(make_client) -> None:
    client = make_client(max_body_bytes=2048)
    assert_error(client.post("/embed", json={"inputs": [GOOD] * 3}), 413, "payload_too_large")


def test_image_with_too_many_pixels_is_413(make_client, fashion_sample) -> None:
    from tests.service.conftest import png_base64

    client = make_client(max_image_pixels=100)
    response = client.post("/embed", json={"inputs": [{"image": png_base64(fashion_sample[0][0])}]})
    assert_error(response, 413, "payload_too_large")


def test_k_above_the_limit_is_422(client, fashion_sample) -> None:
    body = {"inputs": [as_input(fashion_sample[0][0])], "k": 10_000}
    assert (
        "above the limit"
        in assert_error(client.post("/classify", json=body), 422, "validation_failed")["message"]
    )


def test_unknown_class_and_route_are_404(client) -> None:
    assert_error(client.delete("/classes/no-such-class"), 404, "not_found")
    assert_error(client.get("/no/such/route"), 404, "not_found")


def test_wrong_method_is_405_in_the_error_shape(client) -> None:
    assert_error(client.get("/embed"), 405, "method_not_allowed")


def test_body_over_the_limit_without_content_length_is_413(make_client) -> None:
    client = make_client(max_body_bytes=2048)
    chunks = (b'{"inputs": [' + b'{"data": [[0, 0]]},' * 200 + b'{"data": [[0]]}]}',)
    response = client.post(
        "/embed",
        content=iter(chunks),  # streamed: chunked encoding
        headers={"content-type": "application/json"},
    )
    assert_error(response, 413, "payload_too_large")


def test_unexpected_error_is_a_500_that_leaks_nothing(make_client) -> None:
    client = make_client()

    async def boom() -> None:
        raise RuntimeError("secret detail /etc/passwd")

    client.app.add_api_route("/boom", boom)
    response = TestClient(client.app, raise_server_exceptions=False).get("/boom")
    error = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and error["details"] is None


def test_validation_error_names_the_field(client) -> None:
    error = assert_error(
        client.post("/classify", json={"inputs": [GOOD], "k": 0}), 422, "validation_failed"
    )
    assert error["message"].startswith("body.k:")
    assert error["details"][0]["loc"] == ["body", "k"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("OPTIONS", "/classes/restore"), ("DELETE", "/classes/restore"),
     ("GET", "/items/reembed"), ("DELETE", "/items/reembed")],
)  # fmt: skip
def test_a_fixed_path_beside_a_template_allows_only_its_own_method(client, method, path) -> None:
    response = client.request(method, path)

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"  # not the template's GET or DELETE


def test_the_words_of_the_fixed_paths_are_no_names(client) -> None:
    class_named = client.post("/classes", json={"name": "restore", "inputs": [GOOD]})
    item_named = client.post("/items", json={"items": [{"id": "reembed", "vector": [1.0] * 128}]})

    assert "`restore` is reserved" in assert_error(class_named, 422, "validation_failed")["message"]
    assert "`reembed` is reserved" in assert_error(item_named, 422, "validation_failed")["message"]


@pytest.mark.parametrize(
    ("vector", "fragment"),
    [
        ([1.0] * 127, "vector has shape [127]"),
        ([0.0] * 128, "not all zero"),
        ([1e-20] * 128, "at least one at least 1e-15"),  # its norm in float32 would be 0
        ([1e20] * 128, "at most 1e+15 in magnitude"),  # ... and would overflow
    ],
)
def test_a_raw_vector_needs_a_direction_float32_can_hold(client, vector, fragment) -> None:
    response = client.post("/items", json={"items": [{"vector": vector}]})

    assert fragment in assert_error(response, 422, "validation_failed")["message"]


def test_a_whole_number_written_as_a_float_is_an_integer(client) -> None:
    blank = {"data": [[0] * 28] * 28}

    assert client.post("/classify", json={"inputs": [blank], "k": 3.0}).status_code == 200
    assert_error(
        client.post("/classify", json={"inputs": [blank], "k": 2.5}), 422, "validation_failed"
    )


def test_a_negative_seed_is_refused_not_a_500(client) -> None:
    vectors = np.random.default_rng(0).normal(size=(6, 128)).tolist()

    response = client.post("/clustering/cluster", json={"vectors": vectors, "k": 2, "seed": -1})

    assert response.json()["error"]["message"].startswith("body.seed:")


def test_405_names_every_method_the_path_takes(client) -> None:
    response = client.put("/classes")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["error"]["details"] == {"allowed": ["GET", "POST"]}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_declared_json_is_415(client, content_type) -> None:
    headers = {"content-type": content_type} if content_type else {}

    response = client.post("/embed", content=b'{"inputs": []}', headers=headers)

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in response.json()["error"]["message"]


def test_json_with_a_charset_or_a_json_suffix_is_taken(client) -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.corel+json"):
        response = client.post(
            "/embed", content=b'{"inputs": []}', headers={"content-type": content_type}
        )
        assert response.status_code == 422  # past the content type: the list is empty


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("/classify", {"threshold": False}, "threshold"),
        ("/classify", {"k": "3"}, "k"),
        ("/embed", {"normalize": 0}, "normalize"),
        ("/embed", {"normalize": "no"}, "normalize"),
    ],
)
def test_types_are_strict_no_false_as_zero_nor_zero_as_false(client, route, body, field) -> None:
    blank = {"data": [[0] * 28] * 28}

    response = client.post(route, json={"inputs": [blank], **body})

    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith(f"body.{field}:")
