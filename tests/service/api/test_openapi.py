"""The OpenAPI schema tells the truth: the error shape and statuses, the running limits,
typed answers for every route, and examples the service itself accepts."""

from __future__ import annotations

import re

import pytest


@pytest.fixture
def spec(make_client) -> dict:
    return make_client(max_k=40, max_inputs_per_request=256).get("/openapi.json").json()


def operations(spec: dict):
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def test_every_error_status_is_documented_in_the_one_error_shape(spec) -> None:
    for name, operation in operations(spec):
        errors = {s: r for s, r in operation["responses"].items() if not s.startswith("2")}
        for status, response in errors.items():
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (name, status)
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_every_route_answers_a_typed_body(spec) -> None:
    for name, operation in operations(spec):
        ok = next(r for s, r in operation["responses"].items() if s.startswith("2"))
        if name.startswith("DELETE"):
            continue  # 204: no body
        if "image/png" in ok["content"]:
            continue  # a picture: GET /items/{id}/input.png, GET /model/figures/{name}
        assert ok["content"]["application/json"]["schema"], name


def test_the_running_limits_are_in_the_schema(spec) -> None:
    schemas = spec["components"]["schemas"]
    assert schemas["ClassifyRequest"]["properties"]["k"]["maximum"] == 40
    assert schemas["EmbedRequest"]["properties"]["inputs"]["maxItems"] == 256
    (k,) = [p for p in spec["paths"]["/neighbors"]["get"]["parameters"] if p["name"] == "k"]
    assert k["schema"]["maximum"] == 40


def test_the_examples_are_accepted_by_the_service(make_client) -> None:
    client = make_client()
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for example in schemas["Input"]["examples"]:
        response = client.post("/embed", json={"inputs": [example]})
        assert response.status_code == 200, (example, response.json())
    for name, route in (("EmbedRequest", "/embed"), ("ClassifyRequest", "/classify")):
        for example in schemas[name]["examples"]:
            assert client.post(route, json=example).status_code == 200, name


def test_the_docs_pages_load_everything_from_this_server(client) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets and all(a.startswith("/docs-assets/") for a in assets), (page, assets)
        assert "cdn" not in html and "googleapis" not in html
        for asset in assets:
            assert client.get(asset).status_code == 200, asset


@pytest.mark.parametrize(("require_key", "status"), [(False, 200), (True, 401)])
def test_whether_the_docs_need_the_key_is_a_setting(make_client, require_key, status) -> None:
    client = make_client(api_key="k" * 20, docs_require_key=require_key)

    for page in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(page).status_code == status, page
    assert client.get("/model").status_code == 401  # the API itself always needs it


def test_the_schema_states_what_the_model_takes(spec) -> None:
    schemas = spec["components"]["schemas"]
    data = schemas["Input"]["properties"]["data"]["anyOf"]
    vector = schemas["ItemCreate"]["properties"]["vector"]["anyOf"][0]

    assert [d.get("minItems") for d in data] == [28, 1, None]  # 28x28, 1x28x28, or null
    assert data[0]["items"]["items"] == {"type": "number", "minimum": 0.0, "maximum": 255.0}
    assert vector["minItems"] == vector["maxItems"] == 128 and "contains" in vector
    assert schemas["Tensor"]["properties"]["shape"]["anyOf"][0] == {"enum": [[28, 28], [1, 28, 28]]}


def test_exactly_one_source_is_in_the_schema_and_null_counts_as_absent(spec) -> None:
    schemas = spec["components"]["schemas"]

    for name, fields in [("Input", ["data", "image", "tensor"]),
                         ("ItemCreate", ["input", "vector"]),
                         ("NeighbourQuery", ["id", "input", "vector"]),
                         ("ClusterRequest", ["inputs", "vectors"])]:  # fmt: skip
        assert [branch["required"] for branch in schemas[name]["oneOf"]] == [[f] for f in fields]
        assert schemas[name]["oneOf"][0]["properties"] == {fields[0]: {"not": {"type": "null"}}}
