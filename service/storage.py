"""The data directory's files as a whole: checks before serving, backup and restore.

    <data_dir>/items.sqlite3     the item store (the truth)
    <data_dir>/items.sqlite3-wal its write-ahead log (commits not yet copied into the store)
    <data_dir>/items.index       the item index snapshot (a cache, rebuilt when missing)
    <data_dir>/classes-*.json    the class set of each model
    <data_dir>/.lock             held by the server that uses the directory

`check_data_dir` runs before a server loads its model, so a damaged store, a write-ahead log
whose damage would silently drop committed items (service/wal.py), or a store that
is missing or empty beside an index snapshot that holds vectors (a restore gone wrong, a
file deleted by hand), refuses to start with one line instead of serving nothing, or
serving an empty store and overwriting the snapshot. `backup` copies a live directory
consistently (SQLite's online backup API); `restore` puts a backup in place while no
server holds the directory.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from corel.files import atomic_write
from service.data_lock import DataDirLock
from service.items.snapshot import SnapshotError, read_snapshot_header
from service.wal import wal_damage

__all__ = ["BackupReport", "StorageError", "backup", "check_data_dir", "restore"]

STORE, SNAPSHOT, BACKUP_MANIFEST = "items.sqlite3", "items.index", "backup.json"


class StorageError(Exception):
    """The data directory cannot be served as it is; the message says why and what to do."""


@dataclass(frozen=True)
class BackupReport:
    created: str
    items: int
    files: list[str]


def check_data_dir(data_dir: Path, *, live: bool = False) -> None:
    """StorageError unless the item store is sound and agrees with the index snapshot.

    `live`: a server may be writing (a backup); its log is then not read, as a frame being
    appended while it is read could look damaged.
    """
    store, snapshot, wal = data_dir / STORE, data_dir / SNAPSHOT, data_dir / f"{STORE}-wal"
    # before anything opens the store: opening it replays the log and drops a damaged tail
    damage = None if live else wal_damage(wal)
    if damage is not None:
        raise StorageError(
            f"the item store's write-ahead log {wal} is damaged ({damage}): restore the store "
            f"from a backup (python -m service restore DIR), or keep only the commits before "
            f"the damage: python -c \"import sqlite3; sqlite3.connect('{store}')"
            f".execute('PRAGMA wal_checkpoint(TRUNCATE)')\""
        )
    items = _count_items(store) if store.exists() else 0
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


def _count_items(store: Path) -> int:
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


def backup(data_dir: Path, dest: Path) -> BackupReport:
    """Copy the data directory to `dest` (new or empty), while a server may be writing."""
    if dest.exists() and any(dest.iterdir()):
        raise StorageError(f"{dest} is not empty: back up into a new folder")
    dest.mkdir(parents=True, exist_ok=True)
    files = []
    store = data_dir / STORE
    if store.exists():
        check_data_dir(data_dir, live=True)
        # The online backup copies a consistent state even while the server commits.
        with (
            sqlite3.connect(f"file:{store}?mode=ro", uri=True) as source,
            sqlite3.connect(dest / STORE) as target,
        ):
            source.backup(target)
        files.append(STORE)
    # Written atomically by the service, so a plain copy sees one whole version. A snapshot
    # newer than the store copy is harmless: the catch-up after a restore removes the extra.
    for path in [data_dir / SNAPSHOT, *sorted(data_dir.glob("classes-*.json"))]:
        if path.exists():
            shutil.copy2(path, dest / path.name)
            files.append(path.name)
    report = BackupReport(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        items=_count_items(dest / STORE) if store.exists() else 0,
        files=files,
    )
    atomic_write(dest / BACKUP_MANIFEST, json.dumps(asdict(report), indent=2).encode())
    return report


def restore(source: Path, data_dir: Path) -> BackupReport:
    """Put the backup in `source` in place of the data directory's files; refused while a
    server holds the directory (DataDirInUseError) or when the backup is damaged."""
    manifest = source / BACKUP_MANIFEST
    if not manifest.is_file():
        raise StorageError(f"{source} is not a backup made by `python -m service backup`")
    report = BackupReport(**json.loads(manifest.read_text()))
    check_data_dir(source)
    lock = DataDirLock(data_dir)
    lock.acquire()
    try:
        for name in (STORE, f"{STORE}-wal", f"{STORE}-shm", SNAPSHOT):
            (data_dir / name).unlink(missing_ok=True)  # nothing of the old state may remain
        for stale in data_dir.glob("classes-*.json"):
            stale.unlink()
        for name in report.files:
            atomic_write(data_dir / name, (source / name).read_bytes())
    finally:
        lock.release()
    return report
