"""Following a shared class store: a change saved by one replica reaches the other's index,
and an outage of the store is logged once and outlived."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import pytest

from corel.bundle import load_bundle
from service.classes.class_set import ClassSet
from service.classes.index import ClassIndex
from tests.conftest import DEFAULT_BUNDLE


class SharedStore:
    """A class store in memory that two indexes share, as replicas share milvus."""

    shared = True

    def __init__(self) -> None:
        self.sets: list[ClassSet] = []
        self.away = False

    def load(self, model_id: str) -> tuple[int, ClassSet | None]:
        return len(self.sets), self.sets[-1] if self.sets else None

    def save(self, model_id: str, classes: ClassSet) -> int:
        self.sets.append(classes)
        return len(self.sets)

    def version(self, model_id: str) -> int:
        if self.away:
            raise ConnectionError("store away")
        return len(self.sets)

    def earlier_sets(self, except_model: str) -> list[ClassSet]:
        return []

    def close(self) -> None:
        pass


def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_watching_index_follows_the_other_replicas_changes_and_outlives_an_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bundle = load_bundle(DEFAULT_BUNDLE, check_onnx=False)
    store = SharedStore()
    writer, reader = ClassIndex(bundle, store), ClassIndex(bundle, store)
    reader.watch(interval=0.01)
    try:
        writer.add("new", np.random.default_rng(0).normal(size=(3, 128)).astype(np.float32))
        assert eventually(lambda: "new" in reader.classes.names)

        with caplog.at_level(logging.INFO, logger="service.classes"):
            store.away = True
            writer.remove("new")  # saved, but the reader cannot ask for the version
            time.sleep(0.1)
            assert "new" in reader.classes.names
            store.away = False
            assert eventually(lambda: "new" not in reader.classes.names)
        messages = [r.getMessage() for r in caplog.records]
        assert sum("cannot read the shared class store" in m for m in messages) == 1
        assert any("answers again" in m for m in messages)
    finally:
        reader.close()
        writer.close()
