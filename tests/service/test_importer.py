"""`corel-import` against a real server: what a user runs, and what the server then holds.

Most tests share one server (each imports under its own id prefix); the tests that need a
server set up otherwise (an API key, a tiny queue) start their own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from harness.server import LocalServer, free_port
from service.importer import main
from service.importer.client import encode_batch
from service.importer.sources import FashionMnist, ModelInput, Rows, open_source
from service.importer.sources.fashion_mnist import FASHION_MNIST_LABELS
from tests.conftest import FASHION_DIR
from tests.service.conftest import StartServer

KEY = "importer-test-key-0123456789"
FASHION = ModelInput("image", (1, 28, 28))


@pytest.fixture(scope="module")
def server(start_module_server: StartServer) -> LocalServer:
    return start_module_server()


@pytest.fixture
def sample_npz(tmp_path: Path, fashion_sample: tuple[np.ndarray, np.ndarray]) -> Path:
    """300 Fashion-MNIST test images as an .npz: x (300, 28, 28) pixels, y class names."""
    images, labels = fashion_sample
    names = np.array(FASHION_MNIST_LABELS)[labels]
    path = tmp_path / "sample.npz"
    np.savez_compressed(path, x=images[:, 0].astype(np.float32), y=names)
    return path


def stored(server: LocalServer, prefix: str) -> dict[str, str | None]:
    """Every stored item whose id starts with `prefix`: id -> label."""
    found: dict[str, str | None] = {}
    cursor: str | None = None
    with server.client() as http:
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = http.get("/items", params=params).json()
            found |= {i["id"]: i["label"] for i in page["items"] if i["id"].startswith(prefix)}
            if (cursor := page["next_cursor"]) is None:
                return found


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# -- importing each kind of source ------------------------------------------------------


@pytest.mark.slow
def test_import_npz_stores_every_row_with_its_label(
    server: LocalServer, sample_npz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(sample_npz), "--url", server.url, "--batch-size", "64"]) == 0

    summary = capsys.readouterr().out
    assert "imported 300 items: 300 sent, 0 skipped as already stored" in summary
    items = stored(server, "sample-")
    assert sorted(items) == sorted(f"sample-{row}" for row in range(300))
    assert items["sample-0"] == "T-shirt/top"
    assert sum(label == "Sneaker" for label in items.values()) == 30
    with server.client() as http:  # embedded from the same pixels as a direct request
        item = http.get("/items/sample-0", params={"include_vector": True}).json()
        x = np.load(sample_npz)["x"][0]
        direct = http.post("/embed", json={"inputs": [{"data": x.tolist()}]}).json()
    assert item["has_input"] is True
    vector = np.array(item["vector"])  # raw; /embed normalizes by default
    assert np.allclose(vector / np.linalg.norm(vector), direct["embeddings"][0], atol=1e-5)


@pytest.mark.slow
def test_import_image_folder_labels_items_by_sub_folder(
    server: LocalServer, tmp_path: Path, fashion_sample: tuple[np.ndarray, np.ndarray]
) -> None:
    images, _ = fashion_sample
    for n, (label, image) in enumerate(
        [("bag", images[0]), ("bag", images[1]), ("shoe", images[2])]
    ):
        (tmp_path / "photos" / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0].astype(np.uint8)).save(tmp_path / "photos" / label / f"{n}.png")

    assert main([str(tmp_path / "photos"), "--url", server.url, "--no-store-input"]) == 0

    assert stored(server, "photos-") == {"photos-0": "bag", "photos-1": "bag", "photos-2": "shoe"}
    with server.client() as http:
        item = http.get("/items/photos-2").json()
    assert item["metadata"] == {"file": "shoe/2.png"}
    assert item["has_input"] is False


@pytest.mark.slow
def test_import_csv_and_fashion_mnist_split(server: LocalServer, tmp_path: Path) -> None:
    pixels = np.arange(784) % 256
    table = tmp_path / "rows.csv"
    header = "label," + ",".join(f"p{n}" for n in range(784))
    table.write_text("\n".join([header] + [f"{k}," + ",".join(map(str, pixels)) for k in range(3)]))
    assert main([str(table), "--url", server.url]) == 0
    assert stored(server, "rows-") == {"rows-0": "0", "rows-1": "1", "rows-2": "2"}

    state = tmp_path / "fashion.json"
    args = [
        "--fashion-mnist",
        FASHION_DIR,
        "--split",
        "test",
        "--limit",
        "50",
        "--state",
        str(state),
    ]
    assert main([*args, "--url", server.url]) == 0
    items = stored(server, "fashion-mnist-test-")
    assert len(items) == 50
    assert items["fashion-mnist-test-0"] == "Ankle boot"  # the test split's first image


# -- resuming ---------------------------------------------------------------------------


@pytest.mark.slow
def test_import_resumes_after_the_rows_already_done(
    server: LocalServer, sample_npz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(sample_npz), "--url", server.url, "--id-prefix", "resume-", "--batch-size", "64"]
    assert main([*args, "--limit", "100"]) == 0
    state = json.loads(sample_npz.with_name("sample.npz.import-state.json").read_text())
    assert state["next_row"] == 100
    capsys.readouterr()

    assert main(args) == 0

    assert "imported 200 items (resumed at row 100): 200 sent, 0 skipped" in capsys.readouterr().out
    assert len(stored(server, "resume-")) == 300
    assert main(args) == 0
    assert "nothing to import: the first 300 rows are stored already" in capsys.readouterr().out


@pytest.mark.slow
def test_import_killed_between_batches_resumes_without_duplicates(
    server: LocalServer, sample_npz: Path
) -> None:
    state = sample_npz.with_name("killed.json")
    command = [sys.executable, "-m", "service.importer", str(sample_npz), "--url", server.url,
               "--id-prefix", "killed-", "--batch-size", "10", "--concurrency", "1",
               "--state", str(state), "--quiet"]  # fmt: skip
    first = subprocess.Popen(command)
    deadline = time.monotonic() + 60
    while not (state.exists() and json.loads(state.read_text())["next_row"] >= 30):
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)  # no clean-up: as a crash or a lost connection
    first.wait()
    done_before = json.loads(state.read_text())["next_row"]
    assert 30 <= done_before < 300

    again = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    assert again.returncode == 0, again.stderr
    assert f"resumed at row {done_before}" in again.stdout
    assert sorted(stored(server, "killed-")) == sorted(f"killed-{row}" for row in range(300))


@pytest.mark.slow
def test_import_counts_batches_stored_before_as_skipped(
    server: LocalServer, sample_npz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The state file lost, or a 201 lost with the connection: the server answers 409 for
    every id of a batch it already holds, and the import goes on."""
    args = [str(sample_npz), "--url", server.url, "--id-prefix", "twice-", "--batch-size", "50"]
    assert main([*args, "--limit", "100"]) == 0
    sample_npz.with_name("sample.npz.import-state.json").unlink()
    capsys.readouterr()

    assert main(args) == 0

    assert "imported 300 items: 200 sent, 100 skipped as already stored" in capsys.readouterr().out
    assert len(stored(server, "twice-")) == 300


