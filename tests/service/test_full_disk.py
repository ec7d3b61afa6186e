"""Inserts on a full disk: a real small file system (tmpfs), filled up under a live server.

A write that finds no space is refused with 507 `insufficient_storage` in the one error
shape and nothing of it stored; every write acknowledged before stays, the server keeps
serving reads, and inserts work again once space is freed, with no restart.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import StartServer

DISK_BYTES = 8 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs; skipped where this machine may not mount one (not root, a container
    without the capability)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    yield disk
    # lazy: detached now, released once the last file on it is closed
    subprocess.run(["umount", "--lazy", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk has no byte left."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\xff" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def batch(start: int, n: int = 50) -> list[dict]:
    return [{"id": f"d{k}", "vector": [float(k % 7 + 1)] * 128} for k in range(start, start + n)]


@pytest.mark.slow
def test_an_insert_on_a_full_disk_is_refused_with_507_and_loses_nothing(
    start_server: StartServer, small_disk: Path
) -> None:
    data_dir = small_disk / "data"
    server = start_server(data_dir=data_dir)
    acknowledged: list[str] = []
    with server.client() as client:
        for start in range(0, 200, 50):
            assert client.post("/items", json={"items": batch(start)}).status_code == 201
            acknowledged += [item["id"] for item in batch(start)]
        filler = fill(small_disk)

        # The log may still have room it can reuse: insert until the disk refuses one
        answers = []
        for start in range(200, 10_000, 50):
            answer = client.post("/items", json={"items": batch(start)})
            answers.append(answer.status_code)
            if answer.status_code != 201:
                break
            acknowledged += [item["id"] for item in batch(start)]
        refused = answer.json()
        listed = client.get("/items", params={"limit": 1}).json()
        one = client.get(f"/items/{acknowledged[-1]}")
        near = client.post("/neighbors", json={"queries": [{"id": acknowledged[0]}], "k": 3})
        blank = {"data": [[0] * 28] * 28}
        new_class = client.post("/classes", json={"name": "Ring", "inputs": [blank]})

        filler.unlink()
        again = client.post("/items", json={"items": [{"id": "after", "vector": [1.0] * 128}]})

    assert set(answers[:-1]) <= {201} and answers[-1] == 507, answers
    assert refused["error"]["code"] == "insufficient_storage"
    assert "full" in refused["error"]["message"]
    assert listed["total"] == len(acknowledged)  # nothing of the refused batch, nothing lost
    assert one.status_code == 200 and near.status_code == 200
    assert new_class.status_code == 507  # the class set is saved before it is served
    assert new_class.json()["error"]["code"] == "insufficient_storage"
    assert again.status_code == 201

    server.stop()
    restarted = start_server(data_dir=data_dir)
    with restarted.client() as client:
        total = client.get("/items", params={"limit": 1}).json()["total"]
        missing = [i for i in acknowledged if client.get(f"/items/{i}").status_code != 200]
    restarted.stop()
    assert total == len(acknowledged) + 1 and missing == []
