"""The optional bearer API key: every route but health, readiness and metrics needs it."""

import pytest
from pydantic import ValidationError

from service.settings import Settings

KEY = "s3cret-key-for-tests-0123456789"


@pytest.fixture
def keyed(make_client):
    return make_client(api_key=KEY)


def test_request_without_key_is_401_with_challenge(keyed) -> None:
    response = keyed.get("/classes")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "header", ["Bearer wrong-key-of-some-length", f"Basic {KEY}", f"Bearer {KEY}x", "Bearer"]
)
def test_request_with_wrong_key_is_401(keyed, header) -> None:
    response = keyed.post(
        "/embed", headers={"Authorization": header}, json={"inputs": [{"data": [[0] * 28] * 28}]}
    )
    assert response.status_code == 401
    assert KEY not in response.text


def test_request_with_key_passes_on_every_protected_route(keyed) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    assert keyed.get("/classes", headers=auth).status_code == 200
    assert keyed.get("/model", headers=auth).status_code == 200
    response = keyed.post("/embed", headers=auth, json={"inputs": [{"data": [[0] * 28] * 28}]})
    assert response.status_code == 200
    assert keyed.get("/model").status_code == 401


@pytest.mark.parametrize("route", ["/healthz", "/readyz", "/metrics"])
def test_health_and_metrics_need_no_key(keyed, route) -> None:
    assert keyed.get(route).status_code == 200


def test_key_is_not_in_the_model_report_or_the_openapi(keyed) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    assert KEY not in keyed.get("/model", headers=auth).text
    assert KEY not in keyed.get("/openapi.json").text


def test_settings_short_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(api_key="short")


def test_settings_empty_key_means_no_key() -> None:
    assert Settings(api_key="").api_key is None
