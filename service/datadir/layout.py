"""Where each file of the data directory lives: the one module that names them.

    <data_dir>/items.sqlite3      the item store (the truth: service/items/sqlite_store.py)
    <data_dir>/items.sqlite3-wal  its write-ahead log (commits not yet copied into the store)
    <data_dir>/items.sqlite3-shm  SQLite's shared-memory index of that log
    <data_dir>/items.index        the item index snapshot (a cache, rebuilt when missing:
                                  service/items/snapshot.py)
    <data_dir>/classes-*.json     the class set of each model (service/classes/store.py)
    <data_dir>/.lock              held by the server that uses the directory (lock.py)

A backup (backup.py) is a folder of the same files, less the log and the lock, plus
`backup.json`, what it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DataDir"]

_STORE = "items.sqlite3"
_CLASSES = "classes-{}.json"


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def store(self) -> Path:
        return self.root / _STORE

    @property
    def store_wal(self) -> Path:
        return self.root / f"{_STORE}-wal"

    @property
    def store_files(self) -> list[Path]:
        """The store and the files SQLite keeps beside it (its log and shared memory)."""
        return [self.store, self.store_wal, self.root / f"{_STORE}-shm"]

    @property
    def snapshot(self) -> Path:
        return self.root / "items.index"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def backup_manifest(self) -> Path:
        return self.root / "backup.json"

    def class_set(self, model_id: str) -> Path:
        """The file of a model's class set (by the first 16 hex digits of its id)."""
        return self.root / _CLASSES.format(model_id[:16])

    def class_sets(self) -> list[Path]:
        """Every model's class set file, sorted by name."""
        return sorted(self.root.glob(_CLASSES.format("*")))
