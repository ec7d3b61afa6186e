"""Start-up and the real server: `python -m service` on 127.0.0.1, settings, bad bundles,
readiness, restarts, and a client that goes away."""

import asyncio
import gc
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from harness.server import launch
from service.app import create_app
from service.datadir.lock import DataDirInUseError
from service.inference.runtime import choose_providers
from service.settings import Settings
from tests.conftest import DEFAULT_BUNDLE, REPO
from tests.service.conftest import as_input, sample, tensor_input


def run_service(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], **env},
    )


def test_start_with_broken_bundle_exits_naming_the_problem(tmp_path) -> None:
    broken = shutil.copytree(DEFAULT_BUNDLE, tmp_path / "bundle")
    (broken / "class_vectors.npy").unlink()
    done = run_service({"COREL_BUNDLE_PATH": str(broken)})
    assert done.returncode == 2
    assert "class_vectors.npy is listed in the manifest but missing" in done.stderr


def test_launch_raises_with_the_log_of_a_server_that_cannot_start(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="exited with 2") as raised:
        launch(bundle=tmp_path / "nowhere", data_dir=tmp_path / "data", log=tmp_path / "server.log")
    assert "nowhere: no manifest.json" in str(raised.value)  # the server's log


def test_start_with_missing_bundle_exits_naming_the_folder(tmp_path) -> None:
    done = run_service({"COREL_BUNDLE_PATH": str(tmp_path / "nowhere")})
    assert done.returncode == 2
    assert "nowhere: no manifest.json" in done.stderr


def test_a_second_server_on_a_held_data_directory_exits_naming_the_holder(
    start_server, tmp_path
) -> None:
    first = start_server(data_dir=tmp_path / "shared")

    done = run_service({"COREL_DATA_DIR": str(tmp_path / "shared")})

    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: the data directory {tmp_path / 'shared'} is in use")
    assert f"pid {first.process.pid}" in lines[0]


def test_a_port_in_use_exits_with_one_line_before_the_model_loads(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        done = run_service({"COREL_PORT": str(port), "COREL_DATA_DIR": str(tmp_path)})

    assert done.returncode == 2
    assert done.stderr == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_the_data_directory_is_free_again_after_a_kill_9(start_server, tmp_path) -> None:
    start_server(data_dir=tmp_path / "data").kill()  # the kernel drops the lock with the process

    again = start_server(data_dir=tmp_path / "data")

    assert httpx.get(f"{again.url}/readyz").status_code == 200


def test_an_app_on_a_held_data_directory_refuses_to_start(tmp_path) -> None:
    settings = Settings(bundle_path=DEFAULT_BUNDLE, data_dir=tmp_path / "data")
    with (
        TestClient(create_app(settings=settings)),
        pytest.raises(DataDirInUseError, match="in use by another server"),
    ):
        TestClient(create_app(settings=settings)).__enter__()
    with TestClient(create_app(settings=settings)) as again:  # released at shutdown
        assert again.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"COREL_PORT": "70000"}, "COREL_PORT"),
        ({"COREL_PROVIDER": "tpu"}, "COREL_PROVIDER"),
        ({"COREL_QUEUE_SIZE": "8", "COREL_MAX_BATCH_SIZE": "64"}, "COREL_QUEUE_SIZE (8)"),
        ({"COREL_API_KEY": "short"}, "COREL_API_KEY"),
    ],
)
def test_start_with_bad_setting_exits_naming_it(env, fragment) -> None:
    done = run_service(env)
    assert done.returncode == 2
    assert done.stderr.startswith("error: bad setting") and fragment in done.stderr


def test_provider_choice_prefers_cuda_only_when_offered() -> None:
    cpu, cuda = "CPUExecutionProvider", "CUDAExecutionProvider"
    assert choose_providers("auto", [cpu]) == [cpu]
    assert choose_providers("auto", [cuda, cpu]) == [cuda, cpu]
    assert choose_providers("cpu", [cuda, cpu]) == [cpu]
    with pytest.raises(RuntimeError, match="offers only"):
        choose_providers("cuda", [cpu])


def test_start_up_freezes_what_it_loaded_out_of_the_garbage_collectors_view(tmp_path) -> None:
    # Full collections would otherwise walk every module and model object each time: pauses
    # of ~100 ms under load (benchmarks/serve_throughput.py's p99)
    app = create_app(settings=Settings(bundle_path=DEFAULT_BUNDLE, data_dir=tmp_path))
    with TestClient(app):
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0  # given back at shutdown
    # a process that runs many apps (this test suite) leaves its heap alone
    again = create_app(
        settings=Settings(bundle_path=DEFAULT_BUNDLE, data_dir=tmp_path), freeze_heap=False
    )
    with TestClient(again):
        assert gc.get_freeze_count() == 0


