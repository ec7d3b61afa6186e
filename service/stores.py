"""Which store keeps the items and the imprinted classes (COREL_STORE): decided here only.

- `embedded`: SQLite and FAISS (service/items/embedded.py) and a class set file per model
  (service/classes/store.py), all in the data directory (service/datadir/), which one
  server process holds at a time: `holds_data_dir`, the lock it takes before serving;
- `milvus`: a Milvus server or cluster that every worker and replica shares
  (service/items/milvus.py, service/classes/milvus_store.py); nothing in the data
  directory. A Milvus Lite file (COREL_MILVUS_URI ending in .db) is one process's at a time.

`python -m service` runs `check` before it binds the port; the lifespan (service/app.py)
opens both stores. pymilvus is imported only when the milvus store is used.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from service.classes.store import ClassStore, FileClassStore
from service.datadir.check import check_data_dir
from service.settings import Settings

if TYPE_CHECKING:
    from corel.bundle import Bundle
    from service.items.backend import ItemBackend

__all__ = ["StoreError", "Stores", "stores_for"]


class StoreError(Exception):
    """The configured store cannot be served as it is; the message says why."""


class Stores(Protocol):
    @property
    def holds_data_dir(self) -> bool:
        """Whether the server keeps its state in the data directory, which it then holds
        alone while it serves (service/datadir/lock.py)."""
        ...

    def check(self) -> None:
        """Before serving: StoreError, or the data directory's StorageError, saying why the
        store cannot be served as it is."""
        ...

    def open_items(self, bundle: Bundle) -> ItemBackend:
        """The item store, loading or connecting in the background (see `is_ready`)."""
        ...

    def open_classes(self) -> ClassStore: ...


def stores_for(settings: Settings) -> Stores:
    return MilvusStores(settings) if settings.store == "milvus" else EmbeddedStores(settings)


@dataclass(frozen=True)
class EmbeddedStores:
    settings: Settings
    holds_data_dir = True  # a class attribute, not a field

    def check(self) -> None:
        check_data_dir(self.settings.data_dir)

    def open_items(self, bundle: Bundle) -> ItemBackend:
        from service.datadir.layout import DataDir
        from service.items.embedded import EmbeddedItems  # faiss only when it is used
        from service.items.sqlite_store import ItemStore

        files = DataDir(self.settings.data_dir)
        items = EmbeddedItems(
            ItemStore(files.store),
            index_path=files.snapshot,
            auto_threshold=self.settings.index_auto_threshold,
            **_index_of(bundle, self.settings),
        )
        items.start()  # loads in the background: see `is_ready`
        return items

    def open_classes(self) -> ClassStore:
        return FileClassStore(self.settings.data_dir)


@dataclass(frozen=True)
class MilvusStores:
    settings: Settings
    holds_data_dir = False  # a class attribute, not a field

    def check(self) -> None:
        if self.settings.milvus_lite and (problem := _lite_problem(Path(self.settings.milvus_uri))):
            raise StoreError(problem)

    def open_items(self, bundle: Bundle) -> ItemBackend:
        from service.items.milvus import MilvusItems  # pymilvus only when it is used
        from service.milvus import connect

        items = MilvusItems(
            connect(self.settings.milvus_uri),
            prefix=self.settings.milvus_prefix,
            lite=self.settings.milvus_lite,
            **_index_of(bundle, self.settings),
        )
        items.start()  # connects in the background: see `is_ready`
        return items

    def open_classes(self) -> ClassStore:
        from service.classes.milvus_store import MilvusClassStore

        return MilvusClassStore.open(self.settings.milvus_uri, self.settings.milvus_prefix)


def _index_of(bundle: Bundle, settings: Settings) -> dict[str, Any]:
    """What every item store is built with: whose vectors it keeps, their width, and the
    index kind the settings ask for."""
    return {
        "model_id": bundle.model_id,
        "dim": bundle.manifest.embedding_dim,
        "kind": settings.index_kind,
    }


def _lite_problem(path: Path) -> str | None:
    """Why the Milvus Lite database `path` (a folder, despite its .db name) cannot be opened
    by this process, or None. Lite holds an exclusive flock on its LOCK file while open."""
    if not path.parent.is_dir():
        return f"COREL_MILVUS_URI={path}: the folder {path.parent} does not exist"
    try:
        fd = os.open(path / "LOCK", os.O_RDWR)
    except FileNotFoundError:
        return None  # a new database
    except NotADirectoryError:
        return f"COREL_MILVUS_URI={path} is a file, not a Milvus Lite database (a folder)"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return (
            f"COREL_MILVUS_URI={path}: this Milvus Lite database is open in another process "
            "(Lite is one process; several need a Milvus server, see docs/scaling.md)"
        )
    finally:
        os.close(fd)  # closing releases the lock
    return None
