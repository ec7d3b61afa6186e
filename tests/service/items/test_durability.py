"""Items against the real server process: a clean restart, and `kill -9` mid-stream.

An item is acknowledged when `POST /items` answered 201; every acknowledged item must be
there after the server comes back, and searchable (the index catches up with SQLite).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from tests.service.conftest import Server

pytestmark = pytest.mark.slow  # real servers, restarts and kill -9


def _vector(n: int) -> list[float]:
    return np.random.default_rng(n).normal(size=128).round(5).tolist()


def test_restart_keeps_items_and_catches_the_index_up(start_server: Callable[..., Server]) -> None:
    server = start_server()
    with server.client() as client:
        created = client.post("/items", json={"items": [
            {"id": f"r{n}", "vector": _vector(n), "label": "x"} for n in range(20)]})  # fmt: skip
    assert created.status_code == 201
    server.stop()  # SIGTERM: a clean shutdown

    again = start_server(data_dir=server.data_dir)
    with again.client() as client:
        listed = client.get("/items", params={"limit": 100})
        neighbours = client.get("/neighbors", params={"id": "r3", "k": 19})

    assert listed.status_code == 200
    assert listed.json()["total"] == 20
    assert listed.json()["index"]["index_size"] == 20
    assert neighbours.status_code == 200
    assert len(neighbours.json()["neighbors"]) == 19
    # 20 items are below a merge: no snapshot yet, the store's vectors go into the delta
    assert "caught up with the store: +20, -0" in again.log.read_text()


def test_kill_9_keeps_every_acknowledged_item(start_server: Callable[..., Server]) -> None:
    server = start_server()
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for n in range(10_000):
                if stop.is_set():
                    return
                item_id = f"w{worker}-{n}"
                item = {"id": item_id, "vector": _vector(n), "metadata": {"w": worker}}
                try:
                    response = client.post("/items", json={"items": [item]})
                except httpx.TransportError:
                    return  # the server died under this request: not acknowledged
                if response.status_code == 201:
                    with lock:
                        acknowledged.append(item_id)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill mid-stream, once enough were acknowledged
        with lock:
            if len(acknowledged) >= 40:
                break
        time.sleep(0.05)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(10)
    with lock:
        acked = list(acknowledged)
    assert len(acked) >= 40, "the writers did not get going"

    again = start_server(data_dir=server.data_dir)
    with again.client() as client:
        missing = [i for i in acked if client.get(f"/items/{i}").status_code != 200]
        stats: dict[str, Any] = client.get("/items", params={"limit": 1}).json()
        found = client.post("/neighbors", json={"queries": [{"id": acked[-1]}], "k": 1})

    assert missing == []
    assert stats["total"] >= len(acked)
    assert stats["index"]["index_size"] == stats["total"]  # caught up from SQLite
    assert found.status_code == 200
    assert len(found.json()["results"][0]["neighbors"]) == 1
