"""ItemService in-process: real SQLite and FAISS files, restarts by closing and reopening.

Model identities are plain strings here ("model-a", "model-b"); the HTTP tests use real
bundles. Vectors are random, so neighbours can be checked against numpy.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service import item_search
from service.app import create_app
from service.bundle import load_bundle, write_bundle
from service.class_rule import l2_normalise
from service.items import ItemService, SearchOptions
from service.settings import Settings
from service.store import ItemStore, NewItem
from tests.conftest import DEFAULT_BUNDLE
from tests.service.conftest import as_input, tensor_input

DIM = 12


def _open(tmp_path: Path, model_id: str = "model-a", kind: str = "flat") -> ItemService:
    service = ItemService(
        ItemStore(tmp_path / "items.sqlite3"),
        index_path=tmp_path / f"items-{kind}.index",
        model_id=model_id,
        dim=DIM,
        kind=kind,
    )
    service.start()
    assert service.wait_ready(10)
    return service


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ItemService]:
    s = _open(tmp_path)
    yield s
    s.close()


def _items(n: int, seed: int = 0, **kw: Any) -> list[NewItem]:
    vectors = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return [NewItem(f"it-{seed}-{i}", vectors[i], **kw) for i in range(n)]


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_add_then_reopen_keeps_items_and_index(tmp_path: Path) -> None:
    first = _open(tmp_path)
    _run(first.add(_items(20)))
    first.close()

    again = _open(tmp_path)

    assert again.index_size == 20
    assert _run(again.get("it-0-3")).embedding.shape == (DIM,)
    again.close()


def test_open_catches_up_writes_the_snapshot_missed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = _open(tmp_path)
    _run(first.add(_items(10)))
    first.close()  # snapshot holds these 10
    store = ItemStore(tmp_path / "items.sqlite3")  # as if the server died after committing:
    store.insert(_items(5, seed=1), "model-a")  # rows the snapshot never saw
    store.delete("it-0-0")
    store.close()

    with caplog.at_level(logging.INFO, logger="service"):
        again = _open(tmp_path)

    assert again.index_size == 14
    assert "caught up with the store: +5, -1" in caplog.text
    hits = _run(again.neighbours(["it-1-0"], SearchOptions(k=20)))[0]
    assert {h.item.id for h in hits} == {f"it-0-{i}" for i in range(1, 10)} | {
        f"it-1-{i}" for i in range(1, 5)
    }
    again.close()


def test_open_rebuilds_when_snapshot_corrupt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = _open(tmp_path)
    _run(first.add(_items(10)))
    first.close()
    (tmp_path / "items-flat.index").write_bytes(b"not a snapshot")

    with caplog.at_level(logging.WARNING, logger="service"):
        again = _open(tmp_path)

    assert again.index_size == 10
    assert "building it from the store" in caplog.text
    again.close()


def test_open_with_other_model_indexes_none_and_counts_them(tmp_path: Path) -> None:
    first = _open(tmp_path, "model-a")
    _run(first.add(_items(6)))
    first.close()

    other = _open(tmp_path, "model-b")

    assert other.index_size == 0
    stats = other.stats()
    assert stats["items_other_models"] == 6
    assert stats["items_current_model"] == 0
    with pytest.raises(Exception, match="another model") as info:
        _run(other.neighbours(["it-0-0"], SearchOptions(k=3)))
    assert getattr(info.value, "status_code", None) == 409
    other.close()


def test_reembed_moves_items_with_inputs_to_current_model(tmp_path: Path) -> None:
    first = _open(tmp_path, "model-a")
    with_input = [
        NewItem(f"in-{i}", np.ones(DIM, np.float32), source={"data": [i]}) for i in range(4)
    ]
    _run(first.add([*with_input, *_items(2)]))
    first.close()
    other = _open(tmp_path, "model-b")

    async def embed(sources: list[dict[str, Any]]) -> np.ndarray:
        # Stands in for the encoder (the HTTP tests use the real one); input 3 is "bad".
        if any(s["data"] == [3] for s in sources):
            raise ValueError("input 3 does not fit this model")
        return np.array([np.eye(DIM)[s["data"][0]] for s in sources], np.float32)

    result = _run(other.reembed(embed))

    assert result["reembedded"] == 3
    assert [f["id"] for f in result["failed"]] == ["in-3"]
    assert result["items_other_models"] == 3  # in-3 and the two without input
    assert other.index_size == 3
    hits = _run(other.neighbours([np.eye(DIM)[1].astype(np.float32)], SearchOptions(k=1)))[0]
    assert (hits[0].item.id, hits[0].score) == ("in-1", pytest.approx(1.0))
    other.close()


def test_neighbours_rank_offset_and_min_score(service: ItemService) -> None:
    items = _items(30)
    _run(service.add(items))
    query = items[0].embedding
    expected = np.argsort(
        -(l2_normalise(np.stack([i.embedding for i in items])) @ l2_normalise(query))
    )

    (hits,) = _run(service.neighbours(["it-0-0"], SearchOptions(k=5, offset=2)))
    (scored,) = _run(service.neighbours([query], SearchOptions(k=30, min_score=0.2)))

    assert [h.item.id for h in hits] == [f"it-0-{i}" for i in expected[3:8]]  # [0] is itself
    assert scored[0].item.id == "it-0-0"
    assert all(h.score >= 0.2 for h in scored)
    assert len(scored) < 30


@pytest.mark.parametrize("exact_limit", [0, 10_000])
def test_neighbours_filter_same_by_index_and_exact(
    service: ItemService, monkeypatch: pytest.MonkeyPatch, exact_limit: int
) -> None:
    items = _items(40, label=None)
    items = [
        NewItem(i.id, i.embedding, "odd" if n % 2 else "even", {"n": n, "third": n % 3 == 0})
        for n, i in enumerate(items)
    ]
    _run(service.add(items))
    monkeypatch.setattr(item_search, "EXACT_FILTER_LIMIT", exact_limit)

    (hits,) = _run(
        service.neighbours(
            [items[0].embedding], SearchOptions(k=40, label="odd", metadata={"third": True})
        )
    )

    assert [h.item.metadata["n"] for h in hits] == sorted(
        [n for n in range(40) if n % 2 and n % 3 == 0],
        key=lambda n: -float(l2_normalise(items[n].embedding) @ l2_normalise(items[0].embedding)),
    )


def test_delete_then_neighbours_never_returns_it(service: ItemService) -> None:
    items = _items(10)
    _run(service.add(items))

    _run(service.delete("it-0-1"))

    (hits,) = _run(service.neighbours([items[1].embedding], SearchOptions(k=10)))
    assert "it-0-1" not in {h.item.id for h in hits}
    assert len(hits) == 9
    with pytest.raises(Exception, match="no item") as info:
        _run(service.delete("it-0-1"))
    assert getattr(info.value, "status_code", None) == 404


def test_hnsw_many_deletes_compact_the_index(tmp_path: Path) -> None:
    service = _open(tmp_path, kind="hnsw")
    _run(service.add(_items(20)))

    for i in range(8):
        _run(service.delete(f"it-0-{i}"))

    assert service.index_size == 12
    # HNSW cannot remove: deletes are tombstones until they pass 25 %, then a rebuild
    # (at the 6th delete) drops them; the last two are tombstones again.
    assert service._index.ntotal == 14
    service.close()


def test_calls_before_ready_answer_503(tmp_path: Path) -> None:
    service = ItemService(
        ItemStore(tmp_path / "items.sqlite3"),
        index_path=tmp_path / "x.index",
        model_id="m",
        dim=DIM,
    )  # not started: the index is "still loading"

    with pytest.raises(Exception, match="loading") as info:
        _run(service.neighbours([np.ones(DIM, np.float32)], SearchOptions(k=1)))

    assert getattr(info.value, "status_code", None) == 503
    assert not service.is_ready
    service.store.close()


def test_add_wrong_dimension_is_422(service: ItemService) -> None:
    with pytest.raises(Exception, match="shape") as info:
        _run(service.add([NewItem("bad", np.ones(DIM + 1, np.float32))]))
    assert getattr(info.value, "status_code", None) == 422


# -- over HTTP, in-process, on the default Fashion-MNIST bundle ---------------------------


def _ready(client: TestClient) -> TestClient:
    assert client.app.state.items.wait_ready(30)  # type: ignore[attr-defined]
    return client


@pytest.fixture
def http(make_client: Callable[..., TestClient]) -> TestClient:
    return _ready(make_client())


def _inputs(images: np.ndarray) -> list[dict[str, Any]]:
    return [as_input(image) for image in images]


def test_create_items_returns_201_with_given_and_generated_ids(
    http: TestClient, fashion_sample: tuple[np.ndarray, np.ndarray]
) -> None:
    images, _ = fashion_sample
    body = {"items": [{"id": "a", "input": as_input(images[0]), "label": "T-shirt/top",
                       "metadata": {"colour": "red"}},
                      {"input": as_input(images[1]), "store_input": False}]}  # fmt: skip

    response = http.post("/items", json=body)

    assert response.status_code == 201
    created = response.json()["items"]
    assert created[0]["id"] == "a"
    assert created[0]["label"] == "T-shirt/top"
    assert created[0]["metadata"] == {"colour": "red"}
    assert (created[0]["has_input"], created[1]["has_input"]) == (True, False)
    assert len(created[1]["id"]) == 32  # a uuid
    assert created[0]["current_model"] is True
    assert "vector" not in created[0]


def test_create_items_from_vector_then_get_it_back(http: TestClient) -> None:
    vector = np.random.default_rng(0).normal(size=128).round(4).tolist()

    response = http.post("/items", json={"items": [{"id": "v", "vector": vector}]})
    got = http.get("/items/v", params={"include_vector": True})

    assert response.status_code == 201
    assert got.status_code == 200
    assert got.json()["vector"] == pytest.approx(vector, abs=1e-6)


def test_create_items_duplicate_id_is_409_and_stores_nothing(http: TestClient) -> None:
    vector = [1.0] * 128
    assert http.post("/items", json={"items": [{"id": "x", "vector": vector}]}).status_code == 201

    response = http.post("/items", json={"items": [{"id": "y", "vector": vector},
                                                   {"id": "x", "vector": vector}]})  # fmt: skip

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert response.json()["error"]["details"] == {"ids": ["x"]}
    assert http.get("/items/y").status_code == 404


@pytest.mark.parametrize(
    ("item", "status"),
    [
        ({"id": "w", "vector": [1.0] * 3}, 422),  # wrong dimension
        ({"id": "n", "vector": [0.0] * 128}, 422),  # no direction
        ({"id": "b", "vector": [1.0] * 128, "input": {"data": [[0]]}}, 422),  # both
        ({"id": "s/lash", "vector": [1.0] * 128}, 422),  # would leave the path
        ({"id": "i", "input": {"data": [[1, 2], [3, 4]]}}, 422),  # wrong image shape
        ({"id": "e", "input": {"image": "not base64!"}}, 422),
    ],
)
def test_create_items_bad_item_is_rejected(http: TestClient, item: dict, status: int) -> None:
    response = http.post("/items", json={"items": [item]})

    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_create_items_too_many_is_413(make_client: Callable[..., TestClient]) -> None:
    client = _ready(make_client(max_inputs_per_request=2))

    response = client.post("/items", json={"items": [{"vector": [1.0] * 128}] * 3})

    assert response.status_code == 413


def test_get_item_unknown_is_404(http: TestClient) -> None:
    response = http.get("/items/nope")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no item with id 'nope'"


def test_list_items_pages_by_cursor_and_filters_by_label(http: TestClient) -> None:
    items = [{"id": f"i{n}", "vector": [1.0 + n] + [1.0] * 127, "label": "ab"[n % 2]}
             for n in range(7)]  # fmt: skip
    http.post("/items", json={"items": items})

    first = http.get("/items", params={"limit": 2, "label": "a"})
    second = http.get("/items", params={"limit": 2, "label": "a",
                                        "cursor": first.json()["next_cursor"]})  # fmt: skip
    by_offset = http.get("/items", params={"limit": 3, "offset": 5})

    assert first.status_code == 200
    assert [i["id"] for i in first.json()["items"]] == ["i0", "i2"]
    assert first.json()["total"] == 4
    assert [i["id"] for i in second.json()["items"]] == ["i4", "i6"]
    assert [i["id"] for i in by_offset.json()["items"]] == ["i5", "i6"]
    assert by_offset.json()["next_cursor"] is None
    assert first.json()["index"]["index_size"] == 7
    assert http.get("/items", params={"cursor": "x"}).status_code == 422
    assert http.get("/items", params={"limit": 0}).status_code == 422


def test_delete_item_then_it_is_gone(http: TestClient) -> None:
    http.post("/items", json={"items": [{"id": "d", "vector": [1.0] * 128}]})

    response = http.delete("/items/d")

    assert response.status_code == 204
    assert http.get("/items/d").status_code == 404
    assert http.delete("/items/d").status_code == 404
    assert http.get("/items").json()["index"]["index_size"] == 0


def _other_model(bundle: Path, out: Path) -> Path:
    """The same network under another identity: its ONNX file differs by one doc string."""
    import onnx

    model = onnx.load(str(bundle / "encoder.onnx"))
    model.doc_string = "a retrained encoder, for the test"
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out.parent / "encoder.onnx"))
    original = load_bundle(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest = {k: v for k, v in manifest.items() if k not in ("files", "created")}
    write_bundle(out, manifest=manifest, encoder_onnx=out.parent / "encoder.onnx",
                 class_vectors=original.class_vectors)  # fmt: skip
    return out


def test_reembed_after_model_change(
    tmp_path: Path, fashion_sample: tuple[np.ndarray, np.ndarray]
) -> None:
    images, _ = fashion_sample
    data = tmp_path / "data"
    with TestClient(
        create_app(settings=Settings(bundle_path=DEFAULT_BUNDLE, data_dir=data))
    ) as old:
        _ready(old)
        items = [{"id": "in0", "input": as_input(images[0])},
                 {"id": "in1", "input": as_input(images[1])},
                 {"id": "in2", "input": tensor_input(images[2])}]  # kept as bytes, too
        old.post("/items", json={"items": [*items, {"id": "vec", "vector": [1.0] * 128}]})
        before = old.get("/items/in0", params={"include_vector": True}).json()
    new_bundle = _other_model(DEFAULT_BUNDLE, tmp_path / "bundles" / "v2")

    with TestClient(create_app(settings=Settings(bundle_path=new_bundle, data_dir=data))) as new:
        _ready(new)
        stale = new.get("/items").json()
        blocked = new.get("/neighbors", params={"id": "in0"})
        response = new.post("/items/reembed")
        after = new.get("/items/in0", params={"include_vector": True}).json()
        neighbours = new.get("/neighbors", params={"id": "in0", "k": 5})

    assert stale["index"]["items_other_models"] == 4
    assert stale["index"]["items_other_models_reembeddable"] == 3
    assert stale["index"]["index_size"] == 0
    assert [i["current_model"] for i in stale["items"]] == [False] * 4
    assert blocked.status_code == 409
    assert response.status_code == 200
    assert response.json() == {"reembedded": 3, "failed": [], "items_other_models": 1}
    assert after["current_model"] is True
    assert after["model_id"] != before["model_id"]
    assert after["created"] == before["created"]
    assert after["vector"] == pytest.approx(before["vector"], abs=1e-4)  # same network
    assert neighbours.status_code == 200
    assert {n["id"] for n in neighbours.json()["neighbors"]} == {"in1", "in2"}
