"""The milvus store on Milvus Lite: COREL_MILVUS_URI a local `.db` path, opened by pymilvus
inside the one server process (docs/scaling.md, "Milvus Lite")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.server import REPO
from harness.writers import vector
from service.settings import Settings
from tests.service.conftest import StartServer

pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (the milvus-lite extra)")
pytestmark = pytest.mark.slow  # real server processes


def test_a_server_on_a_lite_file_stores_finds_and_keeps_items_after_kill_9(
    start_server: StartServer, tmp_path: Path
) -> None:
    uri = str(tmp_path / "milvus.db")
    env = {"COREL_STORE": "milvus", "COREL_MILVUS_URI": uri}
    with pytest.raises(ValidationError, match="COREL_WORKERS=2 needs a Milvus server"):
        Settings(store="milvus", milvus_uri=uri, workers=2)

    server = start_server(env=env)
    with server.client() as client:
        items = [{"id": f"lite-{n}", "vector": vector(n), "label": "x"} for n in range(5)]
        created = client.post("/items", json={"items": items})
        found = client.get("/neighbors", params={"id": "lite-0", "k": 2})
    assert created.status_code == 201, created.text
    assert found.status_code == 200, found.text
    assert len(found.json()["neighbors"]) == 2
    assert "lite-0" not in [n["id"] for n in found.json()["neighbors"]]

    # one process per file: a second server is refused in one line, before the model loads
    second = subprocess.run(
        [sys.executable, "-m", "service"],
        cwd=REPO,
        env={"PATH": os.environ["PATH"], **env, "COREL_DATA_DIR": str(tmp_path / "other")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"error: COREL_MILVUS_URI={uri}: this Milvus Lite database is open in another "
        "process (Lite is one process; several need a Milvus server, see docs/scaling.md)"
    ]

    server.kill()  # acknowledged writes are in Lite's write-ahead log, handed to the OS
    again = start_server(env=env, data_dir=server.data_dir)
    with again.client() as client:
        kept = client.get("/items/lite-3")
        listed = client.get("/items", params={"limit": 1})
        found_again = client.get("/neighbors", params={"id": "lite-0", "k": 2})
    assert kept.status_code == 200
    assert kept.json()["label"] == "x"
    assert listed.json()["total"] == 5
    assert found_again.json() == found.json()