# -- failures ---------------------------------------------------------------------------


@pytest.mark.slow
def test_import_stops_when_some_ids_of_a_batch_belong_to_other_items(
    server: LocalServer, sample_npz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(sample_npz), "--url", server.url, "--id-prefix", "clash-", "--batch-size", "50"]
    assert main([*args, "--limit", "30"]) == 0
    sample_npz.with_name("sample.npz.import-state.json").unlink()
    capsys.readouterr()

    assert main(args) == 1

    [line] = error_lines(capsys)
    assert line.startswith("corel-import: error: rows 0..49: 409 30 item id(s) already exist")
    assert "clash-0" in line and "--id-prefix" in line
    assert line.endswith("[0 of 300 rows stored]")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("nothing.npz", None, "no such file or folder"),
        ("no-x.npz", {"y": np.zeros(3)}, "needs an array 'x'"),
        ("wrong-shape.npz", {"x": np.zeros((3, 5, 5))}, "rows of shape [5, 5]; the served model"),
        ("broken.npz", b"not a zip", "cannot read it as an .npz"),
        ("empty-folder", {}, "no images in it or in its class sub-folders"),
        ("data.json", b"{}", "expected a folder, an .npz, a .csv or a .jsonl file"),
    ],
)
def test_import_of_a_bad_source_exits_1_with_one_line(
    server: LocalServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: dict[str, np.ndarray] | bytes | None,
    message: str,
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == {} and "." not in name:
        path.mkdir()
    elif content is not None:
        np.savez(path, **content)

    assert main([str(path), "--url", server.url]) == 1

    [line] = error_lines(capsys)
    assert line.startswith("corel-import: error: ") and message in line


def test_import_with_no_server_exits_1_saying_so(
    sample_npz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main([str(sample_npz), "--url", url]) == 1
    [line] = error_lines(capsys)
    assert f"cannot connect to {url}" in line and "is the service running?" in line


@pytest.mark.parametrize(
    "args",
    [[], ["a.npz", "--fashion-mnist", "."], ["a.npz", "--batch-size", "0"],
     ["a.npz", "--split", "test"], ["a.npz", "--id-prefix", "a/b"], ["a.npz", "--bogus"]],
)  # fmt: skip
def test_bad_usage_exits_2(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2


# -- a server with an API key and a tiny queue ------------------------------------------


@pytest.mark.slow
def test_import_sends_the_key_and_waits_out_a_full_queue(
    start_server: StartServer, sample_npz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Eight requests of 16 in flight against a queue of 16 items: the server answers 429
    (Retry-After: 1) to most, and the importer retries until every batch is stored."""
    env = {"COREL_API_KEY": KEY, "COREL_MAX_BATCH_SIZE": "16", "COREL_QUEUE_SIZE": "16"}
    server = start_server(env=env)
    args = [str(sample_npz), "--url", server.url, "--batch-size", "16", "--concurrency", "8"]

    assert main(args) == 1
    [line] = error_lines(capsys)
    assert "answered 401" in line and "--api-key or set COREL_API_KEY" in line

    assert main([*args, "--api-key", KEY]) == 0
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        assert http.get("/items", params={"limit": 1}).json()["total"] == 300
        metrics = http.get("/metrics").text
    assert 'status="429"' in metrics  # the queue was full, and the import went on


def test_api_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.importer.cli import parser

    monkeypatch.setenv("COREL_API_KEY", KEY)
    assert parser().parse_args(["a.npz"]).api_key == KEY


# -- the parts, without a server --------------------------------------------------------


def test_rows_are_sent_as_uint8_when_they_fit_else_float32() -> None:
    pixels = Rows(0, np.array([[0.0, 255.0], [3.0, 4.0]]), ["a", None])
    features = Rows(0, np.array([[0.5, -1.0]]), [None])

    sent = json.loads(encode_batch(pixels, ["p-0", "p-1"], store_input=False))["items"]
    other = json.loads(encode_batch(features, ["f-0"], store_input=True, label="x"))["items"]

    assert sent[0] == {"id": "p-0", "input": {"tensor": {"b64": "AP8=", "dtype": "uint8"}},
                       "store_input": False, "label": "a"}  # fmt: skip
    assert "label" not in sent[1]
    assert other[0]["input"]["tensor"]["dtype"] == "float32"
    assert other[0]["label"] == "x"


def test_npz_rows_are_read_from_any_row_on(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (25, 28, 28), dtype=np.uint8)
    np.savez_compressed(tmp_path / "x.npz", x=x, y=np.arange(25), ids=np.arange(25) * 10)

    batches = list(open_source(tmp_path / "x.npz", FASHION).rows(7, 20, 5))

    assert [b.start for b in batches] == [7, 12, 17]
    assert np.array_equal(np.concatenate([b.values for b in batches]), x[7:20])
    assert batches[0].labels == ["7", "8", "9", "10", "11"]
    assert batches[0].ids == ["70", "80", "90", "100", "110"]


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason="needs dataset-fashion-mnist")
def test_fashion_mnist_rows_stream_from_the_idx_files(
    fashion_test: tuple[np.ndarray, np.ndarray],
) -> None:
    source = FashionMnist(Path(FASHION_DIR), "test", FASHION)
    [batch] = source.rows(9_990, 10_000, 100)
    assert source.total == 10_000
    assert np.array_equal(batch.values, fashion_test[0][9_990:, 0])
    assert batch.labels == [FASHION_MNIST_LABELS[k] for k in fashion_test[1][9_990:]]
