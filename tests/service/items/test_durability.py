"""Items against the real server process: a clean restart, and `kill -9` mid-stream.

An item is acknowledged when `POST /items` answered 201; every acknowledged item must be
there after the server comes back, and searchable (the index catches up with SQLite).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.writers import vector as _vector
from harness.writers import write_until_killed
from tests.service.conftest import Server

pytestmark = pytest.mark.slow  # real servers, restarts and kill -9


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

    def with_metadata(item_id: str, worker: int, n: int) -> dict[str, Any]:
        return {"id": item_id, "vector": _vector(n), "metadata": {"w": worker}}

    acked = write_until_killed(server.url, server.kill, "w", item=with_metadata, within=30)
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
