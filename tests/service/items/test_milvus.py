"""MilvusItems in-process, on Milvus Lite and on the test Milvus server: the filters Milvus
cannot express (a metadata field that must hold null) are resolved here, over every
matching row, not only one query window of them.

The window (Milvus caps one query's rows at 16,384) is lowered to 8, so that a few dozen
items span several windows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.items import milvus
from service.items.types import NewItem, SearchOptions
from service.milvus import connect
from tests.service.conftest import MILVUS_PREFIX

pytest.importorskip("pymilvus", reason="pymilvus is not installed (the milvus extra)")

DIM = 4
WINDOW = 8


@pytest.fixture(params=["lite", "server"])
def items(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[milvus.MilvusItems]:
    if request.param == "lite":
        pytest.importorskip("milvus_lite", reason="milvus-lite is not installed")
        uri = str(tmp_path / "items.db")
    else:
        from harness.milvus import empty_collections

        uri = request.getfixturevalue("milvus_uri")
        empty_collections(uri, MILVUS_PREFIX)
    monkeypatch.setattr(milvus, "QUERY_WINDOW", WINDOW)
    store = milvus.MilvusItems(
        connect(uri),
        prefix=MILVUS_PREFIX,
        model_id="0123456789abcdef" * 4,
        dim=DIM,
        kind="flat",
        lite=request.param == "lite",
    )
    store.start()
    assert store.wait_ready(60)
    yield store
    store.close()


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_null_filter_finds_every_match_beyond_one_window(items: milvus.MilvusItems) -> None:
    rng = np.random.default_rng(0)
    metadata = [{"colour": None}] * 5 * WINDOW + [{"colour": "red"}] * WINDOW + [{}] * WINDOW
    new = [
        NewItem(f"it-{n}", rng.normal(size=DIM).astype(np.float32), metadata=m)
        for n, m in enumerate(metadata)
    ]
    _run(items.add(new))
    nulls = {f"it-{n}" for n, m in enumerate(metadata) if "colour" in m and m["colour"] is None}

    options = SearchOptions(k=len(new), metadata={"colour": None})
    (hits,) = _run(items.neighbours([np.ones(DIM, np.float32)], options))
    listed = _run(items.page(limit=len(new), metadata={"colour": None}))
    counted = _run(items.count(metadata={"colour": None}))

    assert {h.item.id for h in hits} == nulls
    assert {i.id for i in listed} == nulls
    assert counted == len(nulls)
