"""Where the class set is kept: a file in the data directory (embedded store) or a Milvus
collection that every replica shares (milvus store: milvus_store.py).

Each save of a model's set is a new version. A shared store is polled by every replica
(ClassIndex.watch, about twice a second), so a class imprinted or removed through one
replica is used by the others within about a second; a change first reads the newest
version, so two replicas changing classes a second apart both keep their change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from service.classes.class_set import (
    ClassSet,
    load_class_set,
    save_class_set,
    saved_class_sets,
)
from service.datadir.layout import DataDir

__all__ = ["ClassStore", "FileClassStore"]


class ClassStore(Protocol):
    shared: bool  # other processes may change it: poll `version`

    def load(self, model_id: str) -> tuple[int, ClassSet | None]:
        """(version, the newest saved set of the model or None when there is none)."""
        ...

    def save(self, model_id: str, classes: ClassSet) -> int:
        """Save a new version; its number."""
        ...

    def version(self, model_id: str) -> int:
        """The newest version's number (0: none), cheaply."""
        ...

    def earlier_sets(self, except_model: str) -> list[ClassSet]:
        """The sets saved for other models, newest first (for carry-over)."""
        ...

    def close(self) -> None: ...


class FileClassStore:
    """A file per model in the data directory (service/datadir/layout.py), written atomically."""

    shared = False

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def _path(self, model_id: str) -> Path:
        return DataDir(self.data_dir).class_set(model_id)

    def load(self, model_id: str) -> tuple[int, ClassSet | None]:
        return 1, load_class_set(self._path(model_id), model_id=model_id)

    def save(self, model_id: str, classes: ClassSet) -> int:
        save_class_set(self._path(model_id), classes, model_id=model_id)
        return 1

    def version(self, model_id: str) -> int:
        return 1  # one process: nobody else changes the file

    def earlier_sets(self, except_model: str) -> list[ClassSet]:
        return [c for _, c in saved_class_sets(self.data_dir, except_model=except_model)]

    def close(self) -> None:
        pass
