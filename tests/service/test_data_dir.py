"""The data directory as a whole: a damaged, emptied or read-only one refuses to start with
one line; a live one is backed up and restored; a failed write leaves no half file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from corel.files import atomic_write
from harness.server import free_port
from service.datadir.wal import wal_damage
from service.items.index import ItemIndex
from service.items.sqlite_store import ItemStore
from service.items.types import NewItem
from tests.conftest import REPO
from tests.service.conftest import Server

# the default bundle's model id (its encoder's sha256), as the server will see it
MODEL_ID = json.loads((REPO / "models/fashion-mnist-cosine/manifest.json").read_text())["files"][
    "encoder.onnx"
]


def service(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "COREL_DATA_DIR": str(data_dir),
        "COREL_PORT": str(free_port()),
    }
    return subprocess.run([sys.executable, "-m", "service", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def store_with_items(data_dir: Path, n: int = 50) -> None:
    store = ItemStore(data_dir / "items.sqlite3")
    vectors = np.random.default_rng(0).normal(size=(n, 128)).astype(np.float32)
    store.insert([NewItem(f"i{k}", vectors[k]) for k in range(n)], MODEL_ID)
    store.close()


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_damaged_store_refuses_to_start(tmp_path: Path) -> None:
    store_with_items(tmp_path, 2_000)
    db = tmp_path / "items.sqlite3"
    data = bytearray(db.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = os.urandom(4096)  # garbage mid-file
    db.write_bytes(bytes(data))

    line = one_line(service(data_dir=tmp_path))

    assert f"the item store {db} is damaged" in line and "restore" in line


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_a_store_gone_beside_a_snapshot_refuses_to_start(tmp_path: Path, state: str) -> None:
    ItemIndex.build(128, "flat", np.arange(1, 31), np.ones((30, 128), np.float32)).save(
        tmp_path / "items.index", model_id=MODEL_ID, watermark=30
    )
    if state == "empty":
        ItemStore(tmp_path / "items.sqlite3").close()

    line = one_line(service(data_dir=tmp_path))

    assert f"is {state} but the index snapshot" in line and "holds 30 vectors" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_data_directory_refuses_to_start(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        line = one_line(service(data_dir=tmp_path / "data"))
    finally:
        tmp_path.chmod(0o755)
    assert "is not writable: Permission denied" in line


def test_a_failed_write_leaves_no_half_file(tmp_path: Path) -> None:
    # A file-size limit makes the write fail as a full disk would (EFBIG instead of ENOSPC).
    code = (
        "import resource, signal, sys; from pathlib import Path; "
        "from corel.files import atomic_write; "
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)); "
        f"atomic_write(Path({str(tmp_path / 'f')!r}), b'x' * 100_000)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)

    assert "File too large" in done.stderr
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


def test_atomic_write_replaces_a_file_whole(tmp_path: Path) -> None:
    atomic_write(tmp_path / "f", b"old")
    atomic_write(tmp_path / "f", b"new")
    assert (tmp_path / "f").read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


@pytest.mark.slow
def test_a_live_server_is_backed_up_and_restored(start_server, tmp_path: Path) -> None:
    server: Server = start_server(data_dir=tmp_path / "live")
    with server.client() as client:
        items = [{"id": f"b{n}", "vector": [float(n + 1)] * 128, "label": "x"} for n in range(20)]
        assert client.post("/items", json={"items": items}).status_code == 201

        done = service("backup", str(tmp_path / "backup"), data_dir=tmp_path / "live")
        refused = service("restore", str(tmp_path / "backup"), data_dir=tmp_path / "live")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("backed up 20 items")
    assert "in use by another server" in one_line(refused)
    restored = service("restore", str(tmp_path / "backup"), data_dir=tmp_path / "new")
    assert restored.returncode == 0 and restored.stdout.startswith("restored 20 items")
    again = start_server(data_dir=tmp_path / "new")
    with again.client() as client:
        listed = client.get("/items", params={"limit": 100}).json()
    assert listed["total"] == 20 and listed["index"]["index_size"] == 20


def flip(path: Path, offset: int, count: int = 16) -> None:
    """Damage `count` bytes of a file at `offset` (each inverted, so surely changed)."""
    data = bytearray(path.read_bytes())
    data[offset : offset + count] = bytes(b ^ 0xFF for b in data[offset : offset + count])
    path.write_bytes(bytes(data))


WAL_HEADER, FRAME_HEADER = 32, 24  # bytes (https://sqlite.org/fileformat2.html)


def test_a_damaged_write_ahead_log_after_a_crash_refuses_to_start(
    start_server, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir=data_dir)
    with server.client() as client:
        for batch in range(5):  # five commits, each acknowledged
            items = [{"id": f"w{batch}-{n}", "vector": [n + 1.0] * 128} for n in range(20)]
            assert client.post("/items", json={"items": items}).status_code == 201
    server.kill()  # no checkpoint on the way out: the commits are still in the log
    wal = data_dir / "items.sqlite3-wal"
    assert wal_damage(wal) is None and wal.stat().st_size > WAL_HEADER

    flip(wal, WAL_HEADER + FRAME_HEADER + 100)  # inside the first frame's page
    line = one_line(service(data_dir=data_dir))

    assert f"the item store's write-ahead log {wal} is damaged" in line
    assert "a committed transaction follows it" in line and "restore" in line


def test_a_damaged_log_header_is_caught_and_a_torn_last_write_is_not(tmp_path: Path) -> None:
    # The files as a crash leaves them: copied while the store is open, before any checkpoint.
    store = ItemStore(tmp_path / "live" / "items.sqlite3")
    vectors = np.ones((2, 128), np.float32)
    store.insert([NewItem("a", vectors[0])], MODEL_ID)
    store.insert([NewItem("b", vectors[1])], MODEL_ID)
    wal = tmp_path / "items.sqlite3-wal"
    wal.write_bytes((tmp_path / "live" / "items.sqlite3-wal").read_bytes())
    store.close()
    frame = FRAME_HEADER + 4096  # SQLite's default page size

    flip(wal, wal.stat().st_size - frame // 2)  # the last frame, as a power cut tears it
    torn = wal_damage(wal)  # the last transaction: never acknowledged, or its commit lost
    flip(wal, 8)  # the header's page size
    damaged_header = wal_damage(wal)

    assert torn is None
    assert damaged_header == "its header is damaged, so SQLite would ignore every frame after it"