def test_model_reports_manifest_provider_and_index_sizes(client) -> None:
    response = client.get("/model")
    assert response.status_code == 200
    body = response.json()
    assert body["manifest"]["loss"]["name"] == "cosine_corel"
    assert body["provider"] == "CPUExecutionProvider"
    assert body["indexes"] == {"classes": 10, "items": 0}


def test_openapi_documents_every_route_with_examples(client) -> None:
    spec = client.get("/openapi.json").json()
    for path in (
        "/embed",
        "/classify",
        "/classes",
        "/classes/{name}",
        "/classes/restore",
        "/model",
    ):
        assert path in spec["paths"]
    assert spec["components"]["schemas"]["Input"]["examples"]
    assert client.get("/docs").status_code == 200


# -- the real server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(start_module_server):
    return start_module_server()


def test_server_reports_ready_with_its_provider(server) -> None:
    with server.client() as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json() == {
            "status": "ready",
            "model": "fashion-mnist-cosine",
            "provider": "CPUExecutionProvider",
        }


def test_server_classifies_concurrent_requests(server, fashion_sample) -> None:
    images, labels = fashion_sample
    names = [c["name"] for c in httpx.get(f"{server.url}/classes").json()["classes"]]

    async def classify_all() -> list[str]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            responses = await asyncio.gather(
                *(http.post("/classify", json={"inputs": [as_input(im)]}) for im in images[::3])
            )
        assert {r.status_code for r in responses} == {200}
        return [r.json()["results"][0]["label"] for r in responses]

    predicted = asyncio.run(classify_all())
    accuracy = sum(names[y] == p for y, p in zip(labels[::3], predicted, strict=True)) / 100
    assert accuracy > 0.85
    metrics = httpx.get(f"{server.url}/metrics").text
    # 100 concurrent one-image requests ran in fewer onnxruntime runs than requests
    assert sample(metrics, "corel_batch_size_count") < sample(metrics, "corel_batch_size_sum")


@pytest.mark.slow
def test_server_classes_survive_a_restart(start_server, fashion_sample, tmp_path) -> None:
    images, labels = fashion_sample
    data_dir = tmp_path / "restart"
    first = start_server(data_dir=data_dir)
    with first.client() as http:
        assert http.delete("/classes/Bag", params={"force": True}).status_code == 204
        body = {"name": "handbag", "inputs": [as_input(im) for im in images[labels == 8][:5]]}
        assert http.post("/classes", json=body).status_code == 201
    first.stop()
    second = start_server(data_dir=data_dir)
    with second.client() as http:
        names = [c["name"] for c in http.get("/classes").json()["classes"]]
        assert "Bag" not in names and names[-1] == "handbag"
        bags = [as_input(im) for im in images[labels == 8][5:15]]
        results = http.post("/classify", json={"inputs": bags}).json()["results"]
    assert sum(r["label"] == "handbag" for r in results) >= 8


@pytest.mark.slow
def test_server_drops_the_job_of_a_client_that_went_away(start_server) -> None:
    # A large request keeps the inference thread busy (one image per run); a second client
    # queues behind it and gives up before its turn: its job must be dropped, not run.
    # 8,192 runs: well over a second even on an idle machine (~0.1 ms a run)
    server = start_server(
        env={"COREL_MAX_BATCH_SIZE": "1", "COREL_MAX_WAIT_MS": "0", "COREL_QUEUE_SIZE": "16384"}
    )
    busy = {"inputs": [tensor_input(np.zeros((28, 28)))] * 1024}
    blank = {"inputs": [{"data": [[0] * 28] * 28}]}
    with server.client() as http, ThreadPoolExecutor(8) as pool:
        runs_before = sample(http.get("/metrics").text, "corel_batch_size_count")
        large = [pool.submit(http.post, "/embed", json=busy) for _ in range(8)]
        time.sleep(0.3)  # their 8,192 jobs are queued
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.url}/embed", json=blank, timeout=0.1)
        assert [r.result().status_code for r in large] == [200] * 8
        time.sleep(0.2)  # the worker reaches the abandoned job and drops it
        text = http.get("/metrics").text
    assert sample(text, "corel_queue_dropped_total", reason="cancelled") == 1
    assert sample(text, "corel_batch_size_count") == runs_before + 8 * 1024
