"""`python -m service backup DEST` and `restore SRC`: the data directory copied as a whole.

`backup` copies a live directory consistently (SQLite's online backup API) while a server
may be writing; `restore` puts a backup in place while no server holds the directory. A
backup is a folder of the data directory's files (layout.py) and `backup.json`.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from corel.files import atomic_write
from service.datadir.check import StorageError, check_data_dir, count_items
from service.datadir.layout import DataDir
from service.datadir.lock import DataDirLock

__all__ = ["BackupReport", "backup", "restore"]


@dataclass(frozen=True)
class BackupReport:
    created: str
    items: int
    files: list[str]


def backup(data_dir: Path, dest: Path) -> BackupReport:
    """Copy the data directory to `dest` (new or empty), while a server may be writing."""
    if dest.exists() and any(dest.iterdir()):
        raise StorageError(f"{dest} is not empty: back up into a new folder")
    dest.mkdir(parents=True, exist_ok=True)
    source, target = DataDir(data_dir), DataDir(dest)
    files = []
    if source.store.exists():
        check_data_dir(data_dir, live=True)
        # The online backup copies a consistent state even while the server commits.
        with (
            sqlite3.connect(f"file:{source.store}?mode=ro", uri=True) as live,
            sqlite3.connect(target.store) as copy,
        ):
            live.backup(copy)
        files.append(target.store.name)
    # Written atomically by the service, so a plain copy sees one whole version. A snapshot
    # newer than the store copy is harmless: the catch-up after a restore removes the extra.
    for path in [source.snapshot, *source.class_sets()]:
        if path.exists():
            shutil.copy2(path, dest / path.name)
            files.append(path.name)
    report = BackupReport(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        items=count_items(target.store) if source.store.exists() else 0,
        files=files,
    )
    atomic_write(target.backup_manifest, json.dumps(asdict(report), indent=2).encode())
    return report


def restore(source: Path, data_dir: Path) -> BackupReport:
    """Put the backup in `source` in place of the data directory's files; refused while a
    server holds the directory (DataDirInUseError) or when the backup is damaged."""
    manifest = DataDir(source).backup_manifest
    if not manifest.is_file():
        raise StorageError(f"{source} is not a backup made by `python -m service backup`")
    report = BackupReport(**json.loads(manifest.read_text()))
    check_data_dir(source)
    target = DataDir(data_dir)
    lock = DataDirLock(data_dir)
    lock.acquire()
    try:
        for path in [*target.store_files, target.snapshot, *target.class_sets()]:
            path.unlink(missing_ok=True)  # nothing of the old state may remain
        for name in report.files:
            atomic_write(data_dir / name, (source / name).read_bytes())
    finally:
        lock.release()
    return report
