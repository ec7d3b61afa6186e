"""The OpenAPI schema tells the truth: the error shape and statuses, the running limits,
typed answers for every route, and examples the service itself accepts."""

from __future__ import annotations

import pytest

from tests.service.conftest import sample  # noqa: F401 (fixtures come from the conftest)


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
