"""Stateless replicas on one Milvus (COREL_STORE=milvus): real server processes, a real
milvus-server (harness/milvus.py).

What is promised (docs/scaling.md): an item or class written through one replica is seen
by the others within about a second; an item is acknowledged (201) once it is in Milvus's
log, so `kill -9` of the replica that acknowledged it loses nothing; several workers on one
port need the milvus store (the embedded one is refused in one line).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from harness.milvus import empty_collections
from harness.server import REPO
from harness.writers import vector as _vector
from harness.writers import write_until_killed
from tests.service.conftest import MILVUS_PREFIX, Server, StartServer, as_input

pytestmark = pytest.mark.slow  # real servers and a real Milvus


@pytest.fixture(scope="module")
def milvus_env(milvus_uri: str) -> dict[str, str]:
    empty_collections(milvus_uri, MILVUS_PREFIX)
    return {
        "COREL_STORE": "milvus",
        "COREL_MILVUS_URI": milvus_uri,
        "COREL_MILVUS_PREFIX": MILVUS_PREFIX,
    }


@pytest.fixture(scope="module")
def replicas(start_module_server: StartServer, milvus_env: dict[str, str]) -> list[Server]:
    """Two replicas, each its own process, sharing one Milvus."""
    return [start_module_server(env=milvus_env) for _ in range(2)]


def _until(check: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until `check()` held, or None when it did not within `timeout`."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if check():
            return time.perf_counter() - started
        time.sleep(0.02)
    return None


def test_an_item_written_through_one_replica_is_found_by_the_others_neighbors(
    replicas: list[Server],
) -> None:
    a, b = replicas
    with a.client() as client_a, b.client() as client_b:
        seed = client_a.post("/items", json={"items": [{"id": "seen-0", "vector": _vector(0)}]})
        assert seed.status_code == 201
        assert _until(lambda: client_b.get("/items/seen-0").status_code == 200, 5) is not None

        written = client_a.post("/items", json={"items": [{"id": "seen-1", "vector": _vector(1)}]})
        assert written.status_code == 201

        def b_finds_it() -> bool:
            found = client_b.get("/neighbors", params={"id": "seen-0", "k": 5}).json()
            return "seen-1" in [n["id"] for n in found["neighbors"]]

        seconds = _until(b_finds_it, 5)
    assert seconds is not None and seconds < 1.0, f"seen after {seconds} s"


def test_a_class_imprinted_through_one_replica_is_used_by_the_other(
    replicas: list[Server], fashion_sample: tuple[np.ndarray, np.ndarray]
) -> None:
    a, b = replicas
    images, labels = fashion_sample
    bags = [as_input(im) for im in images[labels == 8]]
    with a.client() as client_a, b.client() as client_b:
        removed = client_a.delete("/classes/Bag", params={"force": True})
        imprinted = client_a.post("/classes", json={"name": "handbag", "inputs": bags[:5]})
        assert (removed.status_code, imprinted.status_code) == (204, 201)

        def b_says_handbag() -> bool:  # a class B did not have: only imprinted through A
            response = client_b.post("/classify", json={"inputs": bags[5:8]})
            return any(r["label"] == "handbag" for r in response.json()["results"])

        seconds = _until(b_says_handbag, 5)
        b_classes = [c["name"] for c in client_b.get("/classes").json()["classes"]]
    assert seconds is not None and seconds < 1.5, f"used after {seconds} s"
    assert "handbag" in b_classes and "Bag" not in b_classes


def test_kill_9_of_a_replica_under_writers_loses_nothing_acknowledged(
    start_server: StartServer, replicas: list[Server], milvus_env: dict[str, str]
) -> None:
    victim, witness = start_server(env=milvus_env), replicas[1]
    acked = write_until_killed(victim.url, victim.kill, "k")
    assert len(acked) >= 40, "the writers did not get going"

    with witness.client() as client:  # another replica, still up, on the same Milvus
        missing = [i for i in acked if client.get(f"/items/{i}").status_code != 200]
    assert missing == []


@pytest.fixture
def two_workers(tmp_path: Any, milvus_env: dict[str, str]) -> Iterator[Server]:
    from harness.server import launch

    server = launch(
        bundle=REPO / "models" / "fashion-mnist-cosine",
        data_dir=tmp_path / "data",
        log=tmp_path / "workers.log",
        env={**milvus_env, "COREL_WORKERS": "2"},
        timeout=120,
    )
    yield server
    server.stop()


def test_two_workers_on_one_port_share_the_store(two_workers: Server) -> None:
    # /readyz answered from the first worker up; the second may still be loading
    def both_started() -> bool:
        return two_workers.log.read_text().count("Application startup complete") == 2

    assert _until(both_started, 120) is not None
    with two_workers.client() as client:
        created = client.post("/items", json={"items": [{"id": "w-1", "vector": _vector(7)}]})

    def every_connection_sees_it() -> bool:
        # new connections: the kernel spreads them over both workers
        return all(
            httpx.get(f"{two_workers.url}/items/w-1", timeout=10).status_code == 200
            for _ in range(8)
        )

    assert created.status_code == 201
    assert _until(every_connection_sees_it, 2) is not None


def test_workers_with_the_embedded_store_are_refused_in_one_line(tmp_path: Any) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service"],
        cwd=REPO,
        env={"COREL_WORKERS": "2", "COREL_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: bad setting: Value error, COREL_WORKERS=2 needs COREL_STORE=milvus: "
        "the embedded store is held by one process (run one worker, or see docs/scaling.md)"
    ]
