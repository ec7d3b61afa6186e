"""Service fixtures: the app in-process (with its lifespan) and the real server.

`client` runs the ASGI app in-process on the shipped default bundle with a fresh data dir.
`start_server(...)` launches `python -m service` as a subprocess on 127.0.0.1 on a free
port and waits for /readyz; every server started is stopped at the end of the test
(`start_module_server`: at the end of the module, for servers the tests share).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from corel.bundle import load_bundle, write_bundle
from harness.milvus import empty_collections, milvus_available, start_milvus
from harness.server import LocalServer as Server
from harness.server import launch
from service.app import create_app
from service.settings import Settings
from tests.conftest import DEFAULT_BUNDLE


def png_base64(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8).squeeze()).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def as_input(image: np.ndarray) -> dict:
    """A Fashion-MNIST image (1, 28, 28) in pixels as the `data` of an input."""
    return {"data": image.squeeze().astype(int).tolist()}


def tensor_input(image: np.ndarray, dtype: str = "uint8", shape: list[int] | None = None) -> dict:
    """An image as a `tensor` input: its pixels' bytes, base64-encoded."""
    pixels = image.astype("<f4" if dtype == "float32" else np.uint8)
    tensor = {"b64": base64.b64encode(pixels.tobytes()).decode(), "dtype": dtype}
    return {"tensor": tensor if shape is None else {**tensor, "shape": shape}}


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition, 0 when it is not there yet."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def other_model_bundle(out: Path) -> Path:
    """The default bundle under another model identity: its ONNX file differs by one doc
    string (the same network, so embeddings match, but its sha256, the model id, does not)."""
    import onnx

    model = onnx.load(str(DEFAULT_BUNDLE / "encoder.onnx"))
    model.doc_string = "a retrained encoder, for the test"
    out.mkdir(parents=True, exist_ok=True)
    encoder = out.parent / f"{out.name}-encoder.onnx"
    onnx.save(model, str(encoder))
    original = load_bundle(DEFAULT_BUNDLE)
    manifest = json.loads((DEFAULT_BUNDLE / "manifest.json").read_text())
    manifest = {k: v for k, v in manifest.items() if k not in ("files", "created")}
    write_bundle(out, manifest=manifest, encoder_onnx=encoder,
                 class_vectors=original.class_vectors, open_set=original.open_set)  # fmt: skip
    return out


STORES = ["embedded", "milvus"]
MILVUS_PREFIX = "test"


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Milvus standalone server for the session (harness/milvus.py)."""
    if why := milvus_available():
        pytest.skip(why)
    server = start_milvus(tmp_path_factory.mktemp("milvus"))
    yield server.uri
    server.stop()


@pytest.fixture
def store(request: pytest.FixtureRequest) -> str:
    """The item and class store of the apps `make_client` makes: "embedded" unless a module
    runs its tests on both, with
    `pytestmark = pytest.mark.parametrize("store", STORES, indirect=True)`."""
    return str(getattr(request, "param", "embedded"))


@pytest.fixture
def store_settings(store: str, request: pytest.FixtureRequest) -> dict[str, object]:
    """Settings for that store; the milvus one emptied for the test."""
    if store == "embedded":
        return {}
    uri = request.getfixturevalue("milvus_uri")
    empty_collections(uri, MILVUS_PREFIX)
    return {"store": "milvus", "milvus_uri": uri, "milvus_prefix": MILVUS_PREFIX}


@pytest.fixture
def make_client(
    tmp_path: Path, store_settings: dict[str, object]
) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        values = {
            "bundle_path": DEFAULT_BUNDLE,
            "data_dir": tmp_path / "data",
            **store_settings,
            **overrides,
        }
        app = create_app(settings=Settings(**values), freeze_heap=False)  # type: ignore[arg-type]
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


StartServer = Callable[..., Server]


def _server_factory(base: Path, servers: list[Server]) -> StartServer:
    def start(
        *,
        data_dir: Path | None = None,
        bundle: Path = DEFAULT_BUNDLE,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Server:
        log = base / f"server-{len(servers)}.log"
        server = launch(
            bundle=bundle,
            data_dir=data_dir or base / "server-data",
            log=log,
            env=env,
            timeout=timeout,
        )
        servers.append(server)
        return server

    return start


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """`start_server(data_dir=, bundle=, env=)`: a real server for one test."""
    servers: list[Server] = []
    yield _server_factory(tmp_path, servers)
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def start_module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartServer]:
    """The same, for servers shared by the tests of one module (stopped at its end)."""
    servers: list[Server] = []
    yield _server_factory(tmp_path_factory.mktemp("servers"), servers)
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def fashion_sample(fashion_test: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """300 Fashion-MNIST test images, 30 per class, in pixels, with their labels."""
    images, labels = fashion_test
    picked = np.concatenate([np.flatnonzero(labels == k)[:30] for k in range(10)])
    return images[picked], labels[picked]
