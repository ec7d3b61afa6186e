"""API key, Prometheus metrics, start-up and the real server."""

import json
import shutil
import subprocess
import sys

import pytest

from service.runtime import choose_providers
from tests.conftest import DEFAULT_BUNDLE, REPO

KEY = "s3cret-key-for-tests-0123456789"


def test_api_key_is_required_except_for_health(make_client) -> None:
    client = make_client(api_key=KEY)
    missing = client.get("/classes")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert client.get("/classes", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/classes", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert client.get("/model").status_code == 401
    for open_route in ("/healthz", "/readyz", "/metrics"):
        assert client.get(open_route).status_code == 200


def test_short_api_key_is_refused_at_start() -> None:
    from pydantic import ValidationError

    from service.settings import Settings

    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(api_key="short")


def counter(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(part in line for part in want.split(",")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_a_request_just_made(client) -> None:
    before = counter(client.get("/metrics").text, "corel_requests_total",
                     method="POST", route="/embed", status="200")
    client.post("/embed", json={"inputs": [{"data": [[0] * 28 for _ in range(28)]}]})
    text = client.get("/metrics").text
    after = counter(text, "corel_requests_total", method="POST", route="/embed", status="200")
    assert after == before + 1
    assert "corel_batch_size_bucket" in text and "corel_inference_seconds_count" in text
    assert 'corel_index_size{index="classes"} 10.0' in text


def test_model_reports_manifest_provider_and_indexes(client) -> None:
    body = client.get("/model").json()
    assert body["manifest"]["loss"]["name"] == "cosine_corel"
    assert body["provider"] == "CPUExecutionProvider"
    assert body["indexes"]["classes"] == 10


def test_provider_choice() -> None:
    cpu, cuda = "CPUExecutionProvider", "CUDAExecutionProvider"
    assert choose_providers("auto", [cpu]) == [cpu]
    assert choose_providers("auto", [cuda, cpu]) == [cuda, cpu]
    assert choose_providers("cpu", [cuda, cpu]) == [cpu]
    with pytest.raises(RuntimeError, match="offers only"):
        choose_providers("cuda", [cpu])


def test_broken_bundle_stops_start_up_with_the_reason(tmp_path) -> None:
    broken = shutil.copytree(DEFAULT_BUNDLE, tmp_path / "bundle")
    (broken / "class_vectors.npy").unlink()
    done = subprocess.run([sys.executable, "-m", "service"], cwd=REPO, capture_output=True,
                          text=True, timeout=60,
                          env={"COREL_BUNDLE_PATH": str(broken), "PATH": "/usr/bin"})
    assert done.returncode == 2
    assert "class_vectors.npy is listed in the manifest but missing" in done.stderr


def test_real_server_answers_and_reports_ready(start_server) -> None:
    server = start_server()
    with server.client() as http:
        ready = http.get("/readyz").json()
        assert ready == {"status": "ready", "model": "fashion-mnist-cosine",
                         "provider": "CPUExecutionProvider"}
        response = http.post("/classify", json={"inputs": [{"data": [[0] * 28] * 28}]})
        assert response.status_code == 200
        assert json.loads(response.text)["results"][0]["label"]
