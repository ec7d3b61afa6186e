"""The data directory's checks before a server serves it, or a backup reads it.

`check_data_dir` runs before a server loads its model, so a damaged store, a write-ahead log
whose damage would silently drop committed items (wal.py), or a store that is missing or
empty beside an index snapshot that holds vectors (a restore gone wrong, a file deleted by
hand), refuses to start with one line instead of serving nothing, or serving an empty store
and overwriting the snapshot.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from service.datadir.layout import DataDir
from service.datadir.wal import wal_damage
from service.items.snapshot import SnapshotError, read_snapshot_header

__all__ = ["StorageError", "check_data_dir", "count_items"]


class StorageError(Exception):
    """The data directory cannot be served as it is; the message says why and what to do."""


def check_data_dir(data_dir: Path, *, live: bool = False) -> None:
    """StorageError unless the item store is sound and agrees with the index snapshot.

    `live`: a server may be writing (a backup); its log is then not read, as a frame being
    appended while it is read could look damaged.
    """
    files = DataDir(data_dir)
    store, snapshot, wal = files.store, files.snapshot, files.store_wal
    # before anything opens the store: opening it replays the log and drops a damaged tail
    damage = None if live else wal_damage(wal)
    if damage is not None:
        raise StorageError(
            f"the item store's write-ahead log {wal} is damaged ({damage}): restore the store "
            f"from a backup (python -m service restore DIR), or keep only the commits before "
            f"the damage: python -c \"import sqlite3; sqlite3.connect('{store}')"
            f".execute('PRAGMA wal_checkpoint(TRUNCATE)')\""
        )
    items = count_items(store) if store.exists() else 0
    if snapshot.exists() and items == 0:
        try:
            vectors = int(read_snapshot_header(snapshot).get("ntotal", 0))
        except SnapshotError:
            vectors = 0  # a damaged snapshot is only a cache: it is rebuilt
        if vectors:
            state = "empty" if store.exists() else "missing"
            raise StorageError(
                f"the item store {store} is {state} but the index snapshot {snapshot} holds "
                f"{vectors} vectors: restore the store from a backup (python -m service "
                f"restore DIR), or delete {snapshot.name} to start with no items"
            )


def count_items(store: Path) -> int:
    """The items in the SQLite file `store`, after SQLite's quick check of it."""
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
            (verdict,) = conn.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                raise sqlite3.DatabaseError(verdict)
            has_items = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'items'"
            ).fetchone()
            return int(conn.execute("SELECT count(*) FROM items").fetchone()[0]) if has_items else 0
    except sqlite3.Error as exc:
        raise StorageError(
            f"the item store {store} is damaged ({exc}): restore it from a backup "
            "(python -m service restore DIR)"
        ) from exc
